"""Map every layer of a workload: one AccelForge run per distinct (shape, bits), cached.

Layers with identical shape and bits are mapped once. Each mapping is cached on disk under
a SHA-256 of everything that can change it: the system spec, the layer's shape and bits,
the versions of cimco, AccelForge and hwcomponents, and the source of the cimco modules
that build the architecture and the component models. A changed input gets a new key, so
it is never served stale. A cache entry that cannot be read back (truncated, garbage, a
directory, wrong fields) is a miss: a one-line warning, a remap, and the entry overwritten.

Worker processes die with the process that started them, and every AccelForge run works
in a scratch dir named after its process under ``scratch`` (default ``cache_dir/.scratch``),
so scratch left by a killed run is removed by the next one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from cimco import _af, arch
from cimco.errors import LimitError, MappingError
from cimco.io import remove_stale_scratch, write_atomic
from cimco.sparse import transform
from cimco.sparse.layout import Geometry
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer, WorkloadSpec

# Sources whose code shapes what is cached (mappings, and the ERT/ART tables in report/).
# Sparsity is applied after the cache (sparse/transform.py), so it is not among them.
_MODEL_SOURCES = ("arch.py", "_af.py", "models/__init__.py", "mapping.py", "report/__init__.py", "spec/macro.py")


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
    for k in ("energy", "actions", "tensor_actions"):
        d[k] = {"|".join(key): v for key, v in d[k].items()}
    return json.dumps(d)


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _table(x: object, pairs: bool) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) and (not pairs or "|" in k) and _number(v)
                                       for k, v in x.items())


_CHECKS = {
    "energy_j": _number, "latency_s": _number, "computes": _number,
    "energy": lambda x: _table(x, True), "actions": lambda x: _table(x, True),
    "tensor_actions": lambda x: _table(x, True), "latency_by_component": lambda x: _table(x, False),
    "mapping": lambda x: isinstance(x, str), "column_split": lambda x: isinstance(x, bool),
    "budget_bits": lambda x: _table(x, False),
}


def _from_json(text: str) -> _af.MapResult:
    """Read back what :func:`_to_json` wrote; ValueError if it is anything else."""
    d = json.loads(text)
    if not isinstance(d, dict):
        raise ValueError(f"expected an object, got {type(d).__name__}")
    names = [f.name for f in fields(_af.MapResult)]
    bad = [k for k in names if k not in d or not _CHECKS[k](d[k])] + [k for k in d if k not in names]
    if bad:
        raise ValueError(f"missing, unexpected or ill-typed fields: {', '.join(bad)}")
    for k in ("energy", "actions", "tensor_actions"):
        d[k] = {tuple(key.split("|")): v for key, v in d[k].items()}
    return _af.MapResult(**d)


def read_cache[T](path: Path, parse: Callable[[str], T]) -> T | None:
    """``parse`` of the cache entry at ``path``; None (after a one-line warning on stderr) if
    it cannot be read or parsed: a corrupt entry is a miss, not a failure of every rerun.
    ``parse`` raises ValueError, TypeError or KeyError on anything it was not written as."""
    try:
        return parse(path.read_text())
    except (OSError, ValueError, TypeError, KeyError) as e:  # a directory, JSON, UTF-8, fields
        print(f"cimco: warning: cache entry {path} is corrupt ({type(e).__name__}: {e}); remapping",
              file=sys.stderr)
        return None


def write_cache(path: Path, text: str) -> None:
    """Write (or overwrite) a cache entry atomically, even one that was made a directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    write_atomic(path, text)


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
    mask: np.ndarray | None = None  # the layer's weight mask (True = kept), if it is pruned


@dataclass(frozen=True)
class Limits:
    """Bounds on mapping one layer, enforced from outside AccelForge (its own limits can kill
    the process silently): wall time by SIGALRM in the mapping process's main thread, address
    space by RLIMIT_AS in worker processes. A layer past either is a LimitError naming it."""

    timeout_s: float | None = None
    memory_bytes: int | None = None


class _Timeout(BaseException):  # not an Exception: AccelForge's and _af's handlers let it through
    pass


def _alarm(signum, frame):
    raise _Timeout


