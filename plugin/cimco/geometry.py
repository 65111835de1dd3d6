"""How a layer of given precision sits on a system's macros: the one geometry type every
model of cimco reads (architecture, sparsity, spatial mapping, Timeloop export).

Weights sit along the bit lines, ``weight_slices`` columns each, so a macro holds
``rows`` reduction rows by ``outputs_per_macro`` outputs (a *tile*). It turns on
``wordlines_on`` rows and one *column group* of ``group_outputs`` outputs at once; a
*block* is what one activation covers. Inputs are applied in ``input_slices`` slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cimco.spec.macro import MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits


@dataclass(frozen=True)
class MacroGeometry:
    input_slices: int  # input slices (activations) per input value
    weight_slices: int  # columns one weight occupies
    rows: int  # word lines per macro
    wordlines_on: int
    outputs_per_macro: int  # cols // weight_slices
    group_outputs: int  # outputs in one column group (bitlines_on // weight_slices)
    conversions_per_output: int  # readouts per output and row group
    n_macros: int
    # macro cycles per activation of one row group (all input slices): the cells' slices or
    # the readouts of a tile's outputs shared by the readout units, whichever is slower
    activation_cycles: int
    cycle_s: float  # seconds per activation (activation_cycles x the macro's cycle)

    @property
    def blocks_per_tile(self) -> int:
        return self.rows // self.wordlines_on

    @property
    def groups_per_tile(self) -> int:
        return self.outputs_per_macro // self.group_outputs

    @classmethod
    def of(cls, macro: MacroSpec, input_bits: int, weight_bits: int, n_macros: int = 1) -> MacroGeometry:
        ins, ws = macro.n_input_slices(input_bits), macro.n_weight_slices(weight_bits)
        per_macro = macro.cols // ws
        group = min(max(1, (macro.bitlines_on or macro.cols) // ws), per_macro)
        conv = macro.conversions_per_output(input_bits, weight_bits)
        cycles = max(ins, math.ceil(per_macro * conv / macro.readout_units()))
        return cls(input_slices=ins, weight_slices=ws, rows=macro.rows, wordlines_on=macro.wordlines_on,
                   outputs_per_macro=per_macro, group_outputs=group, conversions_per_output=conv,
                   n_macros=n_macros, activation_cycles=cycles, cycle_s=cycles * macro.cycle_s)

    @classmethod
    def of_system(cls, system: SystemSpec, bits: Bits) -> MacroGeometry:
        """The geometry a layer of precision ``bits`` sees on ``system``'s macros."""
        return cls.of(system.macro, bits.input, bits.weight, system.n_macros)
