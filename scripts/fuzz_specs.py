"""Fuzz the ``cimco`` CLI: mutated bundled specs and workloads, and the arguments of `cimco export`,
`sweep`, `lrmp`, `report` and `diff` (tests/fuzz_mutate.py).

Each input runs in a forked child with a time and address-space limit, so a hang or a memory
blow-up is counted rather than suffered. An input passes with exit 0, or exit 2 with a refusal
in one paragraph, without a traceback or raw exception text (Python's exception names,
pydantic's wording), within 2 s and 1 GB (tests/fuzz_sandbox.py). Anything else is a finding:
exit 1, a traceback, a hang, out of memory, a message over 20 kB, a refusal that is slow, raw or
in several paragraphs. Findings, and known bad inputs accepted (exit 0, counted apart), are kept
under OUT/<index>-<kind>/ with result.json; the rest are deleted. `cimco sweep` is run only as far as
it goes before mapping (sweeps.load), and `export`/`lrmp` get the smallest model and a 2-layer
workload, so accepted inputs stay cheap. The last line is ``RESULT inputs=... findings=...``
with every count and the slowest and largest refusal; the exit status is 1 when findings is not 0.

    .venv/bin/python scripts/fuzz_specs.py --n 5000 --seed 0
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzz_mutate as fm  # noqa: E402
import fuzz_sandbox as sandbox  # noqa: E402

import cimco.cli  # noqa: E402, F401  (imported once here, not in every child)
import cimco.codesign.run  # noqa: E402, F401
import cimco.sparse.masks  # noqa: E402, F401
import cimco.spec  # noqa: E402, F401
import cimco.sweeps  # noqa: E402, F401
import cimco.torch  # noqa: E402, F401

COLS = ["exit0", "exit2", "exit1", "hang", "oom", "traceback", "accepted_bad", "long_msg", "multi_para", "raw_msg",
        "slow_refusal"]
ENTRIES = ["specs", *fm.CLI_KINDS]
# marks that make an input a finding; accepted_bad (a known bad input, exit 0) is kept and counted apart:
# the mutator's idea of "bad" is coarse (a negative action count in report.json that `cimco report` never reads)
FINDINGS = {"exit1", "hang", "oom", "traceback", "long_msg", "multi_para", "raw_msg", "slow_refusal"}


def repro(case: fm.Case, d: Path) -> str:
    if case.argv is not None:
        cmd = shlex.join(a.replace("{d}", str(d)) for a in case.argv)
        return f".venv/bin/cimco {cmd}" + (" (checked by sweeps.load, before mapping)" if case.kind == "sweep" else "")
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
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="start no input after this many seconds (0: no limit); RESULT counts those run")
    ap.add_argument("--entries", default=",".join(ENTRIES),
                    help=f"what to fuzz, drawn in turn per input (default {','.join(ENTRIES)})")
    args = ap.parse_args()
    entries = args.entries.split(",")
    if not set(entries) <= set(ENTRIES):
        ap.error(f"--entries: expected some of {','.join(ENTRIES)}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("[0-9][0-9][0-9][0-9][0-9]-*"):  # a previous run's inputs, and nothing else
        shutil.rmtree(old)
    files, rng = fm.bundled(), random.Random(args.seed)
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    classes: dict[tuple, list] = collections.defaultdict(list)
    running: list = []
    cpu: dict[str, float] = collections.defaultdict(float)
    t0, started, refusal_s, refusal_mb, findings = time.monotonic(), 0, 0.0, 0, 0
    while started < args.n or running:
        if args.max_seconds and time.monotonic() - t0 > args.max_seconds:
            args.n = started
        while started < args.n and len(running) < args.jobs:
            entry = rng.choice(entries)
            case = fm.make_case(rng, files) if entry == "specs" else fm.make_cli_case(rng, files, [entry])
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
                ["long_msg"] if res["stderr_len"] > sandbox.MAX_MSG else []) + sandbox.refusal_problems(res)
            table[case.kind].update(marks)
            cpu[case.kind] = max(cpu[case.kind], res["cpu_s"])
            if o == "exit2":
                refusal_s, refusal_mb = max(refusal_s, res["wall_s"]), max(refusal_mb, res["grew_mb"])
            if marks == ["exit0"] or marks == ["exit2"]:
                shutil.rmtree(d)
                continue
            findings += bool(FINDINGS & set(marks))
            lines = res["exc"].strip().splitlines() or [""]
            first = (res["stderr"].strip().splitlines() or [""])[0] if o == "exit2" else lines[0]
            exc = re.sub(r"\d+", "N", (lines[-1] if o == "traceback" else first)[:100])
            classes[(case.kind, "/".join(marks), exc)].append((d, case.detail))
            (d / "result.json").write_text(json.dumps({**res, "kind": case.kind, "detail": case.detail,
                                                       "target": case.target, "workload": case.workload,
                                                       "bad": case.bad, "repro": repro(case, d)}, indent=1))
        time.sleep(0.002)

    print(f"{'kind':14s} {'n':>5s} " + " ".join(f"{c:>12s}" for c in COLS) + "  max_cpu_s")  # noqa: E501
    total: collections.Counter = collections.Counter()
    for kind in fm.KINDS + fm.CLI_KINDS:
        row = table[kind]
        total.update(row)
        print(f"{kind:14s} {sum(row[c] for c in COLS[:6]):5d} " + " ".join(f"{row[c]:12d}" for c in COLS)
              + f"  {cpu[kind]:9.2f}")
    print("\nfailure classes (kind, outcome, last line of the exception): count, example")
    for (kind, marks, exc), hits in sorted(classes.items(), key=lambda x: -len(x[1])):
        print(f"  {kind:13s} {marks:22s} {exc!r:.100s}: {len(hits)}, e.g. {hits[0][0]} ({hits[0][1][:80]})")
    print(f"\n{time.monotonic() - t0:.0f} s; failing inputs kept under {out}/")
    print(f"RESULT inputs={args.n} findings={findings} exit0={total['exit0']} exit2={total['exit2']} "
          f"exit1={total['exit1']} hangs={total['hang']} oom={total['oom']} tracebacks={total['traceback']} "
          f"accepted_bad={total['accepted_bad']} long_msgs={total['long_msg']} multi_para={total['multi_para']} "
          f"raw_msgs={total['raw_msg']} slow_refusals={total['slow_refusal']} "
          f"max_refusal_s={refusal_s:.2f} max_refusal_mb={refusal_mb}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
