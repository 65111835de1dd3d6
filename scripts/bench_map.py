"""Benchmark `cimco map` on ResNet-18 (ImageNet shapes) against plain AccelForge.

In one run, each in a fresh subprocess:
  cold      `cimco map` with an empty cache (maps each distinct layer once, one worker
            process per CPU)
  plain_af  every layer mapped by AccelForge's own `Spec.map_workload_to_arch` on the same
            architecture, one layer at a time, no dedup, no cache (its `mapping.svg`
            render is stubbed out since graphviz is not installed; both sides use 1 job)
  warm      `cimco map` again with the cache from the cold run
Peak RSS is the largest single process of the cold run (`ru_maxrss` of its children). Last line:
RESULT cold_s=... plain_af_s=... ratio=... warm_s=... peak_rss_mb=...
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "arch_specs/mars_system.yaml"
WORKLOAD = ROOT / "workloads/resnet18_imagenet.yaml"
CIMCO = Path(sys.executable).parent / "cimco"

PLAIN = r"""
import sys, os
from cimco import _af, arch
from cimco.spec import load_pair
import accelforge.mapper.FFM.mappings as M
from accelforge.util import set_n_parallel_jobs
M.Mappings.render = lambda self, *a, **k: ""   # graphviz is not installed
set_n_parallel_jobs(1)
system, workload = load_pair(sys.argv[1], sys.argv[2])
for layer in workload.layers:
    bits = workload.layer_bits(layer)
    spec = _af.make_spec(arch.build_nodes(system, bits), _af.einsum_of(layer), bits)
    spec.map_workload_to_arch(print_progress=False)
    print(layer.name, flush=True)
"""


def timed(cmd: list[str], cwd: str) -> tuple[float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    # TMPDIR: plain AccelForge leaves tmp*.pkl files in the temp dir; keep them in ours.
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "TMPDIR": cwd})
    dt = time.perf_counter() - t
    return dt, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cimco-bench-") as d:
        out = os.path.join(d, "out")
        cmd = [str(CIMCO), "map", "--system", str(SYSTEM), "--workload", str(WORKLOAD),
               "--out", out, "--quiet"]
        cold, rss = timed(cmd, d)
        print(f"cold cimco map: {cold:.1f} s (peak RSS {rss / 1024:.0f} MB)", flush=True)
        plain, _ = timed([sys.executable, "-c", PLAIN, str(SYSTEM), str(WORKLOAD)], d)
        print(f"plain AccelForge, layer by layer: {plain:.1f} s", flush=True)
        warm, _ = timed(cmd, d)
        print(f"warm cimco map (cached): {warm:.2f} s", flush=True)
    print(f"RESULT cold_s={cold:.1f} plain_af_s={plain:.1f} ratio={cold / plain:.2f} "
          f"warm_s={warm:.2f} peak_rss_mb={rss / 1024:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