def map_one(system: SystemSpec, bits: Bits, einsum: dict, scratch: Path | None = None,
            timeout_s: float | None = None) -> _af.MapResult:
    """One AccelForge mapping on ``system`` in a private dir under ``scratch`` (default: the
    system temp dir), removed afterwards (also a worker task); at most ``timeout_s`` seconds
    when run in a main thread."""
    timed = timeout_s is not None and threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGALRM, _alarm) if timed else None
    try:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
        with _af.scratch_cwd(scratch):
            try:
                return _af.map_layer(arch.build_nodes(system, bits), einsum, bits)
            except MappingError as e:
                if e.full:  # a memory too small: lifting the column rule would not help
                    raise
            # AccelForge could not map under the column rule: map without it, flagged
            r = _af.map_layer(arch.build_nodes(system, bits, column_split=True), einsum, bits)
            return dataclasses.replace(r, column_split=True)
    except _Timeout:
        raise LimitError(f"mapping took longer than {timeout_s:g} s") from None
    except MemoryError:
        raise LimitError("mapping ran out of memory") from None
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def _worker_init(parent: int, memory_bytes: int | None) -> None:
    """Pool worker initializer: die with the parent; cap the address space."""
    _die_with_parent(parent)
    if memory_bytes:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _die_with_parent(parent: int) -> None:
    """Exit when the process that started the pool is gone (killed with SIGKILL it cannot
    stop its workers, which would map on for minutes)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != parent:  # died before prctl took effect (or prctl is not there)
        os._exit(1)

    def watch() -> None:  # the portable fallback
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def map_workload(system: SystemSpec, workload: WorkloadSpec, cache_dir: Path | None,
                 progress: bool = True, jobs: int = 1,
                 masks: dict[str, np.ndarray] | None = None,
                 scratch: Path | None = None, limits: Limits = Limits(),
                 isolate: bool = False) -> list[LayerRun]:
    """Map each distinct layer once (from cache when possible); one LayerRun per layer.

    With ``jobs > 1`` (or ``isolate``, as the CLI does, so that ``limits.memory_bytes``
    applies) distinct layers are mapped in that many worker processes (each AccelForge run
    itself uses one job: its own pool is slower on small machines), the largest layers first
    so the workers finish together. AccelForge runs in dirs under ``scratch`` (default
    ``cache_dir/.scratch``, or the system temp dir without a cache). A layer that fails
    raises MappingError or LimitError with its name in ``.layer``.
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
    if scratch is None and cache_dir:
        scratch = cache_dir / ".scratch"
    remove_stale_scratch(scratch or tempfile.gettempdir())
    results: dict[str, tuple[_af.MapResult, bool]] = {}
    todo = []
    for key in plan:
        path = cache_dir / f"{key}.json" if cache_dir else None
        r = read_cache(path, _from_json) if path and path.exists() else None
        if r is not None:
            results[key] = (r, True)
        else:
            todo.append(key)
    todo.sort(key=lambda k: -plan[k][0].macs)
    bar = tqdm(total=len(plan), initial=len(results), desc="mapping", unit="layer",
               disable=not progress, dynamic_ncols=True)

    def done(key: str, r: _af.MapResult) -> None:
        if cache_dir:
            write_cache(cache_dir / f"{key}.json", _to_json(r))
        results[key] = (r, False)
        bar.set_postfix_str(plan[key][0].name)
        bar.update()

    tasks = {k: (system, plan[k][1], plan[k][2], scratch, limits.timeout_s) for k in todo}
    try:
        if tasks and (isolate or (jobs > 1 and len(tasks) > 1)):
            _map_in_pool(tasks, done, jobs, scratch, limits.memory_bytes, lambda k: plan[k][0].name)
        else:
            for key, task in tasks.items():
                with _naming(plan[key][0].name):
                    done(key, map_one(*task))
    finally:
        bar.close()
    runs = []
    for layer, key, sp in zip(workload.layers, keys, sparse):
        r, cached = results[key]
        actions, latency, by_comp = r.actions, r.latency_s, r.latency_by_component
        if sp is not None:  # the layer takes as long as its slowest component
            actions, by_comp = transform.correct(sp, r.actions, _af.of_tensor(r, "W"), by_comp,
                                                 layer.positions)
            latency = max(by_comp.values())
        runs.append(LayerRun(layer, workload.layer_bits(layer), r, cached, sp, actions, latency,
                             by_comp, masks.get(layer.name)))
    return runs


@contextlib.contextmanager
def _naming(layer: str):
    """Put the layer's name on a MappingError or LimitError raised inside."""
    try:
        yield
    except (MappingError, LimitError) as e:
        e.layer = e.layer or layer
        raise


def _map_in_pool(tasks: dict[str, tuple], done, jobs: int, scratch: Path | None,
                 memory_bytes: int | None, name: Callable[[str], str]) -> None:
    """``done(key, map_one(*task))`` for each task, in spawned worker processes.

    On any error or interrupt (a failed layer, Ctrl-C, SIGTERM turned into SystemExit) the
    workers are terminated at once rather than left to finish their layers, and their
    scratch dirs are removed.
    """
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tasks))),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(), memory_bytes))
    try:
        futures = {pool.submit(map_one, *task): k for k, task in tasks.items()}
        for f in as_completed(futures):
            with _naming(name(futures[f])):
                try:
                    r = f.result()
                except BrokenProcessPool:  # a worker died: native code past RLIMIT_AS, or killed
                    busy = sorted({name(futures[g]) for g in futures if not g.done() or g is f})
                    raise LimitError(f"a mapping worker died (out of memory?) while mapping "
                                     f"{', '.join(busy[:4])}") from None
            done(futures[f], r)
    except BaseException:
        for p in set(multiprocessing.active_children()) - before:
            p.terminate()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        remove_stale_scratch(scratch or tempfile.gettempdir())
