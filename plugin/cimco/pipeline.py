"""The one path from specs to a report; every entry point (``cimco map``, ``cimco sweep``,
``cimco.map``, ``cimco.sweep``, the Dask executor) calls :func:`run`.

    validate -> map each distinct layer through a backend (cache, dedup, workers, limits)
             -> sparsity (cimco.sparse.transform) -> execution (cimco.execution)
             -> report (cimco.report)

Each step is a function of the previous step's output; none calls back into another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cimco import execution
from cimco.backends import Backend
from cimco.errors import CimcoError, LimitError, MappingError, Problem, SpecError
from cimco.execution import Execution
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec
from cimco.tables import Tables
from cimco.workers import Limits


@dataclass
class Result:
    report: dict  # the report.json contract
    tables: Tables  # ERT/ART of the system
    mapped: int  # distinct layers the backend mapped in this run (cache misses)


def check(system: SystemSpec, workload: WorkloadSpec, masks: dict[str, np.ndarray] | None, how: Execution,
          backend: Backend, jobs: int = 1, workload_file: str = "workload") -> list | None:
    """Refuse, before any work, what cannot run (SpecError naming each problem): bits the
    macro does not support, an execution the system cannot give, options the backend does
    not honour (named by their flag). Returns the execution model's stages, for :func:`run`."""
    from cimco.spec.load import check_fit

    problems = check_fit(system, workload, workload_file)
    if problems:
        raise SpecError(problems)
    stages = execution.check(system, workload, masks, how)
    flags = {"--mode": how.mode, "--weights": how.weights, "--batch": how.batch, "--jobs": jobs}
    refused = backend.check(system, flags)
    if refused:
        raise SpecError([Problem("cimco map", f"--backend {backend.name}", why) for why in refused])
    return stages  # the execution model's stages (cimco.execution.check), given to its apply again


def run(system: SystemSpec, workload: WorkloadSpec, masks: dict[str, np.ndarray] | None, how: Execution,
        backend: Backend, cache_dir: Path | None, jobs: int = 1, progress: bool = False,
        scratch: Path | None = None, limits: Limits | None = None, isolate: bool = False,
        workload_file: str = "workload", checked: bool = False) -> Result:
    """Map ``workload`` on ``system`` with ``backend``, run it as ``how`` says, and report.

    ``masks`` are the workload's weight masks by layer (:func:`cimco.sparse.masks.resolve`);
    the mapping cache is ``cache_dir`` (None: no cache); ``jobs``, ``scratch``, ``limits`` and
    ``isolate`` go to :func:`cimco.mapping.map_workload`; ``workload_file`` names the
    workload in errors."""
    from cimco.checks import warnings_of
    from cimco.mapping import map_workload
    from cimco.report import build_report
    from cimco.sparse import transform
    from cimco.tables import component_tables

    stages = False if checked else check(system, workload, masks, how, backend, jobs, workload_file)
    runs = map_workload(system, workload, backend, cache_dir, progress=progress, jobs=jobs, masks=masks,
                        scratch=scratch, limits=limits, isolate=isolate)
    tables = component_tables(system, workload)
    runs = transform.apply(system, runs)
    runs, plan = execution.apply(system, workload, runs, how, stages, tables)
    mapped = len({id(r.result) for r in runs if not r.cached})
    report = build_report(system, workload, runs, plan, tables, backend)
    report["warnings"] = warnings_of(system, workload, report["totals"].get("tops_per_w_macro"))
    return Result(report, tables, mapped)


def unmappable(e: MappingError | LimitError, workload: WorkloadSpec, workload_file: str,
               system_file: str) -> CimcoError:
    """A layer the backend could not map, as the user's problem when the spec caused it: a
    memory the spec sizes left no mapping (named by its field), or a limit was passed."""
    from cimco.arch import SPEC_FIELDS

    if isinstance(e, MappingError) and not e.full:
        return e  # not traced to the spec: an internal error (exit 1)
    i, layer = next((i, x) for i, x in enumerate(workload.layers) if x.name == e.layer)
    shape = (f"{layer.type} {layer.in_channels}->{layer.out_channels} channels, input "
             f"{layer.input_hw[0]}x{layer.input_hw[1]}, kernel {layer.kernel_hw[0]}x{layer.kernel_hw[1]}, "
             f"{layer.macs:,} MACs")
    if isinstance(e, LimitError):
        return SpecError([Problem(workload_file, f"layers[{i}]", f"layer {layer.name!r} ({shape}): {e}; "
                                  f"raise --layer-timeout / --layer-memory-gb, or split the layer")])
    fields = ", ".join(SPEC_FIELDS.get(c, c) for c in e.full)
    return SpecError([Problem(system_file, fields, f"too small for any mapping of layer {layer.name!r} "
                              f"({shape}) in {workload_file}: every candidate overflowed {', '.join(e.full)}")])
