"""Fuzz the CLI with mutated bundled specs and workloads (issue 10).

Bad input must give exit 0 or 2 with a bounded message: never a traceback, exit 1, a hang
or a memory blow-up. Each example runs `cimco specs validate FILE`, or the checks `cimco map`
makes before mapping, in a forked child with CPU, wall-time and memory limits
(tests/fuzz_sandbox.py). Hypothesis draws every choice of tests/fuzz_mutate.py, so a
failure shrinks to a small input. scripts/fuzz_specs.py runs thousands of inputs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import fuzz_mutate as fm
import fuzz_sandbox as sandbox
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import cimco.cli  # noqa: F401  (imported before forking, so each child starts warm)
import cimco.sparse.masks  # noqa: F401
import cimco.spec  # noqa: F401

FILES = fm.bundled()
# No .hypothesis directory in the repo: database=None below, and its constants cache goes to /tmp.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "cimco-hypothesis")


class Drawn:
    """The chooser fuzz_mutate wants, drawing from hypothesis so that failures shrink."""

    def __init__(self, data: st.DataObject):
        self.data = data

    def choice(self, seq):
        return self.data.draw(st.sampled_from(seq))

    def randint(self, a: int, b: int) -> int:
        return self.data.draw(st.integers(a, b))

    def randbytes(self, n: int) -> bytes:
        return self.data.draw(st.binary(min_size=n, max_size=n))


# ~60 s in all on 2 shared cores: ~150 ms an example, plus shrinking when one fails.
@settings(max_examples=250, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_cli_survives_mutated_specs(data):
    case = fm.make_case(Drawn(data), FILES)
    with tempfile.TemporaryDirectory(prefix="cimco-fuzz-") as d:
        res = sandbox.run(case, Path(d), cpu_s=5)
    what = f"{case.kind} ({case.detail}) on {case.target}{' + ' + case.workload if case.workload else ''}"
    assert res["outcome"] in ("exit0", "exit2"), f"{what}: {res['outcome']}: {res['exc'][-1500:]}"
    assert res["stderr_len"] < sandbox.MAX_MSG, f"{what}: {res['stderr_len']} characters of message"


def _spin() -> int:
    while True:
        pass


@pytest.mark.parametrize("fn, outcome", [
    (lambda: 0, "exit0"),
    (lambda: 1 // 0, "traceback"),
    (lambda: 1, "exit1"),
    (lambda: time.sleep(60), "hang"),  # blocked: the wall-time limit
    (_spin, "hang"),  # busy: the CPU limit
    (lambda: len(bytearray(3 << 30)), "oom"),  # over the address-space limit
    (lambda: len(bytearray(600 << 20)), "oom"),  # under it, but past MAX_GROWTH_MB
    (lambda: _swallow(lambda: bytearray(3 << 30)), "oom"),  # a MemoryError caught is still one raised
])
def test_sandbox_classifies(fn, outcome):
    """The property above can fail: the sandbox sees each kind of failure."""
    assert sandbox.wait(sandbox.spawn(fn, cpu_s=2))["outcome"] == outcome


def _swallow(fn) -> int:
    try:
        fn()
    except MemoryError:
        pass
    return 2


# `cimco report` and `cimco diff` on mutated report.json files (scripts/fuzz_specs.py also fuzzes
# export, sweep and lrmp; their accepted inputs cost seconds each, too slow for a property test).
@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.sampled_from(["report", "diff"]))
def test_report_and_diff_survive_mutated_report_json(data, kind: str):
    case = fm.make_cli_case(Drawn(data), FILES, [kind])
    with tempfile.TemporaryDirectory(prefix="cimco-fuzz-") as d:
        res = sandbox.run(case, Path(d), cpu_s=5)
    what = f"{kind} ({case.detail})"
    assert res["outcome"] in ("exit0", "exit2"), f"{what}: {res['outcome']}: {res['exc'][-1500:]}"
    assert not sandbox.refusal_problems(res), f"{what}: {sandbox.refusal_problems(res)}: {res['stderr']}"


def test_bad_flags_exit_2_without_a_traceback():
    """argparse's SystemExit is an exit code to the sandbox, and its usage message one paragraph."""
    case = fm.Case("lrmp", "", {}, "lrmp", argv=["lrmp", "--system", "s", "--workload", "w", "--out", "{d}",
                                                 "--budget", "x"])
    with tempfile.TemporaryDirectory(prefix="cimco-fuzz-") as d:
        res = sandbox.run(case, Path(d), cpu_s=5)
    assert res["outcome"] == "exit2" and "--budget" in res["stderr"] and not sandbox.refusal_problems(res)


@pytest.mark.parametrize("res, marks", [
    ({"outcome": "exit2", "wall_s": 0.1, "grew_mb": 10}, []),
    ({"outcome": "exit2", "wall_s": 3.0, "grew_mb": 10}, ["slow_refusal"]),
    ({"outcome": "exit2", "wall_s": 0.1, "grew_mb": 2000}, ["slow_refusal"]),
    ({"outcome": "exit2", "wall_s": 0.1, "grew_mb": 0, "raw": True, "multi_para": True}, ["multi_para", "raw_msg"]),
    ({"outcome": "exit0", "wall_s": 9.0, "grew_mb": 0, "raw": True}, []),  # only refusals are held to this
])
def test_refusal_problems(res, marks):
    assert sandbox.refusal_problems(res) == marks


def test_raw_exception_text_is_recognised():
    assert sandbox.RAW.search("cimco: error: x: ValueError: could not convert")
    assert sandbox.RAW.search("1 validation error\n  input_value='x'")
    assert not sandbox.RAW.search("cimco: error: 1 problem found:\n  - lrmp: budget: expected a number")
