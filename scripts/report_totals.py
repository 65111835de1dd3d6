"""Totals of every bundled workload through `cimco map`, saved or compared (a refactoring guard).

Maps each workload in workloads/ on the MARS-like system with the default execution, plus
ResNet-20 variants that exercise the other paths (weights reloaded at batch 4, pipelined on
the system with 8 cores, every layer pruned row-block at density 0.5 with inputs at density
0.7), each in a fresh `cimco map` subprocess with an empty cache. Keeps every number of
`totals` and each layer's energy and latency.

    python scripts/report_totals.py --save before.json       # on the old code (resumes)
    python scripts/report_totals.py --compare before.json    # on the new code

Last line: RESULT runs=... numbers=... max_rel_diff=... (with --compare; exit 1 above 1e-9).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "arch_specs/mars_system.yaml"
CIMCO = Path(sys.executable).parent / "cimco"
TOLERANCE = 1e-9


def runs(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    out = {w.stem: (w, []) for w in sorted((ROOT / "workloads").glob("*.yaml"))}
    r20 = ROOT / "workloads/resnet20_cifar.yaml"
    out["resnet20_reload_b4"] = (r20, ["--weights", "reload", "--batch", "4"])
    big = tmp / "mars_system_8cores.yaml"  # ResNet-20 needs 36 macros resident; MARS has 32
    text = SYSTEM.read_text().replace("macro: mars_macro_28nm.yaml", f"macro: {SYSTEM.parent}/mars_macro_28nm.yaml")
    big.write_text(text.replace("cores: 4 ", "cores: 8 "))
    out["resnet20_pipelined"] = (r20, ["--mode", "pipelined", "--system", str(big)])
    data = yaml.safe_load(r20.read_text())
    for layer in data["layers"]:
        layer["sparsity"] = {"pattern": "row_block", "density": 0.5, "seed": 1}
        layer["input_density"] = 0.7
    pruned = tmp / "resnet20_pruned.yaml"
    pruned.write_text(yaml.safe_dump(data, sort_keys=False))
    out["resnet20_pruned"] = (pruned, [])
    return out


def numbers(report: dict) -> dict[str, float]:
    flat = {f"totals.{k}": v for k, v in report["totals"].items() if isinstance(v, int | float)}
    for x in report["layers"]:
        flat[f"{x['name']}.energy_j"] = x["energy_j"]
        flat[f"{x['name']}.latency_s"] = x["latency_s"]
    return flat


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path)
    g.add_argument("--compare", type=Path)
    args = p.parse_args()
    result: dict[str, dict[str, float]] = {}
    if args.save and args.save.exists():  # resume: keep the runs already saved
        result = json.loads(args.save.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for name, (workload, flags) in runs(Path(tmp)).items():
            if name in result:
                continue
            out = Path(tmp) / name
            system = [] if "--system" in flags else ["--system", str(SYSTEM)]
            subprocess.run([str(CIMCO), "map", *system, "--workload", str(workload),
                            "--out", str(out), "--no-cache", "--quiet", *flags], check=True)
            result[name] = numbers(json.loads((out / "report.json").read_text()))
            print(f"{name}: energy {result[name]['totals.energy_j']:.6e} J, "
                  f"latency {result[name]['totals.latency_s']:.6e} s", flush=True)
            if args.save:
                args.save.write_text(json.dumps(result, indent=1, sort_keys=True))
    n = sum(len(v) for v in result.values())
    if args.save:
        print(f"RESULT runs={len(result)} numbers={n}")
        return 0
    before = json.loads(args.compare.read_text())
    worst, where = 0.0, ""
    for run, values in before.items():
        for k, v in values.items():
            new = result.get(run, {}).get(k)
            if new is None:
                print(f"missing: {run} {k}")
                worst, where = math.inf, f"{run} {k}"
                continue
            d = abs(new - v) / abs(v) if v else abs(new)
            if d > worst:
                worst, where = d, f"{run} {k}: {v!r} -> {new!r}"
    print(f"largest relative difference: {worst:.3g} ({where or 'none'})")
    print(f"RESULT runs={len(result)} numbers={n} max_rel_diff={worst:.3g}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
