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
    how = Execution(mode=args.mode, weights=args.weights, batch=args.batch, replicate=args.replicate)
    backend = backends.get(args.backend, out / "timeloop", args.timeloop_bin)
    limits = Limits(timeout_s=args.layer_timeout, memory_bytes=int(args.layer_memory_gb * 2**30))
    pipeline.check(system, workload, masks, how, backend, args.jobs, args.workload)  # before OUT is made
    with _run_in(out, cache) as scratch:
        try:
            res = pipeline.run(system, workload, masks, how, backend, cache, jobs=args.jobs, progress=not args.quiet,
                               scratch=scratch, limits=limits, isolate=True, workload_file=args.workload,
                               checked=True)
        except (MappingError, LimitError) as e:
            raise pipeline.unmappable(e, workload, args.workload, args.system) from None
        files = [p.name for p in write_all(res.report, res.tables, out, cache)]
    for w in res.report["warnings"]:  # with --quiet too: it silences the progress bar only
        print(f"cimco: warning: {w}", file=sys.stderr)
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
        _, st = sweeps.run(args.spec, out, args.executor, args.scheduler, args.jobs, cache, not args.quiet,
                           args.max_points, args.backend, args.objectives or sweeps.DEFAULT_OBJECTIVES)
    print(f"sweep: {st.points} points ({st.distinct} distinct): {st.done_before} done before, "
          f"{st.computed} computed, {st.mapper_calls} layers mapped; wrote "
          f"{', '.join(p.name for p in st.files)} to {out}")
    return 0


def _non_finite(data: object) -> list[tuple[str, str]]:
    """(dotted path, message) of every NaN or infinite number in parsed JSON, in file order
    (Python's json reads NaN, Infinity and overflowing numbers like 1e400 as floats)."""
    import math

    bad, stack = [], [("", data)]
    while stack:  # no recursion: the parser allows deeper nesting than a recursive walk
        path, v = stack.pop()
        if isinstance(v, dict):
            stack += reversed([(f"{path}.{k}" if path else str(k), x) for k, x in v.items()])
        elif isinstance(v, list):
            stack += reversed([(f"{path}[{i}]", x) for i, x in enumerate(v)])
        elif isinstance(v, float) and not math.isfinite(v):
            bad.append((path[:80], f"expected a finite number, got {v}"))
    return bad


def _field_problems(report: dict) -> list[tuple[str, str]]:
    """(dotted path, message) of what ``cimco report`` and ``cimco diff`` read that is missing,
    mistyped or out of range: energies, latencies, MACs, rates and areas must be >= 0, and
    energy_j > 0 where it divides."""
    import math

    bad: list[tuple[str, str]] = []

    def get(d: dict, key: str, path: str, want: type | tuple[type, ...], what: str):
        if key not in d:
            bad.append((path, "required field is missing"))
            return None
        v = d[key]
        if not isinstance(v, want) or isinstance(v, bool):
            bad.append((path, f"expected {what}, got {type(v).__name__}"))
            return None
        return v

    def num(d: dict, key: str, path: str, integer: bool = False, positive: bool = False) -> None:
        v = get(d, key, path, int if integer else (int, float), "an integer" if integer else "a number")
        try:
            huge = v is not None and not math.isfinite(float(v))
        except OverflowError:  # an integer beyond any float
            huge = True
        if v is not None and (huge or v < 0 or (positive and v == 0)):
            bad.append((path, f"expected a finite number {'above' if positive else 'at least'} 0, "
                              f"got {'a huge number' if huge else v}"))

    for k in ("workload", "system"):
        get(report, k, k, str, "text")
    t = get(report, "totals", "totals", dict, "an object")
    counts = ("dense_macs", "executed_macs", "macros_needed", "column_split_layers")
    for k in ("latency_s", "tops_per_w", "tops_per_w_on_chip", "tops", "fps", "area_m2", "energy_j",
              *counts) if t is not None else ():
        num(t, k, f"totals.{k}", integer=k in counts, positive=k == "energy_j")
    for k in ("vector_share", "energy_per_token_j", "tokens") if t is not None else ():
        if k in t:  # read by the summary where present (reports before 2026-12-04 lack them)
            num(t, k, f"totals.{k}", integer=k == "tokens", positive=k == "tokens")
    if t is not None:
        get(t, "mode", "totals.mode", str, "text")
        weights = get(t, "weights", "totals.weights", str, "text")
        if weights is not None:
            num(t, *(("weight_load_j", "totals.weight_load_j") if weights == "resident" else
                     ("batch", "totals.batch", True, True)))
    for c, e in (get(report, "energy_by_component", "energy_by_component", dict, "an object") or {}).items():
        num({c: e}, c, f"energy_by_component.{c}"[:80])
    for i, x in enumerate(get(report, "layers", "layers", list, "a list") or []):
        at = f"layers[{i}]"
        if not isinstance(x, dict):
            bad.append((at, f"expected an object, got {type(x).__name__}"))
            continue
        get(x, "name", f"{at}.name", str, "text")
        num(x, "dense_macs", f"{at}.dense_macs", integer=True)
        num(x, "energy_j", f"{at}.energy_j", positive=True)
        num(x, "latency_s", f"{at}.latency_s")
        b = get(x, "bits", f"{at}.bits", dict, "an object")
        for k in ("input", "weight", "output") if b is not None else ():
            num(b, k, f"{at}.bits.{k}", integer=True, positive=True)
        if x.get("memory_budget_bits"):  # absent, null or {} when AccelForge needed no budget
            for k, v in (get(x, "memory_budget_bits", f"{at}.memory_budget_bits", dict, "an object") or {}).items():
                num({k: v}, k, f"{at}.memory_budget_bits.{k}"[:80])
    return bad


