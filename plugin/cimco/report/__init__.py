"""The pipeline's last step: per-layer results, as the sparsity and execution steps left
them, aggregated into the report contract (the files are written by :mod:`cimco.report.write`).

Per-layer energy is ``sum(ERT[component][action] * action count)`` over the layer's action
counts (the backend's, corrected by :mod:`cimco.sparse.transform` and
:mod:`cimco.execution`), so the ERT written beside the report reproduces every energy in it.
The backend's own total for the dense layer it mapped is kept as ``engine_energy_j``: for a
dense layer run alone AccelForge's differs only by float32 rounding inside AccelForge.
"""

from __future__ import annotations

from cimco import execution
from cimco.backends import Backend
from cimco.execution import Plan
from cimco.mapping import LayerRun
from cimco.parts import DRAM, VECTOR_UNIT
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec
from cimco.tables import Tables

OPS_PER_MAC = 2


def _sparsity(sp) -> dict | None:
    if sp is None or sp.occ is None:
        return None
    o = sp.occ
    return {"kept_blocks": o.kept_blocks, "blocks": o.blocks, "kept_outputs": o.kept_outputs,
            "index_codes": o.kept_blocks if sp.compressed else 0,
            # activations of the busiest macros, summed over waves of tiles, per input
            # vector: real mask vs dense; their ratio scales the macros' latency
            "busy_activations": o.busy, "dense_busy_activations": sp.ref.busy}


def tops_per_w_macro(runs: list[LayerRun], ert: dict[str, dict[str, float]]) -> float | None:
    """Macro-only efficiency, as macro papers count it: 2 ops per dense MAC over the macros'
    compute energy (every macro part's ``read``: no weight writes, buffers, DRAM or index codes).
    None (null in report.json) when the macros spend nothing: every block pruned."""
    from cimco.calibrate import macro_compute_energy

    e = sum(macro_compute_energy(r.actions, ert) * r.layer.repeat for r in runs)
    return OPS_PER_MAC * sum(r.layer.macs * r.layer.repeat for r in runs) / e / 1e12 if e else None


def efficiency(layers: list[dict], energy_by_component: dict[str, float], fps: float) -> dict:
    """The report's energy, latency and efficiency totals over its ``layers`` (any backend)."""
    energy = sum(x["energy_j"] for x in layers)
    dense = sum(x["dense_macs"] for x in layers)
    executed = sum(x["executed_macs"] for x in layers)
    return {
        "energy_j": energy,
        "latency_s": sum(x["latency_s"] for x in layers),
        "dense_macs": dense,
        "executed_macs": executed,
        "tops_per_w": OPS_PER_MAC * dense / energy / 1e12,
        "tops_per_w_executed": OPS_PER_MAC * executed / energy / 1e12,
        # without off-chip DRAM traffic: how chip papers (MARS, CRIMP) count TOPS/W
        "tops_per_w_on_chip": OPS_PER_MAC * dense / (energy - energy_by_component.get(DRAM, 0.0)) / 1e12,
        "tops": OPS_PER_MAC * dense * fps / 1e12,
        "fps": fps,
    }


def utilization(run: LayerRun, system: SystemSpec, copies: int = 1) -> dict:
    """How much of the system a layer's mapping uses: the macros its spatial loops spread over
    (macros x cores) of all, the word lines each activation turns on (rows) of those a macro
    turns on at once, the columns (output channels x a weight's columns) of a macro's;
    ``spatial_utilization`` their product, the share of the system's cells at work in an
    activation; ``temporal_utilization`` the cell arrays' busy time over the layer's time.
    None where the backend gives no loops (``--backend timeloop``)."""
    from cimco.geometry import MacroGeometry
    from cimco.parts import CELL_ARRAY

    keys = ("macros_used", "rows_used", "columns_used", "spatial_utilization", "temporal_utilization")
    r = run.result
    if not r.loops:
        return dict.fromkeys(keys)
    m, g = system.macro, MacroGeometry.of_system(system, run.bits)
    macros, rows, columns = r.spread("macro", "core") * copies, r.spread("row"), r.spread("column") * g.weight_slices
    busy = run.latency_by_component.get(CELL_ARRAY)
    return dict(zip(keys, (macros, rows, columns, macros / system.n_macros * rows / m.wordlines_on * columns / m.cols,
                           busy / run.latency_s if busy is not None and run.latency_s > 0 else None)))


def _levels(system: SystemSpec) -> list[dict]:
    """The system's levels as a spec lists them, a NoC with its mean hops from the buffer to a core."""
    from cimco.noc import hops
    from cimco.spec.levels import as_levels

    return [{**x, "hops": hops(x["topology"], system.cores)} if x["kind"] == "noc" else x for x in as_levels(system)]


def ceilings(system: SystemSpec, workload: WorkloadSpec) -> dict:
    """The system's roofline ceilings: peak ops/s of all macros at the first layer's bits (2 ops
    per MAC, every macro's word lines on at once x its outputs each activation), and DRAM's and
    the global buffer's bandwidths in bits/s."""
    from cimco.geometry import MacroGeometry

    bits = workload.layer_bits(workload.layers[0])
    g = MacroGeometry.of_system(system, bits)
    return {"peak_ops_per_s": 2 * system.n_macros * g.wordlines_on * g.outputs_per_macro / g.cycle_s,
            "bits": bits.model_dump(), "dram_bits_per_s": system.dram.bandwidth_bits_per_s,
            "buffer_bits_per_s": system.global_buffer.bandwidth_bits_per_s}


