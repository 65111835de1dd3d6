"""Benchmark the block-occupancy analysis on all ResNet-18 (ImageNet) layers, one core.

Real-size random masks (row_block and unstructured at 50%) for every layer on the MARS-like
macro. Baseline in the same run: one ``np.count_nonzero`` pass over the same masks (the
least work that reads every weight). Last line:
RESULT weights_per_s=... baseline_weights_per_s=... ratio=... peak_rss_mb=...
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from cimco.geometry import MacroGeometry
from cimco.sparse.layout import as_matrices
from cimco.sparse.occupancy import occupancy
from cimco.sparse.patterns import generate
from cimco.spec import load

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5


def main() -> int:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    system = load(ROOT / "arch_specs/mars_system.yaml")
    workload = load(ROOT / "workloads/resnet18_imagenet.yaml")
    cases = []
    for layer in workload.layers:
        geo = MacroGeometry.of(system.macro, 8, 8, system.n_macros)
        for pattern in ("row_block", "unstructured"):
            cases.append((as_matrices(generate(layer, geo, pattern, 0.5, 0), layer), geo))
    n = sum(m.size for m, _ in cases)
    print(f"{len(cases)} masks, {n / 1e6:.1f} M weights")
    best, base = float("inf"), float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        for m, geo in cases:
            occupancy(m, geo)
        best = min(best, time.perf_counter() - t)
        t = time.perf_counter()
        for m, _ in cases:
            np.count_nonzero(m)
        base = min(base, time.perf_counter() - t)
    rate, base_rate = n / best, n / base
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"occupancy: {best * 1e3:.1f} ms for all layers ({rate:.3g} weights/s, best of {REPEATS})")
    print(f"baseline count_nonzero: {base * 1e3:.1f} ms ({base_rate:.3g} weights/s)")
    print(f"RESULT weights_per_s={rate:.3g} baseline_weights_per_s={base_rate:.3g} "
          f"ratio={rate / base_rate:.3f} peak_rss_mb={rss:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