def _report_problems(report: object, file: str) -> list[Problem]:
    """report.json checked like user input (it may have been edited) before anything of it
    is printed: the non-finite numbers anywhere if any, else the fields' problems; the first
    of them (:func:`cimco.spec._base.capped`), then what to do."""
    from cimco.spec._base import capped

    if not isinstance(report, dict):
        bad = [("", f"expected a JSON object at top level, got {type(report).__name__}")]
    else:
        bad = _non_finite(report) or _field_problems(report)
    if not bad:
        return []
    return (capped([Problem(file, path, message) for path, message in bad])
            + [Problem(file, "", "not a cimco report as `cimco map` writes it: rerun `cimco map`")])


def read_report(directory: str) -> dict:
    """The report.json of a report directory, checked like user input (SpecError)."""
    import json

    from cimco.spec.load import read_regular

    path = Path(directory) / "report.json"
    if not path.exists():
        raise SpecError([Problem(str(path), "", "no report.json here; run `cimco map` first")])
    try:
        report = json.loads(read_regular(path, 256 * 2**20, "report"))
    except RecursionError:
        raise SpecError([Problem(str(path), "", "not a cimco report: nested too deeply; rerun `cimco map`")]) from None
    except ValueError as e:  # not JSON or not UTF-8
        raise SpecError([Problem(str(path), "", f"not a cimco report ({str(e)[:100]}); rerun `cimco map`")]) from None
    problems = _report_problems(report, str(path))
    if problems:
        raise SpecError(problems)
    return report


def _sweep_summary(directory: str) -> str:
    """A finished sweep's points on its energy-latency Pareto front, with what varies."""
    from cimco import sweeps

    df = sweeps.read_table(directory)
    params = sweeps._params(df)
    rows = [[str(df["point"][i]), *(str(df[k][i]) for k in params), f"{df['energy_j'][i] * 1e6:.4g}",
             f"{df['latency_s'][i] * 1e6:.4g}", f"{df['area_m2'][i] * 1e6:.4g}"] for i in sweeps.pareto(df)]
    head = ["point", *params, "energy (uJ)", "latency (us)", "area (mm^2)"]
    return (f"sweep {directory}: {len(df)} points; the energy-latency Pareto front (sweep.html lists every point):\n"
            + _table(head, rows))


def cmd_report(args: argparse.Namespace) -> int:
    from cimco.report.write import summary_rows, totals_line

    if not (Path(args.dir) / "report.json").exists() and (Path(args.dir) / "results.csv").exists():
        print(_sweep_summary(args.dir))  # a sweep's directory
        return 0
    report = read_report(args.dir)
    print(_table(*summary_rows(report)))
    print()
    print(totals_line(report))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from cimco.report import diff

    problems: list[Problem] = []
    reports = []
    for d in (args.a, args.b):
        try:
            reports.append(read_report(d))
        except SpecError as e:
            problems += e.problems
    if problems:
        raise SpecError(problems)
    if args.out:
        _writable_dir(Path(args.out), "--out")
    a, b = reports
    print("\n".join(diff.heading(a, b, args.a, args.b)))
    for title, head, rows in diff.tables(a, b):
        print(f"\n{title}\n{_table(head, rows)}")
    if args.out:
        for p in diff.write(a, b, args.a, args.b, Path(args.out)):
            print(f"wrote {p}")
    return 0


