"""How one layer is laid out for classic Timeloop: the cimco backend's best mapping, as Timeloop loops.

Classic Timeloop searches an open mapspace at random, and its random search misses the
mappings AccelForge's model rates best by 1.3-3x; a layout heuristic of the export's own
(the array factors, and one of three families of DRAM loops) matched AccelForge only while
the buffer was large (docs/timeloop.md). So the export takes the mapping the cimco backend's
search finds (:func:`cimco.backends.cim.ranked`: every plan whose buffer tiles fit the
system's buffer, priced as AccelForge's model prices it) and fixes it in the constraints:
the array factors, the spread over the macros, and every loop above the macros, at the
level that holds its tiles. Timeloop then models that one mapping with its own counts.

Two things need care:

- **partial groups** (a rank whose groups do not divide it): where they all run side by side
  (ImageNet conv1's 147 = 3 x 7 x 7 rows as 7 x 2 with a last group of 1, over 4 macros),
  Timeloop's ``ruby`` mapspace places the partial group: the rank is left free on the array
  (at most the plan's factor) and the macros, and Timeloop finds the plan's among a few
  choices; it counts that group's work and weights in full. (Timeloop v3.0.3's ruby mapspace
  finds no factorization of a dimension every level fixes, and aborts, "Division by zero":
  the innermost buffer level's factors are left free, where the other levels' leave them 1.)
  A rank whose last *turn* is partial (64 channels as 13 turns of 5, the last of 4) is not
  exported (``whole``): with that loop's factor freed (ruby cannot fix a factor that does not
  divide the rank) Timeloop's search found other, slower mappings (2x the latency on
  ResNet-18 layer1.0.conv1 with 4 macros and 16 KB), and pinned (``S>=2 S<=2``) it counted
  1.33x the plan's energy. The best plan without one is exported instead.
- **a tensor held at two depths in one level**: a Timeloop level keeps one tile of each
  tensor below its loops, while AccelForge lets the buffer's input and output tiles start at
  different loops. Where they do, the buffer is written as two Timeloop levels, the outer
  keeping the tensor held higher (the inner bypasses it), sized together as the one buffer:
  the inner one holds its tile exactly, the outer the rest. A plan where one level would
  loop twice over a rank is left out.

With a memory in each core (the cimco backend searches even plans only there), the cores
are a fanout of their own below the global buffer and the macros one below the core
buffers. Cores below the loops: the loops at DRAM and the global buffer as above, the core
buffer a level with none (it holds one turn's tiles). Cores above them: the global buffer
holds whole tensors, each core's buffer takes the global buffer's place for its part (one or
two levels, as above), and the loops above its tiles run at the global buffer.

Both narrow the search: the mapping exported is the best of what remains (the cimco backend's
own may be better: ``scripts/timeloop_agreement.py`` prints both). The module's names are
Timeloop's (dimensions, data spaces, levels).
"""

from __future__ import annotations

from dataclasses import dataclass

from cimco.parts import CORE_BUFFER, DRAM, GLOBAL_BUFFER
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer

INNER_BUFFER = "GlobalBufferInner"  # the global buffer's second Timeloop level, where it has two
CORE_INNER = "CoreBufferInner"  # a core buffer's second level, where it has two
BUFFERS = {GLOBAL_BUFFER: INNER_BUFFER, CORE_BUFFER: CORE_INNER}  # a memory's outer level -> its inner one
DIMS = {"g": "G", "m": "M", "c": "C", "r": "R", "s": "S", "t": "N", "p": "P", "q": "Q"}  # cimco rank -> Timeloop
SPACES = {"W": "Weights", "I": "Inputs", "O": "Outputs"}


def word_bits(bits: Bits) -> int:
    """Timeloop v0.4 has one word size per level: the widest tensor's, so capacities are never
    overstated."""
    return max(bits.input, bits.weight, bits.output)


@dataclass(frozen=True)
class Level:
    """One Timeloop level above the macros: the data spaces it keeps and its loops, top down."""

    name: str
    keeps: tuple[str, ...]
    loops: tuple[tuple[str, int], ...]  # (Timeloop dimension, iterations)


@dataclass(frozen=True)
class Layout:
    """A cimco plan as Timeloop constraints (see the module docstring)."""

    array: dict[str, int]  # Timeloop dimension -> factor over the columns (M) and word lines on
    macros: dict[str, int]  # dimension -> macros side by side (over cores x macros without core buffers)
    cores: dict[str, int]  # with core buffers: dimension -> cores side by side (else empty)
    partial: frozenset[str]  # dimensions with a partial group (all side by side: Timeloop's ruby mapspace)
    levels: tuple[Level, ...]  # DRAM, the global buffer's one or two levels, a core buffer's
    inner_words: dict[str, int]  # the depth of a memory's inner level, where it has two
    driver_words: int  # the inputs one row group reads: a dilated kernel's box, as Timeloop holds it


