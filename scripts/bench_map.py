"""Benchmark `cimco map` on ResNet-18 and ResNet-50 (ImageNet shapes) against plain AccelForge.

In one run, each in a fresh subprocess, for each network:
  cim       `cimco map --backend cimco` with an empty cache (cimco's own search, the best
            mapping's result in closed form; each distinct layer once, in the one process),
            process start included
  cold      the same with `--backend accelforge` (AccelForge's FFM mapper, one worker process
            per CPU)
  plain_af  every layer mapped by AccelForge's own `Spec.map_workload_to_arch` on the same
            architecture, one layer at a time, no dedup, no cache (its `mapping.svg`
            render is stubbed out since graphviz is not installed; both sides use 1 job)
then, on ResNet-18, `warm`: `cimco map --backend cimco` again with the cim run's cache.
Peak RSS is the largest single process of the runs (`ru_maxrss` of its children). Last line:
RESULT r18_cim_s=... r18_cold_s=... r18_plain_af_s=... r18_ratio=... r50_... warm_s=... peak_rss_mb=...
(ratio: cim / plain_af). --quick: ResNet-18 only.
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
WORKLOADS = {"r18": ROOT / "workloads/resnet18_imagenet.yaml", "r50": ROOT / "workloads/resnet50_imagenet.yaml"}
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
    nets = ["r18"] if "--quick" in sys.argv[1:] else list(WORKLOADS)
    figures: dict[str, str] = {}
    peak = 0
    with tempfile.TemporaryDirectory(prefix="cimco-bench-") as d:
        for net in nets:
            def cmd(backend: str, net: str = net) -> list[str]:
                return [str(CIMCO), "map", "--system", str(SYSTEM), "--workload", str(WORKLOADS[net]),
                        "--out", os.path.join(d, f"{net}-{backend}"), "--quiet", "--backend", backend]

            cim, rss = timed(cmd("cimco"), d)
            print(f"{net} cimco map --backend cimco, cold: {cim:.1f} s", flush=True)
            cold, rss = timed(cmd("accelforge"), d)
            print(f"{net} cimco map --backend accelforge, cold: {cold:.1f} s", flush=True)
            plain, rss = timed([sys.executable, "-c", PLAIN, str(SYSTEM), str(WORKLOADS[net])], d)
            print(f"{net} plain AccelForge, layer by layer: {plain:.1f} s", flush=True)
            peak = max(peak, rss)
            figures.update({f"{net}_cim_s": f"{cim:.1f}", f"{net}_cold_s": f"{cold:.1f}",
                            f"{net}_plain_af_s": f"{plain:.1f}", f"{net}_ratio": f"{cim / plain:.3f}"})
            if net == "r18":
                warm, _ = timed(cmd("cimco"), d)
                print(f"r18 cimco map --backend cimco, warm (cached): {warm:.2f} s", flush=True)
                figures["warm_s"] = f"{warm:.2f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in figures.items()) + f" peak_rss_mb={peak / 1024:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