# Elements of an example input `cimco export` builds (4 bytes each): the model's activations
# are a few times larger, so a mistyped shape is refused before torch tries to allocate them.
MAX_INPUT_ELEMENTS = 2**26


def _shape(text: str | None) -> tuple[int, ...] | None:
    """--input-shape as a tuple: positive integers, batch 1, at most ``MAX_INPUT_ELEMENTS`` elements."""
    import math

    if text is None:
        return None
    try:
        shape = tuple(int(x) for x in text.split(","))
    except ValueError:  # not integers, or over Python's 4300 digits
        shape = (0,)
    if min(shape) < 1 or shape[0] != 1:
        raise ExportError(f"--input-shape {text[:60]!r}: expected positive integers, batch first and "
                          f"batch 1 (e.g. 1,3,32,32): a workload is one inference (N inferences cost N times one)")
    n = math.prod(shape)
    if n > MAX_INPUT_ELEMENTS:
        size = f"{n:,}" if n < 2**100 else f"over 2^{n.bit_length() - 1}"  # str() of a huge int raises
        raise SpecError([Problem("cimco export", "--input-shape", f"{size} elements is above the "
                                 f"{MAX_INPUT_ELEMENTS:,} (2^26) an example input may have")])
    return shape


def _tokens(text: str | None, model: str) -> int | None:
    """--tokens as a whole number from 1 to the zoo's longest sequence; refused for a zoo model
    that has no sequence."""
    from cimco.torch import zoo

    if text is None:
        return None
    n = int(text) if text.strip().isdigit() and len(text) < 10 else 0
    if not 1 <= n <= zoo.MAX_SEQUENCE_LENGTH:
        raise SpecError([Problem("cimco export", "--tokens", f"expected a whole number of tokens from 1 to "
                                 f"{zoo.MAX_SEQUENCE_LENGTH}, got {text[:60]!r}")])
    if model in zoo.ZOO and model not in zoo.SEQUENCE:
        raise SpecError([Problem("cimco export", "--tokens", f"zoo model {model!r} has no sequence length "
                                 f"(sequence models: {', '.join(zoo.SEQUENCE)})")])
    return n


def _load_model(spec: str, shape: tuple[int, ...] | None, example: str, seed: int, length: int | None = None):
    """A zoo name or ``module:callable`` -> (model, example input, name, from the zoo?); a zoo
    sequence model at ``length`` tokens."""
    import importlib

    from cimco.torch import zoo
    from cimco.torch.export import example_input

    if spec in zoo.ZOO:
        model, x = zoo.get(spec, example, seed, length)
        name = spec if length is None else spec.removesuffix(str(zoo.SEQUENCE_LENGTH)) + str(length)
        return model, example_input(shape, example, seed) if shape else x, name, True
    mod_name, _, attr = spec.partition(":")
    if not attr:
        raise ExportError(f"--model {spec!r}: not a zoo model ({', '.join(zoo.ZOO)}) "
                          f"and not of the form module:callable")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ExportError(f"--model {spec!r}: no module named {e.name or mod_name!r} (is it on PYTHONPATH?)") from None
    except Exception as e:  # the user's code
        raise ExportError(f"--model {spec!r}: importing module {mod_name!r} failed in its own code: "
                          f"{str(e)[:200]}") from None
    if not callable(build := getattr(module, attr, None)):
        raise ExportError(f"--model {spec!r}: module {mod_name!r} has no callable {attr!r}")
    try:
        model = build()
    except Exception as e:  # the user's code
        raise ExportError(f"--model {spec!r}: calling {attr}() failed: {str(e)[:200]} (`module:callable` names a "
                          f"callable that takes no arguments and returns an nn.Module)") from None
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ExportError(f"--model {spec!r}: {attr}() returned a {type(model).__name__}, not a torch.nn.Module")
    if shape is None:
        raise ExportError(f"--model {spec!r}: give --input-shape (e.g. 1,3,32,32)")
    return model, example_input(shape, example, seed), attr, False


