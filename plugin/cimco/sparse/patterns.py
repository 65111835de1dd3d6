"""Seeded generators of pruning masks in the shapes a CIM macro can (or cannot) skip.

Each pattern prunes whole *units* and keeps ``round(density * units)`` of them, chosen
uniformly at random with ``numpy.random.default_rng(seed)``:

- ``unstructured``: single weights.
- ``row_block`` (MARS): ``wordlines_on`` rows x one column group, the block one activation covers.
- ``kernel_group`` (CRIMP): one input channel's ``R*S`` rows x one column group.
- ``crossbar`` (CRIMP): a whole macro tile, ``rows`` x outputs per macro.
- ``channel``: whole output channels.
- ``n:m``: in every ``m`` consecutive reduction rows of each output keep ``n`` (density n/m).

Masks come back in the layer's torch weight shape, True = kept.
"""

from __future__ import annotations

from typing import get_args

import numpy as np

from cimco.geometry import MacroGeometry
from cimco.sparse.layout import matrix_shape, weight_shape
from cimco.spec.workload import Layer, Pattern

PATTERNS: tuple[str, ...] = get_args(Pattern)


def _choose(shape: tuple[int, ...], density: float, rng: np.random.Generator) -> np.ndarray:
    n = int(np.prod(shape))
    keep = np.zeros(n, dtype=bool)
    keep[rng.permutation(n)[: int(round(density * n))]] = True
    return keep.reshape(shape)


def _expand(units: np.ndarray, out: int, rows: int, m: int, k: int) -> np.ndarray:
    """(g, units_out, units_rows) -> (g, m, k) by repeating each unit out x rows times."""
    full = np.repeat(np.repeat(units, out, axis=1), rows, axis=2)
    return full[:, :m, :k]


def unit_shape(pattern: str, geo: MacroGeometry, kernel_hw: tuple[int, int], reduction: int) -> tuple[int, int]:
    """(outputs, rows) of one pruning unit of ``pattern`` in a layer's (M/g, K) matrix."""
    units = {"unstructured": (1, 1),
             "row_block": (geo.group_outputs, geo.wordlines_on),
             "kernel_group": (geo.group_outputs, kernel_hw[0] * kernel_hw[1]),
             "crossbar": (geo.outputs_per_macro, geo.rows),
             "channel": (1, reduction)}
    if pattern not in units:
        raise ValueError(f"{pattern!r} has no fixed unit")
    return units[pattern]


def generate(layer: Layer, geo: MacroGeometry, pattern: str, density: float, seed: int,
             n: int | None = None, m: int | None = None) -> np.ndarray:
    """A mask for ``layer`` (torch weight shape) in ``pattern`` at ``density``."""
    rng = np.random.default_rng(seed)
    g, mo, k = matrix_shape(layer)
    if pattern == "n:m":
        assert n is not None and m is not None  # checked by the spec
        chunks = -(-k // m)
        scores = rng.random((g, mo, chunks, m))
        ranks = scores.argsort(axis=3).argsort(axis=3)
        mats = (ranks < n).reshape(g, mo, chunks * m)[:, :, :k]
    else:
        out, rows = unit_shape(pattern, geo, layer.kernel_hw, k)
        keep = _choose((g, -(-mo // out), -(-k // rows)), density, rng)
        mats = _expand(keep, out, rows, mo, k)
    return mats.reshape(weight_shape(layer))


def mars_style(workload: dict, bits: int = 4, density: float = 0.5) -> dict:
    """A workload (as its YAML dict) compressed as MARS evaluates its networks (Sie et al.,
    TCAD 2022): ``bits``-bit inputs and weights, 8-bit outputs re-quantized on chip, and
    seeded ``row_block`` pruning at ``density`` on every layer but the first and the last
    (shapes only: no trained weights)."""
    out = {**workload, "bits": {"input": bits, "weight": bits, "output": 8}, "layers": []}
    last = len(workload["layers"]) - 1
    for i, layer in enumerate(workload["layers"]):
        layer = {k: v for k, v in layer.items() if k not in ("bits", "sparsity")}
        if 0 < i < last:
            layer["sparsity"] = {"pattern": "row_block", "density": density, "seed": i}
        out["layers"].append(layer)
    return out
