"""Benchmark `cimco sweep`: points per second with the local process pool and with a Dask
LocalCluster (same number of worker processes, loopback), each from an empty OUT.

The sweep: a 3-layer network of small linear layers on the MARS-like system, 2 weight
precisions x 4 sparsity patterns x 2 densities x 2 input densities = 32 points, of which
2 map their layers and 30 read the mapping cache. Both tables must be identical. Last line:
RESULT points=... points_per_s=... (local) dask_points_per_s=... local_vs_dask=... (ratio of rates)
"""

from __future__ import annotations

import os
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


def timed(spec: Path, out: Path, executor: str, jobs: int, scheduler: str | None = None):
    from cimco import sweeps

    t = time.perf_counter()
    df, stats = sweeps.run(spec, out, executor, scheduler, jobs, progress=False)
    dt = time.perf_counter() - t
    print(f"{executor}: {stats.computed} points, {stats.mapper_calls} layers mapped, {dt:.1f} s "
          f"({stats.computed / dt:.3f} points/s)", flush=True)
    return df, stats.computed / dt


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
    print(f"RESULT points={len(local)} points_per_s={local_rate:.3f} dask_points_per_s={dask_rate:.3f} "
          f"local_vs_dask={local_rate / dask_rate:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