def _buffer(memory: str, loops: list, nest, holders) -> tuple[list, list[Level], int | None]:
    """(the loops above the memory's tiles, its one or two levels, the inner level's words)."""
    j = {t: nest.held(t, holders)[0] for t in ("I", "O")}
    lo, hi = sorted(j.values())
    if lo == hi:
        return loops[:lo], [Level(memory, (SPACES["I"], SPACES["O"]), tuple(loops[lo:]))], None
    outer = min(j, key=j.get)
    inner = "O" if outer == "I" else "I"
    return loops[:lo], [Level(memory, (SPACES[outer],), tuple(loops[lo:hi])),
                        Level(BUFFERS[memory], (SPACES[inner],), tuple(loops[hi:]))], nest.size[inner][hi]


def _levels(shape, p, core_buffer: bool) -> tuple[tuple[Level, ...], dict[str, int]] | None:
    """The plan's levels above the macros and their inner levels' words, or None where a level
    would loop twice over one rank."""
    from cimco.backends import cim

    loops = [(DIMS[k], n) for k, n in p.loops]
    words: dict[str, int] = {}
    if p.cores_above:  # the global buffer holds whole tensors; each core runs the loops on its part
        part, _, nest = cim._core_part(shape, p)
        above, cb, inner = _buffer(CORE_BUFFER, loops, nest, cim._holders(part, p))
        # the loops above the core buffers' tiles run at the global buffer, above the cores: it
        # holds whole tensors, so each core's fills are the same as from a loop of its own
        out = [Level(DRAM, tuple(SPACES.values()), ()), Level(GLOBAL_BUFFER, (SPACES["I"], SPACES["O"]), tuple(above)),
               *cb]
        memory = CORE_BUFFER
    else:
        above, out, inner = _buffer(GLOBAL_BUFFER, loops, cim._nest(shape, p), cim._holders(shape, p))
        out = [Level(DRAM, tuple(SPACES.values()), tuple(above)), *out]
        if core_buffer:  # each core's buffer holds one turn's tiles of its macros
            out.append(Level(CORE_BUFFER, (SPACES["I"], SPACES["O"]), ()))
        memory = GLOBAL_BUFFER
    if inner is not None:
        words[BUFFERS[memory]] = inner
    if any(len({d for d, _ in x.loops}) < len(x.loops) for x in out):
        return None
    return tuple(out), words


def plan(system: SystemSpec, layer: Layer, bits: Bits):
    """(shape, plan): the cimco backend's best plan for ``layer`` that classic Timeloop can
    express (see the module docstring); MappingError, as the backend raises, where none fits."""
    from cimco import _af
    from cimco.backends import cim
    from cimco.errors import MappingError
    from cimco.tables import component_costs

    def expressible(shape, p) -> bool:
        return _levels(shape, p, system.core_buffer is not None) is not None

    einsum = _af.einsum_of(layer)
    best = cim.ranked(system, layer, einsum, bits, component_costs(system, bits)[0], whole=True, accept=expressible)
    if not best:
        raise MappingError(f"no mapping of {layer.name} Timeloop can express fits the global buffer "
                           f"({system.global_buffer.size_bits} bits)", (GLOBAL_BUFFER,))
    return cim.Shape.of(layer, einsum), best[0][1]


def layout(system: SystemSpec, layer: Layer, bits: Bits) -> Layout:
    """:func:`plan` as Timeloop loops, levels and buffer sizes."""
    shape, p = plan(system, layer, bits)
    levels, words = _levels(shape, p, system.core_buffer is not None)
    macros, cores = {DIMS[k]: n for k, n in p.macro}, {DIMS[k]: n for k, n in p.core}
    if system.core_buffer is None:  # one fanout over cores x macros
        macros, cores = {d: macros.get(d, 1) * cores.get(d, 1) for d in macros | cores}, {}
    spread = {d: dict(p.array).get(k, 1) * macros.get(d, 1) * cores.get(d, 1) for k, d in DIMS.items()}
    partial = frozenset(DIMS[k] for k in DIMS if shape.size(k) % spread[DIMS[k]])
    return Layout({DIMS[k]: n for k, n in p.array}, macros, cores, partial, levels, words,
                  shape.input_tile(dict(p.array)))
