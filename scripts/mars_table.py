"""MARS's evaluation setup on the bundled multi-macro systems: VGG-16 and ResNet-18 (CIFAR-10
shapes) compressed MARS-style, side by side with the paper's figures (Sie et al., TCAD 2022:
52.3 / 88.2 TOPS/W, > 700 FPS on CIFAR-10).

Compression as MARS does it: 4-bit inputs and weights (8-bit outputs re-quantized on chip),
row-block pruning (the word lines on at once x one column group) at 50% on every layer but
the first and the last (seeded patterns: shapes only, no trained weights here). Each network
runs sequentially, batch 1 and batch 16 (weights reloaded per batch when one copy of them
does not fit in the macros), on the MARS-like system, the same with a buffer in each core and
a mesh NoC, and the NeuroSim-style tiled system (H-tree, tile buffers; its pruning blocks are
the MARS macro's 16 rows, not its 128). Every figure is from `cimco map` with the cimco
backend (its counts AccelForge's model's; 4-11 s a network on a system with core buffers).

Run: python scripts/mars_table.py [--out out/mars_table] [--systems mars_system ...]
Last line: RESULT <net>_<system>_tops_per_w_on_chip=... ...
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


SYSTEMS = ("mars_system", "mars_system_cores", "neurosim_system")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/mars_table")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, result = [], []
    for system in args.systems:
        spec = ROOT / f"arch_specs/{system}.yaml"
        for name, paper in MARS.items():
            code = _rows(system, spec, name, paper, compressed(name, out), out, rows, result)
            if code:
                return code
    print("| system | network | batch | weights | MARS TOPS/W | cimco TOPS/W (all, with DRAM) | on chip (no DRAM) "
          "| macros only | DRAM share | FPS (MARS: > 700) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['system_name']} | {r['network']} | {r['batch']} | {r['weights']} | {r['paper']} | "
              f"{r['system']:.1f} | {r['on_chip']:.1f} | {r['macros']:.1f} | {r['dram_share']:.0%} | {r['fps']:,.0f} |")
    print("RESULT " + " ".join(result))
    return 0


def _rows(system: str, spec: Path, name: str, paper: float, wl: Path, out: Path, rows: list, result: list) -> int:
    for batch in (1, 16):
        d = out / f"{system}_{name}_b{batch}"
        code = cimco(["map", "--system", str(spec), "--workload", str(wl), "--out", str(d),
                      "--cache-dir", str(out / "cache"), "--quiet", "--batch", str(batch)])
        if code:
            return code
        r = json.loads((d / "report.json").read_text())
        t, e = r["totals"], r["energy_by_component"]
        macro_j = sum(v for c, v in e.items() if c in MACRO)
        dense = t["dense_macs"]
        row = {"system_name": system, "network": name, "batch": batch, "weights": t["weights"], "paper": paper,
               "system": t["tops_per_w"], "on_chip": t["tops_per_w_on_chip"],
               "macros": 2 * dense / macro_j / 1e12, "fps": t["fps"],
               "dram_share": e.get("DRAM", 0.0) / t["energy_j"]}
        rows.append(row)
        if batch == 1:
            key = f"{name.split('_')[0]}_{system}"
            result += [f"{key}_tops_per_w_on_chip={row['on_chip']:.1f}",
                       f"{key}_tops_per_w_macros={row['macros']:.1f}", f"{key}_fps={row['fps']:.0f}"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
