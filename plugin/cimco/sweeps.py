"""Design-space sweeps (``cimco sweep``, ``cimco.sweep``): many (system, workload) points from
one YAML, resumable, on a process pool or a Dask cluster.

A sweep file names a base system and workload and the overrides to try, by dotted path:

    kind: sweep
    system: ../arch_specs/mars_system.yaml      # relative to this file
    workload: ../workloads/resnet20_cifar.yaml
    grid:                                       # Cartesian product
      macro.adc_bits: [4, 5, 6]
      system.macros_per_core: [4, 8]
      workload.bits.weight: [4, 8]
      workload.sparsity: {pattern: row_block, density: [0.25, 0.5]}   # every layer
    points:                                     # and/or a list, after the grid's points
      - {macro.wordlines_on: 32, workload: ../workloads/vgg16_cifar.yaml}

Roots: ``system.`` (the system spec), ``macro.`` (its macro), ``workload.`` (the workload;
``workload.sparsity.*`` and ``workload.input_density`` set every layer); ``system`` and
``workload`` alone swap the base file. Every point is validated like a spec file before any
mapping, and unknown paths are refused with the closest valid key.

Each finished point is appended (one line, hash of its full specs) to ``OUT/results.jsonl``;
a rerun skips the points already there. Points that share every layer mapping (they differ
only in sparsity, say) wait for the first of them, which fills the mapping cache for the
rest. Tables are written at the end: ``results.parquet``, ``results.csv``, ``pareto.png``
and ``sweep.html``, each atomically, in point order (identical whatever the executor).
"""

from __future__ import annotations

import collections
import difflib
import functools
import hashlib
import io
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from cimco import backends
from cimco.backends import DEFAULT
from cimco.errors import LimitError, MappingError, Problem, SpecError
from cimco.pipeline import unmappable
from cimco.spec._base import Strict, _models_in, capped, clip, problems_from, short
from cimco.spec.load import check_fit, read_yaml
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Layer, WorkloadSpec

LAYER_WIDE = ("sparsity", "input_density")  # workload.<these> set every layer
MAX_POINTS = 10_000  # default --max-points: each point is validated and kept in memory
RESULTS = "results.jsonl"
POINTS = "points"  # OUT/points/<point hash>/report.json: each point's report
# totals a Pareto front may be drawn over (all minimized): (label, scale, unit)
OBJECTIVES = {"energy_j": ("energy", 1e6, "uJ"), "latency_s": ("latency", 1e3, "ms"), "area_m2": ("area", 1e6, "mm^2")}
DEFAULT_OBJECTIVES = ("energy_j", "latency_s")
MAX_LABELS = 12  # Pareto points labelled with their parameters in the figure


class SweepSpec(Strict):
    kind: Literal["sweep"] = "sweep"
    name: str = Field(default="sweep", min_length=1, max_length=200)
    system: str = Field(min_length=1, max_length=1000)
    workload: str = Field(min_length=1, max_length=1000)
    grid: dict[str, Any] = {}
    points: list[dict[str, Any]] = []


@dataclass
class Point:
    index: int
    params: dict[str, Any]  # dotted path -> value, as the sweep file gives them
    system: SystemSpec
    workload: WorkloadSpec
    workload_path: str
    hash: str = ""
    signature: str = ""  # equal for points that need the same layer mappings


@dataclass
class Stats:
    points: int = 0
    distinct: int = 0
    done_before: int = 0
    computed: int = 0
    mapper_calls: int = 0  # layer mappings run by AccelForge in this run (cache misses)
    files: list[Path] = field(default_factory=list)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _choices(spec: SweepSpec) -> dict[str, list]:
    grid = _flatten(spec.grid)
    return {k: v if isinstance(v, list) else [v] for k, v in grid.items()}


def count(spec: SweepSpec) -> int:
    """How many points :func:`expand` yields, without expanding them."""
    choices = _choices(spec)
    n = (math.prod(len(v) for v in choices.values()) if choices else 0) + len(spec.points)
    return n or 1


