"""The ``cimco`` command line.

Exit codes: 0 success, 2 user error (one message listing every problem, no traceback),
1 internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from cimco.errors import CimcoError, ExportError, LimitError, MappingError, Problem, SpecError


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def _writable_dir(path: Path, option: str) -> None:
    """Create ``path`` if missing and write and remove a probe file in it, so that a bad
    output directory is reported before any mapping rather than after it."""
    import os
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".cimco-probe-")
        os.close(fd)
        os.unlink(probe)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        reason = "it is a file" if path.is_file() else getattr(e, "strerror", None) or str(e)
        raise SpecError([Problem(str(path), "", f"{option} must be a writable directory ({reason})")]) from None


@contextlib.contextmanager
def _run_in(out: Path, cache: Path | None):
    """Around a command that writes into OUT: check OUT (and the cache dir) before any work;
    keep matplotlib's font cache (by default under HOME) in the run's own cache dir; make
    SIGTERM unwind like Ctrl-C (workers stopped, scratch and half-written temp files
    removed). Yields the root for scratch dirs; restores the environment and handler after."""
    import os
    import signal

    _writable_dir(out, "--out")
    if cache is not None:
        _writable_dir(cache, "--cache-dir")
    own = cache if cache is not None else out / ".cache"
    old_mpl = os.environ.get("MPLCONFIGDIR")
    os.environ.setdefault("MPLCONFIGDIR", str((own / "matplotlib").absolute()))
    old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        yield own / ".scratch"
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if old_mpl is None:
            os.environ.pop("MPLCONFIGDIR", None)
        if cache is None:  # without a cache, leave OUT with the outputs only
            import shutil

            shutil.rmtree(own, ignore_errors=True)


def _load(args: argparse.Namespace):
    """--system and --workload, checked against each other, and the workload's masks."""
    from cimco.sparse.masks import resolve
    from cimco.spec import load_pair

    system, workload = load_pair(args.system, args.workload)
    return system, workload, resolve(system, workload, args.workload)


def _cache_dir(args: argparse.Namespace, out: Path) -> Path | None:
    return None if args.no_cache else Path(args.cache_dir) if args.cache_dir else out / "cache"


