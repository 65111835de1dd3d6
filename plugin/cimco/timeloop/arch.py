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
cimco's dataflow: weights stay in the cells, outputs along columns, the reduction along
rows, and the core and macro fanouts never split output positions (no weight copies); plus
loop orders and DRAM bounds that lead Timeloop's random search to the mappings AccelForge
finds (see :func:`dram_loops`).
"""

from __future__ import annotations

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


def dram_loops(system: SystemSpec, plan: LayerPlan, instance: dict) -> str:
    """Which loops may run at DRAM: ``none`` when the layer's whole input and output fit in
    the global buffer (every tensor crosses DRAM once); ``positions`` (output positions only)
    when its weights fit in the cells of all macros (they are loaded once and stay while
    inputs stream in tiles); ``any`` otherwise. As AccelForge's best mappings do; without
    these bounds Timeloop's random search misses those mappings by up to 7x."""
    d = {k: instance.get(k, 1) for k in ("G", "N", "C", "M", "P", "Q", "R", "S")}
    h = (d["P"] - 1) * instance["Wstride"] + (d["R"] - 1) * instance["Wdilation"] + 1
    w = (d["Q"] - 1) * instance["Hstride"] + (d["S"] - 1) * instance["Hdilation"] + 1
    words = d["G"] * d["N"] * (d["C"] * h * w + d["M"] * d["P"] * d["Q"])
    if words <= system.global_buffer.size_bits // _word_bits(plan.bits):
        return "none"
    cells = system.n_macros * Geometry.of(system, plan.bits).outputs_per_macro * system.macro.rows
    return "positions" if d["G"] * d["C"] * d["M"] * d["R"] * d["S"] <= cells else "any"


def constraints(system: SystemSpec, dims: list[str], sparse: bool, at_dram: str = "any") -> dict:
    """Keep/bypass per level, the spatial CIM dataflow and loop orders (per problem's
    dimension names); ``at_dram`` from :func:`dram_loops`."""
    def keep(target: str, *kept: str) -> dict:
        return {"target": target, "type": "bypass", "keep": list(kept),
                "bypass": [d for d in DATASPACES if d not in kept]}

    # columns share word lines (the same inputs): they split output channels only
    x, y = ["M"], [d for d in dims if d != "M"]
    readout = readout_level(system)
    targets = [
        keep("DRAM", *DATASPACES),
        keep("GlobalBuffer", "Inputs", "Outputs"),
        keep("WordlineDriver", "Inputs"),
        keep(readout, "Outputs"),
        keep("CellArray", "Weights"),
        # core x macro fanout: any rank but output positions (weights are never copied)
        {"target": "GlobalBuffer", "type": "spatial", "factors": NO_POSITIONS},
        # column x row fanout: outputs along columns (X), the reduction along rows (Y)
        {"target": "IndexMemory" if sparse else readout, "type": "spatial",
         "factors": " ".join(f"{d}=1" for d in dims if d in ("G", "N", "P", "Q")),
         "permutation": "".join(x + y), "split": len(x)},
    ]
    # nothing iterates inside a macro but its row groups: output positions and channels step
    # above the word-line drivers, so inputs stream through and the weights stay in the cells
    every = " ".join(f"{d}=1" for d in dims)

    def order(*groups: str) -> str:  # Timeloop permutations run innermost first
        return "".join(d for g in groups for d in g if d in dims)

    # loop orders that keep what the level holds: at DRAM the reduction innermost (partial sums
    # stay in the global buffer); at the global buffer output positions innermost (inputs
    # stream past weights that stay in the cells)
    dram = {"none": every, "positions": " ".join(f"{d}=1" for d in dims if d not in ("N", "P", "Q")), "any": ""}
    targets += [{"target": "DRAM", "type": "temporal", "permutation": order("CRS", "GM", "NPQ"),
                 **({"factors": dram[at_dram]} if dram[at_dram] else {})},
                {"target": "GlobalBuffer", "type": "temporal", "permutation": order("NPQ", "CRS", "GM")}]
    targets += [{"target": t, "type": "temporal", "factors": every}
                for t in ("WordlineDriver", readout) + (("IndexMemory",) if sparse else ())]
    targets.append({"target": "CellArray", "type": "temporal",
                    "factors": " ".join(f"{d}=1" for d in dims if d not in ("C", "R", "S"))})
    if sparse:
        targets.append(keep("IndexMemory", "Outputs"))
    return {"mapspace_constraints": {"version": 0.4, "targets": targets}}


def mapper() -> dict:
    """Search settings: random-pruned search on every hardware thread, each stopping after
    500 valid mappings in a row that do not improve its best (latency first, then energy)
    or 10000 invalid ones in a row."""
    return {"mapper": {"version": 0.4, "optimization-metrics": ["delay", "energy"], "live-status": False,
                       "algorithm": "random-pruned", "timeout": 10000, "victory-condition": 500,
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