def _bits(text: str):
    """--bits as :class:`Bits`, each within the range a workload's bits may take."""
    from cimco.spec.workload import Bits

    meta = Bits.model_fields["input"].metadata
    lo, hi = (next(getattr(m, k) for m in meta if hasattr(m, k)) for k in ("ge", "le"))
    try:
        values = [int(p) for p in text.split(",")]
    except ValueError:  # not integers, or over Python's 4300 digits
        values = []
    if len(values) != 3 or not all(lo <= v <= hi for v in values):
        raise SpecError([Problem("cimco export", "--bits", f"expected three positive integers from {lo} to {hi}, "
                                 f"input,weight,output (e.g. 8,8,8), got {text[:60]!r}")])
    return Bits(input=values[0], weight=values[1], output=values[2])


def _file_name(text: str, option: str) -> str:
    """``text`` if it is a plain file name (it names files in OUT): not empty, no path
    separator, not ``.``/``..`` or hidden, no leading ``-``, printable, at most 200 bytes."""
    import os

    bad = ("it is empty" if not text else
           "it holds a path separator" if "/" in text or "\\" in text else
           "it starts with '.' or '-'" if text[0] in ".-" else
           "it holds a control or undecodable character" if not text.isprintable() else
           "it is over 200 bytes" if len(os.fsencode(text)) > 200 else "")
    if bad:
        raise SpecError([Problem("cimco export", option, f"expected a plain file name (letters, digits, _ and "
                                 f"the like; it names OUT/NAME.yaml), got {text[:60]!r}: {bad}")])
    return text


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
    if not args.workload:  # every option checked before OUT is made
        bits, shape, length = _bits(args.bits), _shape(args.input_shape), _tokens(args.tokens, args.model)
        if args.name is not None:
            _file_name(args.name, "--name")
    _writable_dir(out, "--out")
    if args.workload:
        workload = load(args.workload, "workload")
    else:
        from cimco.torch import export, zoo

        model, example, name, from_zoo = _load_model(args.model, shape, args.example, args.seed, length)
        tokens = zoo.tokens(args.model, length) if from_zoo else (length or 1)
        values = f"random normal, seed {args.seed}" if args.example == "random" else "all zeros"
        used = f"example input {'x'.join(map(str, example.shape))}, {values}"
        print(f"{used} (data-dependent branches follow it)")
        masks = args.masks if args.masks is not None else not from_zoo  # zoo weights: random init
        ex = export(model, example, args.name or name, source=f"cimco export --model {args.model}, {used}",
                    bits=bits, mask_file=f"{args.name or name}.masks.npz", masks=masks, tokens=tokens)
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
    from cimco.timeloop.arch import unsupported
    from cimco.timeloop.bundle import export_system

    system, workload, masks = _load(args)
    refused = unsupported(system)
    if refused:
        raise SpecError([Problem(args.system, "core_buffer.keeps", why) for why in refused])
    out = Path(args.out)
    with _run_in(out, None):
        done = export_system(system, workload, component_tables(system, workload), out, masks)
    n = sum(x.compressed is not None for x in done)
    print(f"wrote Timeloop v0.4 inputs for {len(done)} layers ({n} pruned, as compressed dense equivalents) "
          f"and index.yaml to {out}")
    return 0


def cmd_lrmp(args: argparse.Namespace) -> int:
    from cimco import backends
    from cimco.codesign.run import check, read_sensitivity, run, write
    from cimco.tables import component_tables

    system, workload, masks = _load(args)
    sens = read_sensitivity(args.sensitivity) if args.sensitivity else None
    check(workload, args.workload, sens)  # before OUT is made
    if args.objective == "energy" and not args.min_throughput:
        raise SpecError([Problem("cimco lrmp", "--min-throughput", "the energy objective needs a "
                                 "throughput floor (inferences per second)")])
    out = Path(args.out)
    with _run_in(out, None):
        def ert() -> dict:  # computed once the budgets are known to be feasible
            return component_tables(system, workload).ert

        mapper = backends.get(args.backend) if args.costs == "mapper" else None
        res = run(system, workload, ert, args.budget_factor, args.objective, sens, masks,
                  args.max_replication, args.budget, args.min_throughput, args.workload, mapper,
                  progress=not args.quiet)
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
        except SpecError as e:  # a macro file's problems once, validated alone or through a system
            problems += [p for p in e.problems if p not in problems]
    if problems:
        raise SpecError(problems)
    return 0


def cmd_specs_list(args: argparse.Namespace) -> int:
    from cimco.spec import BUNDLED, load

    for d in args.dirs or [BUNDLED / "arch_specs", BUNDLED / "workloads"]:
        for f in sorted(Path(d).glob("*.yaml")):
            spec = load(f)
            print(f"{spec.kind:9s} {spec.name:28s} {f}")
    return 0


