"""Benchmark `cimco sweep`: points per second, each run from an empty OUT.

1. The cached-point sweep: a 3-layer network of small linear layers on the MARS-like system,
   2 weight precisions x 4 sparsity patterns x 2 densities x 2 input densities = 32 points,
   of which 2 map their layers and 30 read the mapping cache; with the local process pool
   and with a Dask LocalCluster (same number of worker processes, loopback). Both tables
   must be identical.
2. The architecture sweep: ResNet-20 (CIFAR) on the MARS-like system, 2 ADC widths x 2
   macro widths x 2 core counts x 2 macros per core x 2 buffer sizes = 32 points, every one
   needing its own mappings, with `--backend cimco` (5 runs, the median rate), and its first
   4 points with `--backend accelforge` (the baseline, in the same run, between them).
Last line:
RESULT points=... points_per_s=... dask_points_per_s=... local_vs_dask=...
arch_points=32 arch_points_per_s=... arch_af_points_per_s=... arch_speedup=...
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = """\
kind: workload
name: bench_small
source: scripts/bench_sweep.py
layers:
  - {name: l1, type: linear, in_channels: 64, out_channels: 16}
  - {name: l2, type: linear, in_channels: 128, out_channels: 32}
  - {name: l3, type: linear, in_channels: 32, out_channels: 10}
"""
SWEEP = f"""\
kind: sweep
name: bench
system: {ROOT / "arch_specs/mars_system.yaml"}
workload: w.yaml
grid:
  workload.bits.weight: [4, 8]
  workload.sparsity: {{pattern: [row_block, kernel_group], density: [0.4, 0.6, 0.8, 1.0]}}
  workload.input_density: [0.5, 1.0]
"""

ARCH = f"""\
kind: sweep
name: arch
system: {ROOT / "arch_specs/mars_system.yaml"}
workload: {ROOT / "workloads/resnet20_cifar.yaml"}
grid:
  macro.adc_bits: [5, 6]
  macro.cols: [128, 256]
  system.cores: [2, 4]
  system.macros_per_core: [4, 8]
  system.global_buffer.size_bits: [1048576, 2097152]
"""
# the baseline's points: the grid's first 4 (AccelForge's FFM takes ~30 s a point)
ARCH_BASELINE = ARCH.replace("macro.adc_bits: [5, 6]", "macro.adc_bits: [5]").replace(
    "macro.cols: [128, 256]", "macro.cols: [128]").replace("system.cores: [2, 4]", "system.cores: [2]")


def timed(spec: Path, out: Path, executor: str, jobs: int, scheduler: str | None = None,
          backend: str = "accelforge"):
    from cimco import sweeps

    t = time.perf_counter()
    df, stats = sweeps.run(spec, out, executor, scheduler, jobs, progress=False, backend=backend)
    dt = time.perf_counter() - t
    print(f"{executor} {backend}: {stats.computed} points, {stats.mapper_calls} layers mapped, {dt:.1f} s "
          f"({stats.computed / dt:.3f} points/s)", flush=True)
    return df, stats.computed / dt


def cold() -> None:
    """Empty the per-process caches of the cimco backend's search and pricing (this process
    maps points too, and a `cimco sweep` command starts without them)."""
    from cimco import models, tables
    from cimco.backends import cim

    cim._spreads.cache_clear()
    cim._arrays.cache_clear()
    cim._nests.cache_clear()
    models._adc_survey.cache_clear()
    tables._PRICED.clear()


def main() -> int:
    from distributed import LocalCluster

    jobs = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="cimco-bench-sweep-") as d:
        d = Path(d)
        (d / "w.yaml").write_text(WORKLOAD)
        (d / "sweep.yaml").write_text(SWEEP)
        local, local_rate = timed(d / "sweep.yaml", d / "local", "local", jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dask's notices about the loopback cluster
            with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None, local_directory=str(d / "dask-space")) as cluster:
                dask, dask_rate = timed(d / "sweep.yaml", d / "dask", "dask", jobs, cluster.scheduler_address)
        same = local.equals(dask)
        print(f"tables identical: {same}")
        (d / "arch.yaml").write_text(ARCH)
        (d / "arch_af.yaml").write_text(ARCH_BASELINE)
        # the cimco sweep takes ~1.5 s: the median of 5 runs (each into a new OUT, this process's
        # caches emptied as a new process has them), around the baseline
        rates = []
        for i in range(5):
            cold()
            arch, rate = timed(d / "arch.yaml", d / f"arch{i}", "local", jobs, backend="cimco")
            rates.append(rate)
            if i == 2:
                _, af_rate = timed(d / "arch_af.yaml", d / "arch_af", "local", jobs, backend="accelforge")
        arch_rate = statistics.median(rates)
    print(f"RESULT points={len(local)} points_per_s={local_rate:.3f} dask_points_per_s={dask_rate:.3f} "
          f"local_vs_dask={local_rate / dask_rate:.2f} arch_points={len(arch)} arch_points_per_s={arch_rate:.3f} "
          f"arch_af_points_per_s={af_rate:.3f} arch_speedup={arch_rate / af_rate:.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
