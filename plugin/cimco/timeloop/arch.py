"""One layer's classic Timeloop v0.4 inputs: architecture, constraints, mapper, ERT and ART.

The architecture is the one ``cimco.arch`` builds for AccelForge, written in the hierarchical
(``subtree``/``local``) form that the ``timeloop-mapper`` binary reads::

    DRAM -> GlobalBuffer -> core[cores] -> macro[macros_per_core]
        -> WordlineDriver (inputs), readout (outputs) [, IndexMemory]
        -> column[cols / weight slices] -> row[wordlines_on] -> CellArray (weights) -> Compute

The readout level is named after the macro's first readout part (``ADC``, ``AdderTree`` or,
for bit-serial digital macros, ``ShiftAdd``) and carries the shift-add too.

v0.4 Timeloop has only storage and compute levels, so the per-macro parts are storage levels
that keep one tensor each and cost what cimco's parts cost per value passing through:

- ``WordlineDriver`` keeps inputs; a fill (an input entering the macro) costs one drive per
  input slice. It holds one input vector (``rows`` values), so inputs are not reused from it.
- the readout keeps outputs; an update (a partial sum of one row-group activation, reduced
  over the word lines on at once) costs one conversion and shift-add per readout of it.
- ``CellArray`` keeps the weights; a read (one MAC) costs one cell MAC per input x weight
  slice, a fill one write per slice. Its depth is the row groups that take turns.
- DRAM and the global buffer count words of the layer's bits; cimco counts their bits.

One Timeloop cycle is one activation of the macro (one row group, all input slices):
``activation_cycles`` macro cycles, so bandwidths are given in words per activation and the
runner turns cycles into seconds with ``cycle_s`` from ``index.yaml``. The constraints are
cimco's dataflow as AccelForge maps it: weights stay in the cells, each row group's written
once; outputs along columns, the reduction along rows; the core and macro fanouts never
split output positions (no weight copies); nothing iterates inside a macro (partial sums go
back to the global buffer). They also fix the column and row factors and which loops run at
DRAM (see :func:`layout`), which leaves a mapspace small enough to walk whole.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from cimco.arch import Slicing
from cimco.report import Tables
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits

READOUT_PARTS = ("ADC", "AdderTree", "ShiftAdd")  # folded into one Timeloop level, in this order
DATASPACES = ("Weights", "Inputs", "Outputs")
NO_POSITIONS = "N=1 P=1 Q=1"  # output positions: a fanout that splits them copies weights


@dataclass(frozen=True)
class LayerPlan:
    """What one layer's Timeloop files depend on besides the system."""

    bits: Bits
    input_density: float = 1.0
    # sparse layers: pJ-free ratio of index reads to ADC updates (None: dense, no index memory)
    index_reads_per_update: float | None = None


@dataclass(frozen=True)
class Geometry:
    """Sizes of the Timeloop tree for one layer's bits."""

    slicing: Slicing
    conversions: int  # readouts per output and row group
    outputs_per_macro: int  # columns / weight slices
    activation_cycles: int  # macro cycles per activation (cells or ADCs, whichever is slower)
    cycle_s: float  # seconds per Timeloop cycle

    @classmethod
    def of(cls, system: SystemSpec, bits: Bits) -> Geometry:
        m = system.macro
        sl = Slicing.of(m, bits)
        conv = m.conversions_per_output(bits.input, bits.weight)
        outs = m.cols // sl.weight_slices
        cycles = max(sl.input_slices, math.ceil(outs * conv / m.readout_units()))
        return cls(sl, conv, outs, cycles, cycles * m.cycle_s)


def readout_level(system: SystemSpec) -> str:
    """Name of the Timeloop level that stands for the macro's readout parts."""
    return next(p for p in READOUT_PARTS if p in system.macro.parts)


def _word_bits(bits: Bits) -> int:
    # one word size per level in v0.4; the widest tensor's, so capacities are never overstated
    return max(bits.input, bits.weight, bits.output)