def cmd_specs_schema(args: argparse.Namespace) -> int:
    from cimco.spec.schema import markdown

    print(markdown())
    return 0


def cmd_specs_init(args: argparse.Namespace) -> int:
    import os

    from cimco.spec.templates import TEMPLATES

    out = Path(args.out or f"my_{args.kind}.yaml")
    try:  # never over a file the user has
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise SpecError([Problem("cimco specs init", "--out", f"{out} exists: not overwritten")]) from None
    except OSError as e:
        raise SpecError([Problem("cimco specs init", "--out", f"cannot write {out}: {e.strerror}")]) from None
    with os.fdopen(fd, "w") as f:
        f.write(TEMPLATES[args.kind])
    print(f"wrote {out} (a {args.kind} template; `cimco specs validate {out}` checks it)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from cimco import doctor

    return doctor.main(repair=args.repair)


def default_jobs() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _objectives(text: str) -> tuple[str, str]:
    """An argparse type: two distinct sweep objectives (cimco.sweeps.OBJECTIVES), comma-separated."""
    from cimco.sweeps import OBJECTIVES as names  # imported only when the flag is given

    got = tuple(t.strip() for t in text.split(","))
    if len(got) != 2 or got[0] == got[1] or not set(got) <= set(names):
        raise argparse.ArgumentTypeError(f"expected two different of {', '.join(names)}, comma-separated; "
                                         f"got {text[:60]!r}")
    return got  # type: ignore[return-value]


def _count(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse exits 2 naming the flag otherwise)."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 2**31:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 2^31, got {text[:40]!r}")
    return int(text)


