"""The notebook API: ``cimco.map`` returns a Report, ``cimco.sweep`` a DataFrame."""

from __future__ import annotations

from pathlib import Path

from cimco.report import Tables
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec


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
        mode: str = "sequential", weights: str = "auto", batch: int = 1) -> Report:
    """Map ``workload`` on ``system`` (spec files or spec objects) and return its Report.

    With ``out`` the report's files are written there as by ``cimco map`` (mapping cache in
    ``out/cache`` unless ``cache_dir`` is given); without, nothing is written unless
    ``cache_dir`` is given. Mask files of a workload object are looked up from the cwd.
    ``mode``, ``weights`` and ``batch`` are ``cimco map``'s ``--mode``, ``--weights`` and
    ``--batch`` (:mod:`cimco.execution`); a value they do not allow is a ValueError, an
    execution the system cannot give a SpecError, both before any mapping.
    """
    from cimco import execution
    from cimco.mapping import map_workload
    from cimco.report import build_report, component_tables
    from cimco.sparse.masks import resolve
    from cimco.spec import load
    from cimco.spec.load import check_fit

    s = system if isinstance(system, SystemSpec) else load(system, "system")
    w = workload if isinstance(workload, WorkloadSpec) else load(workload, "workload")
    w_path = "workload" if isinstance(workload, WorkloadSpec) else str(workload)
    how = execution.Execution(mode, weights, batch)
    problems = check_fit(s, w, w_path)
    if problems:
        from cimco.errors import SpecError

        raise SpecError(problems)
    masks = resolve(s, w, w_path)
    execution.check(s, w, masks, how)
    cache = Path(cache_dir) if cache_dir else Path(out) / "cache" if out else None
    runs = map_workload(s, w, cache, progress=progress, jobs=jobs, masks=masks)
    tables = component_tables(s, w, cache)
    report = Report(build_report(s, w, runs, tables, how), tables)
    if out is not None:
        from cimco.report.write import write_all

        write_all(report.data, tables, Path(out))
    return report


def sweep(spec: str | Path, out: str | Path, executor: str = "local", scheduler: str | None = None,
          jobs: int = 1, progress: bool = False):
    """Run (or resume) the sweep file ``spec`` into ``out``; its results as a DataFrame (the
    run's counts in ``.attrs['stats']``)."""
    from dataclasses import asdict

    from cimco import sweeps as sw

    df, stats = sw.run(spec, out, executor, scheduler, jobs, progress=progress)
    df.attrs["stats"] = {k: v for k, v in asdict(stats).items() if k != "files"}
    return df