def cmd_map(args: argparse.Namespace) -> int:
    from cimco import backends, pipeline
    from cimco.execution import Execution
    from cimco.report.write import summary_rows, totals_line, write_all
    from cimco.workers import Limits

    system, workload, masks = _load(args)
    out = Path(args.out)
    cache = _cache_dir(args, out)
    how = Execution(mode=args.mode, weights=args.weights, batch=args.batch)
    backend = backends.get(args.backend, out / "timeloop", args.timeloop_bin)
    limits = Limits(timeout_s=args.layer_timeout, memory_bytes=int(args.layer_memory_gb * 2**30))
    pipeline.check(system, workload, masks, how, backend, args.jobs, args.workload)  # before OUT is made
    with _run_in(out, cache) as scratch:
        try:
            res = pipeline.run(system, workload, masks, how, backend, cache, jobs=args.jobs, progress=not args.quiet,
                               scratch=scratch, limits=limits, isolate=True, workload_file=args.workload)
        except (MappingError, LimitError) as e:
            raise pipeline.unmappable(e, workload, args.workload, args.system) from None
        files = [p.name for p in write_all(res.report, res.tables, out)]
    if not args.quiet:
        print(_table(*summary_rows(res.report)))
        print()
        print(totals_line(res.report))
        n_cached = sum(x["cached"] for x in res.report["layers"])
        extra = (" and timeloop/ (inputs and timeloop-mapper outputs per mapped layer)"
                 if args.backend == "timeloop" else "")
        print(f"{len(workload.layers)} layers ({n_cached} from cache); wrote {', '.join(files)}{extra} to {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from cimco import sweeps

    out = Path(args.out)
    cache = Path(args.cache_dir) if args.cache_dir else out / "cache"
    with _run_in(out, cache):
        _, st = sweeps.run(args.spec, out, args.executor, args.scheduler, args.jobs, cache, not args.quiet)
    print(f"sweep: {st.points} points ({st.distinct} distinct): {st.done_before} done before, "
          f"{st.computed} computed, {st.mapper_calls} layers mapped; wrote "
          f"{', '.join(p.name for p in st.files)} to {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from cimco.report.write import summary_rows, totals_line
    from cimco.spec.load import read_regular

    path = Path(args.dir) / "report.json"
    if not path.exists():
        raise SpecError([Problem(str(path), "", "no report.json here; run `cimco map` first")])
    try:
        report = json.loads(read_regular(path, 256 * 2**20, "report"))
        table, totals = _table(*summary_rows(report)), totals_line(report)
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # not what `cimco map` writes
        raise SpecError([Problem(str(path), "", f"not a cimco report ({type(e).__name__}: {str(e)[:100]}); "
                                 f"rerun `cimco map`")]) from None
    print(table)
    print()
    print(totals)
    return 0


def _load_model(spec: str, input_shape: str | None, example: str, seed: int):
    """A zoo name or ``module:callable`` -> (model, example input, name, from the zoo?)."""
    import importlib

    from cimco.torch import zoo
    from cimco.torch.export import example_input

    try:
        shape = tuple(int(x) for x in input_shape.split(",")) if input_shape else None
    except ValueError:
        shape = (0,)
    if shape is not None and (min(shape) < 1 or shape[0] != 1):
        raise ExportError(f"--input-shape {input_shape!r}: expected positive integers, batch first and "
                          f"batch 1 (e.g. 1,3,32,32): a workload is one inference (N inferences cost N times one)")
    if spec in zoo.ZOO:
        model, x = zoo.get(spec, example, seed)
        return model, example_input(shape, example, seed) if shape else x, spec, True
    mod_name, _, attr = spec.partition(":")
    if not attr:
        raise ExportError(f"--model {spec!r}: not a zoo model ({', '.join(zoo.ZOO)}) "
                          f"and not of the form module:callable")
    try:
        model = getattr(importlib.import_module(mod_name), attr)()
    except Exception as e:  # the user's code
        raise ExportError(f"--model {spec!r}: cannot build the model: {type(e).__name__}: {e}") from None
    if shape is None:
        raise ExportError(f"--model {spec!r}: give --input-shape (e.g. 1,3,32,32)")
    return model, example_input(shape, example, seed), attr, False


def _bits(text: str):
    from cimco.spec.workload import Bits

    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise SpecError([Problem("cimco export", "--bits", f"expected three positive integers "
                                 f"input,weight,output (e.g. 8,8,8), got {text!r}")])
    return Bits(input=int(parts[0]), weight=int(parts[1]), output=int(parts[2]))


def cmd_export(args: argparse.Namespace) -> int:
    from cimco import timeloop
    from cimco.spec import load
    from cimco.spec.workload import WorkloadSpec

    if args.list:
        from cimco.torch import zoo

        for name, (_, shape) in zoo.ZOO.items():
            print(f"{name:24s} input {'x'.join(map(str, shape))}")
        return 0
    if not args.out:
        raise SpecError([Problem("cimco export", "--out", "an output directory is required")])
    out = Path(args.out)
    _writable_dir(out, "--out")
    if args.workload:
        workload = load(args.workload, "workload")
    else:
        from cimco.torch import export

        bits = _bits(args.bits)
        model, example, name, from_zoo = _load_model(args.model, args.input_shape, args.example, args.seed)
        values = f"random normal, seed {args.seed}" if args.example == "random" else "all zeros"
        used = f"example input {'x'.join(map(str, example.shape))}, {values}"
        print(f"{used} (data-dependent branches follow it)")
        masks = args.masks if args.masks is not None else not from_zoo  # zoo weights: random init
        ex = export(model, example, args.name or name, source=f"cimco export --model {args.model}, {used}",
                    bits=bits, mask_file=f"{args.name or name}.masks.npz", masks=masks)
        workload = WorkloadSpec.model_validate(ex.workload)
        ex.write(out)
        passed = sum(1 for *_, what in ex.summary if what.startswith("passed"))
        print(f"{workload.name}: {len(workload.layers)} layers exported, {passed} ops passed through, "
              f"{len(ex.masks)} masks, {workload.macs / 1e6:.1f} M MACs -> {out / workload.name}.yaml")
    paths = timeloop.export(workload, out / "timeloop")
    print(f"wrote {len(paths)} Timeloop v0.4 problem files and index.yaml (repeat counts) to {out / 'timeloop'}")
    return 0


def cmd_timeloop_export(args: argparse.Namespace) -> int:
    from cimco.tables import component_tables
    from cimco.timeloop.bundle import export_system

    system, workload, masks = _load(args)
    out = Path(args.out)
    with _run_in(out, None):
        done = export_system(system, workload, component_tables(system, workload, None), out, masks)
    n = sum(x.compressed is not None for x in done)
    print(f"wrote Timeloop v0.4 inputs for {len(done)} layers ({n} pruned, as compressed dense equivalents) "
          f"and index.yaml to {out}")
    return 0


def cmd_lrmp(args: argparse.Namespace) -> int:
    from cimco.codesign.run import read_sensitivity, run, write
    from cimco.tables import component_tables

    system, workload, masks = _load(args)
    sens = read_sensitivity(args.sensitivity) if args.sensitivity else None
    if args.objective == "energy" and not args.min_throughput:
        raise SpecError([Problem("cimco lrmp", "--min-throughput", "the energy objective needs a "
                                 "throughput floor (inferences per second)")])
    out = Path(args.out)
    with _run_in(out, None):
        ert = component_tables(system, workload, None).ert
        res = run(system, workload, ert, args.budget_factor, args.objective, sens, masks,
                  args.max_replication, args.budget, args.min_throughput)
        write(res, out)
    print((out / "lrmp.md").read_text())
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


def cmd_specs_schema(args: argparse.Namespace) -> int:
    from cimco.spec.schema import markdown

    print(markdown())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from cimco import doctor

    return doctor.main(repair=args.repair)


def default_jobs() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _count(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse exits 2 naming the flag otherwise)."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 2**31:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 2^31, got {text[:40]!r}")
    return int(text)


def _positive(text: str) -> float:
    """An argparse type: a finite number > 0."""
    import math

    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text[:40]!r}")
    return x


