"""SRAM compute-in-memory macro spec.

A macro is an array of ``rows`` word lines by ``cols`` bit lines. Weights sit along the
bit lines (``weight_bits / bits_per_cell`` columns per weight), inputs drive word lines,
and ``wordlines_on`` rows are activated at once; their column sums are read out (by ADCs of
``adc_bits`` in an analog macro, by adder trees or in-array adders in a digital one) and
shift-added across bit slices. ``cimco specs schema`` prints every field with its unit.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag

from cimco.errors import Problem
from cimco.parts import FAMILY_PARTS
from cimco.spec._base import Bounded, Number, Strict

# Physical quantities in SI units, finite, in ranges no real SRAM CIM design leaves (a value
# outside is a unit mistake far more often than a design: 65 meaning 65 nm, say).
Metres = Number(ge=1e-9, le=1e-6)  # technology node: 1 nm .. 1 um
Volts = Number(ge=0.1, le=5.0)
Seconds = Number(ge=1e-12, le=1e-3)  # one array cycle: 1 ps .. 1 ms

# The least energy of any bit operation: the Landauer limit kT ln 2 at T = 300 K, 2.87e-21 J
# (R. Landauer, "Irreversibility and heat generation in the computing process", IBM J. Res.
# Dev. 5(3), 1961). A non-zero energy below it is a unit mistake, and one so small that it is
# subnormal turns efficiencies (1 / energy) into inf, which no report can hold.
LANDAUER_J = 1.380649e-23 * 300.0 * math.log(2)
# The least area of anything on a chip: 1 nm^2. A smaller non-zero area is a unit mistake (and
# 1 / area of a subnormal one overflows a float).
MIN_AREA_M2 = 1e-18


def _zero_or_physical(joules: float) -> float:
    """``joules`` if it is 0 or at least the Landauer limit."""
    if 0.0 < joules < LANDAUER_J:
        raise ValueError(f"0 or at least {LANDAUER_J:.3g} J (the Landauer limit kT ln 2 at 300 K)")
    return joules


class Sourced(Strict):
    """A number with where it came from (a citation, a measurement or ``assumed``)."""

    value: Number(ge=0.0)
    source: str = Field(min_length=1, max_length=2000)


class Joules(Sourced):
    """An energy per action or per bit: 0, or the Landauer limit .. 1 nJ (one access of
    anything on a chip)."""

    value: Annotated[Number(ge=0.0, le=1e-9), AfterValidator(_zero_or_physical)]


class SquareMetres(Sourced):
    """An area: 1 nm^2 .. 1000 mm^2 (beyond the largest reticle)."""

    value: Number(ge=MIN_AREA_M2, le=1e-3)


class Factor(Sourced):
    """A calibration factor on a model's energy: 1e-3 .. 1e3."""

    value: Number(ge=1e-3, le=1e3)


class BitRange(Strict):
    """Smallest and largest precision the macro supports for one tensor."""

    min: Bounded(1, 32) = Field(1, description="smallest precision (bits)")
    max: Bounded(1, 32) = Field(description="largest precision (bits)")


class TableEnergy(Strict):
    """Datasheet-style energies per action (joules), like Accelergy's table plug-in.

    The energies are used as given: ``tech_node_m``, ``voltage_v`` and
    ``reference_voltage_v`` may be left out (they scale nothing on this path). ``adc_convert_j``
    is the ADC conversion (analog) or the adder-tree reduction (digital adder tree); a
    bit-serial digital macro has neither and leaves it out.
    """

    model: Literal["table"] = Field(description="`table`: energies per action given in the spec")
    wordline_drive_j: Joules = Field(description="one word line driven with one input slice (J)")
    cell_mac_j: Joules = Field(description="one cell computing with one input slice (J)")
    adc_convert_j: Joules | None = Field(None, description="one ADC conversion (analog) or one adder-tree "
                                         "reduction of one column (digital adder tree) (J)")
    shift_add_j: Joules = Field(description="one shift-add of a partial sum into its output (J)")
    weight_write_j: Joules = Field(description="writing one weight bit into the array (J)")


class ComponentEnergy(Strict):
    """Energies derived from cimco's hwcomponents models, with named calibration factors.

    Every factor defaults to 1 (uncalibrated). A factor other than 1 must say which
    published operating point it was fitted to in its ``source``.
    """

    model: Literal["components"] = Field(description="`components`: energies from cimco's hwcomponents "
                                         "models at tech_node_m and voltage_v")
    adc_scale: Factor = Field(Factor(value=1.0, source="uncalibrated"),
                              description="factor on the ADC model's energy (analog family only)")
    # Everything else in the macro: cell array, word-line drivers and shift-add.
    array_scale: Factor = Field(Factor(value=1.0, source="uncalibrated"),
                                description="factor on every other part: cells, word-line drivers, "
                                "adder trees, shift-add")


