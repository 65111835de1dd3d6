"""Run one fuzz case (tests/fuzz_mutate.py) in a forked child with CPU, wall-time and memory limits.

The child calls the real CLI in-process (``cimco.cli.main``), so the parent should import
cimco first: forks then cost milliseconds. A hang or a memory blow-up is counted, not suffered.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import resource
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from fuzz_mutate import Case

MAX_GROWTH_MB = 512  # peak resident memory an input may add
MAX_MSG = 20_000  # characters of error message for one input
MAX_REFUSAL_S = 2.0  # wall time a refusal (exit 2) may take
MAX_REFUSAL_MB = 1024  # peak resident memory a refusal may add (MAX_GROWTH_MB already bounds every input)


def write(case: Case, d: Path) -> None:
    """Lay the case's files out in the empty directory ``d``."""
    for name, content in case.files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if content == "fifo":
            os.mkfifo(p)
        elif content == "dir":
            p.mkdir()
        elif content == "huge":
            with open(p, "wb") as f:
                f.truncate(3 << 30)  # sparse: no disk used
        elif isinstance(content, bytes):
            p.write_bytes(content)


def pair_check(system: Path, workload: Path) -> int:
    """What ``cimco map`` does before mapping, with cli.main's exit codes (no CLI command stops there)."""
    from cimco.sparse.masks import resolve
    from cimco.spec import load_pair

    def check() -> None:
        s, w = load_pair(system, workload)
        resolve(s, w, workload)

    return _as_cli(check)


def sweep_check(spec: Path) -> int:
    """What ``cimco sweep`` does before mapping (read the file, build and validate every point)."""
    from cimco import sweeps

    return _as_cli(lambda: sweeps.load(spec))


