"""The ``cimco`` command line.

Exit codes: 0 success, 2 user error (one message listing every problem, no traceback),
1 internal error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cimco.errors import CimcoError, Problem, SpecError


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def cmd_map(args: argparse.Namespace) -> int:
    from cimco.mapping import map_workload
    from cimco.report import build_report, component_tables
    from cimco.report.write import summary_rows, totals_line, write_all
    from cimco.spec import load_pair

    from cimco.sparse.masks import resolve

    system, workload = load_pair(args.system, args.workload)
    masks = resolve(system, workload, args.workload)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SpecError([Problem(str(out), "", "--out must be a directory")])
    cache = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else out / "cache"
    runs = map_workload(system, workload, cache, progress=not args.quiet, jobs=args.jobs,
                        masks=masks)
    tables = component_tables(system, workload, cache)
    report = build_report(system, workload, runs, tables)
    write_all(report, tables, out)
    if not args.quiet:
        print(_table(*summary_rows(report)))
        print()
        print(totals_line(report))
        n_cached = sum(x["cached"] for x in report["layers"])
        print(f"{len(runs)} layers ({n_cached} from cache); wrote report.json, layers.csv, "
              f"report.md, energy_by_component.png, ERT.yaml, ART.yaml to {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from cimco.report.write import summary_rows, totals_line

    path = Path(args.dir) / "report.json"
    if not path.exists():
        raise SpecError([Problem(str(path), "", "no report.json here; run `cimco map` first")])
    report = json.loads(path.read_text())
    print(_table(*summary_rows(report)))
    print()
    print(totals_line(report))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cimco import timeloop
    from cimco.spec import load

    workload = load(args.workload, "workload")
    paths = timeloop.export(workload, Path(args.out))
    print(f"wrote {len(paths)} Timeloop v0.4 problem files to {args.out}")
    return 0


def cmd_specs_validate(args: argparse.Namespace) -> int:
    from cimco.spec import load

    problems: list[Problem] = []
    for f in args.files:
        try:
            spec = load(f)
            print(f"ok  {f}  ({spec.kind} {spec.name!r})")
        except SpecError as e:
            problems += e.problems
    if problems:
        raise SpecError(problems)
    return 0


def cmd_specs_list(args: argparse.Namespace) -> int:
    from cimco.spec import load

    for d in args.dirs:
        for f in sorted(Path(d).glob("*.yaml")):
            spec = load(f)
            print(f"{spec.kind:9s} {spec.name:28s} {f}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from cimco import doctor

    return doctor.main(repair=args.repair)


def default_jobs() -> int:
    import os

    return len(os.sched_getaffinity(0))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cimco", description=__doc__.splitlines()[0] if __doc__ else "")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("map", help="map a workload on a system with AccelForge and write a report",
                       description="Map every layer of WORKLOAD on SYSTEM with AccelForge; write "
                       "report.json, layers.csv, report.md, energy_by_component.png, ERT.yaml and "
                       "ART.yaml into OUT (and nothing outside it).")
    m.add_argument("--system", required=True, help="system spec YAML (kind: system)")
    m.add_argument("--workload", required=True, help="workload YAML (kind: workload)")
    m.add_argument("--out", required=True, help="output directory (created if missing)")
    m.add_argument("--cache-dir", help="mapping cache directory (default: OUT/cache)")
    m.add_argument("--no-cache", action="store_true", help="map every layer afresh")
    m.add_argument("--jobs", type=int, default=default_jobs(),
                   help="worker processes mapping distinct layers in parallel (default: CPUs)")
    m.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    m.set_defaults(func=cmd_map)

    r = sub.add_parser("report", help="print the summary of an existing report directory")
    r.add_argument("dir", help="directory holding report.json")
    r.set_defaults(func=cmd_report)

    e = sub.add_parser("export", help="write a workload as classic Timeloop v0.4 problem files",
                       description="One CNN-Layer problem YAML per layer (Timeloop v0.4 format).")
    e.add_argument("--workload", required=True, help="workload YAML (kind: workload)")
    e.add_argument("--out", required=True, help="output directory")
    e.set_defaults(func=cmd_export)

    s = sub.add_parser("specs", help="validate or list spec files")
    ssub = s.add_subparsers(dest="specs_command", required=True)
    v = ssub.add_parser("validate", help="validate spec files; lists every problem")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=cmd_specs_validate)
    ls = ssub.add_parser("list", help="list the specs in directories")
    ls.add_argument("dirs", nargs="*", default=["arch_specs", "workloads"])
    ls.set_defaults(func=cmd_specs_list)

    d = sub.add_parser("doctor", help="check Python, AccelForge, hwcomponents and their binaries")
    d.add_argument("--repair", action="store_true",
                   help="rebuild the NeuroSim/CACTI binaries from the sources in their wheels")
    d.set_defaults(func=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as e:
        print(f"cimco: error: {e}", file=sys.stderr)
        return 2
    except CimcoError as e:
        print(f"cimco: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
