"""How a layer's weights sit on the macro (the im2col view).

The weight of a conv with groups g is, per group, a matrix of ``M/g`` outputs by
``K = C/g * R * S`` reduction rows (row index ``(c*R + r)*S + s``, the order of a torch
``weight[m, c, r, s]`` reshaped). Rows go along word lines, outputs along bit lines, each
output taking ``weight_slices`` columns. The macro holds ``rows`` rows by ``outputs_per_macro``
outputs (a *tile*); it turns on ``wordlines_on`` rows and one *column group* of
``group_outputs`` outputs at once. A *block* is what one activation covers: ``wordlines_on``
rows by one column group (sizes: :class:`cimco.geometry.MacroGeometry`).
"""

from __future__ import annotations

import numpy as np

from cimco.spec.workload import Layer


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
