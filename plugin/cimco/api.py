"""The notebook API: ``cimco.map`` returns a Report, ``cimco.sweep`` a DataFrame."""

from __future__ import annotations

from pathlib import Path

from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec
from cimco.tables import Tables


class Report:
    """One mapped workload: ``.totals`` (dict), ``.layers`` (DataFrame, one row per layer),
    ``.data`` (the report.json contract), ``.area_m2`` (by part); shows itself as HTML."""

    def __init__(self, data: dict, tables: Tables):
        self.data, self.tables = data, tables
        self.totals: dict = dict(data["totals"])
        self.area_m2: dict[str, float] = dict(tables.art)

    @property
    def layers(self):
        import pandas as pd

        from cimco.report.html import busiest

        rows = []
        for x in self.data["layers"]:
            row = {k: v for k, v in x.items() if not isinstance(v, dict | list) and k != "mapping"}
            row.update({f"bits.{k}": v for k, v in (x.get("bits") or {}).items()})
            row["busiest_part"] = busiest(x)
            row.update({f"energy_j.{c}": e for c, e in x.get("energy_by_component", {}).items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("name")

    def to_html(self) -> str:
        from cimco.report.html import render

        return render(self.data, self.area_m2)

    def _repr_html_(self) -> str:
        from cimco.report.html import fragment

        return fragment(self.data, self.area_m2)

    def __repr__(self) -> str:
        from cimco.report.write import totals_line

        return f"<cimco Report {self.data['workload']} on {self.data['system']}: {totals_line(self.data)}>"


def map(system: str | Path | SystemSpec, workload: str | Path | WorkloadSpec, out: str | Path | None = None,
        cache_dir: str | Path | None = None, jobs: int = 1, progress: bool = False,  # noqa: A001
        mode: str = "sequential", weights: str = "auto", batch: int = 1, backend: str | None = None,
        replicate: bool = True) -> Report:
    """Map ``workload`` on ``system`` (spec files or spec objects) and return its Report.

    With ``out`` the report's files are written there as by ``cimco map`` (mapping cache in
    ``out/cache`` unless ``cache_dir`` is given); without, nothing is written unless
    ``cache_dir`` is given. Mask files of a workload object are looked up from the cwd.
    ``mode``, ``weights``, ``batch``, ``backend`` and ``replicate`` are ``cimco map``'s ``--mode``,
    ``--weights``, ``--batch``, ``--backend`` and ``--replicate`` (:mod:`cimco.execution`,
    :mod:`cimco.backends`); a value they do not allow is a ValueError, an execution the
    system or backend cannot give a SpecError, both before any mapping.
    """
    from cimco import backends, pipeline
    from cimco.execution import Execution
    from cimco.sparse.masks import resolve
    from cimco.spec import load

    s = system if isinstance(system, SystemSpec) else load(system, "system")
    w = workload if isinstance(workload, WorkloadSpec) else load(workload, "workload")
    w_path = "workload" if isinstance(workload, WorkloadSpec) else str(workload)
    how = Execution(mode, weights, batch, replicate)
    engine = backends.get(backend or backends.DEFAULT, Path(out) / "timeloop" if out is not None else None)
    cache = Path(cache_dir) if cache_dir else Path(out) / "cache" if out else None
    res = pipeline.run(s, w, resolve(s, w, w_path), how, engine, cache, jobs=jobs, progress=progress,
                       workload_file=w_path)
    report = Report(res.report, res.tables)
    if out is not None:
        from cimco.report.write import write_all

        write_all(report.data, res.tables, Path(out), cache)
    return report


def sweep(spec: str | Path, out: str | Path, executor: str = "local", scheduler: str | None = None,
          jobs: int = 1, progress: bool = False, max_points: int | None = None, backend: str | None = None):
    """Run (or resume) the sweep file ``spec`` into ``out``; its results as a DataFrame (the
    run's counts in ``.attrs['stats']``). A sweep of more than ``max_points`` points (default
    :data:`cimco.sweeps.MAX_POINTS`) is refused before any point is built. ``backend`` is
    ``cimco sweep``'s ``--backend`` (default :data:`cimco.backends.DEFAULT`)."""
    from dataclasses import asdict

    from cimco import backends
    from cimco import sweeps as sw

    if (backend or backends.DEFAULT) not in backends.SWEEP_NAMES:
        raise ValueError(f"backend must be one of {', '.join(backends.SWEEP_NAMES)}, got {backend!r}")
    df, stats = sw.run(spec, out, executor, scheduler, jobs, progress=progress, max_points=max_points,
                       backend=backend or backends.DEFAULT)
    df.attrs["stats"] = {k: v for k, v in asdict(stats).items() if k != "files"}
    return df
