"""One layer's classic Timeloop v0.4 inputs: architecture, constraints, mapper, ERT and ART.

The architecture is the one ``cimco.arch`` builds for AccelForge, written in the hierarchical
(``subtree``/``local``) form that the ``timeloop-mapper`` binary reads::

    DRAM -> GlobalBuffer -> core[cores] [-> CoreBuffer] -> macro[macros_per_core]
        -> WordlineDriver (inputs), readout (outputs) [, IndexMemory]
        -> column[cols / weight slices] -> row[wordlines_on] -> CellArray (weights) -> Compute

(a memory in each core, where the system has one, is a level in the core's subtree, one per
core: :func:`cimco.timeloop.layout.layout` says which loops it runs).

The readout level is named after the macro's first readout part (``ADC``, ``AdderTree`` or,
for bit-serial digital macros, ``ShiftAdd``) and carries the shift-add too.

v0.4 Timeloop has only storage and compute levels, so the per-macro parts are storage levels
that keep one tensor each and cost what cimco's parts cost per value passing through:

- ``WordlineDriver`` keeps inputs; a fill (an input entering the macro) costs one drive per
  input slice. It holds one input vector (``rows`` values, or the box a dilated kernel's row
  group spans where that is more: Timeloop holds the box), so inputs are not reused from it.
- the readout keeps outputs; an update (a partial sum of one row-group activation, reduced
  over the word lines on at once) costs one conversion and shift-add per readout of it.
- ``CellArray`` keeps the weights; a read (one MAC) costs one cell MAC per input x weight
  slice, a fill (one weight) one write per weight bit. Its depth is the row groups that take turns.
- DRAM and the global buffer count words of the layer's bits; cimco counts their bits.
- a NoC (between the global buffer and the cores) is not a level: v0.4's networks count a
  read-write tensor one way only, and AccelForge's pass-through charges partial sums both ways.
  What crosses it is charged where Timeloop counts it: the global buffer's reads (inputs and
  partial sums down) and updates (partial sums up) cost a NoC crossing more than its fills
  (from DRAM), and a cell's fill (a weight from DRAM) one crossing per weight bit. Timeloop's
  networks have no bandwidth: the runner adds the NoC's time (its bits over one link).

One Timeloop cycle is one activation of the macro (one row group, all input slices):
``activation_cycles`` macro cycles, so bandwidths are given in words per activation and the
runner turns cycles into seconds with ``cycle_s`` from ``index.yaml``. The constraints are
cimco's dataflow as AccelForge maps it: weights stay in the cells, each row group's written
once; outputs along columns, the reduction along rows; the core and macro fanouts never
split output positions (no weight copies); nothing iterates inside a macro (partial sums go
back to the global buffer). They also fix the column and row factors and which loops run at
DRAM (see :func:`cimco.timeloop.layout.layout`), which leaves a mapspace small enough to walk whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimco.geometry import MacroGeometry
from cimco.parts import (
    CELL_ARRAY,
    COMPUTE,
    CORE_BUFFER,
    DRAM,
    GLOBAL_BUFFER,
    INDEX_MEMORY,
    NOC,
    READOUT_PARTS,
    WORDLINE_DRIVER,
)
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits
from cimco.tables import Tables
from cimco.timeloop.layout import BUFFERS, INNER_BUFFER, Layout, word_bits

DATASPACES = ("Weights", "Inputs", "Outputs")
NO_POSITIONS = "N=1 P=1 Q=1"  # output positions: a fanout that splits them copies weights
# the macro's readout parts (cimco.parts.READOUT_PARTS) are folded into one Timeloop level


@dataclass(frozen=True)
class LayerPlan:
    """What one layer's Timeloop files depend on besides the system."""

    bits: Bits
    input_density: float = 1.0
    # sparse layers: pJ-free ratio of index reads to ADC updates (None: dense, no index memory)
    index_reads_per_update: float | None = None


def unsupported(system: SystemSpec) -> list[str]:
    """What these files cannot write (one line each), to refuse it before any work: the mapping is
    the cimco backend's, whose search covers a memory in each core that keeps inputs and outputs."""
    b = system.core_buffer
    if b is None or set(b.keeps) == {"input", "output"}:
        return []
    return [f"the Timeloop export: a memory in each core that keeps {' and '.join(b.keeps)} only is mapped by "
            f"--backend accelforge (the export writes the cimco backend's mapping, which covers one that keeps "
            f"inputs and outputs)"]


def readout_level(system: SystemSpec) -> str:
    """Name of the Timeloop level that stands for the macro's readout parts."""
    return next(p for p in READOUT_PARTS if p in system.macro.parts)


