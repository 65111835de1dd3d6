"""LRMP gains on ResNet-20, VGG-16 and ResNet-18 (CIFAR shapes) on the MARS-like macro.

Budget: 2x the macros of the baseline (uniform 8-bit, no replication). Accuracy budget:
the loss of uniform 6-bit precision under the assumed 2^-2b proxy (no trained weights for
these networks here), and under sensitivities *measured* on the digits CNN for a fourth
row (one layer quantized at a time, validation split). Also times the MILP on ResNet-50
shapes (the solve alone, against building its options in the same run).
The same with each stage receiving its inputs over mars_system_cores.yaml's mesh NoC (the
with-transport columns: its 128-bit links, and 32-bit ones).
Last line: RESULT <net>_latency_gain=... <net>_throughput_gain=... <net>_noc_latency_gain=...
<net>_noc32_latency_gain=... ... resnet50_milp_s=...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cimco.codesign.lrmp import solve
from cimco.codesign.run import run
from cimco.codesign.spatial import layer_options
from cimco.spec import load
from cimco.tables import component_tables

ROOT = Path(__file__).resolve().parent.parent


def digits_workload():
    """Digits CNN: trained, BN folded, sensitivities measured on validation; exported."""
    import copy

    import torch

    from cimco.spec.workload import WorkloadSpec
    from cimco.torch import export
    from cimco.torch.data import digits, digits_cnn, train
    from cimco.torch.quant import fold_bn
    from cimco.torch.sensitivity import layer_sensitivity

    tr, va, _te = digits(seed=0)
    torch.manual_seed(0)
    model = fold_bn(train(digits_cnn(), tr, 10))
    sens = layer_sensitivity(copy.deepcopy(model), va, [4, 5, 6, 7, 8], [x for x, _ in tr][:3])
    ex = export(model, torch.zeros(1, 1, 8, 8), "digits_cnn")
    return WorkloadSpec.model_validate(ex.workload), sens


def main() -> int:
    system = load(ROOT / "arch_specs/mars_system.yaml")
    # the same macros with a 2 x 2 mesh NoC (128-bit links, 0.1 pJ a bit a hop, assumed): each
    # stage receives its inputs over it (cimco.codesign.spatial)
    noc = load(ROOT / "arch_specs/mars_system_cores.yaml")
    narrow = noc.model_copy(update={"noc": noc.noc.model_copy(update={"link_bandwidth_bits_per_s": 3.2e10})})
    results = {}
    print("| network | baseline macros | budget | joint macros | bits used | latency gain | "
          "throughput gain | replication-only thr. gain | precision-only thr. gain "
          "| with NoC transport, 128-bit links: latency, throughput gain | 32-bit links |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    nets = [(n, load(ROOT / f"workloads/{n}.yaml"), None)
            for n in ("resnet20_cifar", "vgg16_cifar", "resnet18_cifar")]
    nets.append(("digits_cnn", *digits_workload()))
    for name, w, sens in nets:
        ert = component_tables(system, w).ert
        r = run(system, w, ert, 2.0, "throughput", sens)
        lg, tg = r.gain("joint")
        j = r.designs["joint"]
        bits = sorted({o.bits for o in j.options})
        mlg, mtg = run(noc, w, ert, 2.0, "throughput", sens).gain("joint")
        nlg, ntg = run(narrow, w, ert, 2.0, "throughput", sens).gain("joint")
        print(f"| {name} | {r.designs['baseline'].macros} | {r.budget} | {j.macros} | {bits} | "
              f"{lg:.2f}x | {tg:.2f}x | {r.gain('replication')[1]:.2f}x | {r.gain('precision')[1]:.2f}x | "
              f"{mlg:.2f}x, {mtg:.2f}x | {nlg:.2f}x, {ntg:.2f}x |")
        results[name] = (lg, tg, mlg, mtg, nlg, ntg)
    w = load(ROOT / "workloads/resnet50_imagenet.yaml")
    ert = component_tables(system, w).ert
    t = time.perf_counter()
    opts = [layer_options(system, layer, ert, [4, 5, 6, 7, 8]) for layer in w.layers]
    build = time.perf_counter() - t
    base = sum(next(o for o in os_ if o.bits == 8 and o.replication == 1).macros for os_ in opts)
    t = time.perf_counter()
    solve(opts, 2 * base)
    milp = time.perf_counter() - t
    n_vars = sum(len(o) for o in opts)
    print(f"\nResNet-50: {len(opts)} layers, {n_vars} binary options; building options "
          f"{build:.2f} s, MILP {milp:.2f} s")
    print("RESULT " + " ".join(f"{n}_latency_gain={lg:.2f} {n}_throughput_gain={tg:.2f} "
                              f"{n}_noc_latency_gain={mlg:.2f} {n}_noc_throughput_gain={mtg:.2f} "
                              f"{n}_noc32_latency_gain={nlg:.2f} {n}_noc32_throughput_gain={ntg:.2f}"
                              for n, (lg, tg, mlg, mtg, nlg, ntg) in results.items())
          + f" resnet50_milp_s={milp:.2f} resnet50_options_s={build:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
