"""Map every distinct layer of a workload once through a backend, from the cache when possible.

Layers with identical shape and bits are mapped once (the first of them names the mapping).
Entries are cached under :func:`cimco.cache.key`. Worker processes die with the process that
started them (:mod:`cimco.workers`), and every mapping works in a scratch dir named after
its process under ``scratch`` (default ``cache_dir/.scratch``), so scratch left by a killed
run is removed by the next one.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cimco import _af, cache
from cimco.backends import Backend, LayerResult, by_action
from cimco.io import remove_stale_scratch
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer, WorkloadSpec
from cimco.workers import Limits, naming, run_in_pool


@dataclass
class LayerRun:
    """One workload layer: the backend's result for the dense layer it mapped, and the
    layer's own action counts and latency, which the sparsity and execution steps correct
    (equal to the backend's for a dense layer run alone)."""

    layer: Layer
    bits: Bits
    result: LayerResult
    cached: bool
    tensor_actions: dict[tuple[str, str, str], float]  # (part, tensor I/W/O, action) -> count
    latency_s: float
    latency_by_component: dict[str, float]
    mask: np.ndarray | None = None  # the layer's weight mask (True = kept), if it is pruned
    sparse: object | None = None  # its cimco.sparse.transform.SparseLayer, once applied

    @classmethod
    def of(cls, layer: Layer, bits: Bits, result: LayerResult, cached: bool, mask: np.ndarray | None) -> LayerRun:
        return cls(layer, bits, result, cached, dict(result.tensor_actions), result.latency_s,
                   dict(result.latency_by_component), mask)

    @property
    def actions(self) -> dict[tuple[str, str], float]:
        """Counts by (part, action): the tensors' summed, and the backend's actions that move
        no tensor (the compute unit's)."""
        out = by_action(self.tensor_actions)
        return {**{k: v for k, v in self.result.actions.items() if k not in out}, **out}


def _map(backend: Backend, system: SystemSpec, layer: Layer, bits: Bits, scratch: Path | None,
         timeout_s: float | None) -> LayerResult:
    """One layer through ``backend`` (a worker task), or, a dynamic layer on a system with a
    digital unit, on that unit (:mod:`cimco.digital`, whatever the backend)."""
    if system.on_digital_unit(layer):
        from cimco import digital

        return digital.result(system, layer, bits)
    return backend.map_layer(system, layer, bits, scratch, timeout_s)


def map_workload(system: SystemSpec, workload: WorkloadSpec, backend: Backend, cache_dir: Path | None,
                 progress: bool = True, jobs: int = 1, masks: dict[str, np.ndarray] | None = None,
                 scratch: Path | None = None, limits: Limits | None = None, isolate: bool = False) -> list[LayerRun]:
    """Map each distinct layer once (from cache when possible); one LayerRun per layer.

    With ``jobs > 1`` (or ``isolate``, as the CLI does, so that ``limits.memory_bytes``
    applies) distinct layers are mapped in that many worker processes, the largest layers
    first so the workers finish together, unless the backend maps ``in_process``. A layer
    that fails raises MappingError or LimitError with its name in ``.layer``.
    """
    from tqdm import tqdm

    masks = masks or {}
    engine = {"backend": backend.name, **backend.versions()}
    plan: dict[str, tuple[Layer, Bits]] = {}
    keys: list[str] = []
    for layer in workload.layers:
        bits = workload.layer_bits(layer)
        k = cache.key(system, _af.einsum_of(layer), bits, engine)
        plan.setdefault(k, (layer, bits))
        keys.append(k)
    if scratch is None and cache_dir:
        scratch = cache_dir / ".scratch"
    remove_stale_scratch(scratch or tempfile.gettempdir())
    results: dict[str, tuple[LayerResult, bool]] = {}
    todo = []
    for k in plan:
        path = cache_dir / f"{k}.json" if cache_dir else None
        r = cache.read(path, cache.result_from_json) if path and path.exists() else None
        if r is not None:
            results[k] = (r, True)
        else:
            todo.append(k)
    todo.sort(key=lambda k: -plan[k][0].macs)
    bar = tqdm(total=len(plan), initial=len(results), desc="mapping", unit="layer",
               disable=not progress, dynamic_ncols=True)

    def done(k: str, r: LayerResult) -> None:
        if cache_dir:
            cache.write(cache_dir / f"{k}.json", cache.result_to_json(r))
        results[k] = (r, False)
        bar.set_postfix_str(plan[k][0].name)
        bar.update()

    limits = limits or Limits()
    tasks = {k: (backend, system, *plan[k], scratch, limits.timeout_s) for k in todo}
    try:
        if tasks and not backend.in_process and (isolate or (jobs > 1 and len(tasks) > 1)):
            run_in_pool(_map, tasks, done, jobs, limits.memory_bytes, lambda k: plan[k][0].name)
        else:
            for k, task in tasks.items():
                with naming(plan[k][0].name):
                    done(k, _map(*task))
    finally:
        bar.close()
        remove_stale_scratch(scratch or tempfile.gettempdir())
    return [LayerRun.of(layer, workload.layer_bits(layer), *results[k], masks.get(layer.name))
            for layer, k in zip(workload.layers, keys)]


def with_counts(run: LayerRun, tensor_actions: dict, latency_by_component: dict[str, float], **other) -> LayerRun:
    """``run`` with corrected counts (by part, tensor and action); its latency is that of its
    slowest part."""
    return replace(run, tensor_actions=tensor_actions, latency_by_component=latency_by_component,
                   latency_s=max(latency_by_component.values()), **other)