def _as_cli(fn: Callable[[], object]) -> int:
    """Run ``fn`` and turn cimco's errors into cli.main's messages and exit codes."""
    from cimco.errors import CimcoError, ExportError, SpecError

    try:
        fn()
        return 0
    except (SpecError, ExportError) as e:
        print(f"cimco: error: {e}", file=sys.stderr)
        return 2
    except CimcoError as e:
        print(f"cimco: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def _status_kb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def job(case: Case, d: Path) -> Callable[[], int]:
    """The CLI call the case is about, on its files laid out in ``d``; returns the exit code."""
    from cimco import cli

    if case.argv is not None:
        argv = [a.replace("{d}", str(d)) for a in case.argv]
        if argv[0] == "sweep":
            return lambda: sweep_check(Path(argv[1]))
        return lambda: _exit_code(cli.main, argv)
    if case.workload is None:
        return lambda: cli.main(["specs", "validate", str(d / case.target)])
    return lambda: pair_check(d / case.target, d / case.workload)


def _exit_code(main: Callable[[list[str]], int], argv: list[str]) -> int:
    """``main(argv)``, with argparse's SystemExit (bad flags: exit 2 and a usage line) as a return."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1


def _child(fn: Callable[[], int], mem_bytes: int, cpu_s: int) -> dict:
    """Run ``fn`` in this (forked) process under limits; any MemoryError raised, even one
    caught, counts as out of memory: the input asked for more than the bound."""
    vsz = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (vsz + mem_bytes,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    oom: list[str] = []
    mon = sys.monitoring
    mon.use_tool_id(mon.PROFILER_ID, "fuzz")
    mon.register_callback(mon.PROFILER_ID, mon.events.RAISE, lambda code, _, e: isinstance(e, MemoryError)
                          and oom.append(f"MemoryError in {code.co_qualname} ({code.co_filename}): {e!r}"[:300]))
    mon.set_events(mon.PROFILER_ID, mon.events.RAISE)
    rss0, out, err = _status_kb("VmRSS"), io.StringIO(), io.StringIO()
    res = {"outcome": "", "exc": ""}
    t0 = time.monotonic()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            rc = fn()
        res["outcome"], res["exc"] = ("exit1", f"returned {rc!r}") if rc not in (0, 1, 2) else (f"exit{rc}", "")
    except BaseException as e:
        res["outcome"] = "traceback"
        res["exc"] = "".join(traceback.format_exception(e, limit=-4))[-3000:]
    mon.set_events(mon.PROFILER_ID, 0)
    wall_s = time.monotonic() - t0
    text = err.getvalue()
    if "Traceback" in text:
        res["outcome"], res["exc"] = "traceback", text[-3000:]
    elif res["outcome"] == "exit1":  # cli.main turned an exception into a message
        res["exc"] = res["exc"] or text[:3000]
    grew_mb = (_status_kb("VmHWM") - rss0) >> 10
    if oom or grew_mb > MAX_GROWTH_MB:
        res["outcome"] = "oom"
        res["exc"] = (oom[0] if oom else f"peak memory grew by {grew_mb} MB") + f" ({res['exc'][-200:]})"
    t = resource.getrusage(resource.RUSAGE_SELF)
    res.update(stderr_len=len(text), stderr=text[:600], cpu_s=round(t.ru_utime + t.ru_stime, 3), grew_mb=grew_mb,
               wall_s=round(wall_s, 3), multi_para="\n\n" in text.strip(), raw=bool(RAW.search(text)))
    return res


_EMPTY = {"outcome": "", "exc": "", "stderr_len": 0, "stderr": "", "cpu_s": 0.0, "grew_mb": 0, "wall_s": 0.0}

# Text a refusal should not show: Python's exception names or traceback lines, pydantic's wording
RAW = re.compile(r"Traceback|File \"|\b(Value|Type|Key|Attribute|Index|Runtime|Import|ModuleNotFound|ZeroDivision|"
                 r"Overflow|Assertion|Recursion|Unicode\w*|Lookup|OS|Memory)Error\b|errors\.pydantic\.dev|"
                 r"input_value=|For further information")


def refusal_problems(res: dict) -> list[str]:
    """Why an exit-2 result is a finding: not one paragraph, raw exception text, too slow or too big."""
    if res["outcome"] != "exit2":
        return []
    marks = (["multi_para"] if res.get("multi_para") else []) + (["raw_msg"] if res.get("raw") else [])
    return marks + (["slow_refusal"] if res["wall_s"] > MAX_REFUSAL_S or res["grew_mb"] > MAX_REFUSAL_MB else [])


@dataclass
class Child:
    pid: int
    fd: int
    start: float
    cpu_s: float


def spawn(fn: Callable[[], int], cpu_s: float = 10, mem_bytes: int = 5 << 28) -> Child:
    """Start ``fn`` in a forked child limited to ``cpu_s`` of CPU and ``mem_bytes`` more address space."""
    rfd, wfd = os.pipe()
    with warnings.catch_warnings():
        # numpy's BLAS threads make this process multi-threaded; the child calls no BLAS.
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            res = _child(fn, mem_bytes, math.ceil(cpu_s))
        except BaseException as e:  # the harness itself
            res = {"outcome": "traceback", "exc": f"in the harness: {e!r}"}
        os.write(wfd, json.dumps(res).encode())  # < 64 kB: the pipe never blocks
        os._exit(0)
    os.close(wfd)
    return Child(pid, rfd, time.monotonic(), cpu_s)


def poll(c: Child) -> dict | None:
    """The child's result once it has ended, else None. Over its CPU limit, or blocked for
    3x that in wall time (load from other processes must not count), it is a hang."""
    pid, status = os.waitpid(c.pid, os.WNOHANG)
    if pid == 0:
        if time.monotonic() - c.start < 3 * c.cpu_s:
            return None
        os.kill(c.pid, signal.SIGKILL)
        os.waitpid(c.pid, 0)
        os.close(c.fd)
        return {**_EMPTY, "outcome": "hang", "exc": f"still running after {3 * c.cpu_s:.0f} s (blocked?)"}
    with os.fdopen(c.fd, "rb") as f:
        raw = f.read()
    if os.WIFSIGNALED(status) or not raw:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        why = {signal.SIGXCPU: f" (over {c.cpu_s:.0f} s of CPU)", signal.SIGKILL: " (the kernel's OOM killer?)"}
        return {**_EMPTY, "outcome": {signal.SIGXCPU: "hang", signal.SIGKILL: "oom"}.get(sig, "exit1"),
                "exc": f"killed by signal {sig}{why.get(sig, '')}"}
    return {**_EMPTY, **json.loads(raw)}


def wait(c: Child) -> dict:
    while (res := poll(c)) is None:
        time.sleep(0.002)
    return res


def run(case: Case, d: Path, cpu_s: float = 10, mem_bytes: int = 5 << 28) -> dict:
    """Write the case into ``d`` and run it in a limited child; the result dict (``outcome`` etc.)."""
    write(case, d)
    return wait(spawn(job(case, d), cpu_s, mem_bytes))
