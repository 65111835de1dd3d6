"""Reference model of block occupancy: plain loops, weight by weight, cycle by cycle.

Slow on purpose and written independently of cimco.sparse.occupancy (which it checks):
it walks the compacted layout column group by column group and block by block, then
simulates the macros one cycle at a time.
"""

from __future__ import annotations


def oracle(mats, rows: int, wordlines_on: int, outputs_per_macro: int, group_outputs: int,
           conversions_per_output: int, n_macros: int) -> dict:
    g_n, m, k = len(mats), len(mats[0]), len(mats[0][0])
    blocks_per_tile = rows // wordlines_on
    groups_per_tile = outputs_per_macro // group_outputs
    counts = dict(weights=0, nonzero=0, blocks=0, kept_blocks=0, kept_outputs=0, kept_groups=0,
                  conversions=0, gathered_inputs=0, executed_macs=0)
    tiles = []  # list of activation counts per tile, in tile order
    for g in range(g_n):
        counts["blocks"] += -(-m // group_outputs) * -(-k // wordlines_on)
        live = []
        for o in range(m):
            nonzero = 0
            for r in range(k):
                counts["weights"] += 1
                if mats[g][o][r] != 0:
                    nonzero += 1
            counts["nonzero"] += nonzero
            if nonzero:
                live.append(o)
        counts["kept_outputs"] += len(live)
        groups = [live[i:i + group_outputs] for i in range(0, len(live), group_outputs)]
        kept_per_group = []
        for outs in groups:
            kept = 0
            for r0 in range(0, k, wordlines_on):
                block_rows = range(r0, min(r0 + wordlines_on, k))
                if any(mats[g][o][r] != 0 for o in outs for r in block_rows):
                    kept += 1
                    counts["conversions"] += len(outs) * conversions_per_output
                    counts["gathered_inputs"] += len(block_rows)
                    counts["executed_macs"] += len(block_rows) * len(outs)
            counts["kept_blocks"] += kept
            counts["kept_groups"] += kept > 0
            kept_per_group.append(kept)
        blocks_per_column = (k + wordlines_on - 1) // wordlines_on
        row_tiles = (blocks_per_column + blocks_per_tile - 1) // blocks_per_tile  # dense layout
        for t0 in range(0, len(kept_per_group), groups_per_tile):
            members = kept_per_group[t0:t0 + groups_per_tile]
            for row_tile in range(row_tiles):
                load = 0
                for kk in members:  # deal kk blocks over row_tiles macros, first ones get more
                    load += kk // row_tiles + (1 if row_tile < kk % row_tiles else 0)
                if load:
                    tiles.append(load)
    # simulate: tile i runs on macro i % n in wave i // n; one activation per cycle
    busy = 0
    for w0 in range(0, len(tiles), n_macros):
        remaining = list(tiles[w0:w0 + n_macros])
        while any(remaining):
            remaining = [max(x - 1, 0) for x in remaining]
            busy += 1
    return {**counts, "tile_loads": tuple(tiles), "busy": busy}
