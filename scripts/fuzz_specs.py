"""Fuzz the ``cimco`` CLI with mutated copies of the bundled specs and workloads.

Each input runs in a forked child with a time and address-space limit, so a hang or a memory
blow-up is counted rather than suffered. Inputs that fail (exit 1, traceback, hang, out of
memory, a message over 20 kB) or that are known bad yet accepted (exit 0) are kept under
OUT/<index>-<kind>/ with result.json; the rest are deleted. The last line is
``RESULT inputs=... exit0=... exit2=... exit1=... hangs=... oom=... tracebacks=... accepted_bad=... long_msgs=...``;
the exit status is 1 when exit1, hangs, oom or tracebacks is not 0.

    .venv/bin/python scripts/fuzz_specs.py --n 3000 --seed 0
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzz_mutate as fm  # noqa: E402
import fuzz_sandbox as sandbox  # noqa: E402

import cimco.cli  # noqa: E402, F401  (imported once here, not in every child)
import cimco.sparse.masks  # noqa: E402, F401
import cimco.spec  # noqa: E402, F401

COLS = ["exit0", "exit2", "exit1", "hang", "oom", "traceback", "accepted_bad", "long_msg"]


def repro(case: fm.Case, d: Path) -> str:
    t = d / case.target
    if case.workload is None:
        return f".venv/bin/cimco specs validate {t}"
    return f".venv/bin/cimco map --system {t} --workload {d / case.workload} --out /tmp/fuzz-map (fails before mapping)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="number of mutated inputs (default 3000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/fuzz", help="work and failure directory (default out/fuzz)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="CPU seconds per input (wall: 3x) before it counts as a hang")
    ap.add_argument("--mem-mb", type=int, default=1280, help="address space a child may add (MB)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("[0-9][0-9][0-9][0-9][0-9]-*"):  # a previous run's inputs, and nothing else
        shutil.rmtree(old)
    files, rng = fm.bundled(), random.Random(args.seed)
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    classes: dict[tuple, list] = collections.defaultdict(list)
    running: list = []
    cpu: dict[str, float] = collections.defaultdict(float)
    t0, started = time.monotonic(), 0
    while started < args.n or running:
        while started < args.n and len(running) < args.jobs:
            case = fm.make_case(rng, files)
            d = out / f"{started:05d}-{case.kind}"
            d.mkdir()
            sandbox.write(case, d)
            running.append((sandbox.spawn(sandbox.job(case, d), args.timeout, args.mem_mb << 20), case, d))
            started += 1
        for item in list(running):
            child, case, d = item
            res = sandbox.poll(child)
            if res is None:
                continue
            running.remove(item)
            o = res["outcome"]
            marks = [o] + (["accepted_bad"] if case.bad and o == "exit0" else []) + (
                ["long_msg"] if res["stderr_len"] > sandbox.MAX_MSG else [])
            table[case.kind].update(marks)
            cpu[case.kind] = max(cpu[case.kind], res["cpu_s"])
            if marks == ["exit0"] or marks == ["exit2"]:
                shutil.rmtree(d)
                continue
            lines = res["exc"].strip().splitlines() or [""]
            exc = re.sub(r"\d+", "N", (lines[-1] if o == "traceback" else lines[0])[:100])
            classes[(case.kind, "/".join(marks), exc)].append((d, case.detail))
            (d / "result.json").write_text(json.dumps({**res, "kind": case.kind, "detail": case.detail,
                                                       "target": case.target, "workload": case.workload,
                                                       "bad": case.bad, "repro": repro(case, d)}, indent=1))
        time.sleep(0.002)

    print(f"{'kind':14s} {'n':>5s} " + " ".join(f"{c:>12s}" for c in COLS) + "  max_cpu_s")
    total: collections.Counter = collections.Counter()
    for kind in fm.KINDS:
        row = table[kind]
        total.update(row)
        print(f"{kind:14s} {sum(row[c] for c in COLS[:6]):5d} " + " ".join(f"{row[c]:12d}" for c in COLS)
              + f"  {cpu[kind]:9.2f}")
    print("\nfailure classes (kind, outcome, last line of the exception): count, example")
    for (kind, marks, exc), hits in sorted(classes.items(), key=lambda x: -len(x[1])):
        print(f"  {kind:13s} {marks:22s} {exc!r:.100s}: {len(hits)}, e.g. {hits[0][0]} ({hits[0][1][:80]})")
    bad = total["exit1"] + total["hang"] + total["oom"] + total["traceback"]
    print(f"\n{time.monotonic() - t0:.0f} s; failing inputs kept under {out}/")
    print(f"RESULT inputs={args.n} exit0={total['exit0']} exit2={total['exit2']} exit1={total['exit1']} "
          f"hangs={total['hang']} oom={total['oom']} tracebacks={total['traceback']} "
          f"accepted_bad={total['accepted_bad']} long_msgs={total['long_msg']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
