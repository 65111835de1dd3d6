"""How a layer's weights sit on the macro (the im2col view).

The weight of a conv with groups g is, per group, a matrix of ``M/g`` outputs by
``K = C/g * R * S`` reduction rows (row index ``(c*R + r)*S + s``, the order of a torch
``weight[m, c, r, s]`` reshaped). Rows go along word lines, outputs along bit lines, each
output taking ``weight_slices`` columns. The macro holds ``rows`` rows by ``outputs_per_macro``
outputs (a *tile*); it turns on ``wordlines_on`` rows and one *column group* of
``group_outputs`` outputs at once. A *block* is what one activation covers: ``wordlines_on``
rows by one column group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimco.spec.macro import MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer


@dataclass(frozen=True)
class Geometry:
    rows: int  # word lines per macro
    wordlines_on: int
    outputs_per_macro: int  # cols // weight_slices
    group_outputs: int  # outputs in one column group (bitlines_on // weight_slices)
    conversions_per_output: int  # ADC conversions per output per activation
    n_macros: int

    @property
    def blocks_per_tile(self) -> int:
        return self.rows // self.wordlines_on

    @property
    def groups_per_tile(self) -> int:
        return self.outputs_per_macro // self.group_outputs

    @classmethod
    def of(cls, macro: MacroSpec, input_bits: int, weight_bits: int, n_macros: int) -> Geometry:
        ws = macro.n_weight_slices(weight_bits)
        per_macro = macro.cols // ws
        group = max(1, (macro.bitlines_on or macro.cols) // ws)
        group = min(group, per_macro)
        return cls(rows=macro.rows, wordlines_on=macro.wordlines_on, outputs_per_macro=per_macro,
                   group_outputs=group,
                   conversions_per_output=macro.conversions_per_output(input_bits, weight_bits),
                   n_macros=n_macros)

    @classmethod
    def of_system(cls, system: SystemSpec, bits: Bits) -> Geometry:
        """The geometry a layer of precision ``bits`` sees on ``system``'s macros."""
        return cls.of(system.macro, bits.input, bits.weight, system.n_macros)


def weight_shape(layer: Layer) -> tuple[int, ...]:
    """Shape of the layer's torch weight: (M, C/g, R, S) for conv, (M, C) for linear."""
    if layer.type == "linear":
        return (layer.out_channels, layer.in_channels)
    r, s = layer.kernel_hw
    return (layer.out_channels, layer.in_channels // layer.groups, r, s)


def matrix_shape(layer: Layer) -> tuple[int, int, int]:
    """Shape of the layer's im2col weight matrices: (groups, M/g, K)."""
    g = layer.groups
    return (g, layer.out_channels // g, layer.reduction)


def as_matrices(mask, layer: Layer):
    """Torch-shaped mask -> (groups, M/g, K) im2col matrices (a view when possible)."""
    return mask.reshape(matrix_shape(layer))


def dense_matrices(layer: Layer) -> np.ndarray:
    """The all-kept mask of ``layer`` as (groups, M/g, K) matrices."""
    return np.ones(matrix_shape(layer), dtype=bool)
