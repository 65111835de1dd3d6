"""SRAM compute-in-memory macro spec.

A macro is an array of ``rows`` word lines by ``cols`` bit lines. Weights sit along the
bit lines (``weight_bits / bits_per_cell`` columns per weight), inputs drive word lines,
and ``wordlines_on`` rows are activated at once; their bit-line sums are digitised by
ADCs of ``adc_bits`` and shift-added across bit slices.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cimco.errors import Problem
from cimco.spec._base import Bounded, Strict

# Physical quantities in SI units, finite, in ranges no real SRAM CIM design leaves (a value
# outside is a unit mistake far more often than a design: 65 meaning 65 nm, say).
Metres = Annotated[float, Field(ge=1e-9, le=1e-6)]  # technology node: 1 nm .. 1 um
Volts = Annotated[float, Field(ge=0.1, le=5.0)]
Seconds = Annotated[float, Field(ge=1e-12, le=1e-3)]  # one array cycle: 1 ps .. 1 ms


class Sourced(Strict):
    """A number with where it came from (a citation, a measurement or ``assumed``)."""

    value: Annotated[float, Field(ge=0.0)]
    source: str = Field(min_length=1, max_length=2000)


class Joules(Sourced):
    """An energy per action or per bit: 0 .. 1 nJ (one access of anything on a chip)."""

    value: Annotated[float, Field(ge=0.0, le=1e-9)]


class SquareMetres(Sourced):
    """An area: above 0 and at most 1000 mm^2 (beyond the largest reticle)."""

    value: Annotated[float, Field(gt=0.0, le=1e-3)]


class Factor(Sourced):
    """A calibration factor on a model's energy: 1e-3 .. 1e3."""

    value: Annotated[float, Field(ge=1e-3, le=1e3)]


class BitRange(Strict):
    """Smallest and largest precision the macro supports for one tensor."""

    min: Bounded(1, 32) = 1
    max: Bounded(1, 32)


class TableEnergy(Strict):
    """Datasheet-style energies per action (joules), like Accelergy's table plug-in."""

    model: Literal["table"]
    wordline_drive_j: Joules  # one word line driven with one input slice
    cell_mac_j: Joules  # one cell computing with one input slice
    adc_convert_j: Joules  # one ADC conversion
    shift_add_j: Joules  # one shift-add of a converted partial sum
    weight_write_j: Joules  # writing one weight bit into the array


class ComponentEnergy(Strict):
    """Energies derived from cimco's hwcomponents models, with named calibration factors.

    Every factor defaults to 1 (uncalibrated). A factor other than 1 must say which
    published operating point it was fitted to in its ``source``.
    """

    model: Literal["components"]
    adc_scale: Factor = Factor(value=1.0, source="uncalibrated")
    # Everything else in the macro: cell array, word-line drivers and shift-add.
    array_scale: Factor = Factor(value=1.0, source="uncalibrated")


class MacroSpec(Strict):
    """One SRAM CIM macro."""

    kind: Literal["macro"] = "macro"
    name: str = Field(min_length=1, max_length=200)
    citation: str = Field(min_length=1, max_length=2000)
    rows: Bounded(1, 2**16)
    cols: Bounded(1, 2**16)
    wordlines_on: Bounded(1, 2**16)
    # Bit lines on at once (one column group); default all columns. Sparsity skips a
    # block of wordlines_on rows x one column group only when all of it is zero.
    bitlines_on: Bounded(1, 2**16) | None = None
    partitions: Bounded(1, 2**16) = 1
    bits_per_cell: Bounded(1, 8) = 1
    input_bits: BitRange
    weight_bits: BitRange
    output_bits: BitRange
    bit_serial_input: bool = True
    input_slice_bits: Bounded(1, 32) = 1  # bits per input slice when not bit-serial (DAC)
    # True when the columns holding one weight's bits are summed in the analog domain
    # (binary-weighted) before one conversion; False when each column is converted.
    analog_weight_combine: bool = False
    adc_bits: Bounded(1, 16)  # beyond any published SRAM CIM readout
    adcs: Bounded(1, 2**16)  # ADCs per macro (columns share them when fewer than cols)
    tech_node_m: Metres
    voltage_v: Volts
    reference_voltage_v: Volts  # voltage at which the energy model is stated
    cycle_s: Seconds  # one array activation (all wordlines_on rows, one input slice)
    energy: TableEnergy | ComponentEnergy = Field(discriminator="model")
    area_m2: SquareMetres | None = None  # measured macro area; model area is used otherwise

    def input_slice(self) -> int:
        return 1 if self.bit_serial_input else self.input_slice_bits

    def n_input_slices(self, bits: int) -> int:
        return -(-bits // self.input_slice())

    def n_weight_slices(self, bits: int) -> int:
        return -(-bits // self.bits_per_cell)

    def conversions_per_output(self, input_bits: int, weight_bits: int) -> int:
        """ADC conversions per output and row group: one per input slice (x weight slice)."""
        w = 1 if self.analog_weight_combine else self.n_weight_slices(weight_bits)
        return self.n_input_slices(input_bits) * w

    def check(self, file: str, prefix: str = "") -> list[Problem]:
        """Value checks that need more than one field (phase two of validation)."""
        p = f"{prefix}." if prefix else ""
        out = []
        if self.wordlines_on > self.rows:
            out.append(Problem(file, f"{p}wordlines_on",
                               f"expected at most rows={self.rows}, got {self.wordlines_on}"))
        if self.rows % self.wordlines_on:
            out.append(Problem(file, f"{p}wordlines_on",
                               f"expected a divisor of rows={self.rows}, got {self.wordlines_on}"))
        if self.bitlines_on is not None and self.bitlines_on > self.cols:
            out.append(Problem(file, f"{p}bitlines_on",
                               f"expected at most cols={self.cols}, got {self.bitlines_on}"))
        if self.adcs > self.cols:
            out.append(Problem(file, f"{p}adcs", f"expected at most cols={self.cols}, got {self.adcs}"))
        for name in ("input_bits", "weight_bits", "output_bits"):
            r: BitRange = getattr(self, name)
            if r.min > r.max:
                out.append(Problem(file, f"{p}{name}", f"min={r.min} is above max={r.max}"))
        if isinstance(self.energy, TableEnergy) and not sum(
                getattr(self.energy, f).value for f in ("wordline_drive_j", "cell_mac_j", "adc_convert_j",
                                                         "shift_add_j")):
            out.append(Problem(file, f"{p}energy", "every compute action costs 0 J: efficiency would be "
                                                   "infinite; give at least one non-zero energy"))
        if self.n_weight_slices(self.weight_bits.max) > self.cols:
            out.append(Problem(file, f"{p}weight_bits.max",
                               f"one weight needs {self.n_weight_slices(self.weight_bits.max)} "
                               f"columns but the macro has cols={self.cols}"))
        return out
