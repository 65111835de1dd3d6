"""CIM co-design on real data: scikit-learn's handwritten digits, end to end.

FP32 -> BN-folded and quantized (8b, 4b; power-of-two scales, QAT) -> pruned at 50% and
75% with each CIM-aware pattern (and unstructured for contrast) -> CIM-faithful inference
at ADC 4/6/8 bits and with cell variation -> export -> `cimco map` on the MARS-like system.
Accuracy is measured on a held-out test split never used for training or selection.
Writes OUT/codesign_digits.md and .csv (default OUT: out/codesign_digits).

Usage: python scripts/codesign_digits.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cimco.backends.accelforge import AccelForge
from cimco.execution import Execution
from cimco.geometry import MacroGeometry
from cimco.io import write_atomic
from cimco.pipeline import run
from cimco.sparse.layout import as_matrices
from cimco.sparse.occupancy import occupancy
from cimco.spec import load
from cimco.spec.workload import Bits, WorkloadSpec
from cimco.torch import export
from cimco.torch.cim import cim_forward
from cimco.torch.data import accuracy, digits, digits_cnn, train
from cimco.torch.prune import Pruner
from cimco.torch.quant import calibrate, fold_bn, quantize

ROOT = Path(__file__).resolve().parent.parent
SIGMA = 0.05  # cell variation for the variation column (assumed, a typical 1-sigma)


def mask_of(model, name: str) -> np.ndarray:
    return (model.get_submodule(name).weight.detach() != 0).numpy()


def evaluate(name, model, bits, pattern, density, test, system, cache, quick):
    """One table row: accuracies on the test split, densities, energy from cimco map."""
    macro = system.macro
    row = {"model": name, "bits": f"{bits.input}/{bits.weight}" if bits else "fp32",
           "pattern": pattern or "-", "target_density": density if density is not None else 1.0,
           "test_acc": accuracy(model, test)}
    quantized = bits is not None
    for adc in (4, 6, 8):
        row[f"cim_adc{adc}_acc"] = (accuracy(model, test, forward=lambda x, adc=adc: cim_forward(model, x, macro, adc))
                                    if quantized and not quick else float("nan"))
    row["cim_adc8_var_acc"] = (accuracy(model, test, forward=lambda x: cim_forward(
        model, x, macro, 8, sigma=SIGMA, seed=0)) if quantized and not quick else float("nan"))
    ex = export(model, torch.zeros(1, 1, 8, 8), "digits", bits=bits or Bits())
    workload = WorkloadSpec.model_validate(ex.workload)
    report = run(system, workload, ex.masks, Execution(), AccelForge(), cache, jobs=2).report
    occ = [occupancy(as_matrices(mask_of(model, layer.name), layer),
                     MacroGeometry.of_system(system, workload.layer_bits(layer)))
           for layer in workload.layers]
    row["weight_density"] = sum(o.nonzero for o in occ) / sum(o.weights for o in occ)
    row["block_density"] = sum(o.kept_blocks for o in occ) / sum(o.blocks for o in occ)
    row["energy_uj"] = report["totals"]["energy_j"] * 1e6
    row["tops_per_w"] = report["totals"]["tops_per_w"]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/codesign_digits")
    ap.add_argument("--quick", action="store_true", help="fewer epochs, no CIM-faithful columns")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.time()
    epochs = 4 if args.quick else 20
    system = load(ROOT / "arch_specs/mars_system.yaml")
    cache = out / "cache"
    train_dl, _val, test = digits(seed=0)
    torch.manual_seed(0)
    fp32 = train(digits_cnn(), train_dl, epochs)
    rows = [evaluate("FP32", fp32, None, None, None, test, system, cache, args.quick)]
    folded = fold_bn(copy.deepcopy(fp32))
    base = {}
    for b in (8, 4):
        bits = Bits(input=b, weight=b, output=8)
        q = quantize(copy.deepcopy(folded), bits, pot=True, macro=system.macro)
        calibrate(q, [x for x, _ in train_dl][:5])
        q = train(q, train_dl, max(2, epochs // 5), lr=3e-4)
        base[b] = q
        rows.append(evaluate(f"BN-folded {b}b", q, bits, None, None, test, system, cache, args.quick))
        print(f"[{time.time() - t0:5.1f}s] {rows[-1]['model']}: test {rows[-1]['test_acc']:.3f}", flush=True)
    for b in (8, 4):
        bits = Bits(input=b, weight=b, output=8)
        for pattern in ("row_block", "kernel_group", "crossbar", "unstructured"):
            for density in (0.5, 0.25):
                m = copy.deepcopy(base[b])
                pr = Pruner(m, pattern, density, system.macro, ramp_epochs=3, recover_epochs=2)
                m = train(m, train_dl, pr.epochs(), lr=3e-4, step_hook=pr)
                rows.append(evaluate(f"{b}b pruned", m, bits, pattern, density, test, system,
                                     cache, args.quick))
                r = rows[-1]
                print(f"[{time.time() - t0:5.1f}s] {b}b {pattern} {density}: test {r['test_acc']:.3f} "
                      f"block density {r['block_density']:.2f} {r['tops_per_w']:.2f} TOPS/W", flush=True)
    cols = list(rows[0])
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / "codesign_digits.csv", buf.getvalue())

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) and not np.isnan(v) else ("-" if isinstance(v, float) else str(v))

    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    text = "\n".join([f"Digits (sklearn, 8x8), held-out test split of {len(test.dataset)} images; "
                      f"energy and TOPS/W from `cimco map` on {system.name} (batch 1, with DRAM). "
                      f"Target density 0.25 = 75% pruned; first and last layer stay dense; densities "
                      f"over all layers; the FP32 row's energy is that of its 8b deployment. "
                      f"CIM columns: CIM-faithful inference on {system.macro.name}, cell variation "
                      f"sigma={SIGMA}.", ""] + md) + "\n"
    write_atomic(out / "codesign_digits.md", text)
    print(text)
    print(f"RESULT rows={len(rows)} seconds={time.time() - t0:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
