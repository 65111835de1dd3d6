"""Multi-macro system spec: DRAM, a global buffer, cores of macros, index memory, digital and vector units."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cimco.spec._base import BitsPerSecond, Bounded, Number, Strict
from cimco.spec.levels import CoreBufferSpec, Level, NocSpec, expanded
from cimco.spec.macro import Joules, MacroSpec, SquareMetres


class DramSpec(Strict):
    energy_per_bit_j: Joules
    bandwidth_bits_per_s: BitsPerSecond


class BufferSpec(Strict):
    size_bits: Bounded(1, 2**40)
    energy_per_bit_j: Joules
    bandwidth_bits_per_s: BitsPerSecond
    area_m2: SquareMetres


class IndexMemorySpec(Strict):
    """Per-macro storage of the index codes of kept weight blocks (MARS)."""

    size_bits: Bounded(1, 2**40)
    code_bits: Bounded(1, 64)
    energy_per_bit_j: Joules
    area_m2: SquareMetres


class DigitalUnitSpec(Strict):
    """A digital matrix unit beside the macros that runs the workload's dynamic layers (matmuls
    of activations: attention's Q K^T and softmax(Q K^T) V) instead of writing their operand
    into the macros at every run (:mod:`cimco.digital`)."""

    energy_per_mac_j: Joules = Field(description="one multiply-accumulate at the layer's bits, operands in "
                                     "registers (J)")
    macs_per_s: Number(ge=1e3, le=1e18) = Field(description="multiply-accumulates per second, all lanes")
    area_m2: SquareMetres = Field(description="the unit's area")


class VectorUnitSpec(Strict):
    """A digital vector unit beside the macros for the work that is not a multiply-accumulate
    (activations, residual adds, pooling, softmax, normalizations), counted per element in
    basic operations (:mod:`cimco.vector`)."""

    energy_per_op_j: Joules = Field(description="one basic operation (an add, multiply or compare) on an "
                                    "element, operands in registers (J)")
    ops_per_s: Number(ge=1e3, le=1e18) = Field(description="basic operations per second, all lanes")
    area_m2: SquareMetres = Field(description="the unit's area")


class SystemSpec(Strict):
    kind: Literal["system"] = "system"
    name: str = Field(min_length=1, max_length=200)
    citation: str = Field(min_length=1, max_length=2000)
    macro: MacroSpec
    cores: Bounded(1, 2**16)
    macros_per_core: Bounded(1, 2**16)
    dram: DramSpec
    global_buffer: BufferSpec
    index_memory: IndexMemorySpec | None = None
    digital_unit: DigitalUnitSpec | None = None
    vector_unit: VectorUnitSpec | None = None
    noc: NocSpec | None = Field(None, description="a network-on-chip between the global buffer and the cores")
    core_buffer: CoreBufferSpec | None = Field(None, description="a memory in each core")
    # the same system as a list of levels (cimco.spec.levels): given, it is expanded into the keys
    # above, and this stays None (declared for the schema and the spelling hints of its keys)
    levels: list[Level] | None = Field(None, exclude=True, description="the hierarchy as a list, top to bottom, "
                                       "instead of dram, global_buffer, cores, macros_per_core, noc, core_buffer")

    @model_validator(mode="before")
    @classmethod
    def _levels(cls, data):
        return expanded(data)

    def on_digital_unit(self, layer) -> bool:
        """Whether ``layer`` runs on the digital unit (a dynamic layer, where there is one)."""
        return layer.dynamic and self.digital_unit is not None

    @property
    def n_macros(self) -> int:
        return self.cores * self.macros_per_core