def _storage(name: str, cls: str, word_bits: int, depth: int | None, **extra) -> dict:
    attrs = {"datawidth": word_bits, "width": word_bits, "block_size": 1,
             # cimco models no address generation or wires: Timeloop's built-in ones off
             "addr-gen-energy": 0.0, "energy-per-hop": 0.0, **extra}
    if depth is not None:
        attrs["depth"] = depth
    return {"name": name, "class": cls, "attributes": attrs}


def arch(system: SystemSpec, plan: LayerPlan) -> dict:
    m, g = system.macro, Geometry.of(system, plan.bits)
    b, wb = plan.bits, _word_bits(plan.bits)
    per_cycle = g.cycle_s / wb  # bits/s -> words per Timeloop cycle
    cells = system.n_macros * g.outputs_per_macro
    macro_parts = [
        _storage("WordlineDriver", "storage", b.input, m.rows, meshX=system.n_macros),
        _storage(readout_level(system), "storage", b.output, g.outputs_per_macro, meshX=system.n_macros),
    ]
    if plan.index_reads_per_update is not None:
        macro_parts.append(_storage("IndexMemory", "storage", b.output, g.outputs_per_macro,
                                    meshX=system.n_macros))
    leaf = [
        _storage("CellArray", "storage", b.weight, m.rows // m.wordlines_on, meshX=cells),
        {"name": "Compute", "class": "intmac", "attributes": {"datawidth": b.weight, "meshX": cells}},
    ]
    tree = {"name": f"column[0..{g.outputs_per_macro - 1}]", "subtree": [
        {"name": f"row[0..{m.wordlines_on - 1}]", "local": leaf}]}
    return {"architecture": {"version": 0.4, "subtree": [{
        "name": system.name,
        "local": [_storage("DRAM", "DRAM", wb, None,
                           shared_bandwidth=system.dram.bandwidth_bits_per_s * per_cycle)],
        "subtree": [{
            "name": "chip",
            "local": [_storage("GlobalBuffer", "SRAM", wb, system.global_buffer.size_bits // wb,
                               shared_bandwidth=system.global_buffer.bandwidth_bits_per_s * per_cycle)],
            "subtree": [{"name": f"core[0..{system.cores - 1}]", "subtree": [{
                "name": f"macro[0..{system.macros_per_core - 1}]",
                "local": macro_parts,
                "subtree": [tree]}]}]}]}]}}


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


def layout(system: SystemSpec, plan: LayerPlan, instance: dict) -> Layout:
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
    d, g = _dims(instance), Geometry.of(system, plan.bits)
    h = (d["P"] - 1) * instance["Wstride"] + (d["R"] - 1) * instance["Wdilation"] + 1
    w = (d["Q"] - 1) * instance["Hstride"] + (d["S"] - 1) * instance["Hdilation"] + 1
    inputs, outputs = d["G"] * d["N"] * d["C"] * h * w, d["G"] * d["N"] * d["M"] * d["P"] * d["Q"]
    weights = d["G"] * d["C"] * d["M"] * d["R"] * d["S"]

    def cycles(array: dict[str, int]) -> int:  # activations if the groups spread evenly
        groups = d["G"] * math.prod(-(-d[k] // v) for k, v in array.items())
        return d["N"] * d["P"] * d["Q"] * -(-groups // system.n_macros)

    array, macros = _array(d, system, g.outputs_per_macro, True)
    part = _array(d, system, g.outputs_per_macro, False)
    per_word = _word_bits(plan.bits) / (system.dram.bandwidth_bits_per_s * g.cycle_s)  # activations per DRAM word
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
    words = system.global_buffer.size_bits // _word_bits(plan.bits)
    if inputs + outputs <= words:
        return Layout("none", array, macros, group_steps=group_steps)
    # row and column groups per rank that take turns (those spread over the macros do not)
    groups = {k: 1 if k in macros else -(-d[k] // array.get(k, 1)) for k in ("G", "M", "C", "R", "S")}
    free = n // math.prod(macros.values())
    if group_steps > 1:  # the steps of all the macros at once
        groups, free = {**groups, "G": group_steps}, 1
    sizes = (inputs, outputs, weights, words, per_word)
    (at_weights, steps), (at_positions, _) = (_cycles(groups, free, npq, sizes, w) for w in (True, False))
    if at_weights <= at_positions:
        return Layout("weights", array, macros, steps, group_steps)
    return Layout("positions", array, macros, group_steps=group_steps)


def _divisors(n: int) -> list[int]:
    return [f for f in range(1, n + 1) if n % f == 0]


def _input_reads(steps: dict[str, int]) -> int:
    # DRAM loops C innermost, then G, M: an input block short of all inputs is read per M step
    return steps["M"] if steps["G"] * steps["C"] > 1 else 1


def _cycles(groups: dict[str, int], macros: int, positions: int, sizes: tuple,
            at_weights: bool) -> tuple[float, dict[str, int]]:
    """Fewest activations of a layer outside the global buffer with DRAM loops over weight ranks
    only (``at_weights``) or over output positions outside the weight loops: compute (the row
    and column groups, whole factors per rank, that take turns on ``macros``) or DRAM traffic
    (words / words per activation), whichever is longer; with DRAM weight loops, also their
    factors (the fewest DRAM steps of the least traffic). ``sizes``: input, output and weight
    words, global-buffer words, activations per DRAM word."""
    inputs, outputs, weights, words, per_word = sizes
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


def _only(fixed: dict[str, int]) -> dict:
    """A ``factors`` entry fixing these ranks (none when nothing is fixed)."""
    return {"factors": " ".join(f"{d}={v}" for d, v in fixed.items())} if fixed else {}


def constraints(system: SystemSpec, dims: list[str], sparse: bool, lay: Layout) -> dict:
    """Keep/bypass per level, the spatial CIM dataflow and loop orders (per problem's
    dimension names), with the array factors and DRAM loops of ``lay``."""
    def keep(target: str, *kept: str) -> dict:
        return {"target": target, "type": "bypass", "keep": list(kept),
                "bypass": [d for d in DATASPACES if d not in kept]}

    def order(*groups: str) -> str:  # Timeloop permutations run innermost first
        return "".join(d for g in groups for d in g if d in dims)

    readout = readout_level(system)
    weights = [d for d in dims if d in "GCRSM"]
    # the array: columns share word lines (the same inputs), so they split output channels
    # only (X); the reduction runs along the rows (Y). A rank split imperfectly stays free
    # there (Timeloop then picks its partial last group, at most ``remainders``).
    array = {"target": "IndexMemory" if sparse else readout, "type": "spatial",
             "factors": " ".join(f"{d}={lay.array.get(d, 1)}" for d in dims if d not in lay.macros),
             "permutation": order("M", "CRS", "GNPQ"), "split": 1}
    if lay.macros:
        array["remainders"] = max(lay.array[d] for d in lay.macros)
    # core x macro fanout: any rank but output positions (weights are never copied)
    fanout = {"target": "GlobalBuffer", "type": "spatial",
              "factors": " ".join([f"{d}={lay.macros[d]}" for d in lay.macros] + NO_POSITIONS.split()),
              "permutation": "".join(dims), "split": len(dims)}  # all along X: one row of macros
    if lay.group_steps > 1:  # G free over all the macros, the last step partial
        fanout["remainders"] = system.n_macros
    targets = [
        keep("DRAM", *DATASPACES),
        keep("GlobalBuffer", "Inputs", "Outputs"),
        keep("WordlineDriver", "Inputs"),
        keep(readout, "Outputs"),
        keep("CellArray", "Weights"),
        fanout,
        array,
    ]
    # Loop orders that keep what each level holds. At the global buffer output positions
    # innermost: inputs stream past the weights in the cells, each row group's weights written
    # once. At DRAM, weight ranks only, the reduction innermost (partial sums stay in the
    # global buffer): the G, M and C steps of the layout, fixed (any others only move more
    # words or idle macros, and they would multiply the mapspace); or, with output
    # positions, those innermost and no weight loops below. A rank split imperfectly over
    # the array and macros iterates nowhere else.
    odd = {d: 1 for d in lay.macros}
    steps = {d: (lay.steps or {}).get(d, 1) for d in dims}
    dram = {"none": {d: 1 for d in dims}, "weights": steps | odd, "positions": odd}
    # with output positions at DRAM, the global buffer keeps a strip of rows (Q steps at DRAM)
    glb = {**{d: 1 for d in weights}, "Q": 1} if lay.at_dram == "positions" else odd
    targets += [{"target": "DRAM", "type": "temporal",
                 "permutation": order("NPQ", "CRS", "GM") if lay.at_dram == "positions" else order("CRS", "GM", "NPQ"),
                 **_only(dram[lay.at_dram])},
                {"target": "GlobalBuffer", "type": "temporal", "permutation": order("NPQ", "CRS", "GM"),
                 **_only(glb)}]
    # nothing iterates inside a macro: it holds one row group's weights per pass over the
    # output positions (as in AccelForge, whose macros keep no partial sums)
    targets += [{"target": t, "type": "temporal", **_only({d: 1 for d in dims}), "permutation": "".join(dims)}
                for t in ("WordlineDriver", readout, "CellArray") + (("IndexMemory",) if sparse else ())]
    if sparse:
        targets.append(keep("IndexMemory", "Outputs"))
    ruby = {"template": "ruby"} if lay.macros or lay.group_steps > 1 else {}  # partial last groups
    return {"mapspace_constraints": {"version": 0.4, **ruby, "targets": targets}}


def mapper() -> dict:
    """Search settings: the constraints leave a mapspace of a few hundred to a few thousand
    mappings, so each hardware thread walks its share of it whole (linear-pruned search, no
    victory condition or timeout), keeping the lowest latency, then energy."""
    return {"mapper": {"version": 0.4, "optimization-metrics": ["delay", "energy"], "live-status": False,
                       "algorithm": "linear-pruned", "timeout": 0, "victory-condition": 0,
                       "max-permutations-per-if-visit": 16, "diagnostics": False}}


def energy_table(tables: Tables, system: SystemSpec, plan: LayerPlan) -> dict[str, dict[str, float]]:
    """Energy (J) of each Timeloop level's actions, from cimco's per-action energies ``tables.ert``.

    Each value is cimco's energy for one of its actions times the number of those actions one
    Timeloop action stands for (see the module docstring). Zero-valued actions are the ones
    cimco does not charge (reading an input out of the word-line drivers, say).
    """
    e, g, b = tables.ert, Geometry.of(system, plan.bits), plan.bits
    wb = _word_bits(b)
    both = g.slicing.input_slices * g.slicing.weight_slices
    d = plan.input_density  # zero inputs skip word-line drives and cell MACs (gated)
    readout = sum(e[p]["read"] for p in READOUT_PARTS if p in system.macro.parts) * g.conversions
    out = {
        "DRAM": {"read": e["DRAM"]["read"] * wb, "write": e["DRAM"]["write"] * wb},
        "GlobalBuffer": {"read": e["GlobalBuffer"]["read"] * wb, "write": e["GlobalBuffer"]["write"] * wb},
        "WordlineDriver": {"read": 0.0, "write": e["WordlineDriver"]["read"] * g.slicing.input_slices * d},
        readout_level(system): {"read": 0.0, "random_fill": 0.0, "random_update": readout},
        "CellArray": {"read": e["CellArray"]["read"] * both * d, "write": e["CellArray"]["write"] * both},
        "Compute": {"compute": e["Compute"]["compute"]},
    }
    if plan.index_reads_per_update is not None:
        out["IndexMemory"] = {"read": 0.0, "random_fill": 0.0,
                              "random_update": e["IndexMemory"]["read"] * plan.index_reads_per_update}
    return out


def area_table(tables: Tables, system: SystemSpec, plan: LayerPlan) -> dict[str, float]:
    """Area (m^2) of one instance of each Timeloop level; the readout level carries the shift-add."""
    g = Geometry.of(system, plan.bits)
    a, n = tables.art, system.n_macros
    cells = n * g.outputs_per_macro * system.macro.wordlines_on
    out = {"DRAM": a["DRAM"], "GlobalBuffer": a["GlobalBuffer"], "WordlineDriver": a["WordlineDriver"] / n,
           readout_level(system): sum(a[p] for p in READOUT_PARTS if p in system.macro.parts) / n,
           "CellArray": a["CellArray"] / cells, "Compute": a["Compute"] / cells}
    if plan.index_reads_per_update is not None:
        out["IndexMemory"] = a["IndexMemory"] / n
    return out
