"""The cimco backend's closed form against AccelForge's model, layer by layer.

For every distinct layer of the bundled workloads on the systems of
``backend_agreement.py`` (mars_system, its digital variant, the 20-system family; with --noc each
with a mesh NoC, with --cores also a buffer in each core), the plan
the closed form ranks best is evaluated by AccelForge's model and the two results compared
entry by entry (:meth:`cimco.backends.LayerResult.differences`: totals, every count by part,
tensor and action, energy by part and action, each part's latency, the loops). Lists every
layer with an entry off by more than --tol, and the layers whose best plan the model
rejected (a tile over a memory's capacity that the closed form thought fitted). It also
counts the best plans with a partial last turn (imperfect factors), which the model times
as that turn's share of an activation while a macro spends a whole one on it, and the most
such a plan's latency would grow if its cells took whole turns. Last line:
RESULT layers=... off=... rejected=... worst_energy=... worst_latency=... partial_turns=... max_whole_turn_latency=...
(worst: the largest relative difference, either sign).

    .venv/bin/python scripts/closed_form_check.py --systems 22
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> int:
    from backend_agreement import WORKLOADS, distinct_layers

    from cimco import _af, arch
    from cimco.backends.cim import Shape, _Costs, _Nest, evaluate, mapping_nodes, ranked

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated bundled workload names")
    p.add_argument("--systems", type=int, default=22, help="the first N systems (mars, digital, then the 20 variants)")
    p.add_argument("--tol", type=float, default=1e-4, help="relative difference reported")
    p.add_argument("--noc", action="store_true", help="give every system mars_system_cores.yaml's mesh NoC")
    p.add_argument("--cores", action="store_true",
                   help="give every system mars_system_cores.yaml's mesh NoC and buffer in each core")
    args = p.parse_args()
    n = rejected = 0
    off: list[tuple] = []
    worst_e = worst_l = 0.0
    partial, whole_turns = 0, 1.0
    for system, name, layer, bits, einsum in distinct_layers(args.systems, args.workloads.split(","), args.noc,
                                                             args.cores):
        model = _af.Evaluator(arch.build_nodes(system, bits), einsum, bits)
        best = ranked(system, layer, einsum, bits, model.ert)
        if not best:
            continue
        n += 1
        plan = best[0][1]
        shape = Shape.of(layer, einsum)
        evaluated = model.evaluate([mapping_nodes(system, shape, plan)])[0]
        if evaluated is None:
            rejected += 1
            print(f"rejected {system.name} {name}:{layer.name}", flush=True)
            continue
        activations = 1
        for _, turns in plan.loops:
            activations *= turns
        if activations > _Nest(shape, plan).cell_turns * (1 + 1e-9):
            partial += 1
            slices_s = _Costs.of(system, shape, bits, model.ert).slices_s
            whole_turns = max(whole_turns, activations * slices_s / evaluated.latency_s)
        theirs = evaluated.result()
        ours = evaluate(system, shape, bits, plan, model.ert)
        de = ours.energy_j / theirs.energy_j - 1
        dl = ours.latency_s / theirs.latency_s - 1
        worst_e, worst_l = max(worst_e, abs(de)), max(worst_l, abs(dl))
        differences = ours.differences(theirs, args.tol)
        if differences:
            off.append((system.name, name, layer.name))
            print(f"off {system.name} {name}:{layer.name}: {'; '.join(differences)[:400]}", flush=True)
    print(f"RESULT layers={n} off={len(off)} rejected={rejected} worst_energy={worst_e:.5f} "
          f"worst_latency={worst_l:.5f} partial_turns={partial} max_whole_turn_latency={whole_turns:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
