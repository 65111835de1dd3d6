"""Multi-macro system spec: DRAM, a global buffer, cores of macros, index memory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from cimco.spec._base import Strict
from cimco.spec.macro import MacroSpec, Sourced


class DramSpec(Strict):
    energy_per_bit_j: Sourced
    bandwidth_bits_per_s: PositiveFloat


class BufferSpec(Strict):
    size_bits: PositiveInt
    energy_per_bit_j: Sourced
    bandwidth_bits_per_s: PositiveFloat
    area_m2: Sourced


class IndexMemorySpec(Strict):
    """Per-macro storage of the index codes of kept weight blocks (MARS)."""

    size_bits: PositiveInt
    code_bits: PositiveInt
    energy_per_bit_j: Sourced
    area_m2: Sourced


class SystemSpec(Strict):
    kind: Literal["system"] = "system"
    name: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    macro: MacroSpec
    cores: PositiveInt
    macros_per_core: PositiveInt
    dram: DramSpec
    global_buffer: BufferSpec
    index_memory: IndexMemorySpec | None = None

    @property
    def n_macros(self) -> int:
        return self.cores * self.macros_per_core