def breakdown(run: LayerRun, tables: Tables, n: int) -> list[dict]:
    """The layer's reads, writes and energy by part (level) and tensor, as Timeloop's stats
    give them: one entry per (part, tensor) that acts, ``n`` runs of the layer. Memories count
    bits; a macro part its own actions (cell operations, word-line drives, readouts)."""
    out: dict[tuple[str, str], dict] = {}
    for (part, tensor, action), count in sorted(run.tensor_actions.items()):
        if not count:
            continue
        e = out.setdefault((part, tensor), {"level": part, "tensor": tensor, "reads": 0.0, "writes": 0.0,
                                            "energy_j": 0.0})
        e["reads" if action == "read" else "writes"] += count * n
        e["energy_j"] += tables.energy(part, action) * count * n
    return list(out.values())


def _summed(layers: list[dict]) -> list[dict]:
    out: dict[tuple[str, str], dict] = {}
    for x in layers:
        for b in x["breakdown"]:
            e = out.setdefault((b["level"], b["tensor"]), {**b, "reads": 0.0, "writes": 0.0, "energy_j": 0.0})
            for k in ("reads", "writes", "energy_j"):
                e[k] += b[k]
    return list(out.values())


def build_report(system: SystemSpec, workload: WorkloadSpec, runs: list[LayerRun], plan: Plan,
                 tables: Tables, backend: Backend) -> dict:
    """The report contract for ``runs`` as executed by ``plan`` (:func:`cimco.execution.apply`)."""
    from cimco import __version__

    layers = []
    by_comp_total: dict[str, float] = {}
    for i, run in enumerate(runs):
        n = run.layer.repeat
        by_comp: dict[str, float] = {}
        actions = run.actions  # summed over tensors: once a layer
        for (comp, action), count in actions.items():
            e = tables.energy(comp, action) * count * n
            by_comp[comp] = by_comp.get(comp, 0.0) + e
        for comp, e in by_comp.items():
            by_comp_total[comp] = by_comp_total.get(comp, 0.0) + e
        dense = run.layer.macs * n
        sp, occ = run.sparse, run.sparse.occ if run.sparse else None
        layers.append({
            "name": run.layer.name,
            "dense_macs": dense,
            # MACs the cells run: the real rows x outputs of the kept blocks
            "executed_macs": occ.executed_macs * run.layer.positions * n if occ else dense,
            "energy_j": sum(by_comp.values()),
            "engine_energy_j": run.result.energy_j * n,  # the backend's own total for the dense layer
            "latency_s": run.latency_s * n,
            "latency_by_component_s": {c: v * n for c, v in run.latency_by_component.items()},
            "bits": run.bits.model_dump(),
            "weight_density": occ.weight_density if occ else 1.0,
            "block_density": occ.block_density if occ else 1.0,
            "input_density": run.layer.input_density,
            "replication": plan.replication.get(run.layer.name, 1),
            **utilization(run, system, plan.replication.get(run.layer.name, 1)),
            "sparsity": _sparsity(sp),
            "energy_by_component": by_comp,
            "action_counts": {f"{c}.{a}": k * n for (c, a), k in actions.items()},
            "breakdown": breakdown(run, tables, n),
            "mapping": run.result.mapping,
            "mapping_loops": run.result.loops,
            "column_split": run.result.column_split,
            "memory_budget_bits": run.result.budget_bits,
            "input_on_chip": plan.input_on_chip[i],
            "output_on_chip": plan.output_on_chip[i],
            "cached": run.cached,
        })
    latency = sum(x["latency_s"] for x in layers)
    totals = efficiency(layers, by_comp_total, execution.throughput_fps(plan, latency))
    return {
        "cimco_version": __version__,
        "ceilings": ceilings(system, workload),
        "breakdown": _summed(layers),  # every layer's, by part (level) and tensor
        "backend": backend.name,
        "engine": backend.versions(),
        "system": system.name,
        # the system's hierarchy, top to bottom (cimco.spec.levels: the template's default expansion)
        "levels": _levels(system),
        "workload": workload.name,
        "totals": {
            **totals,
            "tops_per_w_macro": tops_per_w_macro(runs, tables.ert),
            "mode": plan.mode,
            "weights": plan.weights,
            "batch": plan.batch,
            "macros_needed": plan.macros_needed,
            # resident weights, macro by macro: layer -> its row blocks and columns (cimco.placement)
            "placement": plan.placement,
            # one programming of every layer's weights (resident weights): not in energy_j
            "weight_load_j": sum(tables.energy(c, a) * k for (c, a), k in plan.weight_load_actions.items()),
            "column_split_layers": sum(x["column_split"] for x in layers),
            "area_m2": sum(tables.art.values()),
            # non-MAC work (cimco.vector): elements per inference by kind, and its share of energy_j
            "vector_ops": workload.ops,
            "vector_share": by_comp_total.get(VECTOR_UNIT, 0.0) / totals["energy_j"] if totals["energy_j"] else 0.0,
            "tokens": workload.tokens,
            "energy_per_token_j": totals["energy_j"] / workload.tokens,
            # keys and values a decoder appends to its KV cache per inference (in energy_j, as DRAM writes)
            "kv_cache_bits": sum(x.kv_cache_writes * workload.layer_bits(x).output for x in workload.layers),
        },
        "layers": layers,
        "energy_by_component": by_comp_total,
    }
