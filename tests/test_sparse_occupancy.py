"""The vectorized occupancy analysis equals the loop oracle, exactly, on random cases."""

from __future__ import annotations

import numpy as np
import pytest
from sparse_oracle import oracle

from cimco.geometry import MacroGeometry
from cimco.sparse.layout import as_matrices
from cimco.sparse.occupancy import occupancy
from cimco.sparse.patterns import PATTERNS, generate
from cimco.spec.workload import Layer

GEOMETRIES = [  # rows, wordlines_on, cols, bits_per_cell, weight_bits, bitlines_on, n_macros
    (64, 8, 32, 1, 4, None, 4),
    (64, 16, 64, 2, 8, 32, 3),
    (32, 32, 16, 1, 2, 8, 2),
    (128, 4, 48, 4, 8, 24, 5),
    (16, 2, 8, 1, 1, None, 1),
]

# slices and timing: not read by the occupancy model
SLICES = {"input_slices": 1, "weight_slices": 1, "activation_cycles": 1, "cycle_s": 1e-8}


def _case(i: int):
    rng = np.random.default_rng(1000 + i)
    rows, wl, cols, bpc, wb, bl, nm = GEOMETRIES[i % len(GEOMETRIES)]
    ws = -(-wb // bpc)
    per = cols // ws
    group = min(max(1, (bl or cols) // ws), per)
    geo = MacroGeometry(**SLICES, rows=rows, wordlines_on=wl, outputs_per_macro=per,
                   group_outputs=group if per % group == 0 else per, conversions_per_output=int(rng.integers(1, 5)),
                   n_macros=nm)
    groups = int(rng.choice([1, 1, 2, 4]))
    k = int(rng.choice([1, 3]))
    layer = Layer(name="l", type="conv", in_channels=groups * int(rng.integers(1, 9)),
                  out_channels=groups * int(rng.integers(1, 20)), input_hw=(6, 6), kernel=k,
                  padding=k // 2, groups=groups)
    pattern = PATTERNS[i % len(PATTERNS)]
    density = float(rng.choice([0.0, 0.1, 0.3, 0.5, 0.75, 1.0]))
    return layer, geo, pattern, density, int(rng.integers(0, 1 << 30))


@pytest.mark.parametrize("i", range(240))
def test_fast_equals_oracle(i: int) -> None:
    layer, geo, pattern, density, seed = _case(i)
    mask = generate(layer, geo, pattern, density, seed, n=1, m=3)
    mats = as_matrices(mask, layer)
    fast = occupancy(mats, geo)
    ref = oracle(mats.tolist(), geo.rows, geo.wordlines_on, geo.outputs_per_macro,
                 geo.group_outputs, geo.conversions_per_output, geo.n_macros)
    for key, want in ref.items():
        assert getattr(fast, key) == want, key


def test_patterns_respect_their_blocks() -> None:
    """Every pruning unit is all-kept or all-pruned (row_block: wordlines_on x column group)."""
    layer = Layer(name="l", type="conv", in_channels=32, out_channels=64, input_hw=(8, 8), kernel=3,
                  padding=1)
    geo = MacroGeometry(**SLICES, rows=64, wordlines_on=16, outputs_per_macro=32, group_outputs=8,
                   conversions_per_output=1, n_macros=4)
    mats = as_matrices(generate(layer, geo, "row_block", 0.5, 7), layer)[0]  # (64, 288)
    blocks = mats[:, :288].reshape(8, 8, 18, 16)
    per_block = blocks.sum(axis=(1, 3))
    assert set(np.unique(per_block)) <= {0, 8 * 16}
    assert abs(mats.mean() - 0.5) < 0.03


def test_nm_keeps_n_of_every_m() -> None:
    layer = Layer(name="l", type="linear", in_channels=64, out_channels=8)
    geo = MacroGeometry(**SLICES, rows=64, wordlines_on=16, outputs_per_macro=8, group_outputs=8,
                   conversions_per_output=1, n_macros=1)
    mats = as_matrices(generate(layer, geo, "n:m", 0.5, 3, n=2, m=4), layer)[0]
    assert (mats.reshape(8, 16, 4).sum(axis=2) == 2).all()


def test_unstructured_half_keeps_every_block() -> None:
    """Why unstructured pruning buys nothing on a CIM macro: almost no block is all zero."""
    layer = Layer(name="l", type="conv", in_channels=128, out_channels=128, input_hw=(8, 8),
                  kernel=3, padding=1)
    geo = MacroGeometry(**SLICES, rows=256, wordlines_on=16, outputs_per_macro=32, group_outputs=32,
                   conversions_per_output=2, n_macros=8)
    occ = occupancy(as_matrices(generate(layer, geo, "unstructured", 0.5, 0), layer), geo)
    assert occ.weight_density == pytest.approx(0.5, abs=1e-3)
    assert occ.block_density == 1.0
