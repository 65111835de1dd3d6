"""The pipeline's execution step: how a whole network runs on the system, where activations
and weights live between layers.

A backend maps each layer alone, with DRAM holding every tensor: the layer reads its input
and weights from DRAM and writes its output back. A CIM system keeps what fits on chip,
and this module corrects each layer's counts (per tensor, from the backend's mapping) for
that:

- **Activations.** A layer's output stays in the global buffer for its consumers, including
  the layers that add it as a skip connection (``residual``), when it fits there for its
  whole lifetime beside what else must be there: the input and output of the layer running
  (the single-layer mappings hold both whole in the buffer) and the other tensors kept.
  Decided greedily in execution order. A kept output saves its DRAM write and the buffer
  read that drained it; a consumer whose input is on chip saves its DRAM reads and the
  buffer fill. The network's input and last output go through DRAM. A skip connection's
  tensor is read once more when it is added (from the buffer, or from DRAM if it spilled):
  single-layer mappings do not count that add at all.
- **Weights.** ``resident``: every layer keeps its weights in macros of its own (one copy,
  the spatial model of :mod:`cimco.codesign.spatial`); they are programmed once, reported
  apart (``weight_load_j``), and an inference moves no weights. ``reload``: weights come
  from DRAM for every batch, so per inference their traffic is divided by ``batch``.
  ``auto`` (default) is ``resident`` when the network fits in the macros. A ``dynamic``
  layer (a matmul of activations, attention's Q K^T) writes its stored operand into macros at
  every run, whatever the mode: its load stays in each run's counts, and its macros come
  beside the resident weights (the largest dynamic layer's, one after another; each one's in
  a pipeline). On a system with a ``digital_unit`` dynamic layers run there instead
  (:mod:`cimco.digital`) and need no macros.
- **KV cache.** A layer's ``kv_cache_writes`` (the keys and values a decoder's attention keeps
  for the tokens after) are written to DRAM at the layer's output bits; reading them back is
  the dynamic layers' operand load.
- **Non-MAC work.** A layer's ``ops`` (activations, adds, pooling, softmax, norms on its
  output) run on the system's ``vector_unit`` beside the layer (:mod:`cimco.vector`).
- **Mode.** ``sequential``: layers run one after another (latency = sum, throughput = one
  over it). ``pipelined``: every layer is a stage on its own macros (weights resident),
  stage time from the spatial model LRMP uses (so ``cimco map`` and ``cimco lrmp`` agree),
  throughput = one over the slowest stage, latency = sum of the stages; inter-stage tensors
  are all live at once, double-buffered (assumed), and kept on chip while they fit.

Memory latencies (DRAM, global buffer) scale with their corrected traffic (each is
bandwidth-bound in the mapping: time = bits / bandwidth). Everything is per inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cimco import vector
from cimco.errors import Problem, SpecError
from cimco.mapping import LayerRun, with_counts
from cimco.parts import CELL_ARRAY, DRAM, GLOBAL_BUFFER, MACRO_PARTS, MEMORIES, NOC, VECTOR_UNIT
from cimco.spec.system import SystemSpec
from cimco.spec.workload import MAX_MASK_WEIGHTS, WorkloadSpec

MODES = ("sequential", "pipelined")
WEIGHTS = ("auto", "resident", "reload")
PIPELINE_BUFFERS = 2  # assumed: a stage writes input k+1 while the next stage reads input k


@dataclass(frozen=True)
class Execution:
    """How the network runs (the CLI's --mode, --weights, --batch)."""

    mode: str = "sequential"
    weights: str = "auto"
    batch: int = 1
    replicate: bool = True  # copies of a layer's resident weights in free macros (sequential)

    def __post_init__(self) -> None:
        bad = [f"{k} must be one of {', '.join(opts)}, got {v!r}"
               for k, v, opts in (("mode", self.mode, MODES), ("weights", self.weights, WEIGHTS)) if v not in opts]
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            bad.append(f"batch must be a whole number >= 1, got {self.batch!r}")
        if bad:
            raise ValueError("; ".join(bad))


@dataclass
class Plan:
    """What :func:`apply` decided, for the report."""

    mode: str
    weights: str  # resolved: resident | reload
    batch: int
    macros_needed: int  # one copy of every layer's weights (spatial model)
    output_on_chip: list[bool]
    input_on_chip: list[float]  # fraction of the layer's input read from the buffer
    weight_load_actions: dict[tuple[str, str], float] = field(default_factory=dict)  # one programming
    stage_s: list[float] = field(default_factory=list)  # pipelined stage times
    placement: list | None = None  # resident weights, macro by macro (cimco.placement), when packed
    replication: dict[str, int] = field(default_factory=dict)  # copies of a layer's weights, above 1


def _sizes(workload: WorkloadSpec) -> list[int]:
    """Bits of each layer's output tensor, per inference."""
    return [x.output_elements * workload.layer_bits(x).output for x in workload.layers]


def _in_sizes(workload: WorkloadSpec) -> list[int]:
    return [x.input_elements * workload.layer_bits(x).input for x in workload.layers]


def _stages(system: SystemSpec, workload: WorkloadSpec, masks: list) -> list | None:
    """One LRMP option per layer: its own macros at replication 1 and its weight bits; None
    when a layer is too large for the spatial model's exact occupancy (held in memory). Only
    their macros and times are used (with a NoC, a stage's time is at least its inputs' transfer,
    as ``cimco lrmp`` has it), so no ERT is given (their energies are not used)."""
    from cimco.codesign.spatial import layer_options, received

    if any(x.out_channels * x.reduction > MAX_MASK_WEIGHTS for x in workload.layers):
        return None
    def option(x, mask, elements_in: int):
        return layer_options(system, x, {}, [workload.layer_bits(x).weight], mask, 1, elements_in=elements_in)[0]

    out, dense = [], {}  # layers alike but for their names and links, without a mask: one option
    for x, mask in zip(workload.layers, masks):
        moved = received(workload, x)
        if mask is not None:
            out.append(option(x, mask, moved))
            continue
        key = (x.model_dump_json(exclude={"name", "inputs", "residual"}), workload.layer_bits(x), moved)
        if key not in dense:
            dense[key] = option(x, None, moved)
        out.append(dense[key])
    return out


def _written(system: SystemSpec, layer) -> bool:
    """A dynamic layer the macros run (none runs it on a digital unit): its operand is written
    into them at every run."""
    return layer.dynamic and not system.on_digital_unit(layer)


def _macros_needed(system: SystemSpec, workload: WorkloadSpec, stages: list | None, pipelined: bool) -> int:
    """Macros for one copy of every layer's weights (the spatial model's count, or, for layers
    too large for it, the weight bits over a macro's bits, a lower bound), and beside them the
    macros a ``dynamic`` layer writes its operand into at every run: the largest one's when
    layers run one after another, each one's in a pipeline."""
    written = [_written(system, x) for x in workload.layers]
    if stages is not None:
        dynamic = [s.macros for s, w in zip(stages, written) if w]
        static = sum(s.macros for x, s in zip(workload.layers, stages) if not x.dynamic)
    else:
        m = system.macro
        cell_bits = m.rows * m.cols * m.bits_per_cell
        bits = [x.out_channels * x.reduction * workload.layer_bits(x).weight for x in workload.layers]
        dynamic = [-(-b // cell_bits) for b, w in zip(bits, written) if w]
        static = -(-sum(b for x, b in zip(workload.layers, bits) if not x.dynamic) // cell_bits)
    return static + (sum(dynamic) if pipelined else max(dynamic, default=0))


def _residency(workload: WorkloadSpec, capacity: int, pipelined: bool) -> list[bool]:
    """Which layers' outputs stay in the global buffer (greedy in execution order)."""
    n = len(workload.layers)
    index = {x.name: i for i, x in enumerate(workload.layers)}
    producers = [[index[p] for p in workload.producers(i)] for i in range(n)]
    residual = [[index[p] for p in x.residual] for x in workload.layers]
    last = [-1] * n
    for j in range(n):
        for p in producers[j] + residual[j]:
            last[p] = max(last[p], j)
    size = _sizes(workload)
    if pipelined:  # every inter-stage tensor is live at once, double-buffered
        kept, used = [False] * n, 0
        for p in range(n):
            need = PIPELINE_BUFFERS * size[p]
            if last[p] > p and used + need <= capacity:
                kept[p], used = True, used + need
        return kept
    # the running layer holds its whole input and output in the buffer
    used = [a + b for a, b in zip(_in_sizes(workload), size)]
    kept = [False] * n
    for p in range(n):
        if last[p] <= p:  # no consumer: the network's output
            continue
        span = range(p, last[p] + 1)
        extra = [0 if (j == p or p in producers[j]) else size[p] for j in span]
        if all(used[j] + e <= capacity for j, e in zip(span, extra)):
            kept[p] = True
            for j, e in zip(span, extra):
                used[j] += e
    return kept


def _move(actions: dict, comp: str, tensor: str, act: str, bits: float) -> None:
    """Add ``bits`` (negative: remove) to a component's action count of ``tensor``, never below zero."""
    actions[comp, tensor, act] = max(actions.get((comp, tensor, act), 0.0) + bits, 0.0)


def _scale_latency(run: LayerRun, actions: dict, comp: str) -> float:
    """A bandwidth-bound memory's latency after its traffic changed (``actions``: by part,
    tensor and action)."""
    old = sum(v for (c, _, _), v in run.tensor_actions.items() if c == comp)
    new = sum(v for (c, _, _), v in actions.items() if c == comp)
    return run.latency_by_component.get(comp, 0.0) * (new / old if old else 0.0)


def _weights(system: SystemSpec, how: Execution, need: int, stages: list | None, fits: bool | None = None) -> str:
    """``how.weights`` resolved (resident or reload), or a SpecError if it cannot be; ``fits``:
    whether one copy of every layer's weights fits (default: ``need`` macros or fewer)."""
    if how.mode not in MODES or how.weights not in WEIGHTS or how.batch < 1:
        raise ValueError(f"bad execution {how}")
    fits = need <= system.n_macros if fits is None else fits
    if how.mode == "pipelined" and stages is None:
        raise SpecError([Problem("cimco map", "--mode", f"a layer has over {MAX_MASK_WEIGHTS:,} weights, "
                                 f"beyond what the spatial model of pipelined mode evaluates")])
    if how.mode == "pipelined" and how.weights == "reload":
        raise SpecError([Problem("cimco map", "--weights", "pipelined mode keeps every layer's weights in "
                                 "its own macros: use --weights resident (or auto)")])
    weights = "resident" if how.mode == "pipelined" else how.weights
    if weights == "auto":
        weights = "resident" if fits else "reload"
    if weights == "resident" and not fits:
        why = (f"needs {need} macros" if need > system.n_macros else
               "does not fit them, packed as the layers' mappings spread it (cimco.placement)")
        raise SpecError([Problem("cimco map", "--mode" if how.mode == "pipelined" else "--weights",
                                 f"one copy of every layer's weights {why}; system {system.name!r} has "
                                 f"{system.n_macros} (cores x macros_per_core): use --weights reload with "
                                 f"--mode sequential, or a larger system")])
    return weights


def _placed(system: SystemSpec, workload: WorkloadSpec, runs: list[LayerRun]):
    """(pieces by layer, placement or None, macros reserved for dynamic layers) of the layers'
    weights as their mappings spread them (:mod:`cimco.placement`); None where a mapping gives
    no loops (the Timeloop backend) or copies weights."""
    from cimco import placement

    pieces = {x.name: placement.piece(r, system) for x, r in zip(workload.layers, runs)
              if not x.dynamic or _written(system, x)}
    if any(p is None for p in pieces.values()):
        return None
    reserved = max((pieces.pop(x.name).macros for x in workload.layers if _written(system, x)), default=0)
    return pieces, placement.pack(system, list(pieces.values()), reserved), reserved


def _copied(system: SystemSpec, run: LayerRun, r: int) -> dict[str, float]:
    """``run``'s latency by part with ``r`` copies of its weights: its output positions split
    over them, so each macro part takes ``ceil(P / r) / P`` of its time, but for the cells' share
    that writes the weights (the model times a write as a read, unless they are preloaded), which
    the copies write at once; memories unchanged (bandwidth-bound)."""
    positions, t = run.layer.positions, run.result.tensor_actions
    f = math.ceil(positions / r) / positions
    writes, reads = t.get((CELL_ARRAY, "W", "write"), 0.0), t.get((CELL_ARRAY, "W", "read"), 0.0)
    timed = system.macro.weights_loaded != "once" and reads + writes > 0
    share = writes / (reads + writes) if timed else 0.0
    return {c: v * (f + (1 - f) * share if c == CELL_ARRAY else f if c in MACRO_PARTS else 1.0)
            for c, v in run.latency_by_component.items()}


def _replicate(system: SystemSpec, runs: list[LayerRun], pieces: dict, placed) -> dict[str, int]:
    """Copies of layers' resident weights in the free space of the placement, one at a time to
    the layer whose latency falls the most per macro it takes (:func:`_copied`), while one fits
    and lowers it. Per inference the energy is unchanged (the copies are written once, with the
    weights), so the energy-delay product falls with the latency."""
    copies = {name: 1 for name in pieces}

    def latency(run: LayerRun, r: int) -> float:
        return max(_copied(system, run, r).values()) * run.layer.repeat

    todo = {run.layer.name: run for run in runs if run.layer.name in pieces and pieces[run.layer.name].row_blocks}
    while todo:
        gain = {name: (latency(run, copies[name]) - latency(run, copies[name] + 1)) / pieces[name].macros
                for name, run in todo.items()}
        name = max(gain, key=lambda k: (gain[k], k))
        if gain[name] <= 0 or not placed.put(pieces[name]):
            del todo[name]
            continue
        copies[name] += 1
    return {name: r for name, r in copies.items() if r > 1}


def _replicate_reloaded(system: SystemSpec, runs: list[LayerRun], pieces: dict, cell_writes: dict[str, float],
                        tables, batch: int) -> dict[str, int]:
    """Copies of reloaded weights: at its turn a layer has every macro (no weights stay), so
    ``r`` copies take ``r`` times the macros its mapping spreads over; each copy's cells
    (``cell_writes``: per run, after sparsity) are written at every load (broadcast from the
    buffer: one DRAM read), ``1 / batch`` of it per inference. Layer by layer, the number of
    copies that lowers the network's energy-delay product most, the others as chosen so far."""
    def energy(run: LayerRun) -> float:
        return sum(tables.energy(c, a) * n for (c, a), n in run.actions.items()) * run.layer.repeat

    e, lat = sum(map(energy, runs)), sum(r.latency_s * r.layer.repeat for r in runs)
    write_j = tables.energy(CELL_ARRAY, "write")
    out = {}
    for run in runs:
        p = pieces.get(run.layer.name)
        if p is None or not p.row_blocks:
            continue
        cells = cell_writes[run.layer.name] * write_j * run.layer.repeat / batch
        now = run.latency_s * run.layer.repeat
        times = {r: max(_copied(system, run, r).values()) * run.layer.repeat
                 for r in range(1, system.n_macros // p.macros + 1)}
        best = min(times, key=lambda r: ((e + (r - 1) * cells) * (lat - now + times[r]), r))  # noqa: B023
        if best > 1:
            out[run.layer.name] = best
            e += (best - 1) * cells
            lat += times[best] - now
    return out


def check(system: SystemSpec, workload: WorkloadSpec, masks: dict | None, how: Execution) -> list | None:
    """Refuse, before any mapping, an execution the system cannot give (SpecError); the
    layers' stages (:func:`_stages`), which :func:`apply` may be given again."""
    dynamic = [x.name for x in workload.layers if _written(system, x)]
    if dynamic and system.macro.weights_loaded == "once":
        raise SpecError([Problem(f"system {system.name!r}", "macro.weights_loaded",
                                 f"'once' (weights preloaded, their writes take no time), but {len(dynamic)} layers "
                                 f"of workload {workload.name!r} (e.g. {dynamic[0]!r}) are dynamic: a matmul of "
                                 f"activations writes its operand into the macros at every run; use 'per_layer', "
                                 f"or give the system a digital_unit")])
    stages = _stages(system, workload, [(masks or {}).get(x.name) for x in workload.layers])
    pipelined = how.mode == "pipelined"
    need = _macros_needed(system, workload, stages, pipelined)
    _weights(system, how, need if pipelined else min(need, _lower_bound(system, workload, masks)), stages)
    return stages


def _lower_bound(system: SystemSpec, workload: WorkloadSpec, masks: dict | None) -> int:
    """Macros below which no packing (:mod:`cimco.placement`, decided after mapping) holds the
    weights: their cells (the kept share, where masked) over a macro's, and the largest dynamic
    layer's beside them."""
    m, masks = system.macro, masks or {}

    def cells(x) -> float:
        kept = float(masks[x.name].mean()) if x.name in masks else 1.0
        return x.out_channels * x.reduction * m.n_weight_slices(workload.layer_bits(x).weight) * kept

    per_macro = m.rows * m.cols
    dynamic = [math.ceil(cells(x) / per_macro) for x in workload.layers if _written(system, x)]
    return math.ceil(sum(cells(x) for x in workload.layers if not x.dynamic) / per_macro) + max(dynamic, default=0)


def apply(system: SystemSpec, workload: WorkloadSpec, runs: list[LayerRun], how: Execution | None = None,
          stages: list | None | bool = False, tables=None) -> tuple[list[LayerRun], Plan]:
    """Each layer's counts and latency for the whole network run as ``how`` says (``stages``:
    :func:`check`'s for the same layers and masks, else computed here; ``tables``: the system's
    ERT, to weigh copies of reloaded weights, none made without it)."""
    how = how or Execution()
    if stages is False:
        stages = _stages(system, workload, [r.mask for r in runs])
    need = _macros_needed(system, workload, stages, how.mode == "pipelined")
    placed = None if how.mode == "pipelined" else _placed(system, workload, runs)
    if placed is not None and placed[1] is not None:
        need = placed[1].used + placed[2]
    weights = _weights(system, how, need, stages, None if placed is None else placed[1] is not None)
    kept = _residency(workload, system.global_buffer.size_bits, how.mode == "pipelined")
    index = {x.name: i for i, x in enumerate(workload.layers)}
    size = _sizes(workload)
    plan = Plan(how.mode, weights, how.batch, need, kept, [])
    cell_writes = {}  # per run of each layer: its weights' cell writes (bits)
    out = []
    for i, (x, run) in enumerate(zip(workload.layers, runs)):
        a = dict(run.tensor_actions)
        t = run.result.tensor_actions
        n = x.repeat  # tensor_actions are per run of the layer; actions too (the report multiplies)

        prods = [index[p] for p in workload.producers(i)]
        on_chip = sum(size[p] for p in prods if kept[p]) / sum(size[p] for p in prods) if prods else 0.0
        plan.input_on_chip.append(on_chip)
        if on_chip:  # fewer DRAM reads and buffer fills of the input
            _move(a, DRAM, "I", "read", -on_chip * t.get((DRAM, "I", "read"), 0.0))
            _move(a, GLOBAL_BUFFER, "I", "write", -on_chip * t.get((GLOBAL_BUFFER, "I", "write"), 0.0))
        if kept[i]:  # the output is not drained to DRAM
            drained = t.get((DRAM, "O", "write"), 0.0)
            _move(a, DRAM, "O", "write", -drained)
            _move(a, GLOBAL_BUFFER, "O", "read", -min(drained, t.get((GLOBAL_BUFFER, "O", "read"), 0.0)))
        for name in x.residual:  # the skip connection's tensor is read to be added (an input of the add)
            p = index[name]
            bits = size[p] / n
            _move(a, GLOBAL_BUFFER, "I", "read", bits)
            if not kept[p]:
                _move(a, DRAM, "I", "read", bits)
                _move(a, GLOBAL_BUFFER, "I", "write", bits)
        # the weights' load: the layer's own counts (its stored weights, after sparsity)
        moved = {(comp, act): v for (comp, tensor, act), v in run.tensor_actions.items()
                 if tensor == "W" and (comp, act) in ((DRAM, "read"), (NOC, "read"), (CELL_ARRAY, "write"))}
        cell_writes[x.name] = moved.get((CELL_ARRAY, "write"), 0.0)
        for (comp, act), v in moved.items():
            if x.dynamic:  # an activation, written into the macros at every run
                continue
            if weights == "resident":  # programmed once, reported apart
                _move(a, comp, "W", act, -v)
                key = (comp, act)
                plan.weight_load_actions[key] = plan.weight_load_actions.get(key, 0.0) + v * n
            else:  # one load per batch
                _move(a, comp, "W", act, -v * (1 - 1 / how.batch))
        if x.kv_cache_writes:  # the keys and values appended to the KV cache, in DRAM
            _move(a, DRAM, "W", "write", x.kv_cache_writes * workload.layer_bits(x).output / n)
        lat = dict(run.latency_by_component)
        if x.ops and system.vector_unit is not None:  # on the layer's outputs as they come (cimco.vector)
            ops = vector.operations(x.ops) / n
            _move(a, VECTOR_UNIT, "O", "read", ops)
            lat[VECTOR_UNIT] = ops / system.vector_unit.ops_per_s
        for comp in MEMORIES:
            if comp in lat:
                lat[comp] = _scale_latency(run, a, comp)
        if how.mode == "pipelined":
            stage = stages[i].time_s / n  # per run of the layer (the report multiplies by repeat)
            for comp in MACRO_PARTS:
                if comp in lat:
                    lat[comp] = stage
            plan.stage_s.append(max(lat.values()) * n)
        out.append(with_counts(run, a, lat))
    if weights == "resident" and placed is not None:
        pieces, placement, _ = placed
        if how.replicate:
            plan.replication = _replicate(system, out, pieces, placement)
        plan.placement = placement.as_json(system.n_macros)
    elif placed is not None and how.replicate and tables is not None:
        plan.replication = _replicate_reloaded(system, out, placed[0], cell_writes, tables, how.batch)
    for name, r in plan.replication.items():  # positions split over the copies, each written
        i = index[name]
        run = out[i]
        a = dict(run.tensor_actions)
        written = (r - 1) * cell_writes[name]
        if weights == "resident":  # once, with the weights
            plan.weight_load_actions[CELL_ARRAY, "write"] = (plan.weight_load_actions.get((CELL_ARRAY, "write"), 0)
                                                             + written * run.layer.repeat)
        else:  # at every load, one per batch
            _move(a, CELL_ARRAY, "W", "write", written / how.batch)
        out[i] = with_counts(run, a, _copied(system, run, r))
    return out, plan


def throughput_fps(plan: Plan, latency_s: float) -> float:
    """Inferences per second: one over the latency, or over the slowest pipeline stage."""
    return 1.0 / (max(plan.stage_s) if plan.mode == "pipelined" else latency_s)
