"""Benchmark export of ResNet-50 (ImageNet shapes), excluding the torch import.

Baseline in the same run: one plain forward pass of the model on the same input (export
runs the model twice: once to check it, once for fx shape propagation). Last line:
RESULT export_s=... forward_s=... ratio=... layers=... peak_rss_mb=...
"""

from __future__ import annotations

import resource
import sys
import time

import torch

from cimco.torch import export, zoo


def main() -> int:
    model, example = zoo.get("resnet50_imagenet")
    with torch.no_grad():
        model(example)  # warm up kernels for both measurements
        t = time.perf_counter()
        model(example)
        forward = time.perf_counter() - t
    t = time.perf_counter()
    ex = export(model, example, "resnet50_imagenet")
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"export: {dt:.2f} s for {len(ex.workload['layers'])} layers; one forward: {forward:.2f} s")
    print(f"RESULT export_s={dt:.2f} forward_s={forward:.2f} ratio={dt / forward:.1f} "
          f"layers={len(ex.workload['layers'])} peak_rss_mb={rss:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
