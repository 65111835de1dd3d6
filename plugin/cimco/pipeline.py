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
from cimco.errors import Problem, SpecError
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
          backend: Backend, jobs: int = 1, workload_file: str = "workload") -> None:
    """Refuse, before any work, what cannot run (SpecError naming each problem): bits the
    macro does not support, an execution the system cannot give, options the backend does
    not honour (named by their flag)."""
    from cimco.spec.load import check_fit

    problems = check_fit(system, workload, workload_file)
    if problems:
        raise SpecError(problems)
    execution.check(system, workload, masks, how)
    flags = {"--mode": how.mode, "--weights": how.weights, "--batch": how.batch, "--jobs": jobs}
    refused = backend.check(system, flags)
    if refused:
        raise SpecError([Problem("cimco map", f"--backend {backend.name}", why) for why in refused])


def run(system: SystemSpec, workload: WorkloadSpec, masks: dict[str, np.ndarray] | None, how: Execution,
        backend: Backend, cache_dir: Path | None, jobs: int = 1, progress: bool = False,
        scratch: Path | None = None, limits: Limits | None = None, isolate: bool = False,
        workload_file: str = "workload") -> Result:
    """Map ``workload`` on ``system`` with ``backend``, run it as ``how`` says, and report.

    ``masks`` are the workload's weight masks by layer (:func:`cimco.sparse.masks.resolve`);
    the mapping cache is ``cache_dir`` (None: no cache); ``jobs``, ``scratch``, ``limits`` and
    ``isolate`` go to :func:`cimco.mapping.map_workload`; ``workload_file`` names the
    workload in errors."""
    from cimco.mapping import map_workload
    from cimco.report import build_report
    from cimco.sparse import transform
    from cimco.tables import component_tables

    check(system, workload, masks, how, backend, jobs, workload_file)
    runs = map_workload(system, workload, backend, cache_dir, progress=progress, jobs=jobs, masks=masks,
                        scratch=scratch, limits=limits, isolate=isolate)
    tables = component_tables(system, workload, cache_dir)
    runs = transform.apply(system, runs)
    runs, plan = execution.apply(system, workload, runs, tables.ert, how)
    mapped = len({id(r.result) for r in runs if not r.cached})
    return Result(build_report(system, workload, runs, plan, tables, backend), tables, mapped)
