"""MARS's evaluation setup on the MARS-like system: VGG-16 and ResNet-18 (CIFAR-10 shapes)
compressed MARS-style, side by side with the paper's figures (Sie et al., TCAD 2022:
52.3 / 88.2 TOPS/W, > 700 FPS on CIFAR-10).

Compression as MARS does it: 4-bit inputs and weights (8-bit outputs re-quantized on chip),
row-block pruning (the word lines on at once x one column group) at 50% on every layer but
the first and the last (seeded patterns: shapes only, no trained weights here). Each network
runs sequentially, batch 1 and batch 16 (weights reloaded per batch when one copy of them
does not fit in the 32 macros). Every figure is from `cimco map` with the real mapper.

Run: python scripts/mars_table.py [--out out/mars_table]   (a few minutes cold, cached after)
Last line: RESULT vgg16_tops_per_w_on_chip=... resnet18_tops_per_w_on_chip=... ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from cimco.cli import main as cimco
from cimco.sparse.patterns import mars_style

ROOT = Path(__file__).resolve().parent.parent
MARS = {"vgg16_cifar": 52.3, "resnet18_cifar": 88.2}  # TOPS/W, Sie et al. TCAD 2022 abstract
MACRO = ("WordlineDriver", "CellArray", "ADC", "ShiftAdd", "IndexMemory")


def compressed(name: str, out: Path) -> Path:
    path = out / f"{name}_mars.yaml"
    path.write_text(yaml.safe_dump(mars_style(yaml.safe_load((ROOT / f"workloads/{name}.yaml").read_text())),
                                   sort_keys=False))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/mars_table")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, result = [], []
    for name, paper in MARS.items():
        wl = compressed(name, out)
        for batch in (1, 16):
            d = out / f"{name}_b{batch}"
            code = cimco(["map", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload", str(wl),
                          "--out", str(d), "--cache-dir", str(out / "cache"), "--quiet", "--batch", str(batch)])
            if code:
                return code
            r = json.loads((d / "report.json").read_text())
            t, e = r["totals"], r["energy_by_component"]
            macro_j = sum(v for c, v in e.items() if c in MACRO)
            dense = t["dense_macs"]
            row = {"network": name, "batch": batch, "weights": t["weights"], "paper": paper,
                   "system": t["tops_per_w"], "on_chip": t["tops_per_w_on_chip"],
                   "macros": 2 * dense / macro_j / 1e12, "fps": t["fps"],
                   "dram_share": e.get("DRAM", 0.0) / t["energy_j"]}
            rows.append(row)
            if batch == 1:
                result += [f"{name.split('_')[0]}_tops_per_w_on_chip={row['on_chip']:.1f}",
                           f"{name.split('_')[0]}_tops_per_w_macros={row['macros']:.1f}",
                           f"{name.split('_')[0]}_fps={row['fps']:.0f}"]
    print("| network | batch | weights | MARS TOPS/W | cimco TOPS/W (all, with DRAM) | on chip (no DRAM) "
          "| macros only | DRAM share | FPS (MARS: > 700) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']} | {r['batch']} | {r['weights']} | {r['paper']} | {r['system']:.1f} | "
              f"{r['on_chip']:.1f} | {r['macros']:.1f} | {r['dram_share']:.0%} | {r['fps']:,.0f} |")
    print("RESULT " + " ".join(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