def _seed(text: str) -> int:
    """An argparse type: a random seed torch takes (0 to 2^63-1)."""
    if not text.strip().isdigit() or len(text.strip()) > 19 or int(text) >= 2**63:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2^63-1, got {text[:40]!r}")
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
    from cimco.backends import DEFAULT, NAMES, SWEEP_NAMES
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
    m.add_argument("--cache-dir", help="mapping and figure cache directory (default: OUT/cache)")
    m.add_argument("--no-cache", action="store_true", help="map every layer afresh")
    m.add_argument("--jobs", type=_count, default=default_jobs(),
                   help="worker processes mapping distinct layers in parallel, with --backend accelforge or timeloop "
                   "(the cimco backend maps in this process; default: CPUs)")
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
    m.add_argument("--replicate", action=argparse.BooleanOptionalAction, default=True,
                   help="sequential mode, resident weights: copy a layer's weights into the macros' free space "
                   "while that lowers its latency, its output positions split over the copies (default on)")
    m.add_argument("--layer-timeout", type=_positive, default=1800.0, metavar="SECONDS",
                   help="most wall time the backend may take to map one layer (default 1800)")
    m.add_argument("--layer-memory-gb", type=_positive, default=8.0, metavar="GB",
                   help="most memory (address space) one mapping worker may use, with --backend accelforge or "
                   "timeloop (the cimco backend maps in this process; default 8)")
    m.add_argument("--backend", choices=NAMES, default=DEFAULT,
                   help=f"mapper (default {DEFAULT}): cimco (cimco's search of the CIM mapspace, the best "
                   "mapping's counts in closed form, equal entry by entry to AccelForge's model), accelforge "
                   "(AccelForge's FFM mapper and model) or timeloop "
                   "(classic Timeloop's timeloop-mapper on the files `cimco timeloop export` writes, into "
                   "OUT/timeloop; exit 2 if the binary is absent). All go through the same sparsity, execution "
                   "and report")
    m.add_argument("--timeloop-bin", metavar="PATH",
                   help="with --backend timeloop: the timeloop-mapper to run (default: $CIMCO_TIMELOOP_BIN, "
                   "then PATH)")
    m.set_defaults(func=cmd_map)

    r = sub.add_parser("report", help="print the summary of an existing report or sweep directory")
    r.add_argument("dir", help="directory holding report.json (cimco map) or results.csv (cimco sweep)")
    r.set_defaults(func=cmd_report)

    df = sub.add_parser("diff", help="compare two report directories: totals, energy by component, layers")
    df.add_argument("a", help="report directory A (holding report.json)")
    df.add_argument("b", help="report directory B, compared with A (ratios are B/A)")
    df.add_argument("--out", metavar="DIR", help="also write diff.md and diff.html into DIR")
    df.set_defaults(func=cmd_diff)

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
    e.add_argument("--seed", type=_seed, default=0, help="seed of the random example input, 0 to 2^63-1 (default 0)")
    e.add_argument("--masks", action=argparse.BooleanOptionalAction, default=None,
                   help="reference the weights' exact zeros as masks (default: on for module:callable, "
                   "off for zoo models, whose weights are a random init)")
    e.add_argument("--tokens", help="tokens an inference processes (energy per token is energy over it); for "
                   "the zoo's sequence models also their length: BERT's tokens, GPT-2's prompt (prefill), or "
                   "the tokens in the KV cache before the one decoded (decode). Default: the zoo model's own "
                   "(128), else 1")
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
    lr.add_argument("--costs", choices=["spatial", "mapper"], default="spatial",
                    help="where each option's stage time and energy come from: spatial (cimco's spatial model, "
                    "default) or mapper (the --backend's mapping of the layer on its own macros, weights resident, "
                    "memories free: one mapping per layer and precision)")
    lr.add_argument("--backend", choices=SWEEP_NAMES, default=DEFAULT,
                    help=f"with --costs mapper: cimco or accelforge, as for `cimco map` (default {DEFAULT})")
    lr.add_argument("--quiet", action="store_true", help="no progress bar")
    lr.set_defaults(func=cmd_lrmp)

    s = sub.add_parser("specs", help="validate or list spec files")
    ssub = s.add_subparsers(dest="specs_command", required=True)
    v = ssub.add_parser("validate", help="validate spec files; lists every problem")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=cmd_specs_validate)
    ls = ssub.add_parser("list", help="list the specs in directories (default: the bundled ones)")
    ls.add_argument("dirs", nargs="*", help="directories of spec files (default: the specs installed with cimco, "
                    "which the repository's arch_specs/ and workloads/ link to)")
    ls.set_defaults(func=cmd_specs_list)
    sc = ssub.add_parser("schema", help="print every macro, system and workload spec field: type, range, unit, "
                         "default, meaning (Markdown)")
    sc.set_defaults(func=cmd_specs_schema)
    si = ssub.add_parser("init", help="write a commented template spec that validates")
    si.add_argument("kind", choices=["macro", "system", "workload"])
    si.add_argument("--out", metavar="FILE", help="where to write it (default: my_KIND.yaml; an existing file "
                    "is not overwritten)")
    si.set_defaults(func=cmd_specs_init)

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
    sw.add_argument("--objectives", type=_objectives, metavar="A,B",
                    help="the two totals the Pareto front is drawn over, all minimized: energy_j, latency_s "
                    "or area_m2 (default energy_j,latency_s; A on the y axis)")
    sw.add_argument("--jobs", type=_count, default=default_jobs(),
                    help="local processes mapping points, one point each at a time (default: CPUs; with the "
                         "cimco backend this process is one of them)")
    sw.add_argument("--cache-dir", help="mapping cache directory (default: OUT/cache)")
    sw.add_argument("--max-points", type=_count, default=None, metavar="N",
                    help="refuse a sweep of more than N points, counted before any is built (default 10000)")
    sw.add_argument("--backend", choices=SWEEP_NAMES, default=DEFAULT,
                    help=f"mapper for every point: cimco or accelforge, as for `cimco map` (default {DEFAULT})")
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


def _disk_full(e: BaseException | None) -> SpecError | None:
    """A full disk (or quota) anywhere in ``e``'s chain of causes, as the one problem to
    report, naming the file being written when the error names it; else None."""
    import errno

    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            what = "no space left on device" if e.errno == errno.ENOSPC else "disk quota exceeded"
            where = str(e.filename) if e.filename is not None else "a file cimco was writing"
            return SpecError([Problem(where, "", f"{what}; free some space and rerun")])
        e = e.__cause__ or e.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command. User errors exit 2 with every problem listed, and so does a full disk
    (or quota), naming the file; anything else is an internal error (exit 1) shown in one
    line, with the traceback only under CIMCO_DEBUG=1."""
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
        full = _disk_full(e)
        if full is not None:  # the machine's problem, not cimco's: no traceback
            print(f"cimco: error: {full}", file=sys.stderr)
            return 2
        if os.environ.get("CIMCO_DEBUG"):
            raise
        kind = type(e).__name__ if isinstance(e, CimcoError) else f"internal error ({type(e).__name__})"
        text = str(e)
        print(f"cimco: {kind}: {text[:2000]}{'...' if len(text) > 2000 else ''}\n"
              f"(set CIMCO_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
