"""Where resident weights live: every layer's weights as its mapping spreads them over macros,
packed into the system's macros at row-block x column granularity.

A layer's mapping (its spatial loops over macros and cores) puts an equal share of its weights
in each of ``macros`` macros, one *piece* each: ``row_blocks`` strips of the word lines a macro
turns on at once (``wordlines_on`` rows), each ``columns`` wide (the outputs an activation
reads x a weight's columns). A macro is ``rows / wordlines_on`` row blocks of ``cols`` columns;
pieces of several layers share it, each strip in a row block with the columns free. A layer's
pieces go to distinct macros (they compute at once), and a macro computes one layer at a time,
which sequential execution gives. Packing is greedy: layers largest piece first, each piece
into the macro it fills best, each strip into the row block it fills best. A pruned layer keeps
its share of row blocks (its block density, rounded up: kept blocks are stored compacted, their
index codes in the index memory).

Copies of a layer's weights (the execution step's) are more of its pieces, in macros it does
not use yet; its output positions are split among them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cimco.backends import cim
from cimco.geometry import MacroGeometry
from cimco.spec.system import SystemSpec

WEIGHT_RANKS = frozenset(cim.WEIGHT_RANKS)  # the einsum's ranks that index the weights


@dataclass(frozen=True)
class Piece:
    """What one layer keeps in each macro its mapping uses."""

    layer: str
    macros: int
    row_blocks: int
    columns: int


@dataclass
class Placement:
    """The macros in use and the pieces they hold: ``free[i][b]`` columns free in row block ``b``
    of macro ``i``, ``held[i]`` each layer's (row blocks, columns) there; at most ``limit`` macros."""

    limit: int
    row_blocks: int
    cols: int
    free: list[list[int]] = field(default_factory=list)
    held: list[dict[str, tuple[int, int]]] = field(default_factory=list)

    @property
    def used(self) -> int:
        return len(self.held)

    def macros_of(self, layer: str) -> int:
        return sum(1 for h in self.held if layer in h)

    def put(self, piece: Piece) -> bool:
        """Place ``piece.macros`` pieces in macros that do not hold the layer (a new one where
        none in use fits); all or none (False: they do not fit)."""
        if piece.row_blocks > self.row_blocks or piece.columns > self.cols:
            return False
        taken: list[tuple[int, list[int]]] = []
        for _ in range(piece.macros):
            fits = [i for i, (h, f) in enumerate(zip(self.held, self.free))
                    if piece.layer not in h and sum(c >= piece.columns for c in f) >= piece.row_blocks]
            if fits:
                i = min(fits, key=lambda j: (sum(self.free[j]), j))  # the fullest macro it fits in
            elif self.used < self.limit:
                i = self.used
                self.free.append([self.cols] * self.row_blocks)
                self.held.append({})
            else:
                for i, rows in reversed(taken):  # undo
                    for b in rows:
                        self.free[i][b] += piece.columns
                    del self.held[i][piece.layer]
                while self.held and not self.held[-1]:
                    self.held.pop()
                    self.free.pop()
                return False
            rows = sorted((b for b, c in enumerate(self.free[i]) if c >= piece.columns),
                          key=lambda b: (self.free[i][b], b))[:piece.row_blocks]
            for b in rows:
                self.free[i][b] -= piece.columns
            self.held[i][piece.layer] = (piece.row_blocks, piece.columns)
            taken.append((i, rows))
        return True

    def as_json(self, n_macros: int) -> list[dict[str, dict[str, float]]]:
        """Per macro of ``n_macros`` (those not in use: empty): layer -> its row blocks, columns
        and share of the macro's cells there."""
        return [{name: {"row_blocks": k, "columns": c, "share": k * c / (self.row_blocks * self.cols)}
                 for name, (k, c) in h.items()} for h in self.held] + [{}] * (n_macros - self.used)


def piece(run, system: SystemSpec) -> Piece | None:
    """What ``run``'s layer keeps per macro, from its mapping's loops (its mask's block density:
    the sparsity step's, else its own); None without loops over cimco's architecture (the
    Timeloop backend's name Timeloop's levels) or where the mapping copies weights over output
    positions. A layer whose every block is pruned keeps nothing (no rows)."""
    r = run.result
    if not any(d.get("component") == "column" for d in r.loops):
        return None
    macros = r.spread("macro", "core")
    if macros != r.spread("macro", "core", ranks=WEIGHT_RANKS):
        return None
    layer, g = run.layer, MacroGeometry.of_system(system, run.bits)
    outputs = r.spread("column")
    rows = math.ceil(layer.out_channels * layer.reduction / macros / outputs)
    blocks = math.ceil(rows / g.wordlines_on)
    occ = run.sparse.occ if run.sparse is not None else None
    if occ is None and run.mask is not None:
        from cimco.sparse.layout import as_matrices
        from cimco.sparse.occupancy import occupancy

        occ = occupancy(as_matrices(run.mask, layer), g)
    if occ is not None:
        blocks = math.ceil(blocks * occ.block_density)
    return Piece(layer.name, macros, blocks, outputs * g.weight_slices)


def pack(system: SystemSpec, pieces: list[Piece], reserved: int = 0) -> Placement | None:
    """Every piece placed in ``system``'s macros but ``reserved`` whole ones (kept for the
    dynamic layers), largest first; None when they do not fit."""
    m = system.macro
    out = Placement(system.n_macros - reserved, m.rows // m.wordlines_on, m.cols)
    if sum(p.macros * p.row_blocks * p.columns for p in pieces) > out.limit * out.row_blocks * out.cols:
        return None  # more cells than the macros have: no packing can hold them
    for p in sorted(pieces, key=lambda p: (-p.row_blocks * p.columns, -p.macros, p.layer)):
        if p.row_blocks and not out.put(p):
            return None
    return out