def _storage(name: str, cls: str, word_bits: int, depth: int | None, **extra) -> dict:
    attrs = {"datawidth": word_bits, "width": word_bits, "block_size": 1,
             # cimco models no address generation or wires: Timeloop's built-in ones off
             "addr-gen-energy": 0.0, "energy-per-hop": 0.0, **extra}
    if depth is not None:
        attrs["depth"] = depth
    return {"name": name, "class": cls, "attributes": attrs}


def arch(system: SystemSpec, plan: LayerPlan, lay: Layout) -> dict:
    m, g = system.macro, MacroGeometry.of_system(system, plan.bits)
    b, wb = plan.bits, word_bits(plan.bits)
    per_cycle = g.cycle_s / wb  # bits/s -> words per Timeloop cycle
    cells = system.n_macros * g.outputs_per_macro
    macro_parts = [
        _storage(WORDLINE_DRIVER, "storage", b.input, max(m.rows, lay.driver_words), meshX=system.n_macros),
        _storage(readout_level(system), "storage", b.output, g.outputs_per_macro, meshX=system.n_macros),
    ]
    if plan.index_reads_per_update is not None:
        macro_parts.append(_storage(INDEX_MEMORY, "storage", b.output, g.outputs_per_macro,
                                    meshX=system.n_macros))
    leaf = [
        _storage(CELL_ARRAY, "storage", b.weight, m.rows // m.wordlines_on, meshX=cells),
        {"name": COMPUTE, "class": "intmac", "attributes": {"datawidth": b.weight, "meshX": cells}},
    ]

    def memory(name: str, spec, **extra) -> list[dict]:
        """A memory's one level, or two sharing its words (the inner one holds its tile exactly)."""
        words, inner = spec.size_bits // wb, lay.inner_words.get(BUFFERS[name])
        bandwidth = spec.bandwidth_bits_per_s * per_cycle
        out = [_storage(name, "SRAM", wb, words - (inner or 0), shared_bandwidth=bandwidth, **extra)]
        if inner is not None:
            out.append(_storage(BUFFERS[name], "SRAM", wb, inner, shared_bandwidth=bandwidth, **extra))
        return out

    tree = {"name": f"column[0..{g.outputs_per_macro - 1}]", "subtree": [
        {"name": f"row[0..{m.wordlines_on - 1}]", "local": leaf}]}
    core_memory = memory(CORE_BUFFER, system.core_buffer, meshX=system.cores) if system.core_buffer else []
    return {"architecture": {"version": 0.4, "subtree": [{
        "name": system.name,
        "local": [_storage(DRAM, "DRAM", wb, None,
                           shared_bandwidth=system.dram.bandwidth_bits_per_s * per_cycle)],
        "subtree": [{
            "name": "chip",
            "local": memory(GLOBAL_BUFFER, system.global_buffer),
            "subtree": [{"name": f"core[0..{system.cores - 1}]", **({"local": core_memory} if core_memory else {}),
                         "subtree": [{"name": f"macro[0..{system.macros_per_core - 1}]", "local": macro_parts,
                                      "subtree": [tree]}]}]}]}]}}


def constraints(system: SystemSpec, dims: list[str], sparse: bool, lay: Layout) -> dict:
    """Keep/bypass per level and every factor and loop order fixed to ``lay`` (the cimco
    backend's plan): the array's columns take output channels and its word lines the
    reduction, the macros the plan's spread (never output positions: no weight copies), the
    loops above them at the levels that hold their tiles (Timeloop permutations run innermost
    first), nothing inside a macro (it holds one row group's weights per pass; partial sums
    leave it). One mapping remains for the mapper to model."""
    def keep(target: str, *kept: str) -> dict:
        return {"target": target, "type": "bypass", "keep": list(kept),
                "bypass": [d for d in DATASPACES if d not in kept]}

    def fixed(factors: dict[str, int], free: frozenset[str] | set[str] = frozenset()) -> str:
        return " ".join(f"{d}={factors.get(d, 1)}" for d in dims if d not in free)

    readout = readout_level(system)
    buffers = lay.levels[1:]
    targets = [keep(x.name, *x.keeps) for x in lay.levels]
    targets += [keep(WORDLINE_DRIVER, "Inputs"), keep(readout, "Outputs"), keep(CELL_ARRAY, "Weights")]
    # the macros hang below the innermost buffer level, all along X (one row of macros)
    # (a rank with a partial group is left free on the macros and the array: ruby places it);
    # with core buffers, the cores below the global buffer's innermost level (Timeloop has no
    # fanout there for one core)
    if lay.cores and system.cores > 1:
        chip = [x for x in buffers if x.name in (GLOBAL_BUFFER, INNER_BUFFER)]
        targets.append({"target": chip[-1].name, "type": "spatial", "factors": fixed(lay.cores),
                        "permutation": "".join(dims), "split": len(dims)})
    targets.append({"target": buffers[-1].name, "type": "spatial", "factors": fixed(lay.macros, lay.partial),
                    "permutation": "".join(dims), "split": len(dims)})
    # the array: columns (X) share word lines, so they split output channels; rows (Y) the reduction
    array = {"target": INDEX_MEMORY if sparse else readout, "type": "spatial",
             "factors": fixed(lay.array, lay.partial), "permutation": "".join(d for d in "MCRSGNPQ" if d in dims),
             "split": 1}
    if lay.partial:
        array["remainders"] = max(lay.array[d] for d in lay.partial)
    targets.append(array)
    for x in lay.levels:
        order = [d for d, _ in reversed(x.loops)]
        # ruby finds no factorization of a dimension every level fixes: the innermost buffer's are
        # left free (the other levels' factors leave them 1)
        free = set(dims) if lay.partial and x is buffers[-1] else set()
        factors = fixed(dict(x.loops), free)
        targets.append({"target": x.name, "type": "temporal", **({"factors": factors} if factors else {}),
                        "permutation": "".join(order + [d for d in dims if d not in order])})
    targets += [{"target": t, "type": "temporal", "factors": fixed({}), "permutation": "".join(dims)}
                for t in (WORDLINE_DRIVER, readout, CELL_ARRAY) + ((INDEX_MEMORY,) if sparse else ())]
    if sparse:
        targets.append(keep(INDEX_MEMORY, "Outputs"))
    ruby = {"template": "ruby"} if lay.partial else {}
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
    e, g, b = tables.ert, MacroGeometry.of_system(system, plan.bits), plan.bits
    wb = word_bits(b)
    both = g.input_slices * g.weight_slices
    d = plan.input_density  # zero inputs skip word-line drives and cell MACs (gated)
    readout = sum(e[p]["read"] for p in READOUT_PARTS if p in system.macro.parts) * g.conversions_per_output
    noc = e.get(NOC, {}).get("read", 0.0)  # per bit crossing it
    glb = e[GLOBAL_BUFFER]
    out = {
        DRAM: {"read": e[DRAM]["read"] * wb, "write": e[DRAM]["write"] * wb},
        GLOBAL_BUFFER: {"read": (glb["read"] + noc) * wb, "random_fill": glb["write"] * wb,
                        "random_update": (glb["write"] + noc) * wb},
        **({CORE_BUFFER: {"read": e[CORE_BUFFER]["read"] * wb, "write": e[CORE_BUFFER]["write"] * wb}}
           if system.core_buffer else {}),
        WORDLINE_DRIVER: {"read": 0.0, "write": e[WORDLINE_DRIVER]["read"] * g.input_slices * d},
        readout_level(system): {"read": 0.0, "random_fill": 0.0, "random_update": readout},
        CELL_ARRAY: {"read": e[CELL_ARRAY]["read"] * both * d, "write": (e[CELL_ARRAY]["write"] + noc) * b.weight},
        COMPUTE: {"compute": e[COMPUTE]["compute"]},
    }
    if plan.index_reads_per_update is not None:
        out[INDEX_MEMORY] = {"read": 0.0, "random_fill": 0.0,
                              "random_update": e[INDEX_MEMORY]["read"] * plan.index_reads_per_update}
    return out


def area_table(tables: Tables, system: SystemSpec, plan: LayerPlan) -> dict[str, float]:
    """Area (m^2) of one instance of each Timeloop level; the readout level carries the shift-add."""
    g = MacroGeometry.of_system(system, plan.bits)
    a, n = tables.art, system.n_macros
    cells = n * g.outputs_per_macro * system.macro.wordlines_on
    out = {DRAM: a[DRAM], GLOBAL_BUFFER: a[GLOBAL_BUFFER], WORDLINE_DRIVER: a[WORDLINE_DRIVER] / n,
           readout_level(system): sum(a[p] for p in READOUT_PARTS if p in system.macro.parts) / n,
           CELL_ARRAY: a[CELL_ARRAY] / cells, COMPUTE: a[COMPUTE] / cells}
    if system.core_buffer is not None:
        out[CORE_BUFFER] = a[CORE_BUFFER] / system.cores
    if plan.index_reads_per_update is not None:
        out[INDEX_MEMORY] = a[INDEX_MEMORY] / n
    return out
