"""How one layer is laid out on the macros for classic Timeloop: a small analytic mapper.

Classic Timeloop keeps one tile per buffer level and searches an open mapspace at random;
to find the mappings AccelForge's FFM finds, the export fixes what AccelForge's best
mappings do: the array factors (columns take output channels, the word lines the reduction
with the fewest row groups, a partial last group where that is faster), how groups spread
over the macros, and which loops may run at DRAM, chosen by comparing closed-form
activation counts (compute turns vs DRAM traffic). :func:`layout` returns the choice;
:mod:`cimco.timeloop.arch` writes it into the constraints.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from cimco.geometry import MacroGeometry
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits


def word_bits(bits: Bits) -> int:
    """Timeloop v0.4 has one word size per level: the widest tensor's, so capacities are never
    overstated."""
    return max(bits.input, bits.weight, bits.output)


@dataclass(frozen=True)
class Sizes:
    """What a layer moves and what the global buffer holds, in words of :func:`word_bits`."""

    inputs: int
    outputs: int
    weights: int
    buffer_words: int
    activations_per_dram_word: float  # macro activations one DRAM word's transfer takes


@dataclass(frozen=True)
class Layout:
    """How one layer is laid out, fixed in its constraints (see :func:`layout`)."""

    at_dram: str  # "none", "weights" or "positions": which loops may run at DRAM
    array: dict[str, int]  # factors over the columns (M) and the word lines on (reduction ranks)
    # ranks split imperfectly over the array: how many macros take their row/column groups
    macros: dict[str, int]
    steps: dict[str, int] | None = None  # "weights": the DRAM loops over G, M and C
    # >1: groups (one per macro, as depthwise convs) go over all macros in this many steps,
    # the last partial (Timeloop's ``ruby`` mapspace)
    group_steps: int = 1


def _dims(instance: dict) -> dict[str, int]:
    return {k: instance.get(k, 1) for k in ("G", "N", "C", "M", "P", "Q", "R", "S")}


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


def _array(d: dict[str, int], system: SystemSpec, outs: int, whole: bool) -> tuple[dict, dict]:
    """Column and row factors (whole ones only, or at most one partial group per direction)
    and the macros that take the groups of each rank split imperfectly."""
    n = system.n_macros
    m = min(d["M"], outs)
    macros = {"M": -(-d["M"] // m)} if d["M"] % m and not whole and -(-d["M"] // m) <= n else {}
    if d["M"] % m and not macros:
        m = max(f for f in range(1, m + 1) if d["M"] % f == 0)
    rows, odd = _rows(d, system.macro.wordlines_on, n // macros.get("M", 1), whole)
    return {"M": m, **rows}, {**macros, **odd}


def layout(system: SystemSpec, bits: Bits, instance: dict) -> Layout:
    """The array factors AccelForge's best mappings use and the loops allowed at DRAM.

    Columns take min(M, outputs per macro) output channels and the word lines the reduction
    factors with the fewest row groups. Where a rank does not divide evenly (3x7x7 = 147 rows,
    1000 outputs) its last group may be partial (Timeloop's ``ruby`` mapspace), its groups
    spread over the macros as AccelForge's imperfect spatial loops do; only where that makes
    the layer faster (Timeloop counts a partial group's work and weights in full). DRAM: no
    loops when the layer's input and output fit in the global buffer (``none``); else loops
    over weight ranks G, M and C only (``weights``: an output block and an input block in the
    global buffer; the steps fixed) or over output positions outside the weight loops
    (``positions``: no weight loops below, so that, as in AccelForge, the cells are written
    once), whichever :func:`_cycles` finds faster, ``weights`` on a tie. Where all the weights
    fit the macros at once that is ``positions``: weight steps at DRAM would idle macros."""
    d, g = _dims(instance), MacroGeometry.of_system(system, bits)
    h = (d["P"] - 1) * instance["Wstride"] + (d["R"] - 1) * instance["Wdilation"] + 1
    w = (d["Q"] - 1) * instance["Hstride"] + (d["S"] - 1) * instance["Hdilation"] + 1
    inputs, outputs = d["G"] * d["N"] * d["C"] * h * w, d["G"] * d["N"] * d["M"] * d["P"] * d["Q"]
    weights = d["G"] * d["C"] * d["M"] * d["R"] * d["S"]

    def cycles(array: dict[str, int]) -> int:  # activations if the groups spread evenly
        groups = d["G"] * math.prod(-(-d[k] // v) for k, v in array.items())
        return d["N"] * d["P"] * d["Q"] * -(-groups // system.n_macros)

    array, macros = _array(d, system, g.outputs_per_macro, True)
    part = _array(d, system, g.outputs_per_macro, False)
    per_word = word_bits(bits) / (system.dram.bandwidth_bits_per_s * g.cycle_s)  # activations per DRAM word
    dram = (inputs + outputs + weights) * per_word
    if cycles(array) > max(cycles(part[0]), dram):
        array, macros = part
    # one group's weights per macro (depthwise) and more groups than macros, not a multiple
    # of them: all macros take a group at each step, the last partial, where that is faster
    n, npq = system.n_macros, d["N"] * d["P"] * d["Q"]
    per_group = math.prod(-(-d[k] // v) for k, v in array.items())  # row and column groups
    group_steps = 1
    if not macros and per_group == 1 and d["G"] % n:
        whole = min(t for t in _divisors(d["G"]) if d["G"] // t <= n)
        if npq * whole > max(cycles(array), dram):
            group_steps = -(-d["G"] // n)
    words = system.global_buffer.size_bits // word_bits(bits)
    if inputs + outputs <= words:
        return Layout("none", array, macros, group_steps=group_steps)
    # row and column groups per rank that take turns (those spread over the macros do not)
    groups = {k: 1 if k in macros else -(-d[k] // array.get(k, 1)) for k in ("G", "M", "C", "R", "S")}
    free = n // math.prod(macros.values())
    if group_steps > 1:  # the steps of all the macros at once
        groups, free = {**groups, "G": group_steps}, 1
    sizes = Sizes(inputs, outputs, weights, words, per_word)
    (at_weights, steps), (at_positions, _) = (_cycles(groups, free, npq, sizes, w) for w in (True, False))
    if at_weights <= at_positions:
        return Layout("weights", array, macros, steps, group_steps)
    return Layout("positions", array, macros, group_steps=group_steps)


def _divisors(n: int) -> list[int]:
    return [f for f in range(1, n + 1) if n % f == 0]


def _input_reads(steps: dict[str, int]) -> int:
    # DRAM loops C innermost, then G, M: an input block short of all inputs is read per M step
    return steps["M"] if steps["G"] * steps["C"] > 1 else 1


def _cycles(groups: dict[str, int], macros: int, positions: int, sizes: Sizes,
            at_weights: bool) -> tuple[float, dict[str, int]]:
    """Fewest activations of a layer outside the global buffer with DRAM loops over weight ranks
    only (``at_weights``) or over output positions outside the weight loops: compute (the row
    and column groups, whole factors per rank, that take turns on ``macros``) or DRAM traffic
    (words / words per activation), whichever is longer; with DRAM weight loops, also their
    factors (the fewest DRAM steps of the least traffic)."""
    inputs, outputs, weights, words, per_word = (sizes.inputs, sizes.outputs, sizes.weights, sizes.buffer_words,
                                                 sizes.activations_per_dram_word)
    best: tuple = (math.inf, 0, 0, {})
    for turns in itertools.product(*(_divisors(n) for n in groups.values())):
        t = dict(zip(groups, turns))
        if math.prod(groups[k] // t[k] for k in groups) > macros:
            continue
        if at_weights:
            # the turns of G, M and C split between DRAM and the global buffer so that a block
            # of outputs and one of inputs fit there
            fits = [{"G": g, "M": m, "C": c} for g in _divisors(t["G"]) for m in _divisors(t["M"])
                    for c in _divisors(t["C"]) if outputs / (g * m) + inputs / (g * c) <= words]
            if not fits:
                continue
            steps = min(fits, key=lambda f: (_input_reads(f), math.prod(f.values())))
            traffic = weights + inputs * _input_reads(steps) + outputs
        else:
            # every turn at DRAM: inputs read once per M, R and S step, partial sums written
            # back (and read again) per C, R and S step
            steps = {}
            traffic = weights + inputs * t["M"] * t["R"] * t["S"] + outputs * (2 * t["C"] * t["R"] * t["S"] - 1)
        cycles = max(positions * math.prod(turns), traffic * per_word)
        best = min(best, (cycles, traffic, math.prod(steps.values()), steps), key=lambda b: b[:3])
    return best[0], best[3]
