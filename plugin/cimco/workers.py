"""Worker processes and limits for mapping: what the layer mapper and the sweep's local
executor share.

Workers are spawned (no inherited state), die with the process that started them, may have
their address space capped, and are terminated at once on any error or interrupt (a failed
layer, Ctrl-C, SIGTERM turned into SystemExit) rather than left to finish their work.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from cimco.errors import LimitError, MappingError


@dataclass(frozen=True)
class Limits:
    """Bounds on mapping one layer, enforced from outside the engine (AccelForge's own limits
    can kill the process silently): wall time by SIGALRM in the mapping process's main
    thread, address space by RLIMIT_AS in worker processes. A layer past either is a
    LimitError naming it."""

    timeout_s: float | None = None
    memory_bytes: int | None = None


class _Timeout(BaseException):  # not an Exception: the engine's own handlers let it through
    pass


@contextlib.contextmanager
def deadline(timeout_s: float | None) -> Iterator[None]:
    """At most ``timeout_s`` seconds for the block (in a main thread; elsewhere no bound),
    then a LimitError; a MemoryError inside is a LimitError too. The alarm repeats every
    0.1 s until the block ends: a raise that lands where Python ignores exceptions (a
    weakref callback, a ``__del__``) is raised again elsewhere, and a block that ends after
    the alarm fired is past its limit all the same."""
    timed = timeout_s is not None and threading.current_thread() is threading.main_thread()
    fired: list[bool] = []

    def alarm(signum, frame):
        fired.append(True)
        raise _Timeout

    old = signal.signal(signal.SIGALRM, alarm) if timed else None
    try:
        try:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, timeout_s, 0.1)
            yield
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if fired:
            raise _Timeout
    except _Timeout:
        raise LimitError(f"mapping took longer than {timeout_s:g} s") from None
    except MemoryError:
        raise LimitError("mapping ran out of memory") from None
    finally:
        if timed:
            signal.signal(signal.SIGALRM, old)


def worker_init(parent: int, memory_bytes: int | None) -> None:
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


class Pool:
    """Spawned worker processes that die with this one (see the module docstring)."""

    def __init__(self, jobs: int, memory_bytes: int | None = None):
        self.before = set(multiprocessing.active_children())
        self.executor = ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=multiprocessing.get_context("spawn"),
                                            initializer=worker_init, initargs=(os.getpid(), memory_bytes))

    def submit(self, fn: Callable, *args) -> Future:
        return self.executor.submit(fn, *args)

    def wait(self, futures: list[Future]) -> set[Future]:
        from concurrent.futures import FIRST_COMPLETED, wait

        return wait(futures, return_when=FIRST_COMPLETED)[0]

    def close(self, failed: bool) -> None:
        """Shut down; with ``failed``, terminate the workers first instead of letting them finish."""
        if failed:
            for p in set(multiprocessing.active_children()) - self.before:
                p.terminate()
        self.executor.shutdown(cancel_futures=True)


@contextlib.contextmanager
def naming(layer: str) -> Iterator[None]:
    """Put the layer's name on a MappingError or LimitError raised inside."""
    try:
        yield
    except (MappingError, LimitError) as e:
        e.layer = e.layer or layer
        raise


def run_in_pool(fn: Callable, tasks: dict[str, tuple], done: Callable, jobs: int, memory_bytes: int | None,
                name: Callable[[str], str]) -> None:
    """``done(key, fn(*task))`` for each task, in spawned workers (see :class:`Pool`). A
    worker that dies (native code past RLIMIT_AS, or killed) is a LimitError naming the
    layers that were being mapped."""
    pool, failed = Pool(min(jobs, len(tasks)), memory_bytes), True
    try:
        futures = {pool.submit(fn, *task): k for k, task in tasks.items()}
        for f in as_completed(futures):
            with naming(name(futures[f])):
                try:
                    r = f.result()
                except BrokenProcessPool:
                    busy = sorted({name(futures[g]) for g in futures if not g.done() or g is f})
                    raise LimitError(f"a mapping worker died (out of memory?) while mapping "
                                     f"{', '.join(busy[:4])}") from None
            done(futures[f], r)
        failed = False
    finally:
        pool.close(failed)
