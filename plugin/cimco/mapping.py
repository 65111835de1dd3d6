"""Map every layer of a workload: one AccelForge run per distinct (shape, bits), cached.

Layers with identical shape and bits are mapped once. Each mapping is cached on disk under
a SHA-256 of everything that can change it: the system spec, the layer's shape and bits,
the versions of cimco, AccelForge and hwcomponents, and the source of the cimco modules
that build the architecture and the component models. A changed input gets a new key, so
it is never served stale.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cimco import _af, arch
from cimco.io import write_atomic
from cimco.sparse import transform
from cimco.sparse.layout import Geometry
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer, WorkloadSpec

# Sources whose code shapes what is cached (mappings, and the ERT/ART tables in report/).
# Sparsity is applied after the cache (sparse/transform.py), so it is not among them.
_MODEL_SOURCES = ("arch.py", "_af.py", "models/__init__.py", "mapping.py", "report/__init__.py")


def _code_hash() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256()
    for rel in _MODEL_SOURCES:
        h.update((here / rel).read_bytes())
    return h.hexdigest()


def cache_key(system: SystemSpec, einsum: dict, bits: Bits) -> str:
    from cimco import __version__

    payload = {
        "system": system.model_dump(mode="json"),
        "einsum": einsum,
        "bits": bits.model_dump(),
        "versions": {"cimco": __version__, **_af.versions()},
        "code": _code_hash(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _to_json(r: _af.MapResult) -> str:
    d = asdict(r)
    for k in ("energy", "actions", "weight_actions"):
        d[k] = {f"{c}|{a}": v for (c, a), v in d[k].items()}
    return json.dumps(d)


def _from_json(text: str) -> _af.MapResult:
    d = json.loads(text)
    for k in ("energy", "actions", "weight_actions"):
        d[k] = {tuple(key.split("|", 1)): v for key, v in d[k].items()}
    return _af.MapResult(**d)


@dataclass
class LayerRun:
    """One workload layer: AccelForge's result for what was mapped, and the layer's own
    action counts and latency (equal to AccelForge's for a dense layer)."""

    layer: Layer
    bits: Bits
    result: _af.MapResult
    cached: bool
    sparse: transform.SparseLayer | None
    actions: dict[tuple[str, str], float]
    latency_s: float
    latency_by_component: dict[str, float]


def map_one(system: SystemSpec, bits: Bits, einsum: dict) -> _af.MapResult:
    """One AccelForge mapping on ``system`` in a private scratch dir (also a worker task)."""
    with _af.scratch_cwd():
        return _af.map_layer(arch.build_nodes(system, bits), einsum, bits)


def map_workload(system: SystemSpec, workload: WorkloadSpec, cache_dir: Path | None,
                 progress: bool = True, jobs: int = 1,
                 masks: dict[str, np.ndarray] | None = None) -> list[LayerRun]:
    """Map each distinct layer once (from cache when possible); one LayerRun per layer.

    With ``jobs > 1`` distinct layers are mapped in that many worker processes (each
    AccelForge run itself uses one job: its own pool is slower on small machines), the
    largest layers first so the workers finish together.
    """
    from tqdm import tqdm

    masks = masks or {}
    plan: dict[str, tuple[Layer, Bits, dict]] = {}
    keys: list[str] = []
    sparse: list[transform.SparseLayer | None] = []
    for layer in workload.layers:
        bits = workload.layer_bits(layer)
        sp = transform.plan(layer, masks.get(layer.name), Geometry.of_system(system, bits))
        einsum = _af.einsum_of(layer)
        key = cache_key(system, einsum, bits)
        plan.setdefault(key, (layer, bits, einsum))
        keys.append(key)
        sparse.append(sp)
    results: dict[str, tuple[_af.MapResult, bool]] = {}
    todo = []
    for key in plan:
        path = cache_dir / f"{key}.json" if cache_dir else None
        if path and path.exists():
            results[key] = (_from_json(path.read_text()), True)
        else:
            todo.append(key)
    todo.sort(key=lambda k: -plan[k][0].macs)
    bar = tqdm(total=len(plan), initial=len(results), desc="mapping", unit="layer",
               disable=not progress, dynamic_ncols=True)

    def done(key: str, r: _af.MapResult) -> None:
        if cache_dir:
            write_atomic(cache_dir / f"{key}.json", _to_json(r))
        results[key] = (r, False)
        bar.set_postfix_str(plan[key][0].name)
        bar.update()

    if jobs <= 1 or len(todo) <= 1:
        for key in todo:
            _, bits, einsum = plan[key]
            done(key, map_one(system, bits, einsum))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx) as pool:
            futures = {pool.submit(map_one, system, plan[k][1], plan[k][2]): k for k in todo}
            for f in as_completed(futures):
                done(futures[f], f.result())
    bar.close()
    runs = []
    for layer, key, sp in zip(workload.layers, keys, sparse):
        r, cached = results[key]
        actions, latency, by_comp = r.actions, r.latency_s, r.latency_by_component
        if sp is not None:  # the layer takes as long as its slowest component
            actions, by_comp = transform.correct(sp, r.actions, r.weight_actions, by_comp,
                                                 layer.positions)
            latency = max(by_comp.values())
        runs.append(LayerRun(layer, workload.layer_bits(layer), r, cached, sp, actions, latency,
                             by_comp))
    return runs