def _area_form(v: object) -> str:
    """``{value, source}`` (or anything not a mapping) is one total; other mappings are per part."""
    return "parts" if isinstance(v, dict) and not {"value", "source"} & set(v) else "total"


# One measured total, or a mapping part -> area; the discriminator keeps errors to one form.
MacroArea = Annotated[Annotated[SquareMetres, Tag("total")] | Annotated[dict[str, SquareMetres], Tag("parts")],
                      Discriminator(_area_form)]

Family = Literal["analog", "digital_adder_tree", "digital_bit_serial"]
ANALOG_ONLY = ("adc_bits", "adcs", "analog_weight_combine")


class MacroSpec(Strict):
    """One SRAM CIM macro.

    Three families: ``analog`` (bit-line sums digitised by ADCs), ``digital_adder_tree``
    (1b products summed by a digital adder tree per column, e.g. Chih ISSCC 2021) and
    ``digital_bit_serial`` (per-cell logic and in-array accumulation, inputs bit-serial and
    each weight bit in its own column plus accumulation guard columns, e.g. Colonnade JSSC 2021).
    """

    kind: Literal["macro"] = Field("macro", description="`macro`")
    name: str = Field(min_length=1, max_length=200, description="name used in reports")
    citation: str = Field(min_length=1, max_length=2000, description="the paper the macro comes from")
    family: Family = Field("analog", description="`analog` (ADC readout), `digital_adder_tree` or "
                           "`digital_bit_serial`")
    rows: Bounded(1, 2**16) = Field(description="word lines (reduction rows) of the array")
    cols: Bounded(1, 2**16) = Field(description="bit lines (columns) of the array")
    wordlines_on: Bounded(1, 2**16) = Field(description="rows activated at once (a divisor of rows)")
    # Bit lines on at once (one column group); default all columns. Sparsity skips a
    # block of wordlines_on rows x one column group only when all of it is zero.
    bitlines_on: Bounded(1, 2**16) | None = Field(None, description="columns of one column group "
                                                  "(sparsity block width); default all columns")
    partitions: Bounded(1, 2**16) = Field(1, description="array partitions (informational)")
    bits_per_cell: Bounded(1, 8) = Field(1, description="weight bits stored per cell")
    input_bits: BitRange = Field(description="supported input precision (bits)")
    weight_bits: BitRange = Field(description="supported weight precision (bits)")
    output_bits: BitRange = Field(description="supported output precision (bits)")
    bit_serial_input: bool = Field(True, description="inputs applied one bit per activation")
    input_slice_bits: Bounded(1, 32) = Field(1, description="bits per input slice when not bit-serial (DAC)")
    # True when the columns holding one weight's bits are summed in the analog domain
    # (binary-weighted) before one conversion; False when each column is converted.
    analog_weight_combine: bool | None = Field(None, description="analog only: a weight's columns are "
                                               "combined before one conversion (default false)")
    adc_bits: Bounded(1, 16) | None = Field(None, description="analog only (required): ADC resolution (bits)")
    adcs: Bounded(1, 2**16) | None = Field(None, description="analog only (required): ADCs per macro; "
                                           "columns share them when fewer than cols")
    tech_node_m: Metres | None = Field(None, description="technology node (m); required by the components model")
    voltage_v: Volts | None = Field(None, description="supply voltage (V); required by the components model")
    reference_voltage_v: Volts | None = Field(None, description="voltage at which the energy model is "
                                              "stated (V); required by the components model")
    cycle_s: Seconds = Field(description="one array activation: wordlines_on rows, one input slice (s)")
    energy: TableEnergy | ComponentEnergy = Field(discriminator="model",
                                                  description="`{model: components, ...}` or "
                                                  "`{model: table, ...}`")
    area_m2: MacroArea | None = Field(
        None, description="measured area (m^2): one number for the macro, or a mapping part -> area "
        "(parts: CellArray, WordlineDriver, ADC / AdderTree, ShiftAdd); model areas are scaled to it")
    weights_loaded: Literal["per_layer", "once"] = Field(
        "per_layer", description="`per_layer`: writing a layer's weights into the cells takes array "
        "cycles inside its latency; `once`: weights are preloaded (write energy still reported, as "
        "CellArray.write, but no write cycles in the latency)")

    @property
    def parts(self) -> tuple[str, ...]:
        """The macro's parts as named in the architecture."""
        return FAMILY_PARTS[self.family]

    @property
    def combines_weight_columns(self) -> bool:
        """One readout per output and input slice covers all of a weight's columns."""
        if self.family == "analog":
            return bool(self.analog_weight_combine)
        return self.family == "digital_bit_serial"  # in-array carry between a weight's columns

    def readout_units(self) -> int:
        """Readout circuits per macro: ADCs (analog), or one adder tree / accumulator per column."""
        return self.adcs if self.family == "analog" else self.cols

    def guard_columns(self) -> int:
        """Bit-serial digital macros accumulate in the array: each weight needs log2(rows) extra
        columns for the carry of the running sum (Colonnade JSSC 2021: 7 for 128 rows)."""
        return (self.wordlines_on - 1).bit_length() if self.family == "digital_bit_serial" else 0

    def input_slice(self) -> int:
        return 1 if self.bit_serial_input else self.input_slice_bits

    def n_input_slices(self, bits: int) -> int:
        return -(-bits // self.input_slice())

    def n_weight_slices(self, bits: int) -> int:
        """Columns one weight occupies (bit-serial digital: plus its accumulation guard columns)."""
        return -(-bits // self.bits_per_cell) + self.guard_columns()

    def conversions_per_output(self, input_bits: int, weight_bits: int) -> int:
        """Readouts (ADC conversions or adder-tree reductions) per output and row group: one per
        input slice (x weight slice unless a weight's columns are combined first)."""
        w = 1 if self.combines_weight_columns else self.n_weight_slices(weight_bits)
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
        out += self._family_problems(file, p)
        for name in ("input_bits", "weight_bits", "output_bits"):
            r: BitRange = getattr(self, name)
            if r.min > r.max:
                out.append(Problem(file, f"{p}{name}", f"min={r.min} is above max={r.max}"))
        if isinstance(self.energy, TableEnergy) and not sum(
                e.value for e in (self.energy.wordline_drive_j, self.energy.cell_mac_j, self.energy.adc_convert_j,
                                  self.energy.shift_add_j) if e is not None):
            out.append(Problem(file, f"{p}energy", "every compute action costs 0 J: efficiency would be "
                                                   "infinite; give at least one non-zero energy"))
        if self.n_weight_slices(self.weight_bits.max) > self.cols:
            out.append(Problem(file, f"{p}weight_bits.max",
                               f"one weight needs {self.n_weight_slices(self.weight_bits.max)} "
                               f"columns but the macro has cols={self.cols}"))
        return out

    def _family_problems(self, file: str, p: str) -> list[Problem]:
        """ADC fields belong to analog macros only; the components model needs node and voltage;
        a per-part area names real parts."""
        out = []
        if self.family == "analog":
            out += [Problem(file, f"{p}{k}", "required field is missing (an analog macro reads its columns "
                                             "through ADCs; for a digital macro set family)")
                    for k in ("adc_bits", "adcs") if getattr(self, k) is None]
            if self.adcs is not None and self.adcs > self.cols:
                out.append(Problem(file, f"{p}adcs", f"expected at most cols={self.cols}, got {self.adcs}"))
        else:
            out += [Problem(file, f"{p}{k}", f"a {self.family} macro has no ADCs; remove {k} (or set "
                                             f"family: analog)") for k in ANALOG_ONLY if getattr(self, k) is not None]
            if isinstance(self.energy, ComponentEnergy) and "adc_scale" in self.energy.model_fields_set:
                out.append(Problem(file, f"{p}energy.adc_scale", f"a {self.family} macro has no ADCs; "
                                                                  "calibrate it with array_scale"))
        if isinstance(self.energy, TableEnergy):
            if self.family == "digital_bit_serial" and self.energy.adc_convert_j is not None:
                out.append(Problem(file, f"{p}energy.adc_convert_j", "a digital_bit_serial macro has neither "
                                                                      "ADC nor adder tree; remove it"))
            if self.family != "digital_bit_serial" and self.energy.adc_convert_j is None:
                what = "ADC conversion" if self.family == "analog" else "adder-tree reduction"
                out.append(Problem(file, f"{p}energy.adc_convert_j", f"required field is missing (one {what}, J)"))
        else:
            out += [Problem(file, f"{p}{k}", "required field is missing (the components model scales its "
                                             "energies with it; a table macro may leave it out)")
                    for k in ("tech_node_m", "voltage_v", "reference_voltage_v") if getattr(self, k) is None]
        if isinstance(self.area_m2, dict):
            out += [Problem(file, f"{p}area_m2.{k}", f"not a part of a {self.family} macro; expected one of "
                                                      f"{', '.join(self.parts)}")
                    for k in self.area_m2 if k not in self.parts]
        return out
