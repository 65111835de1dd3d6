"""Block occupancy of a pruned layer on the macro: exact counts, vectorized.

Model (MARS-style compaction):
1. Output channels whose weights are all zero take no columns (they are dropped); the
   remaining outputs of each conv group are packed into column groups of
   ``group_outputs`` outputs, in order.
2. Each column group stores only its *kept* blocks (``wordlines_on`` rows that hold any
   non-zero), each with one index code, spread evenly (in order, the first ones taking one
   more) over the row tiles the dense layout gives it, ``ceil(blocks / (rows /
   wordlines_on))`` macros; column groups sharing a tile share its macros. Tiles left
   with no kept block take no macro.
3. One activation = one kept block. Per input vector (output position) it costs one index
   read, the block's real rows of gathered inputs, and ``conversions_per_output`` ADC
   conversions for each real output of its column group.
4. Tiles run on ``n_macros`` macros in waves (tile i on macro i mod n, wave i div n); a
   wave lasts as long as its busiest macro, so latency follows ``busy``, energy the totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimco.geometry import MacroGeometry


@dataclass(frozen=True)
class Occupancy:
    """Counts per input vector (one output position), for one layer."""

    weights: int  # dense weights
    nonzero: int  # non-zero weights
    blocks: int  # blocks of the dense layout (incl. partial edge blocks)
    kept_blocks: int  # blocks holding any non-zero = activations = index reads
    kept_outputs: int  # output channels with any non-zero weight
    kept_groups: int  # column groups with any kept block
    conversions: int  # ADC conversions
    gathered_inputs: int  # inputs fetched for the kept blocks
    executed_macs: int  # cell MACs the macro runs: real rows x real outputs of kept blocks
    tile_loads: tuple[int, ...]  # activations per tile, in tile order
    busy: int  # sum over waves of the busiest macro's activations

    @property
    def weight_density(self) -> float:
        return self.nonzero / self.weights

    @property
    def block_density(self) -> float:
        return self.kept_blocks / self.blocks


def _cdiv(a, b):
    return -(-a // b)


def _sizes(n: np.ndarray, step: int, count: int) -> np.ndarray:
    """Real sizes of ``count`` consecutive chunks of ``step`` covering ``n`` (per row of n)."""
    starts = np.arange(count) * step
    return np.clip(np.asarray(n)[..., None] - starts, 0, step)


def busy_cycles(loads: np.ndarray, n_macros: int) -> int:
    if loads.size == 0:
        return 0
    padded = np.zeros(_cdiv(loads.size, n_macros) * n_macros, dtype=np.int64)
    padded[: loads.size] = loads
    return int(padded.reshape(-1, n_macros).max(axis=1).sum())


def occupancy(matrices: np.ndarray, geo: MacroGeometry) -> Occupancy:
    """Exact occupancy counts of (groups, M/g, K) weight matrices on a macro."""
    g, m, k = matrices.shape
    cg, wl, per, cap = geo.group_outputs, geo.wordlines_on, geo.groups_per_tile, geo.blocks_per_tile
    nz = matrices != 0
    n_blk = _cdiv(k, wl)
    # 1. drop all-zero outputs; pack the rest of each conv group to the front
    live = nz.any(axis=2)  # (g, m)
    kept_out = live.sum(axis=1)  # (g,)
    order = np.argsort(~live, axis=1, kind="stable")
    packed = np.take_along_axis(nz, order[:, :, None], axis=1)
    n_cg = _cdiv(max(int(kept_out.max()), 1), cg)
    full = np.zeros((g, n_cg * cg, n_blk * wl), dtype=bool)
    full[:, :m, :k] = packed[:, : n_cg * cg]
    # 2. kept blocks per column group
    blk = full.reshape(g, n_cg, cg, n_blk, wl).any(axis=(2, 4))  # (g, n_cg, n_blk)
    kept = blk.sum(axis=2)  # (g, n_cg)
    outs = _sizes(kept_out, cg, n_cg)  # real outputs per column group (g, n_cg)
    rows = _sizes(np.array(k), wl, n_blk)  # real rows per block (n_blk,)
    # tiles: column groups of each conv group in chunks of `per`; kept blocks of each column
    # group dealt evenly over the dense layout's n_rt row tiles
    n_ct, n_rt = _cdiv(n_cg, per), _cdiv(n_blk, cap)
    by_group = np.zeros((g, n_ct * per), dtype=np.int64)
    by_group[:, :n_cg] = kept
    share = by_group[:, :, None] // n_rt + (np.arange(n_rt) < by_group[:, :, None] % n_rt)
    loads = share.reshape(g, n_ct, per, n_rt).sum(axis=2)  # (g, n_ct, n_rt)
    tile_loads = loads[loads > 0]
    kept_total = int(kept.sum())
    return Occupancy(
        weights=g * m * k,
        nonzero=int(nz.sum()),
        blocks=g * _cdiv(m, cg) * n_blk,
        kept_blocks=kept_total,
        kept_outputs=int(kept_out.sum()),
        kept_groups=int((kept > 0).sum()),
        conversions=int((kept * outs).sum()) * geo.conversions_per_output,
        gathered_inputs=int((blk * rows).sum()),
        executed_macs=int(((blk * rows).sum(axis=2) * outs).sum()),
        tile_loads=tuple(int(x) for x in tile_loads),
        busy=busy_cycles(tile_loads, geo.n_macros),
    )
