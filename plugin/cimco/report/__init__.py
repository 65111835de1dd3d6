"""Aggregate per-layer mapping results into the report contract and write its files.

Per-layer energy is ``sum(ERT[component][action] * action count)`` over the layer's
AccelForge action counts, so the ERT written beside the report reproduces every energy
in it; AccelForge's own per-layer total is kept as ``engine_energy_j`` for comparison
(it differs only by float32 rounding inside AccelForge).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from cimco import _af, arch
from cimco.io import write_atomic
from cimco.mapping import LayerRun, cache_key
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec

OPS_PER_MAC = 2


@dataclass
class Tables:
    """Energy per action (J) and area (m^2) of every component of a system."""

    ert: dict[str, dict[str, float]]
    art: dict[str, float]


def component_tables(system: SystemSpec, workload: WorkloadSpec, cache_dir: Path | None) -> Tables:
    """ERT and ART from the component models (cached like mappings, same key rules)."""
    layer = workload.layers[0]
    bits = workload.layer_bits(layer)
    einsum = _af.einsum_of(layer, bits)
    path = cache_dir / f"{cache_key(system, einsum, bits)}.tables.json" if cache_dir else None
    if path and path.exists():
        return Tables(**json.loads(path.read_text()))
    with _af.scratch_cwd():
        ert, art = _af.component_costs(arch.build_nodes(system, bits), einsum, bits)
    tables = Tables(ert=ert, art={c: v["total_area_m2"] for c, v in art.items()})
    if path:
        write_atomic(path, json.dumps(asdict(tables)))
    return tables


def build_report(system: SystemSpec, workload: WorkloadSpec, runs: list[LayerRun],
                 tables: Tables) -> dict:
    from cimco import __version__

    layers = []
    by_comp_total: dict[str, float] = {}
    for run in runs:
        n = run.layer.repeat
        by_comp: dict[str, float] = {}
        for (comp, action), count in run.result.actions.items():
            e = tables.ert.get(comp, {}).get(action, 0.0) * count * n
            by_comp[comp] = by_comp.get(comp, 0.0) + e
        for comp, e in by_comp.items():
            by_comp_total[comp] = by_comp_total.get(comp, 0.0) + e
        dense = run.layer.macs * n
        layers.append({
            "name": run.layer.name,
            "dense_macs": dense,
            "executed_macs": dense,
            "energy_j": sum(by_comp.values()),
            "engine_energy_j": run.result.energy_j * n,
            "latency_s": run.result.latency_s * n,
            "bits": run.bits.model_dump(),
            "weight_density": 1.0,
            "block_density": 1.0,
            "input_density": 1.0,
            "energy_by_component": by_comp,
            "action_counts": {f"{c}.{a}": k * n for (c, a), k in run.result.actions.items()},
            "mapping": run.result.mapping,
            "cached": run.cached,
        })
    energy = sum(x["energy_j"] for x in layers)
    latency = sum(x["latency_s"] for x in layers)
    dense = sum(x["dense_macs"] for x in layers)
    executed = sum(x["executed_macs"] for x in layers)
    return {
        "cimco_version": __version__,
        "engine": _af.versions(),
        "system": system.name,
        "workload": workload.name,
        "totals": {
            "energy_j": energy,
            "latency_s": latency,
            "dense_macs": dense,
            "executed_macs": executed,
            "tops_per_w": OPS_PER_MAC * dense / energy / 1e12,
            "tops_per_w_executed": OPS_PER_MAC * executed / energy / 1e12,
            "tops": OPS_PER_MAC * dense / latency / 1e12,
            "fps": 1.0 / latency,
            "area_m2": sum(tables.art.values()),
        },
        "layers": layers,
        "energy_by_component": by_comp_total,
    }
