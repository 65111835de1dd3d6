"""The ``cimco`` backend: a search of cimco's own over the CIM mapspace, its best mapping's
counts in closed form, each equal to what AccelForge's model gives for that mapping (checked
entry by entry in tests), priced by cimco's component models (:func:`cimco.tables.component_costs`,
equal to AccelForge's component costs): no AccelForge call at run time.

The CIM mapspace is small because the architecture fixes most of a mapping (see
:mod:`cimco.arch`): weights stay in the cell arrays (each written once), the columns take
output channels only, the word lines on at once take reduction ranks, and the core and
macro fanouts never split output positions. What remains, and what :func:`plans` walks:

1. **Array factors** (:func:`arrays`): the columns take ``min(M, outputs per macro)``
   output channels (or fewer, where a block of channels over all positions then fits the
   buffer); the rows the reduction factors with the fewest row groups
   (:func:`_rows`), or the kernel or one of its dimensions whole.
   Where a rank does not divide, one partial group (imperfect factorization) too.
2. **Spread over macros and cores** (:func:`spreads`): for each weight rank, how many of
   its row/column groups run side by side (imperfect ``ceil`` splits included): every
   spread that fits the cores and macros.
3. **Loops above the macros** (:func:`nests`): the weight turns that remain, in every
   order (one rank may take two loops), then the output positions; the global buffer's
   input and output tiles may start above any loop (what is above them runs at DRAM),
   held lower as AccelForge's model holds them (:meth:`_Nest.tile`), and the cells are
   written under the last weight loop.

On a system with a memory in each core (keeping inputs and outputs) the search takes the
plans that cover every rank exactly (:func:`_even`; a layer whose sizes have no such plan
for the array is mapped on smaller arrays), each two ways (:func:`_core_buffer`): the cores
below the loops, each core's buffer holding one turn's tiles, or above them, each core running
the loops on its part with its buffer in the global buffer's place (the tiles start among
them as the global buffer's do) and the global buffer holding whole tensors; and it splits a
spread between the cores and a core's macros every exact way.

Each plan is priced in closed form (:func:`_score`): the counts AccelForge's model gives
this architecture (DRAM and buffer traffic per tensor, word-line drives, readouts, the
cells' reads and writes, partial last turns of imperfect factors included) times the ERT,
and the latency of its slowest part. The plan with the lowest energy-delay product is the
mapping, and :func:`evaluate` gives its full result from the same counts: reads and writes
per part and tensor, energy per part and action, each part's latency, the loops.
``tests/test_cim_backend.py`` checks every entry of that result against AccelForge's model
evaluating the same mapping, on perfect and imperfect plans of the three macro families and
on drawn layers, and that the model accepts every plan whose tiles the closed form fits;
``scripts/closed_form_check.py`` checks the best plan of every bundled layer on 22 systems;
``scripts/backend_agreement.py`` checks the search against AccelForge's FFM mapper.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cimco.backends import LayerResult, by_action
from cimco.geometry import MacroGeometry
from cimco.parts import (
    ADC,
    ADDER_TREE,
    CELL_ARRAY,
    COMPUTE,
    CORE_BUFFER,
    DRAM,
    GLOBAL_BUFFER,
    NOC,
    SHIFT_ADD,
    WORDLINE_DRIVER,
)
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer

WEIGHT_RANKS = ("g", "m", "c", "r", "s")
POSITION_RANKS = ("t", "p", "q")
RELEVANT = {"I": {"g", "c", "p", "q", "r", "s", "t"}, "O": {"g", "m", "p", "q", "t"}}


@dataclass(frozen=True)
class Shape:
    """A layer as AccelForge sees it: rank sizes, and how inputs follow positions."""

    dims: dict[str, int]
    stride: tuple[int, int]  # input rows/cols per output position
    dilation: tuple[int, int]

    @classmethod
    def of(cls, layer: Layer, einsum: dict) -> Shape:
        dims = {}
        for line in einsum["iteration_space_shape"]:
            k, v = re.fullmatch(r"0 <= (\w+) < (\d+)", line).groups()
            dims[k] = int(v)
        if layer.type == "linear":
            return cls(dims, (1, 1), (1, 1))
        return cls(dims, layer.read_stride_hw, layer.dilation_hw)

    def size(self, k: str) -> int:
        return self.dims.get(k, 1)

    def per_core(self, core: tuple[tuple[str, int], ...]) -> Shape:
        """One core's part where ``core`` (rank -> cores side by side) divides the ranks evenly."""
        c = dict(core)
        return Shape({k: v // c.get(k, 1) for k, v in self.dims.items()}, self.stride, self.dilation)

    def input_tile(self, t: dict[str, int]) -> int:
        """Inputs a tile of ``t`` (rank -> extent) reads, halo included."""
        if "t" in self.dims or ("p" not in self.dims and "r" not in self.dims):
            return t.get("g", 1) * t.get("t", 1) * t.get("c", 1) * t.get("p", 1) * t.get("q", 1)
        h = (t.get("p", 1) - 1) * self.stride[0] + (t.get("r", 1) - 1) * self.dilation[0] + 1
        w = (t.get("q", 1) - 1) * self.stride[1] + (t.get("s", 1) - 1) * self.dilation[1] + 1
        return t.get("g", 1) * t.get("c", 1) * h * w


@dataclass(frozen=True)
class Plan:
    """One mapping: per-macro array factors, the spread over macros and cores, the loops
    above the macros (top to bottom, (rank, iterations)) and where the global buffer's
    input and output tiles start in them (an index into ``loops``)."""

    array: tuple[tuple[str, int], ...]  # rank -> factor over rows (reduction) or columns (m)
    macro: tuple[tuple[str, int], ...]  # rank -> macros side by side in a core
    core: tuple[tuple[str, int], ...]  # rank -> cores side by side
    loops: tuple[tuple[str, int], ...]
    glb_i: int
    glb_o: int
    # a system with a memory in each core (:func:`_core_buffer`): the cores' fanout above the
    # loops, each core running them on its part and holding its tiles in its buffer (``glb_i`` and
    # ``glb_o`` then start the core buffer's tiles; the global buffer holds whole tensors), else
    # below them (the core buffer holds what one turn of the macros needs)
    cores_above: bool = False

    def weight_loops(self) -> int:
        return sum(1 for k, _ in self.loops if k in WEIGHT_RANKS)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def arrays(shape: Shape, g: MacroGeometry, bits: Bits, buffer_bits: int) -> tuple[tuple[tuple[str, int], ...], ...]:
    """Column and row factors (as (rank, factor) tuples): whole factors, at most one partial
    group per direction (where a rank does not divide), the kernel or one of its dimensions
    whole on the rows; and fewer columns where that lets a block of output channels over all
    positions fit the buffer (partial sums then stay there)."""
    positions = math.prod(shape.size(k) for k in POSITION_RANKS) * shape.size("g")
    return _arrays(shape.size("m"), tuple(shape.size(k) for k in ("c", "r", "s")), g.wordlines_on,
                   g.outputs_per_macro, buffer_bits // (bits.output * positions))


@functools.lru_cache(maxsize=4096)  # layers and sweep points share them
def _arrays(m: int, crs: tuple[int, int, int], wordlines: int, outputs_per_macro: int,
            fitting_columns: int) -> tuple:  # fitting_columns: output channels whose outputs fit the buffer
    up = dict(zip("CRS", crs))
    # a partial group's rank may loop here, so its groups need not fit the macros side by side
    rows_options = [_rows(up, wordlines, math.inf, whole)[0] for whole in (True, False)]
    # the kernel, or one of its dimensions, whole on the rows with as many channels as fit:
    # inputs are then reused inside the array rather than fetched per kernel turn
    for r, s_ in ((up["R"], up["S"]), (up["R"], 1), (1, up["S"])):
        if 1 < r * s_ <= wordlines:
            rows = {"C": min(up["C"], wordlines // (r * s_)), "R": r, "S": s_}
            if rows not in rows_options:
                rows_options.append(rows)
    out = []
    for whole, rows in zip((True, False, False, False, False), rows_options):
        most = min(m, outputs_per_macro)
        if whole and m % most:
            most = max(f for f in range(1, most + 1) if m % f == 0)
        fit = [c for c in _spans(m) if c < most and c <= fitting_columns]
        for cols in [most, *fit[-1:]]:
            a = tuple({"m": cols, **{k.lower(): v for k, v in rows.items()}}.items())
            if a not in out:
                out.append(a)
    return tuple(out)


def _rows(d: dict[str, int], lines: int, macros: int, whole: bool) -> tuple[dict[str, int], dict[str, int]]:
    """Reduction factors over the word lines on at once: the fewest row groups, at most one rank
    split imperfectly unless ``whole`` (its groups then go over at most ``macros`` macros); ties
    to whole factors, then fuller rows, then C, S, R. Returns (factors, {imperfect rank: groups})."""
    best = None
    for c in range(1, min(d["C"], lines) + 1):
        for r in range(1, min(d["R"], lines // c) + 1):
            for s in range(1, min(d["S"], lines // (c * r)) + 1):
                f = {"C": c, "R": r, "S": s}
                odd = {k: -(-d[k] // v) for k, v in f.items() if d[k] % v}
                if len(odd) > (0 if whole else 1) or any(n > macros for n in odd.values()):
                    continue
                groups = math.prod(-(-d[k] // v) for k, v in f.items())
                key = (groups, len(odd), -c * r * s, -c, -s, -r)
                if best is None or key < best[0]:
                    best = (key, f, odd)
    return best[1], best[2]


def _divisors(n: int) -> list[int]:
    return [f for f in range(1, n + 1) if n % f == 0]


def _spans(n: int) -> list[int]:
    """Side-by-side counts worth trying for ``n`` groups: the fewest that give each number of
    turns (ceil(n / turns) for every turns)."""
    return sorted({_ceil(n, t) for t in range(1, n + 1)})


def _split(f: dict[str, int], cores: int, per_core: int) -> tuple[dict, dict] | None:
    """``f`` (rank -> side-by-side groups) split between the macros of a core and the cores,
    the fewest instances wasted; None if no split fits."""
    ranks = list(f)
    choices = [[(a, _ceil(f[k], a)) for a in range(1, min(f[k], per_core) + 1)
                if _ceil(f[k], a) <= cores and (a == f[k] or _ceil(f[k], _ceil(f[k], a)) == a)]
               for k in ranks]
    best = None
    for split in itertools.product(*choices):
        if math.prod(a for a, _ in split) <= per_core and math.prod(b for _, b in split) <= cores:
            waste = math.prod(a * b for a, b in split)
            if best is None or waste < best[0]:
                best = (waste, split)
    if best is None:
        return None
    return {k: a for k, (a, _) in zip(ranks, best[1])}, {k: b for k, (_, b) in zip(ranks, best[1])}


def spreads(groups: dict[str, int], cores: int, per_core: int, every: bool = False) -> tuple:
    """(macro factors, core factors) per weight rank, as (rank, factor) tuples: every spread
    over cores x macros that fits them (for each rank, the fewest side by side for each
    number of turns: :func:`_spans`). None is left out for having more turns than another:
    a looped rank changes the tiles the buffer holds, and fewer groups side by side can
    waste fewer partial ones. Each spread is split between the cores and a core's macros
    wasting the fewest (:func:`_split`), and with ``every`` also in every other way that
    divides each rank's groups exactly (where each core holds tiles of its own, the split
    changes them)."""
    return _spreads(tuple((k, groups[k]) for k in WEIGHT_RANKS if groups.get(k, 1) > 1), cores, per_core, every)


@functools.lru_cache(maxsize=4096)  # layers and sweep points share them
def _spreads(groups: tuple[tuple[str, int], ...], cores: int, per_core: int, every: bool) -> tuple:
    ranks = [k for k, _ in groups]
    groups = dict(groups)
    n = cores * per_core
    options = [[s for s in _spans(groups[k]) if s <= n] for k in ranks]

    def grow(i: int, budget: int):
        if i == len(ranks):
            yield ()
            return
        for s in options[i]:
            if s <= budget:
                for rest in grow(i + 1, budget // s):
                    yield (s, *rest)

    out = []
    for combo in grow(0, n):
        split = _split(dict(zip(ranks, combo)), cores, per_core)
        if split is not None:
            out.append((tuple(split[0].items()), tuple(split[1].items())))
        if every:
            exact = [[(a, s // a) for a in _divisors(s) if a <= per_core and s // a <= cores] for s in combo]
            for pick in itertools.product(*exact):
                if math.prod(a for a, _ in pick) <= per_core and math.prod(b for _, b in pick) <= cores:
                    x = (tuple(zip(ranks, (a for a, _ in pick))), tuple(zip(ranks, (b for _, b in pick))))
                    if x not in out:
                        out.append(x)
    return tuple(out)


def nests(shape: Shape, turns: dict[str, int], positions: dict[str, int],
          resident: bool) -> list[tuple[tuple, list[int], list[int]]]:
    """(loops, input tile starts, output tile starts): the weight turns in every order, then the
    positions (each order); each of the buffer's tiles starts at the top, below a loop
    not fully over its ranks or below the cells' start (a tile starting just above a loop
    over its ranks is held below it anyway, unless the cells start in between: see
    :meth:`_Nest.tile`). Where the whole input and output fit the buffer (``resident``) the
    weight turns take one order: with both tiles at the top, or below all weight loops,
    their order changes no count (tiles below the top still pay where a stride skips
    inputs: those are read per position, not as one block)."""
    weight = [k for k in WEIGHT_RANKS if turns.get(k, 1) > 1]
    pos = [k for k in POSITION_RANKS if positions.get(k, 1) > 1]
    # one weight rank may also take two loops, the outer one first (a block of it at DRAM)
    splits: list[tuple] = [()]
    if not resident:
        splits += [((k, o),) for k in weight for o in _divisors(turns[k])[1:-1]]
    out = []
    for split in splits:
        inner = {**turns, **{k: turns[k] // o for k, o in split}}
        for wo in itertools.permutations(weight) if not resident else [tuple(weight)]:
            for po in itertools.permutations(pos):
                loops = split + tuple((k, inner[k]) for k in wo) + tuple((k, positions[k]) for k in po)
                out.append(_starts(shape, loops, len(split) + len(wo)))
    return out


def _starts(shape: Shape, loops: tuple, cells: int) -> tuple[tuple, list[int], list[int]]:
    """``loops`` with the indices where each of the buffer's tiles may start (see :func:`nests`;
    ``cells``: the index where the cells start)."""
    starts = {t: [i for i in range(len(loops) + 1)
                  if i == 0 or i >= cells or _relevance(shape, t, loops[i - 1][0]) != "full"]
              for t in ("I", "O")}
    return loops, starts["I"], starts["O"]


def plans(system: SystemSpec, shape: Shape, bits: Bits):
    """Every (array, macro spread, core spread, turns per weight rank); the loops and tiles of
    each are :func:`nests` of its turns."""
    g = MacroGeometry.of_system(system, bits)
    for array in arrays(shape, g, bits, system.global_buffer.size_bits):
        a = dict(array)
        groups = {k: _ceil(shape.size(k), a.get(k, 1)) for k in WEIGHT_RANKS}
        for macro, core in spreads(groups, system.cores, system.macros_per_core, system.core_buffer is not None):
            turns = dict(groups)
            for k, n in macro + core:
                turns[k] = _ceil(turns[k], n)
            yield array, macro, core, turns


def resident(system: SystemSpec, shape: Shape, bits: Bits) -> bool:
    """Whether the whole input and output fit the buffer together (:func:`nests`)."""
    return _whole_bits(shape, bits) <= system.global_buffer.size_bits


def _whole_bits(shape: Shape, bits: Bits) -> float:
    return shape.input_tile(shape.dims) * bits.input + math.prod(shape.size(k) for k in RELEVANT["O"]) * bits.output


def _core_resident(shape: Shape, core: tuple, bits: Bits, size: float) -> bool:
    """Whether a core's whole part of the input and output fits its buffer (the cores above the
    loops: :func:`_core_buffer`), as :func:`resident` for the global buffer."""
    return _whole_bits(shape.per_core(core), bits) <= size


@dataclass(frozen=True)
class Estimate:
    """A plan's energy and latency as AccelForge's model gives them, and its latency were every
    partial last turn (imperfect factors) a whole one, as a macro spends it: the model times
    such a turn as its share of an activation. Plans are ranked by the latter, so a plan is
    never preferred for that share alone."""

    energy_j: float
    latency_s: float
    whole_turns_latency_s: float
    glb_bits: float  # the buffer's largest need (input + output tiles)
    conversions: float  # partial sums the macros read out (ADC or adder tree, shift-add)
    core_bits: float = 0.0  # a core buffer's largest need (:func:`_core_buffer`)

    @property
    def edp(self) -> float:
        return self.energy_j * self.whole_turns_latency_s


def _relevance(shape: Shape, tensor: str, rank: str) -> str:
    """"full", "partial" (an input coordinate sums this rank with another: a sliding window)
    or "none", as AccelForge's workload analysis finds."""
    if tensor == "I" and ("r" in shape.dims and rank in ("p", "r") or "s" in shape.dims and rank in ("q", "s")):
        return "partial"
    return "full" if rank in RELEVANT[tensor] else "none"


def _nest(shape: Shape, p: Plan) -> _Nest:
    """``_Nest(shape, p)``, kept per process: sweep points that differ only in what the nest
    does not depend on (ADC bits, buffer size, energies) share their layers' nests."""
    return _nests(tuple(shape.dims.items()), shape.stride, shape.dilation, p.array, p.macro, p.core, p.loops)


@functools.lru_cache(maxsize=16384)
def _nests(dims: tuple, stride: tuple, dilation: tuple, array: tuple, macro: tuple, core: tuple,
           loops: tuple) -> _Nest:
    return _Nest(Shape(dict(dims), stride, dilation), Plan(array, macro, core, loops, 0, 0))


def _holders(shape: Shape, p: Plan) -> dict[str, tuple[int, int]]:
    """Where each tile starts: (loop index, order among the nodes at one index). The cells
    come first; of the buffer's two tiles the one that the next loop does not concern
    comes first, so that it does not stop the other being held lower (see :meth:`_Nest.tile`)."""
    o_first = p.glb_o < len(p.loops) and _relevance(shape, "O", p.loops[p.glb_o][0]) == "none"
    return {"W": (p.weight_loops(), 0), "I": (p.glb_i, 2 if o_first else 1), "O": (p.glb_o, 1 if o_first else 2)}


class _Nest:
    """One plan's loop nest, precomputed: each rank's extent below every loop, how the
    buffer's tiles are held (:meth:`tile`), and its turns as AccelForge's model counts them.

    Where a weight rank's groups do not fill its last turn (imperfect factors), the model
    counts that turn as its share of the rank for the data it moves and the cells' time; for
    partial sums, readouts and the data of a tensor the rank does not index, as its share of a
    kernel or group rank (r, s, g) but as a whole turn of a channel rank (c, m; checked against
    the model: tests/test_cim_backend.py). A buffer's tile is held at its largest: a loop's tile shape."""

    def __init__(self, shape: Shape, p: Plan):
        loops, array = p.loops, dict(p.array)
        self.loops = loops
        self.rel = {t: [_relevance(shape, t, k) for k, _ in loops] for t in ("I", "O")}
        self.outputs = math.prod(shape.size(k) for k in RELEVANT["O"])
        inner, core = dict(p.macro), dict(p.core)
        spread = {k: array.get(k, 1) * inner.get(k, 1) * core.get(k, 1) for k in WEIGHT_RANKS}
        self.share = share = {k: shape.size(k) / spread[k] for k in WEIGHT_RANKS}
        # a kernel or group rank's partial last turn counts as its share of the rank; a channel
        # rank's (input or output channels) as a whole turn
        partial = {k: k in ("m", "c") for k in WEIGHT_RANKS}
        whole = {k: math.ceil(v) if partial[k] else v for k, v in share.items()}
        innermost = {k: u for u, (k, _) in enumerate(loops)}
        # each rank's row or column groups a layer's turns cover: all those side by side, each
        # turn, on a looped rank (the model averages its turns instead), else those in use
        # (a channel rank's cores count whole, and all macros of a core in use)
        self.groups = {k: whole[k] * (spread[k] // array.get(k, 1)) if k in innermost
                       else _ceil(shape.size(k), array.get(k, 1) * inner.get(k, 1)) * inner.get(k, 1) if partial[k]
                       else shape.size(k) / array.get(k, 1) for k in WEIGHT_RANKS}
        self.column_turns = whole["m"] if "m" in innermost else 1  # turns over output channels
        # a macro's output columns over the turns: their mean where output channels loop (the
        # model averages turns), else all of its column group (the busiest macro's)
        self.macro_columns = (shape.size("m") * array.get("m", 1) / spread["m"] if "m" in innermost
                              else array.get("m", 1))
        ext, mean = dict(shape.dims), {k: float(v) for k, v in shape.dims.items()}
        self.size: dict[str, list[int]] = {"I": [], "O": []}
        self.mean_input: list[float] = []  # the input tile's mean size (partial last turns included)
        self.fills, self.refills = [1.0], [1.0]  # turns above an index; those not over outputs (partial sums)
        self.readout_turns = 1.0
        done: dict[str, int] = {}
        for u in range(len(loops) + 1):
            self.size["I"].append(shape.input_tile(ext))
            self.mean_input.append(self.size["I"][-1] if mean == ext else shape.input_tile(mean))
            self.size["O"].append(math.prod(ext.get(k, 1) for k in RELEVANT["O"]))
            if u == len(loops):
                break
            k, n = loops[u]
            data = sums = n
            if k in WEIGHT_RANKS and innermost[k] == u:  # the rank's last loop takes its partial turn
                data = (share[k] if k in RELEVANT["I"] else whole[k]) / done.get(k, 1)
                sums = whole[k] / done.get(k, 1)
            done[k] = done.get(k, 1) * n
            # below the loop a tile spans its tile shape (whole turns), not ceil(extent / n)
            ext[k] = min(ext[k], (spread[k] if k in WEIGHT_RANKS else 1)
                         * math.prod(m for r, m in loops[u + 1:] if r == k))
            mean[k] /= data
            self.fills.append(self.fills[-1] * data)
            self.refills.append(self.refills[-1] * (1 if k in RELEVANT["O"] else sums))
            self.readout_turns *= sums

    @property
    def drive_turns(self) -> float:
        """The drivers' activations: as the cells', but a column turn whole (it drives every row)."""
        looped = any(k == "m" for k, _ in self.loops)
        return self.cell_turns * (math.ceil(self.share["m"]) / self.share["m"] if looped else 1)

    @property
    def cell_turns(self) -> float:
        """The cells' activations: each weight rank's turns at their share of it."""
        return math.prod(n for k, n in self.loops if k not in WEIGHT_RANKS) * math.prod(
            self.share[k] for k in {k for k, _ in self.loops if k in WEIGHT_RANKS})

    def held(self, tensor: str, holders: dict[str, tuple[int, int]]) -> tuple[int, bool]:
        """(the loop index above which the buffer holds ``tensor``'s tile, whether a
        sliding-window loop just above it ends the descent): see :meth:`tile`."""
        at, order = holders[tensor]
        others = [h for t, h in holders.items() if t != tensor]
        j, rel = at, self.rel[tensor]
        while j < len(self.loops):
            if any(h[0] == j and (j > at or h[1] > order) for h in others) or rel[j] == "none":
                break
            j += 1
            if rel[j - 1] == "partial":
                return j, True
        return j, False

    def tile(self, tensor: str, holders: dict[str, tuple[int, int]]) -> tuple[int, float]:
        """(tile the buffer holds, values all its fills move) for the buffer's ``tensor``.

        As AccelForge's model does, a tile starting above loops over its ranks is held (and
        filled) below them, down to a loop not over its ranks (the tile stays while it
        turns), a sliding-window loop (held one step at a time, each input moved once) or
        another tile's start."""
        j, slide = self.held(tensor, holders)
        moved_from = j - 1 if slide else j
        if tensor == "O":  # the tiles over the output ranks sum to the outputs, partial last tiles included
            return self.size["O"][j], self.refills[moved_from] * self.outputs
        return self.size["I"][j], self.fills[moved_from] * self.mean_input[moved_from]


@dataclass(frozen=True)
class _Macros:
    """What a plan's array and spread fix, whatever its loop order and tiles: the macros' inputs from
    the buffer, their drives and readouts, in all and for one macro (what times it), counted
    as AccelForge's model counts them (see :class:`_Nest`)."""

    activations: int
    cell_turns: float  # activations as AccelForge's model times the cells (see :class:`_Nest`)
    glb_inputs: float  # inputs the macros read from the buffer, in bits (each row once per column turn)
    conversions: float  # partial sums read out (x the conversions per output)
    drives: float  # word-line drives (every input row, each input slice, once per column group)
    readouts_per_macro: float  # conversions of one macro, as the model times its readouts
    drives_per_macro: float  # word-line drives of the busiest macro (its rows, all of them, each turn)
    whole_readouts: float  # a macro's conversions, and its drives, were every turn whole
    whole_drives: float

    @classmethod
    def of(cls, shape: Shape, nest: _Nest, p: Plan, bits: Bits, g: MacroGeometry) -> _Macros:
        per_channel = math.prod(shape.size(k) for k in shape.dims if k != "m")  # input rows per output channel
        positions = math.prod(n for k, n in p.loops if k not in WEIGHT_RANKS)
        # every output channel once per reduction group (partial column groups: their columns)
        conversions = (positions * math.prod(nest.groups[k] for k in ("c", "r", "s")) * shape.size("m")
                       * shape.size("g") * g.conversions_per_output)
        array = dict(p.array)
        rows = math.prod(array.get(k, 1) for k in ("c", "r", "s"))
        activations = math.prod(n for _, n in p.loops)
        return cls(activations, nest.cell_turns,
                   per_channel * nest.column_turns * bits.input,  # macros side by side on m share them
                   conversions, per_channel * nest.groups["m"] * g.input_slices,
                   nest.readout_turns / nest.column_turns * nest.macro_columns * g.conversions_per_output,
                   nest.drive_turns * rows * g.input_slices,
                   activations * array.get("m", 1) * g.conversions_per_output, activations * rows * g.input_slices)


@dataclass(frozen=True)
class _Costs:
    """A layer's and system's constants of :func:`_score`."""

    weight_bits: float
    dram_j: float  # per bit
    glb_j: float
    dram_bw: float  # bits per s
    glb_bw: float
    noc_j: float  # per bit crossing the NoC (its mean hops), 0 without one
    noc_bw: float  # bits per s (inf without a NoC)
    core_j: float  # per bit read or written in a core buffer (0 without one)
    core_bw: float  # a core buffer's bits per s (inf without one)
    slices_s: float  # the cells' time per activation (its input slices, and its share of weight writes)
    readout_s: float  # per conversion (a macro's readout units share them)
    drive_s: float  # per word-line drive (a macro drives its word lines on at once)
    conversion_j: float  # readout (ADC or adder tree) and shift-add, per partial sum
    drive_j: float  # per word-line drive
    cells_j: float  # the cells' reads and writes: the layer's, whatever the plan

    @classmethod
    def of(cls, system: SystemSpec, shape: Shape, bits: Bits, ert: dict[str, dict[str, float]]) -> _Costs:
        def read(part: str) -> float:
            return ert.get(part, {}).get("read", 0.0)

        weights = math.prod(shape.size(k) for k in WEIGHT_RANKS)
        g = MacroGeometry.of_system(system, bits)
        reads = math.prod(shape.dims.values()) * g.input_slices * g.weight_slices  # cell operations
        cell = ert.get(CELL_ARRAY, {})
        cells_j = reads * cell.get("read", 0.0) + weights * bits.weight * cell.get("write", 0.0)  # a write: a bit
        # the model times the cells' weight writes as it times their reads, unless preloaded
        writes = weights * bits.weight / reads if system.macro.weights_loaded != "once" else 0.0
        return cls(weights * bits.weight,
                   system.dram.energy_per_bit_j.value, system.global_buffer.energy_per_bit_j.value,
                   system.dram.bandwidth_bits_per_s, system.global_buffer.bandwidth_bits_per_s,
                   read(NOC), system.noc.link_bandwidth_bits_per_s if system.noc else math.inf,
                   read(CORE_BUFFER), system.core_buffer.bandwidth_bits_per_s if system.core_buffer else math.inf,
                   g.input_slices * system.macro.cycle_s * (1 + writes),
                   system.macro.cycle_s / system.macro.readout_units(),
                   system.macro.cycle_s / system.macro.wordlines_on,
                   read(ADC) + read(ADDER_TREE) + read(SHIFT_ADD), read(WORDLINE_DRIVER), cells_j)


@dataclass(frozen=True)
class _Traffic:
    """A plan's data movement in bits, as AccelForge's model counts it (see :func:`_score`)."""

    inputs_in: float  # inputs DRAM -> buffer (each tile's fills)
    outputs_out: float  # outputs and partial sums buffer -> DRAM
    sums_back: float  # partial sums DRAM -> buffer (read back to add the next)
    sums_in: float  # the macros' partial sums -> buffer, once a reduction turn
    sums_added: float  # partial sums buffer -> macros' adders (each turn but the first)
    macro_inputs: float  # inputs buffer -> macros, once a column turn
    weights: float  # DRAM -> cells
    held: float  # the buffer's largest need (its input and output tiles)

    @classmethod
    def of(cls, c: _Costs, bits: Bits, nest: _Nest, macros: _Macros, holders: dict) -> _Traffic:
        held_i, moved_i = nest.tile("I", holders)
        held_o, moved_o = nest.tile("O", holders)
        sums = nest.refills[-1] * nest.outputs * bits.output
        return cls(moved_i * bits.input, moved_o * bits.output, (moved_o - nest.outputs) * bits.output,
                   sums, sums - nest.outputs * bits.output, macros.glb_inputs, c.weight_bits,
                   held_i * bits.input + held_o * bits.output)

    @property
    def dram(self) -> float:
        return self.inputs_in + self.outputs_out + self.sums_back + self.weights

    @property
    def glb(self) -> float:
        return (self.macro_inputs + self.inputs_in + self.sums_in + self.sums_added + self.sums_back
                + self.outputs_out)

    @property
    def noc_by_tensor(self) -> dict[str, float]:
        """Bits between the buffer and the macros (AccelForge's count of a pass-through there):
        the weights down to the cells, the inputs down, the partial sums up and down again."""
        return {"W": self.weights, "I": self.macro_inputs, "O": self.sums_in + self.sums_added}

    @property
    def noc(self) -> float:
        return sum(self.noc_by_tensor.values())


def _memory_moved(t: _Traffic, noc: bool) -> dict[tuple[str, str, str], float]:
    """A plan's bits by (part, tensor, action) at DRAM, the global buffer and a NoC."""
    moved = {(DRAM, "I", "read"): t.inputs_in, (DRAM, "I", "write"): 0.0,
             (DRAM, "O", "read"): t.sums_back, (DRAM, "O", "write"): t.outputs_out,
             (DRAM, "W", "read"): t.weights, (DRAM, "W", "write"): 0.0,
             (GLOBAL_BUFFER, "I", "read"): t.macro_inputs, (GLOBAL_BUFFER, "I", "write"): t.inputs_in,
             (GLOBAL_BUFFER, "O", "read"): t.sums_added + t.outputs_out,
             (GLOBAL_BUFFER, "O", "write"): t.sums_in + t.sums_back}
    if noc:
        for tensor, n in t.noc_by_tensor.items():
            moved |= {(NOC, tensor, "read"): n, (NOC, tensor, "write"): 0.0}
    return moved


def _even(shape: Shape, array: tuple, macro: tuple, core: tuple, turns: dict[str, int]) -> bool:
    """Whether a plan covers every weight rank exactly, no partial group or turn anywhere (the
    plans searched on a system with a memory in each core: :func:`_core_buffer`)."""
    a, m, c = dict(array), dict(macro), dict(core)
    return all(a.get(k, 1) * m.get(k, 1) * c.get(k, 1) * turns.get(k, 1) == shape.size(k) for k in WEIGHT_RANKS)


class _Core(NamedTuple):
    """One core's part of an even plan whose cores are above the loops: each core runs the same
    loops on its share of the ranks the cores spread (its layer, nest and macros)."""

    shape: Shape
    nest: _Nest
    macros: _Macros

    @classmethod
    def of(cls, shape: Shape, p: Plan, bits: Bits, g: MacroGeometry) -> _Core:
        one, q, nest = _core_part(shape, p)
        return cls(one, nest, _Macros.of(one, nest, q, bits, g))


def _core_part(shape: Shape, p: Plan) -> tuple[Shape, Plan, _Nest]:
    """A core's part of ``p`` with the cores above the loops: its share of the ranks the cores
    spread, the plan without a core fanout, and that plan's loop nest on the part."""
    one, q = shape.per_core(p.core), Plan(p.array, p.macro, (), p.loops, 0, 0)
    return one, q, _nest(one, q)


def _core_buffer(c: _Costs, bits: Bits, shape: Shape, p: Plan, nest: _Nest, t: _Traffic, part: _Core | None,
                 noc: bool) -> tuple[dict[tuple[str, str, str], float], float, float, float]:
    """An even plan on a system with a memory in each core: (bits by (part, tensor, action) at
    DRAM, the global buffer, a NoC and the core buffers; one core buffer's bits, every core's
    the same; a core buffer's need; the global buffer's need), as AccelForge's model counts them
    (checked entry by entry: tests/test_levels.py).

    Cores below the loops (``p.cores_above`` false): a core's buffer holds what one turn of its
    macros needs, filled every turn: each core its input tile (those the m rank spreads over the
    same one, sent once), read by its macros as they read the global buffer; each core its
    partial sums in and out once a reduction turn; the rest is the plan without the core buffers.

    Cores above the loops: each core runs the plan on its ``part`` (:class:`_Core`) with its buffer
    in the global buffer's place; the global buffer holds whole tensors, filled from DRAM once,
    and sends each core's fills over the NoC once to the cores the m rank spreads over (the same
    inputs) and takes their partial sums once from the cores a reduction rank spreads over
    (reduced on the way)."""
    core = dict(p.core)
    n = math.prod(core.values())
    over_m = core.get("m", 1)
    reduced = math.prod(core.get(k, 1) for k in ("c", "r", "s"))
    a, m = dict(p.array), dict(p.macro)
    if not p.cores_above:
        tile = {k: a.get(k, 1) * m.get(k, 1) for k in WEIGHT_RANKS}
        fills = n * nest.fills[-1] * shape.input_tile(tile) * bits.input
        sums = reduced * (t.sums_in + t.sums_added)
        moved = _memory_moved(t, noc) | {
            (CORE_BUFFER, "I", "write"): fills, (CORE_BUFFER, "I", "read"): over_m * t.macro_inputs,
            (CORE_BUFFER, "O", "write"): sums, (CORE_BUFFER, "O", "read"): sums}
        # the global buffer sends the cores' input tiles (a dilated kernel's whole box), not the rows
        # the macros read
        moved[GLOBAL_BUFFER, "I", "read"] = fills / over_m
        if noc:
            moved[NOC, "I", "read"] = fills / over_m
        need = shape.input_tile(tile) * bits.input + tile["g"] * tile["m"] * bits.output
        held = t.held
    else:
        t1 = _Traffic.of(c, bits, part.nest, part.macros, _holders(part.shape, p))
        inputs = shape.input_tile(shape.dims) * bits.input
        outputs = nest.outputs * bits.output
        down, up, back = n / over_m * t1.inputs_in, n / reduced * t1.outputs_out, n / reduced * t1.sums_back
        moved = {(DRAM, "I", "read"): inputs, (DRAM, "I", "write"): 0.0,
                 (DRAM, "O", "read"): 0.0, (DRAM, "O", "write"): outputs,
                 (DRAM, "W", "read"): t.weights, (DRAM, "W", "write"): 0.0,
                 (GLOBAL_BUFFER, "I", "read"): down, (GLOBAL_BUFFER, "I", "write"): inputs,
                 (GLOBAL_BUFFER, "O", "read"): back + outputs, (GLOBAL_BUFFER, "O", "write"): up,
                 (CORE_BUFFER, "I", "write"): n * t1.inputs_in, (CORE_BUFFER, "I", "read"): n * t1.macro_inputs,
                 (CORE_BUFFER, "O", "write"): n * (t1.sums_in + t1.sums_back),
                 (CORE_BUFFER, "O", "read"): n * (t1.sums_added + t1.outputs_out)}
        if noc:
            moved |= {(NOC, "W", "read"): t.weights, (NOC, "I", "read"): down, (NOC, "O", "read"): up + back,
                      (NOC, "W", "write"): 0.0, (NOC, "I", "write"): 0.0, (NOC, "O", "write"): 0.0}
        need, held = t1.held, inputs + outputs
    one_core = sum(v for (q, _, _), v in moved.items() if q == CORE_BUFFER) / n
    return moved, one_core, need, held


def _by_part(moved: dict[tuple[str, str, str], float]) -> dict[str, float]:
    """Bits moved at each memory and the NoC (0 where there is none)."""
    out = dict.fromkeys((DRAM, GLOBAL_BUFFER, NOC, CORE_BUFFER), 0.0)
    for (part, _, _), v in moved.items():
        out[part] += v
    return out


def _score_cores(c: _Costs, bits: Bits, shape: Shape, p: Plan, nest: _Nest, macros: _Macros, part: _Core | None,
                 noc: bool) -> Estimate:
    """:func:`_score` of an even plan on a system with a memory in each core (:func:`_core_buffer`)."""
    t = _Traffic.of(c, bits, nest, macros, _holders(shape, p))
    moved, one_core, need, held = _core_buffer(c, bits, shape, p, nest, t, part, noc)
    by_part = _by_part(moved)
    memories = max(by_part[DRAM] / c.dram_bw, by_part[GLOBAL_BUFFER] / c.glb_bw, by_part[NOC] / c.noc_bw,
                   one_core / c.core_bw)
    latency = max(macros.cell_turns * c.slices_s, macros.readouts_per_macro * c.readout_s,
                  macros.drives_per_macro * c.drive_s, memories)
    energy = (by_part[DRAM] * c.dram_j + by_part[GLOBAL_BUFFER] * c.glb_j + by_part[NOC] * c.noc_j
              + by_part[CORE_BUFFER] * c.core_j + macros.conversions * c.conversion_j + macros.drives * c.drive_j
              + c.cells_j)
    return Estimate(energy, latency, latency, held, macros.conversions, need)


def _score(c: _Costs, bits: Bits, nest: _Nest, macros: _Macros, holders: dict) -> Estimate:
    """The closed form of one plan, as AccelForge's model counts it (tests/test_cim_backend.py
    checks each count): DRAM traffic (each tile's fills; partial sums written and read back),
    global buffer traffic (the macros' inputs, once a column turn; their partial sums, once a
    reduction turn; the fills), word-line drives, partial-sum readouts and the cells' reads
    and writes, priced by the ERT; the latency is the slowest of the cells, the readouts, the
    word-line drivers, DRAM, buffer and NoC traffic (a NoC: every bit between the buffer and
    the macros, :attr:`_Traffic.noc`)."""
    t = _Traffic.of(c, bits, nest, macros, holders)
    noc = t.noc if c.noc_bw != math.inf else 0.0  # (the sum skipped without a NoC: this runs for every plan)
    memories = max(t.dram / c.dram_bw, t.glb / c.glb_bw, noc / c.noc_bw)
    latency = max(macros.cell_turns * c.slices_s, macros.readouts_per_macro * c.readout_s,
                  macros.drives_per_macro * c.drive_s, memories)
    whole = max(macros.activations * c.slices_s, macros.whole_readouts * c.readout_s,
                macros.whole_drives * c.drive_s, memories)
    energy = (t.dram * c.dram_j + t.glb * c.glb_j + noc * c.noc_j + macros.conversions * c.conversion_j
              + macros.drives * c.drive_j + c.cells_j)
    return Estimate(energy, latency, max(whole, latency), t.held, macros.conversions)


def evaluate(system: SystemSpec, shape: Shape, bits: Bits, p: Plan, ert: dict[str, dict[str, float]]) -> LayerResult:
    """The plan's full result in closed form, every count as AccelForge's model gives it for
    this architecture (``tests/test_cim_backend.py`` checks each entry against the model):
    reads and writes per part and tensor, energy per part and action (the ERT's), and each
    part's latency."""
    g = MacroGeometry.of_system(system, bits)
    c = _Costs.of(system, shape, bits, ert)
    nest = _Nest(shape, p)
    macros = _Macros.of(shape, nest, p, bits, g)
    t = _Traffic.of(c, bits, nest, macros, _holders(shape, p))
    computes = float(math.prod(shape.dims.values()))
    slices = g.input_slices * g.weight_slices
    readouts = [r for r in (ADC, ADDER_TREE) if r in ert] + [SHIFT_ADD]
    noc = system.noc is not None
    if system.core_buffer is None:
        moved = _memory_moved(t, noc)
        latency = {DRAM: t.dram / c.dram_bw, GLOBAL_BUFFER: t.glb / c.glb_bw}
        if noc:
            latency[NOC] = t.noc / c.noc_bw
    else:
        part = _Core.of(shape, p, bits, g) if p.cores_above else None
        moved, one_core, _, _ = _core_buffer(c, bits, shape, p, nest, t, part, noc)
        at = _by_part(moved)
        latency = {DRAM: at[DRAM] / c.dram_bw, GLOBAL_BUFFER: at[GLOBAL_BUFFER] / c.glb_bw,
                   CORE_BUFFER: one_core / c.core_bw}
        if noc:
            latency[NOC] = at[NOC] / c.noc_bw
    moved |= {(CELL_ARRAY, "W", "read"): computes * slices,
              (CELL_ARRAY, "W", "write"): math.prod(shape.size(k) for k in WEIGHT_RANKS) * bits.weight,
              (WORDLINE_DRIVER, "I", "read"): macros.drives, (WORDLINE_DRIVER, "I", "write"): 0.0}
    for r in readouts:
        moved |= {(r, "O", "read"): macros.conversions, (r, "O", "write"): 0.0}
    actions = {(COMPUTE, "compute"): computes, **by_action(moved)}
    energy = {(part, a): actions[part, a] * e for part, acts in ert.items() for a, e in acts.items()}
    energy |= {(part, "leak"): 0.0 for part in ert}  # cimco's models leak nothing
    latency |= {COMPUTE: 0.0, CELL_ARRAY: macros.cell_turns * c.slices_s,
                WORDLINE_DRIVER: macros.drives_per_macro * c.drive_s,
                **dict.fromkeys(readouts, macros.readouts_per_macro * c.readout_s)}
    # as AccelForge shows a mapping: no loop whose tile is all of its rank above it, one storage
    # node per level
    nodes: list[dict] = []
    ext = dict(shape.dims)
    for n in mapping_nodes(system, shape, p):
        if "rank" in n:
            k = n["rank"]
            if n["tile"] == ext[k]:
                continue
            ext[k] = min(ext[k], n["tile"])
        if n["node"] == "storage" and nodes and nodes[-1]["node"] == "storage" \
                and nodes[-1]["component"] == n["component"]:
            nodes[-1] = {**nodes[-1], "tensors": [*nodes[-1]["tensors"], *n["tensors"]]}
        else:
            nodes.append(n)
    return LayerResult(energy_j=sum(energy.values()), latency_s=max(latency.values()), computes=computes,
                       energy=energy, actions=actions, tensor_actions=moved, latency_by_component=latency,
                       mapping=" ".join(_text(n) for n in nodes), loops=[_loop(n) for n in nodes])


def _text(n: dict) -> str:
    """One mapping node as text, in the style of AccelForge's compact mapping string."""
    if n["node"] in ("storage", "toll"):
        return f"[{','.join(n['tensors'])} in {n['component']}]"
    if n["node"] == "temporal":
        return f"T-{n['rank']} in [0..{n['bound']}) shape={n['tile']}"
    if n["node"] == "spatial":
        return f"S-{n['name']}-{n['rank']} in [0..{n['bound']}) shape={n['tile']}"
    return f"{n['component']} computes O"


def _loop(n: dict) -> dict:
    """One mapping node as the data of :attr:`cimco.backends.LayerResult.loops`."""
    d = {"node": n["node"]}
    if n["node"] in ("spatial", "temporal"):
        d |= {"rank": n["rank"], "bound": n["bound"]}
    if n["node"] != "temporal":
        d["component"] = n["name"] if n["node"] == "spatial" else n["component"]
    if "tensors" in n:
        d["tensors"] = list(n["tensors"])
    return d


class _Floor(NamedTuple):
    """What no plan with a given array goes below (:func:`_floor`)."""

    energy_j: float
    dram_bits: float
    glb_bits: float
    inputs_bits: float  # each input an output position reads at its kernel's first tap
    activation_s: float  # an activation's time, were every turn whole (the cells', readouts' or drives')


def _floor(c: _Costs, bits: Bits, shape: Shape, array: dict[str, int], g: MacroGeometry,
           cores: bool = False) -> _Floor:
    """The energy, DRAM and buffer traffic no plan with this array goes below, whatever its
    spread, loops and tiles: the cells' reads and writes; the weights, outputs and each input
    an output position reads at its kernel's first tap (distinct inputs: every tile's fills
    move at least those) moved once; the macros' inputs, partial sums and outputs through the
    buffer once; and each row group's partial sums read out, each input row driven, once
    per column group (a rank's groups are at least its size over its array factor). With a
    memory in each core (``cores``) the macros read their inputs from it, and DRAM's traffic
    crosses the NoC."""
    outputs = math.prod(shape.size(k) for k in RELEVANT["O"]) * bits.output
    inputs = math.prod(shape.size(k) for k in ("g", "c", "t", "p", "q")) * bits.input
    per_channel = math.prod(shape.size(k) for k in shape.dims if k != "m")  # input rows per output channel
    positions = math.prod(shape.size(k) for k in POSITION_RANKS)
    conversions = (positions * math.prod(shape.size(k) / array.get(k, 1) for k in ("c", "r", "s"))
                   * shape.size("m") * shape.size("g") * g.conversions_per_output)
    drives = per_channel * shape.size("m") / array.get("m", 1) * g.input_slices
    dram = c.weight_bits + outputs + inputs
    glb = inputs + 2 * outputs + (0 if cores else per_channel * bits.input)
    near = per_channel * bits.input * c.core_j + dram * c.noc_j if cores else 0.0  # the core buffers', the NoC's
    rows = math.prod(array.get(k, 1) for k in ("c", "r", "s"))
    return _Floor(c.cells_j + dram * c.dram_j + glb * c.glb_j + near + conversions * c.conversion_j
                  + drives * c.drive_j, dram, glb, inputs,
                  max(c.slices_s, array.get("m", 1) * g.conversions_per_output * c.readout_s,
                      rows * g.input_slices * c.drive_s))


def _bound(c: _Costs, bits: Bits, nest: _Nest, macros: _Macros, floor: _Floor, cores: int = 0) -> float:
    """A lower bound on the energy-delay product (:attr:`Estimate.edp`) of every plan with this
    array and spread, whatever its loop order and tiles: the macros' energy and time (the
    same for every order), the floor's DRAM traffic (weights, outputs and inputs moved once),
    and the buffer's traffic to and from the macros with the floor's inputs. With a memory in
    each of the spread's ``cores`` (:func:`_core_buffer`, either way) the traffic to and from
    the macros is the core buffers' (shared by the cores), the global buffer's the floor's
    inputs and the outputs in and out, and DRAM's traffic crosses the NoC."""
    sums = nest.refills[-1] * nest.outputs * bits.output
    near = macros.glb_inputs + 2 * sums  # partial sums in and back out
    glb = near + floor.inputs_bits if not cores else floor.inputs_bits + 2 * nest.outputs * bits.output
    energy = (floor.dram_bits * c.dram_j + glb * c.glb_j + macros.conversions * c.conversion_j
              + macros.drives * c.drive_j + c.cells_j)
    memories = max(floor.dram_bits / c.dram_bw, glb / c.glb_bw)
    if cores:
        energy += near * c.core_j + floor.dram_bits * c.noc_j
        memories = max(memories, near / cores / c.core_bw, floor.dram_bits / c.noc_bw)
    return energy * max(macros.activations * c.slices_s, macros.whole_readouts * c.readout_s,
                        macros.whole_drives * c.drive_s, memories)


def ranked(system: SystemSpec, layer: Layer, einsum: dict, bits: Bits, ert: dict[str, dict[str, float]],
           whole: bool = False, accept: Callable[[Shape, Plan], bool] | None = None) -> list[tuple[Estimate, Plan]]:
    """The plans whose buffer tiles fit, best estimated energy-delay product first (ties: fewer
    conversions, lower latency, then the order of :func:`plans`), leaving out the array
    and spread choices whose lower bounds are above the best plan found: their plans cannot
    come first. Choices are taken in the order of a quick bound (the array's :func:`_floor`
    and its activations' time for the spread's turns), then checked against a closer one
    (:func:`_bound`) before their loops and tiles are priced. For each
    input tile start only the highest output tile start that fits is kept: an output tile
    held higher is filled no more often and moves no more data (the input tile can be held
    differently then, where one starts below the other: the estimate of the plan kept
    still prices that). ``whole``: only plans with no partial last turn (a rank whose groups
    do not divide it has all of them side by side); ``accept``: only plans it accepts (both
    for :mod:`cimco.timeloop.layout`).

    On a system with a memory in each core only even plans (:func:`_even`) are searched, each
    with the cores below and above the loops (:func:`_core_buffer`); with the cores above, the
    weight turns take one order where each core's whole part fits its buffer
    (:func:`_core_resident`), as :func:`nests` does where the whole layer fits the global buffer."""
    shape = Shape.of(layer, einsum)
    costs = _Costs.of(system, shape, bits, ert)
    g = MacroGeometry.of_system(system, bits)
    size = system.global_buffer.size_bits
    positions = {k: shape.size(k) for k in POSITION_RANKS}
    cores = system.core_buffer is not None
    core_size = system.core_buffer.size_bits if cores else math.inf
    held = resident(system, shape, bits)
    floors: dict[tuple, _Floor] = {}
    choices = []
    for n, (array, macro, core, turns) in enumerate(plans(system, shape, bits)):
        if whole and any(turns[k] > 1 and shape.size(k) != dict(array).get(k, 1) * dict(macro).get(k, 1)
                         * dict(core).get(k, 1) * turns[k] for k in WEIGHT_RANKS):
            continue
        if cores and not _even(shape, array, macro, core, turns):
            continue
        if array not in floors:
            floors[array] = _floor(costs, bits, shape, dict(array), g, cores)
        f = floors[array]
        activations = math.prod(turns.values()) * math.prod(positions.values())
        quick = f.energy_j * max(activations * f.activation_s, f.dram_bits / costs.dram_bw, f.glb_bits / costs.glb_bw,
                                 f.dram_bits / costs.noc_bw if cores else 0.0)
        choices.append((quick, n, array, macro, core, turns))
    choices.sort(key=lambda x: x[:2])
    scored, best = [], math.inf
    for quick, n, array, macro, core, turns in choices:
        if quick > best:  # every later choice's floor is higher still
            break
        # the loops: their orders where the buffer holding the tiles (the global buffer, or with the
        # cores above the loops each core's) could not hold whole tensors (:func:`nests`)
        ways = [(False, nests(shape, turns, positions, held))]
        if cores:
            ways.append((True, nests(shape, turns, positions, _core_resident(shape, core, bits, core_size))))
        first = Plan(array, macro, core, ways[0][1][0][0], 0, 0)
        nest = _nest(shape, first)
        macros = _Macros.of(shape, nest, first, bits, g)  # the same for every loop order
        if _bound(costs, bits, nest, macros, floors[array], cores and math.prod(dict(core).values())) > best:
            continue
        for above, nested in ways:
            for j, (loops, starts_i, starts_o) in enumerate(nested):
                base = Plan(array, macro, core, loops, 0, 0)
                nest = _nest(shape, base)
                part = _Core.of(shape, base, bits, g) if above else None
                for i in starts_i:
                    for o in starts_o:
                        p = Plan(array, macro, core, loops, i, o, above)
                        e = (_score_cores(costs, bits, shape, p, nest, macros, part, system.noc is not None) if cores
                             else _score(costs, bits, nest, macros, _holders(shape, p)))
                        if e.glb_bits <= size and e.core_bits <= core_size and (accept is None or accept(shape, p)):
                            scored.append((e.edp, e.conversions, e.latency_s, (n, j, above, i), e, p))
                            best = min(best, e.edp)
                            break
    scored.sort(key=lambda x: x[:4])
    return [x[4:] for x in scored]


def mapping_nodes(system: SystemSpec, shape: Shape, p: Plan) -> list[dict]:
    """The plan as AccelForge mapping nodes (plain dicts, top to bottom; a loop's ``bound``
    is its iterations, or instances for a spatial one)."""
    a, macro, core = dict(p.array), dict(p.macro), dict(p.core)
    nodes: list[dict] = [{"node": "storage", "tensors": ["W", "O", "I"], "component": DRAM}]
    if p.cores_above:  # the global buffer holds whole tensors; below the cores, the core buffer takes its place
        nodes += [{"node": "storage", "tensors": [t], "component": GLOBAL_BUFFER} for t in ("I", "O")]
        if system.noc is not None:
            nodes.append({"node": "toll", "tensors": ["W", "I", "O"], "component": NOC})
        nodes += _core_nodes(p, (a.get(k, 1) * macro.get(k, 1) * _turns(p.loops, k) for k in core))
        return nodes + _nest_nodes(shape, p, CORE_BUFFER, False) + _macro_nodes(system, p)
    nodes += _nest_nodes(shape, p, GLOBAL_BUFFER, system.noc is not None)
    if system.noc is not None:  # and the inputs and partial sums below the loops (not to stop a tile held lower)
        if nodes[-2] == {"node": "toll", "tensors": ["W"], "component": NOC}:  # one pass-through, as the model shows it
            nodes[-2] = {"node": "toll", "tensors": ["W", "I", "O"], "component": NOC}
        else:
            nodes.append({"node": "toll", "tensors": ["I", "O"], "component": NOC})
    if system.core_buffer is not None:  # the cores, each buffer holding one turn's tiles, then the macros
        nodes += _core_nodes(p, (a.get(k, 1) * macro.get(k, 1) for k in core))
        return nodes + [{"node": "storage", "tensors": ["I", "O"], "component": CORE_BUFFER}] + _macro_nodes(system, p)
    for k in macro:
        nodes.append({"node": "spatial", "rank": k, "tile": a.get(k, 1) * core.get(k, 1), "bound": macro[k],
                      "name": "macro", "component": "Macro"})
    nodes += _core_nodes(p, (a.get(k, 1) for k in core))
    return nodes + _macro_nodes(system, p, spread=False)


def _turns(loops: tuple, k: str) -> int:
    """A rank's iterations over ``loops``."""
    return math.prod(n for r, n in loops if r == k)


def _core_nodes(p: Plan, tiles) -> list[dict]:
    return [{"node": "spatial", "rank": k, "tile": tile, "bound": n, "name": "core", "component": "Core"}
            for (k, n), tile in zip(p.core, tiles)]


def _nest_nodes(shape: Shape, p: Plan, buffer: str, noc: bool) -> list[dict]:
    """The loops above the macros with the cells' and ``buffer``'s tiles among them (the weights
    through the NoC just above the cells where ``noc``)."""
    a, macro, core = dict(p.array), dict(p.macro), dict(p.core)
    # a weight rank's tile below the loops: the macros' (and the cores', where below the loops)
    spread = {k: a.get(k, 1) * macro.get(k, 1) * (1 if p.cores_above else core.get(k, 1)) for k in shape.dims}
    holders = _holders(shape, p)
    nodes: list[dict] = []
    for idx in range(len(p.loops) + 1):
        here = sorted((order, tensor) for tensor, (at, order) in holders.items() if at == idx)
        for _, tensor in here:  # in the order _holders gives
            if tensor == "W" and noc:  # the NoC passes the weights down to the cells
                nodes.append({"node": "toll", "tensors": ["W"], "component": NOC})
            nodes.append({"node": "storage", "tensors": [tensor], "component": CELL_ARRAY if tensor == "W" else buffer})
        if idx < len(p.loops):
            k, n = p.loops[idx]
            # a rank in two loops: the outer one's tile spans the inner one's iterations
            tile = (spread[k] if k in WEIGHT_RANKS else 1) * _turns(p.loops[idx + 1:], k)
            nodes.append({"node": "temporal", "rank": k, "tile": tile, "bound": n})
    return nodes


def _macro_nodes(system: SystemSpec, p: Plan, spread: bool = True) -> list[dict]:
    """The macros (their fanout where ``spread``), their word-line drivers and readouts, the rows
    and columns, the compute."""
    a = dict(p.array)
    nodes = [{"node": "spatial", "rank": k, "tile": a.get(k, 1), "bound": n, "name": "macro", "component": "Macro"}
             for k, n in p.macro] if spread else []
    nodes.append({"node": "toll", "tensors": ["I"], "component": WORDLINE_DRIVER})
    for readout in (ADC, ADDER_TREE):
        if readout in system.macro.parts:
            nodes.append({"node": "toll", "tensors": ["O"], "component": readout})
    nodes.append({"node": "toll", "tensors": ["O"], "component": SHIFT_ADD})
    for k in ("s", "r", "c"):
        if a.get(k, 1) > 1:
            nodes.append({"node": "spatial", "rank": k, "tile": 1, "bound": a[k], "name": "row", "component": "Row"})
    nodes.append({"node": "spatial", "rank": "m", "tile": 1, "bound": a.get("m", 1), "name": "column",
                  "component": "Column"})
    nodes.append({"node": "compute", "component": COMPUTE})
    return nodes


@dataclass(frozen=True)
class Cim:
    """The ``cimco`` backend (see the module's docstring)."""

    name: str = "cimco"
    in_process: bool = True

    def versions(self) -> dict[str, str]:
        from cimco import _af

        return _af.versions()

    def check(self, system: SystemSpec, flags: dict[str, object]) -> list[str]:
        b = system.core_buffer
        if b is not None and set(b.keeps) != {"input", "output"}:  # the closed form's core buffer keeps both
            return [f"--backend cimco: a memory in each core that keeps {' and '.join(b.keeps)} only is mapped by "
                    f"--backend accelforge (cimco's search covers one that keeps inputs and outputs)"]
        return []

    def map_layer(self, system: SystemSpec, layer: Layer, bits: Bits, scratch: Path | None = None,
                  timeout_s: float | None = None) -> LayerResult:
        from cimco import _af
        from cimco.errors import MappingError
        from cimco.tables import component_costs
        from cimco.workers import deadline

        einsum = _af.einsum_of(layer)
        with deadline(timeout_s):
            ert = component_costs(system, bits)[0]
            best = ranked(system, layer, einsum, bits, ert)
            if not best and system.core_buffer is not None:
                raise MappingError(f"no mapping of {layer.name} covers its ranks exactly and fits the buffers "
                                   f"(the cimco search on a system with a memory in each core; "
                                   f"--backend accelforge maps it)")
            if not best:
                raise MappingError(f"no mapping of {layer.name} fits the global buffer "
                                   f"({system.global_buffer.size_bits} bits)", (GLOBAL_BUFFER,))
            return evaluate(system, Shape.of(layer, einsum), bits, best[0][1], ert)
