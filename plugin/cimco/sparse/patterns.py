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

import numpy as np

from cimco.sparse.layout import Geometry, weight_shape
from cimco.spec.workload import Layer

PATTERNS = ("unstructured", "row_block", "kernel_group", "crossbar", "channel", "n:m")


def _choose(shape: tuple[int, ...], density: float, rng: np.random.Generator) -> np.ndarray:
    n = int(np.prod(shape))
    keep = np.zeros(n, dtype=bool)
    keep[rng.permutation(n)[: int(round(density * n))]] = True
    return keep.reshape(shape)


def _expand(units: np.ndarray, out: int, rows: int, m: int, k: int) -> np.ndarray:
    """(g, units_out, units_rows) -> (g, m, k) by repeating each unit out x rows times."""
    full = np.repeat(np.repeat(units, out, axis=1), rows, axis=2)
    return full[:, :m, :k]


def generate(layer: Layer, geo: Geometry, pattern: str, density: float, seed: int,
             n: int | None = None, m: int | None = None) -> np.ndarray:
    """A mask for ``layer`` (torch weight shape) in ``pattern`` at ``density``."""
    rng = np.random.default_rng(seed)
    g, mo, k = layer.groups, layer.out_channels // layer.groups, layer.reduction
    cg, wl = geo.group_outputs, geo.wordlines_on

    def units(out: int, rows: int) -> np.ndarray:
        shape = (g, -(-mo // out), -(-k // rows))
        return _expand(_choose(shape, density, rng), out, rows, mo, k)

    if pattern == "unstructured":
        mats = _choose((g, mo, k), density, rng)
    elif pattern == "row_block":
        mats = units(cg, wl)
    elif pattern == "kernel_group":
        r, s = layer.kernel_hw
        mats = units(cg, r * s)
    elif pattern == "crossbar":
        mats = units(geo.outputs_per_macro, geo.rows)
    elif pattern == "channel":
        mats = units(1, k)
    elif pattern == "n:m":
        assert n is not None and m is not None  # checked by the spec
        chunks = -(-k // m)
        scores = rng.random((g, mo, chunks, m))
        ranks = scores.argsort(axis=3).argsort(axis=3)
        mats = (ranks < n).reshape(g, mo, chunks * m)[:, :, :k]
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return mats.reshape(weight_shape(layer))