def parser() -> argparse.ArgumentParser:
    from cimco.backends import NAMES
    from cimco.execution import MODES, WEIGHTS

    p = argparse.ArgumentParser(
        prog="cimco", description="SRAM compute-in-memory accelerators and CIM-compressed DNNs "
        "on AccelForge and hwcomponents.",
        epilog="Exit codes: 0 success, 2 bad input (every problem listed), 1 internal error.")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("map", help="map a workload on a system and write a report",
                       description="Map every distinct layer of WORKLOAD on SYSTEM with a backend (AccelForge "
                       "by default), apply sparsity and the whole-network execution, and write report.json, "
                       "layers.csv, report.md, report.html, energy_by_component.png, ERT.yaml and ART.yaml "
                       "into OUT (and nothing outside it).")
    m.add_argument("--system", required=True, help="system spec YAML (kind: system)")
    m.add_argument("--workload", required=True, help="workload YAML (kind: workload)")
    m.add_argument("--out", required=True, help="output directory (created if missing)")
    m.add_argument("--cache-dir", help="mapping cache directory (default: OUT/cache)")
    m.add_argument("--no-cache", action="store_true", help="map every layer afresh")
    m.add_argument("--jobs", type=_count, default=default_jobs(),
                   help="worker processes mapping distinct layers in parallel (default: CPUs)")
    m.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    m.add_argument("--mode", choices=MODES, default="sequential",
                   help="sequential: layers one after another on all macros; pipelined: every layer "
                   "a stage on its own macros, throughput set by the slowest (default sequential)")
    m.add_argument("--weights", choices=WEIGHTS, default="auto",
                   help="resident: weights programmed once into the macros (reported apart as "
                   "weight_load_j); reload: loaded from DRAM every batch; auto: resident when one "
                   "copy of every layer fits in the macros (default)")
    m.add_argument("--batch", type=_count, default=1,
                   help="inputs per weight load with --weights reload (default 1)")
    m.add_argument("--layer-timeout", type=_positive, default=1800.0, metavar="SECONDS",
                   help="most wall time AccelForge may take to map one layer (default 1800)")
    m.add_argument("--layer-memory-gb", type=_positive, default=8.0, metavar="GB",
                   help="most memory (address space) one mapping worker may use (default 8)")
    m.add_argument("--backend", choices=NAMES, default="accelforge",
                   help="mapper: accelforge (default: AccelForge's FFM mapper and model) or timeloop (classic "
                   "Timeloop's timeloop-mapper on the files `cimco timeloop export` writes, into OUT/timeloop; "
                   "exit 2 if the binary is absent). Both go through the same sparsity, execution and report")
    m.add_argument("--timeloop-bin", metavar="PATH",
                   help="with --backend timeloop: the timeloop-mapper to run (default: $CIMCO_TIMELOOP_BIN, "
                   "then PATH)")
    m.set_defaults(func=cmd_map)

    r = sub.add_parser("report", help="print the summary of an existing report directory")
    r.add_argument("dir", help="directory holding report.json")
    r.set_defaults(func=cmd_report)

    e = sub.add_parser("export", help="export a torch model (or a workload) to a cimco workload "
                       "and Timeloop v0.4 problems",
                       description="From --model: run the model once on an example input and write "
                       "OUT/NAME.yaml (every conv2d, linear, matmul and matrix-product einsum that ran, "
                       "in execution order, with bits; a module run twice gives NAME and NAME#2), "
                       "OUT/NAME.masks.npz (zeros of the weights, if any and masks are on) and "
                       "OUT/timeloop/*.yaml with index.yaml (each file's repeat count). Ops with macro "
                       "work cimco cannot express are refused (exit 2) with the op and module named. "
                       "From --workload: the Timeloop files only.")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="zoo name (see `cimco export --list`) or module:callable")
    src.add_argument("--workload", help="an existing workload YAML")
    src.add_argument("--list", action="store_true", help="list the zoo models and exit")
    e.add_argument("--input-shape", help="example input shape, batch first, e.g. 1,3,32,32 (zoo: its "
                   "own). Batch must be 1: a workload is one inference; other batches are refused")
    e.add_argument("--example", choices=["random", "zeros"], default="random",
                   help="example input values: random normal from --seed (default) or zeros; "
                   "data-dependent branches follow it")
    e.add_argument("--seed", type=int, default=0, help="seed of the random example input (default 0)")
    e.add_argument("--masks", action=argparse.BooleanOptionalAction, default=None,
                   help="reference the weights' exact zeros as masks (default: on for module:callable, "
                   "off for zoo models, whose weights are a random init)")
    e.add_argument("--bits", default="8,8,8", help="input,weight,output bits (default 8,8,8)")
    e.add_argument("--name", help="workload name (default: the model's)")
    e.add_argument("--out", help="output directory")
    e.set_defaults(func=cmd_export)

    lr = sub.add_parser("lrmp", help="choose per-layer precision and replication (LRMP MILP)",
                        description="Spatial (layer-pipelined) mapping: every layer owns its "
                        "macros. Picks each layer's weight precision and replication under a macro "
                        "budget and an accuracy budget; compares uniform max precision, replication "
                        "only, precision only and joint. Writes lrmp.md, lrmp_layers.csv and "
                        "lrmp_stages.png into OUT.")
    lr.add_argument("--system", required=True)
    lr.add_argument("--workload", required=True)
    lr.add_argument("--out", required=True)
    lr.add_argument("--objective", choices=["throughput", "latency", "energy"], default="throughput")
    lr.add_argument("--budget", type=_count, help="macro budget (default: --budget-factor x baseline)")
    lr.add_argument("--budget-factor", type=_positive, default=2.0,
                    help="macro budget as a multiple of the baseline's macros (default 2)")
    lr.add_argument("--sensitivity", help="CSV layer,bits,loss (default: assumed 2^-2b noise proxy)")
    lr.add_argument("--min-throughput", type=_positive,
                    help="with --objective energy: every stage at most 1/this seconds")
    lr.add_argument("--max-replication", type=_count, default=64,
                    help="most copies of one layer (default 64)")
    lr.set_defaults(func=cmd_lrmp)

    s = sub.add_parser("specs", help="validate or list spec files")
    ssub = s.add_subparsers(dest="specs_command", required=True)
    v = ssub.add_parser("validate", help="validate spec files; lists every problem")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=cmd_specs_validate)
    ls = ssub.add_parser("list", help="list the specs in directories")
    ls.add_argument("dirs", nargs="*", default=["arch_specs", "workloads"])
    ls.set_defaults(func=cmd_specs_list)
    sc = ssub.add_parser("schema", help="print every macro and system spec field: type, range, unit, default, "
                         "meaning (Markdown)")
    sc.set_defaults(func=cmd_specs_schema)

    sw = sub.add_parser("sweep", help="map many system/macro/workload variants from a sweep YAML",
                        description="Run (or resume) the design points of SPEC (grid: and points: of "
                        "dotted-path overrides; see cimco.sweeps). Finished points go to OUT/results.jsonl "
                        "as they finish, so a killed sweep resumes where it stopped; writes "
                        "results.parquet, results.csv, pareto.png and sweep.html into OUT.")
    sw.add_argument("spec", help="sweep YAML (kind: sweep)")
    sw.add_argument("--out", required=True, help="output directory (created if missing)")
    sw.add_argument("--executor", choices=["local", "dask"], default="local",
                    help="local process pool (default) or a dask.distributed cluster")
    sw.add_argument("--scheduler", help="with --executor dask: the scheduler, e.g. tcp://HOST:8786")
    sw.add_argument("--jobs", type=_count, default=default_jobs(),
                    help="local worker processes, each mapping one point (default: CPUs)")
    sw.add_argument("--cache-dir", help="mapping cache directory (default: OUT/cache)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)

    tl = sub.add_parser("timeloop", help="classic Timeloop v0.4 / Accelergy interop")
    tlsub = tl.add_subparsers(dest="timeloop_command", required=True)
    tle = tlsub.add_parser("export", help="write Timeloop v0.4 inputs for every layer",
                           description="Per layer, OUT/NNN_layer/ with arch.yaml (the multi-macro "
                           "hierarchy), problem.yaml, mapper.yaml, constraints.yaml (the CIM dataflow) and "
                           "Accelergy-format ERT.yaml/ART.yaml from cimco's component models, so "
                           "`timeloop-mapper arch.yaml problem.yaml mapper.yaml constraints.yaml ERT.yaml "
                           "ART.yaml` runs there with no Accelergy plug-ins; OUT/index.yaml lists the layers "
                           "with repeat counts and seconds per Timeloop cycle. Pruned layers are exported as "
                           "their compressed dense equivalents with an index-memory level.")
    tle.add_argument("--system", required=True, help="system spec YAML (kind: system)")
    tle.add_argument("--workload", required=True, help="workload YAML (kind: workload)")
    tle.add_argument("--out", required=True, help="output directory (created if missing)")
    tle.set_defaults(func=cmd_timeloop_export)

    d = sub.add_parser("doctor", help="check Python, AccelForge, hwcomponents and their binaries")
    d.add_argument("--repair", action="store_true",
                   help="rebuild the NeuroSim/CACTI binaries from the sources in their wheels")
    d.set_defaults(func=cmd_doctor)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. User errors exit 2 with every problem listed; anything else is an
    internal error (exit 1) shown in one line, with the traceback only under CIMCO_DEBUG=1."""
    import os

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, ExportError) as e:
        print(f"cimco: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("cimco: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of cimco's or its engine's: say so, in one paragraph
        if os.environ.get("CIMCO_DEBUG"):
            raise
        kind = type(e).__name__ if isinstance(e, CimcoError) else f"internal error ({type(e).__name__})"
        text = str(e)
        print(f"cimco: {kind}: {text[:2000]}{'...' if len(text) > 2000 else ''}\n"
              f"(set CIMCO_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