def expand(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """The grid's Cartesian product (a scalar is one choice), then the listed points, one at a time."""
    choices = _choices(spec)
    if not choices and not spec.points:
        yield {}
    if choices:
        for combo in itertools.product(*choices.values()):
            yield dict(zip(choices, combo))
    for p in spec.points:
        yield _flatten(p)


def _label(combo: dict[str, Any]) -> str:
    return ", ".join(f"{k}={short(v, 30)}" for k, v in combo.items()) or "base"


def _path_problem(path: str) -> str | None:
    """Why ``path`` names no spec field (with the closest valid key), or None."""
    parts = path.split(".")
    if parts == ["system"] or parts == ["workload"]:
        return None
    roots = {"system": [SystemSpec], "macro": [SystemSpec.model_fields["macro"].annotation],
             "workload": [WorkloadSpec]}
    if parts[0] not in roots or len(parts) < 2:
        return "expected a path starting with system., macro. or workload. (or system / workload for a file)"
    models = roots[parts[0]]
    if parts[0] == "workload" and parts[1] in LAYER_WIDE:
        models = [Layer]
    for i, part in enumerate(parts[1:], 1):
        fields = {k: f for m in models for k, f in m.model_fields.items()}
        if part not in fields:
            near = difflib.get_close_matches(part, sorted(fields), n=1)
            where = ".".join(parts[:i])
            return f"unknown key {part!r} under {where}" + (f"; did you mean {near[0]!r}?" if near else
                                                             f" (valid: {', '.join(sorted(fields))})")
        models = _models_in(fields[part].annotation)
        if not models and i < len(parts) - 1:
            return f"{'.'.join(parts[:i + 1])} is a value, not a mapping"
    return None


def _set(data: dict, parts: list[str], value: Any) -> None:
    for p in parts[:-1]:
        if not isinstance(data.get(p), dict):
            data[p] = {}
        data = data[p]
    data[parts[-1]] = value


def _system_data(path: Path) -> dict:
    """A base system's mapping, a ``levels:`` list expanded into the template keys, so that one
    dotted path (``system.noc.link_bandwidth_bits_per_s``, ``system.cores``) sweeps either form."""
    from cimco.spec.levels import expanded
    from cimco.spec.load import _inline_macro

    data = _inline_macro(read_yaml(path), path)
    try:
        return expanded(data)
    except ValidationError as e:
        raise SpecError(problems_from(e, clip(str(path)), data, SystemSpec)) from None


def _validate(model, data: dict, file: str, prefix: str) -> tuple[Any, list[Problem]]:
    """``data`` validated as ``model`` in both phases, problems under ``prefix``."""
    try:
        spec = model.model_validate(data)
    except ValidationError as e:
        return None, [Problem(file, f"{prefix}.{p.path}" if p.path else prefix, p.message)
                      for p in problems_from(e, file, data, model)]
    probs = spec.macro.check(file, "macro") if model is SystemSpec else spec.check(file)
    return spec, [Problem(p.file, f"{prefix}.{p.path}", p.message) for p in probs]


def load(path: str | Path, max_points: int = MAX_POINTS, backend: str = DEFAULT) -> tuple[SweepSpec, list[Point]]:
    """Read a sweep file and build every point's specs; every problem raised at once. A sweep
    of more than ``max_points`` points is refused (counted, not expanded) before anything else."""
    import copy

    path = Path(path)
    file = clip(str(path))
    data = read_yaml(path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(problems_from(e, file, data, SweepSpec)) from None
    n = count(spec)
    if n > max_points:
        raise SpecError([Problem(file, "grid", f"{n:,} points, above the limit of {max_points:,} "
                                 f"(--max-points): split the sweep or raise the limit")])
    keys = dict.fromkeys([*_choices(spec), *(k for p in spec.points for k in _flatten(p))])
    bad = {k: _path_problem(k) for k in keys}
    problems = [Problem(file, k, why) for k, why in bad.items() if why]
    if problems:
        raise SpecError(capped(problems))
    bases: dict[tuple[str, str], dict] = {}

    def base(kind: str, rel: Any) -> dict:
        if not isinstance(rel, str):
            raise SpecError([Problem(file, kind, f"expected a file path, got {short(rel)}")])
        p = (path.parent / rel).resolve()
        if (kind, str(p)) not in bases:
            bases[kind, str(p)] = _system_data(p) if kind == "system" else read_yaml(p)
        return copy.deepcopy(bases[kind, str(p)])

    points, seen = [], set()
    for i, combo in enumerate(expand(spec)):
        label = _label(combo)
        sys_file = combo.get("system", spec.system)
        wl_file = combo.get("workload", spec.workload)
        try:
            sdata, wdata = base("system", sys_file), base("workload", wl_file)
        except SpecError as e:
            problems += [p for p in e.problems if (p.path, p.message) not in seen]
            seen |= {(p.path, p.message) for p in e.problems}
            continue
        for key, value in combo.items():
            root, *rest = key.split(".")
            if not rest:
                continue
            if root == "macro":
                _set(sdata, ["macro", *rest], value)
            elif root == "system":
                _set(sdata, rest, value)
            elif rest[0] in LAYER_WIDE:
                for layer in wdata.get("layers") or []:
                    if isinstance(layer, dict):
                        _set(layer, rest, value)
            else:
                _set(wdata, rest, value)
        where = f"point {i} ({label})"
        system, p1 = _validate(SystemSpec, sdata, file, f"{where}: system")
        workload, p2 = _validate(WorkloadSpec, wdata, file, f"{where}: workload")
        p3 = check_fit(system, workload, f"{file}: {where}: workload") if system and workload and not p1 + p2 else []
        for p in p1 + p2 + p3:
            if (p.path.split(": ", 1)[-1], p.message) not in seen:  # once per problem, not per point
                seen.add((p.path.split(": ", 1)[-1], p.message))
                problems.append(p)
        if system and workload and not p1 + p2 + p3:
            points.append(Point(i, combo, system, workload, str((path.parent / wl_file).resolve())))
    if problems:
        raise SpecError(capped(problems))
    for p in points:
        _hash(p, backend)
    return spec, points


def _hash(p: Point, backend: str) -> None:
    """The point's identity (its full specs, the workload's dir for mask files, cimco's
    version, the backend) and its mapping signature (the cache keys of its layers)."""
    from cimco import __version__, _af, cache

    b = backends.get(backend)
    engine = {"backend": b.name, **b.versions()}
    ident = {"system": p.system.model_dump(mode="json"), "workload": p.workload.model_dump(mode="json"),
             "dir": str(Path(p.workload_path).parent), "cimco": __version__,
             **({"backend": backend} if backend != "accelforge" else {})}
    p.hash = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
    keys = sorted({cache.key(p.system, _af.einsum_of(x), p.workload.layer_bits(x), engine) for x in p.workload.layers})
    p.signature = hashlib.sha256("".join(keys).encode()).hexdigest()


def run_point(system: SystemSpec, workload: WorkloadSpec, workload_path: str, cache_dir: str,
              backend: str = DEFAULT, report_dir: str | None = None) -> tuple[dict, int]:
    """Map and report one point (a worker task, default execution, the ``backend`` named):
    its report's summary and the number of layers mapped (cache misses). Writes only under
    ``cache_dir`` and, given ``report_dir``, the point's report.json there."""
    os.environ.setdefault("MPLCONFIGDIR", str(Path(cache_dir, "matplotlib")))
    return _point(system, workload, workload_path, cache_dir, backend, report_dir)


def _point(system: SystemSpec, workload: WorkloadSpec, workload_path: str, cache_dir: str,
           backend: str, report_dir: str | None = None) -> tuple[dict, int]:
    from cimco import pipeline
    from cimco.execution import Execution
    from cimco.sparse.masks import resolve

    res = pipeline.run(system, workload, resolve(system, workload, workload_path), Execution(), backends.get(backend),
                       Path(cache_dir), workload_file=workload_path)
    report = res.report
    if report_dir:  # the point's whole report.json (`cimco report` and `cimco diff` read it)
        from cimco.io import write_atomic

        write_atomic(Path(report_dir) / "report.json", json.dumps(report, allow_nan=False))  # compact: 5x faster
    # the totals but the weights' placement (a list per macro, in the point's report.json): a table's cells
    totals = {k: v for k, v in report["totals"].items() if k != "placement"}
    return {"system": report["system"], "workload": report["workload"], "totals": totals}, res.mapped


# totals every finished point carries (a report's, per point): numbers, finite, not negative
RESULT_TOTALS = ("energy_j", "latency_s", "dense_macs", "executed_macs", "tops_per_w", "tops", "fps", "area_m2")


def _record_problem(rec: object) -> str | None:
    """Why a results line is not one :func:`run` wrote, or None."""
    if not isinstance(rec, dict):
        return f"expected an object, got {type(rec).__name__}"
    for k in ("hash", "system", "workload"):
        if not isinstance(rec.get(k), str):
            return f"{k}: expected a string, got {short(rec.get(k))}"
    totals = rec.get("totals")
    if not isinstance(totals, dict):
        return f"totals: expected a mapping, got {short(totals)}"
    for k in RESULT_TOTALS:
        v = totals.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            return f"totals.{k}: expected a finite number >= 0, got {short(v)}"
    return None


def _read_done(path: Path) -> dict[str, dict]:
    """Finished points by hash. A line cut short by a kill is dropped (and cut off the file); a
    complete line that is not what :func:`run` writes is an error naming the file and line."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        os.truncate(path, end)
    done, problems = {}, []
    for n, line in enumerate(data[:end].splitlines(), 1):
        try:
            rec = json.loads(line, parse_constant=lambda c: math.nan)
            why = _record_problem(rec)
        except (ValueError, RecursionError) as e:  # not JSON (UTF-8, syntax), or nested past the limit
            why = f"not JSON ({type(e).__name__})"
        if why:
            problems.append(Problem(clip(str(path)), f"line {n}", f"{why}; remove the line to recompute its point"))
        else:
            done[rec["hash"]] = rec
    if problems:
        raise SpecError(capped(problems))
    return done


class _Dask:
    """Points on a dask.distributed cluster (its workers must see OUT's file system)."""

    def __init__(self, scheduler: str):
        from distributed import Client

        try:
            self.client = Client(scheduler, set_as_default=False, timeout="20s")
        except OSError as e:
            raise SpecError([Problem("cimco sweep", "--scheduler", f"cannot reach {scheduler!r}: {e}")]) from None

    def submit(self, *args):
        return self.client.submit(*args, pure=False)

    def wait(self, futures):
        from distributed import wait

        with self.client.as_current():  # not the process-wide default client
            return wait(futures, return_when="FIRST_COMPLETED").done

    def close(self, failed: bool) -> None:
        self.client.close()


class _Local:
    """Points in spawned workers (:class:`cimco.workers.Pool`). With an in-process backend
    (:attr:`cimco.backends.Backend.in_process`) this process maps points too, one at a time
    while it waits, beside ``jobs - 1`` workers: it has everything imported already, where a
    worker takes about 0.4 s to start (docs/benchmarks.md)."""

    def __init__(self, jobs: int, in_process: bool):
        from cimco.workers import Pool

        workers = jobs - 1 if in_process else jobs
        self.pool = Pool(workers) if workers else None
        self.ahead = 2 * workers  # points given to the workers at a time; the rest wait here
        self.queue: collections.deque = collections.deque()
        self.running: set[Future] = set()
        self.inline = in_process

    def submit(self, fn: Callable, *args) -> Future:
        if not self.inline:
            return self.pool.submit(fn, *args)
        f = Future()
        self.queue.append((f, args))
        return f

    def _give(self) -> None:
        """Hand queued points to the workers, up to :attr:`ahead` in flight."""
        self.running = {f for f in self.running if not f.done()}
        while self.queue and len(self.running) < self.ahead:
            f, args = self.queue.popleft()
            self.running.add(f)
            self.pool.submit(run_point, *args).add_done_callback(functools.partial(_copy, f))

    def wait(self, futures: list[Future]) -> set[Future]:
        from concurrent.futures import FIRST_COMPLETED, wait

        if self.inline:
            self._give()
            done = {f for f in futures if f.done()}
            if not done and self.queue:
                f, args = self.queue.popleft()
                try:
                    f.set_result(_point(*args))
                except Exception as e:  # as a worker's would: raised by result()
                    f.set_exception(e)
                return {f for f in futures if f.done()}
            if done:
                return done
        return wait(futures, return_when=FIRST_COMPLETED).done

    def close(self, failed: bool) -> None:
        if self.pool:
            self.pool.close(failed)


def _copy(to: Future, src: Future) -> None:
    if src.exception() is not None:
        to.set_exception(src.exception())
    else:
        to.set_result(src.result())


def run(path: str | Path, out: str | Path, executor: str = "local", scheduler: str | None = None,
        jobs: int = 1, cache_dir: str | Path | None = None, progress: bool = True,
        max_points: int | None = None, backend: str = DEFAULT,
        objectives: tuple[str, str] = DEFAULT_OBJECTIVES):
    """Run (or resume) the sweep in ``path`` (at most ``max_points`` points) with the mapping
    ``backend`` (:data:`cimco.backends.SWEEP_NAMES`); write its tables into ``out``, the Pareto
    front over the two ``objectives`` (of :data:`OBJECTIVES`). Returns the results table
    (pandas, one row per point, in point order) and the run's Stats."""
    from tqdm import tqdm

    from cimco.io import write_atomic

    spec, points = load(path, max_points or MAX_POINTS, backend)
    out = Path(out)
    cache = (Path(cache_dir) if cache_dir else out / "cache").absolute()  # workers may run elsewhere
    log = out / RESULTS
    out.mkdir(parents=True, exist_ok=True)
    done = _read_done(log)
    todo: dict[str, Point] = {}
    for p in points:
        if p.hash not in done:
            todo.setdefault(p.hash, p)
    stats = Stats(points=len(points), distinct=len({p.hash for p in points}))
    stats.done_before = stats.distinct - len(todo)
    groups: dict[str, list[Point]] = {}
    for p in todo.values():
        groups.setdefault(p.signature, []).append(p)
    if executor == "dask":
        if not scheduler:
            raise SpecError([Problem("cimco sweep", "--scheduler", "--executor dask needs a scheduler address")])
        ex = _Dask(scheduler)
    else:
        ex = _Local(max(1, min(jobs, len(todo) or 1)), backends.get(backend).in_process)
    bar = tqdm(total=stats.distinct, initial=stats.done_before, desc="sweep", unit="point",
               disable=not progress, dynamic_ncols=True)
    failed = True
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        def submit(p: Point):
            return ex.submit(run_point, p.system, p.workload, p.workload_path, str(cache), backend,
                             str(out.absolute() / POINTS / p.hash))

        # the first point of each signature maps its layers; the others then read the cache
        pending = {submit(g[0]): (g[0], g[1:]) for g in groups.values()}
        while pending:
            for f in ex.wait(list(pending)):
                p, followers = pending.pop(f)
                try:
                    summary, calls = f.result()
                except (MappingError, LimitError) as e:  # the point's spec is at fault, or a limit
                    where = f"{clip(str(path))}: point {p.index} ({_label(p.params)})"
                    raise unmappable(e, p.workload, f"{where}: workload", f"{where}: system") from None
                rec = {"hash": p.hash, **summary}
                os.write(fd, (json.dumps(rec, allow_nan=False) + "\n").encode())
                os.fsync(fd)
                done[p.hash] = rec
                stats.computed += 1
                stats.mapper_calls += calls
                bar.update()
                pending.update({submit(q): (q, []) for q in followers})
        failed = False
    finally:
        os.close(fd)
        bar.close()
        ex.close(failed)
    df = table(points, done)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    files = {"results.parquet": buf.getvalue(), "results.csv": df.to_csv(index=False),
             **pages(spec.name, df, objectives)}
    for name, data in files.items():
        write_atomic(out / name, data)
    stats.files = [out / n for n in files]
    return df, stats


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list | dict) else v


def table(points: list[Point], done: dict[str, dict]):
    """One row per point: its overrides, system and workload names and report totals."""
    import pandas as pd

    params = list(dict.fromkeys(k for p in points for k in p.params))
    rows = []
    for p in points:
        rec = done[p.hash]
        row = {"point": p.index, **{k: _cell(p.params.get(k)) for k in params},
               "system_name": rec["system"], "workload_name": rec["workload"]}
        row.update({k: _cell(v) for k, v in rec["totals"].items()})
        row["hash"] = p.hash
        rows.append(row)
    return pd.DataFrame(rows)


def read_table(out: str | Path):
    """A finished sweep's ``results.csv`` (in ``out``), checked like user input: each point's
    energy, latency and area finite numbers >= 0 (SpecError naming the file and line)."""
    import pandas as pd

    from cimco.spec.load import read_regular

    path = Path(out) / "results.csv"
    if not path.exists():
        raise SpecError([Problem(str(path), "", "no results.csv here: run `cimco sweep` to its end first")])
    try:
        df = pd.read_csv(io.BytesIO(read_regular(path, 256 * 2**20, "sweep table")), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as e:  # not CSV, not UTF-8, empty
        raise SpecError([Problem(str(path), "", f"not a sweep table ({str(e)[:100]}); rerun `cimco sweep`")]) from None
    need = ["point", "system_name", *OBJECTIVES]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise SpecError([Problem(str(path), "", f"not a sweep table: no column {', '.join(missing)}")])
    problems = []
    for k in OBJECTIVES:
        v = pd.to_numeric(df[k], errors="coerce")
        for i in df.index[~(v.notna() & (v >= 0) & (v != math.inf))][:5]:
            problems.append(Problem(str(path), f"line {i + 2}", f"{k}: expected a finite number >= 0, "
                                                                f"got {short(df[k][i])}"))
    if problems:
        raise SpecError(capped(problems))
    return df.astype({k: float for k in OBJECTIVES})


def pareto(df, objectives: tuple[str, str] = DEFAULT_OBJECTIVES) -> list[int]:
    """Row positions on the Pareto front of the two ``objectives`` (no other point is at least
    as good in both and better in one), by the second."""
    a, b = df[objectives[0]].tolist(), df[objectives[1]].tolist()
    front = [i for i in range(len(df)) if not any(
        a[j] <= a[i] and b[j] <= b[i] and (a[j] < a[i] or b[j] < b[i]) for j in range(len(df)))]
    return sorted(front, key=lambda i: b[i])


def _pareto_fig(df, objectives: tuple[str, str] = DEFAULT_OBJECTIVES):
    from cimco.report.html import _plt

    plt = _plt()
    (y, (ylabel, ys, yunit)), (x, (xlabel, xs, xunit)) = ((k, OBJECTIVES[k]) for k in objectives)
    third = next(k for k in OBJECTIVES if k not in objectives)
    clabel, cs, cunit = OBJECTIVES[third]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    sc = ax.scatter(df[x] * xs, df[y] * ys, c=df[third] * cs, cmap="viridis", s=22)
    fig.colorbar(sc, ax=ax, label=f"{clabel} ({cunit})")
    front = pareto(df, objectives)
    ax.plot([df[x].iloc[i] * xs for i in front], [df[y].iloc[i] * ys for i in front], color="C3",
            drawstyle="steps-post", label="Pareto front")
    params, at = _params(df), {}
    for i in front[:MAX_LABELS]:  # the front's points named by what varies; points on one spot once
        row = df.iloc[i]
        at.setdefault((row[x] * xs, row[y] * ys), []).append(" ".join(f"{k.rsplit('.', 1)[-1]}={row[k]}"
                                                                      for k in params))
    middle = (df[x].min() + df[x].max()) / 2 * xs
    for (px, py), names in at.items():
        text = names[0] + (f" (+{len(names) - 1} alike)" if len(names) > 1 else "")
        right = px > middle  # the label toward the plot's inside
        ax.annotate(text, (px, py), fontsize=6, xytext=(-4 if right else 4, 4), textcoords="offset points",
                    ha="right" if right else "left", color="C3")
    ax.xaxis.set_major_locator(plt.MaxNLocator(5))
    ax.set_xlabel(f"{xlabel} ({xunit})")
    ax.set_ylabel(f"{ylabel} ({yunit})")
    ax.set_title(f"{ylabel} vs {xlabel} per sweep point")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def _params(df) -> list[str]:
    """The table's parameter columns (between ``point`` and ``system_name``) whose values vary."""
    cols = list(df.columns)
    return [c for c in cols[cols.index("point") + 1:cols.index("system_name")] if df[c].nunique(dropna=False) > 1]


def pages(name: str, df, objectives: tuple[str, str] = DEFAULT_OBJECTIVES) -> dict[str, bytes | str]:
    """``pareto.png`` and ``sweep.html`` (the same figure, drawn once, and the points' table)."""
    from cimco.report import html as h

    fig = _pareto_fig(df, objectives)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)  # before _svg closes the figure
    front = set(pareto(df, objectives))
    cols = [c for c in df.columns if c != "hash"]
    reports = [h.Link(f"{POINTS}/{k}/report.json", "report.json") for k in df["hash"]]
    rows = [[*(None if isinstance(v, float) and v != v else v for v in r.values()), "yes" if i in front else "",
             reports[i]] for i, r in enumerate(df[cols].to_dict("records"))]
    page = h.page(f"cimco sweep {name}", [f"<h1>Sweep {name}: {len(df)} points</h1>", '<div class="plots">',
                                          h._svg(fig), "</div>", "<h2>Points</h2>",
                                          "<p>Click a column to sort. Each point's report: `cimco report "
                                          "OUT/points/HASH`; two compared: `cimco diff`.</p>",
                                          h.table([*cols, "pareto", "report"], rows)])
    return {"pareto.png": buf.getvalue(), "sweep.html": page}
