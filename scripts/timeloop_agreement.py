"""Classic Timeloop against AccelForge (FFM) and the cimco backend on a generated family of systems, layer by layer.

The systems vary what the Timeloop export's constraints depend on: the global buffer
(16 KB, 128 KB, 1 MB), the macros (4, 16, 64) and the macro family (the MARS-like analog
macro, Chih's digital adder tree, Colonnade's bit-serial array), in a 9-system Latin square
(each level of each factor three times). Each ResNet-18 ImageNet layer below is mapped alone,
dense, 8-bit, by the three backends (`cimco.backends`); energy is cimco's ERT times each backend's
action counts, latency the backend's own. FFM's results are kept in --cache, keyed as
`scripts/backend_agreement.py` keys them (the two scripts share it). Needs a timeloop-mapper
(--timeloop-bin, $CIMCO_TIMELOOP_BIN or PATH).

With --bundled it maps instead every distinct layer of the bundled workloads on the MARS-like
system (FFM's results for those are in --cache after `scripts/backend_agreement.py`). --noc
gives every system `mars_system_cores.yaml`'s mesh NoC, --cores that NoC and its buffer in each
core (as `scripts/backend_agreement.py` does).

Prints one line per system and layer (Timeloop / FFM and Timeloop / cimco energy and latency,
and where Timeloop and FFM differ most), then
RESULT pairs=... failed=... within=... within_either=... energy_min=... energy_max=... latency_min=... latency_max=...
where `within` counts pairs whose Timeloop result is inside --energy-tol / --latency-tol (relative)
of FFM's, `within_either` of FFM's or the cimco backend's (two searches of the same mapspace: where
they differ, Timeloop's is compared with the closer one), `within_plan` of AccelForge's model's
counts for the very mapping the export fixes (the cimco backend's best whole-factor plan, in
closed form: `cimco.timeloop.layout.plan`), and the ranges are against FFM, then that plan.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUFFERS_KB = (16, 128, 1024)
MACROS = ((1, 4), (2, 8), (8, 8))  # cores x macros per core
FAMILIES = ("mars_macro_28nm", "chih_isscc_2021", "colonnade_jssc_2021")
# ResNet-18 (ImageNet) layers of every kind: the stem, 3x3 convs at each stage, a strided
# 1x1 downsample and the classifier
LAYERS = ("conv1", "layer1.0.conv1", "layer2.0.conv1", "layer2.0.downsample.0", "layer3.0.conv2",
          "layer4.0.conv1", "fc")


def systems():
    """The Latin square: system i takes buffer i, macros (i + j) and family (i + 2j) mod 3."""
    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.sweeps import _system_data

    base = _system_data(ROOT / "arch_specs/mars_system.yaml")
    for i in range(3):
        for j in range(3):
            kb, (cores, per), family = BUFFERS_KB[i], MACROS[(i + j) % 3], FAMILIES[(i + 2 * j) % 3]
            data = {**base, "name": f"{family}-{cores * per}m-{kb}KB", "cores": cores, "macros_per_core": per,
                    "global_buffer": {**base["global_buffer"], "size_bits": kb * 8 * 1024}}
            if family != "mars_macro_28nm":
                data["macro"] = read_yaml(ROOT / f"arch_specs/{family}.yaml")
            yield SystemSpec.model_validate(data)


def energy(result, tables) -> float:
    return sum(tables.energy(c, a) * n for (c, a), n in result.actions.items())


def largest_difference(tl, af, tables) -> str:
    """Where the two backends' energies differ most: the (part, tensor, action) whose energy
    differs by the most joules, with both counts (what a reader checks first)."""
    keys = set(tl.tensor_actions) | set(af.tensor_actions)
    diff = {k: tables.energy(k[0], k[2]) * (tl.tensor_actions.get(k, 0.0) - af.tensor_actions.get(k, 0.0))
            for k in keys}
    k = max(diff, key=lambda k: abs(diff[k]))
    return (f"most: {'.'.join(k)} Timeloop {tl.tensor_actions.get(k, 0.0):.4g} vs FFM "
            f"{af.tensor_actions.get(k, 0.0):.4g} ({diff[k] * 1e6:+.3g} uJ)")


def pairs(args):
    """(system, layer name, layer, bits): the square's systems and ResNet-18 layers, or with
    --bundled every distinct layer of the bundled workloads on the MARS-like system."""
    from cimco.spec import load
    from cimco.spec.workload import Bits

    if args.bundled:
        from backend_agreement import WORKLOADS, distinct_layers

        for system, workload, layer, bits, _ in distinct_layers(1, list(WORKLOADS), args.noc, args.cores):
            yield system, f"{workload}:{layer.name}", layer, bits
        return
    by_name = {x.name: x for x in load(ROOT / "workloads/resnet18_imagenet.yaml", "workload").layers}
    with_cores = load(ROOT / "arch_specs/mars_system_cores.yaml")
    for system in list(systems())[:args.systems]:
        if args.noc or args.cores:
            system = system.model_copy(update={"name": f"{system.name}-{'cores' if args.cores else 'noc'}",
                                               "noc": with_cores.noc,
                                               "core_buffer": with_cores.core_buffer if args.cores else None})
        for name in args.layers.split(","):
            yield system, name, by_name[name], Bits(input=8, weight=8, output=8)


def main() -> int:
    from backend_agreement import ffm_key

    from cimco import _af, cache
    from cimco.backends.accelforge import AccelForge
    from cimco.backends.cim import Cim, evaluate
    from cimco.spec.workload import WorkloadSpec
    from cimco.tables import component_costs, component_tables
    from cimco.timeloop.layout import plan as exported
    from cimco.timeloop.runner import Timeloop

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeloop-bin")
    p.add_argument("--energy-tol", type=float, default=0.10)
    p.add_argument("--latency-tol", type=float, default=0.05)
    p.add_argument("--layers", default=",".join(LAYERS), help="comma-separated ResNet-18 layer names")
    p.add_argument("--systems", type=int, default=9, help="the first N systems of the square")
    p.add_argument("--bundled", action="store_true",
                   help="instead: every distinct layer of the bundled workloads on the MARS-like system")
    p.add_argument("--noc", action="store_true", help="give every system mars_system_cores.yaml's mesh NoC")
    p.add_argument("--cores", action="store_true",
                   help="give every system mars_system_cores.yaml's mesh NoC and buffer in each core")
    p.add_argument("--timeout", type=float, default=300.0, help="most seconds timeloop-mapper may take on one layer")
    p.add_argument("--cache", default=str(Path.home() / ".cache/cimco-agreement"),
                   help="where FFM's results are kept between runs")
    args = p.parse_args()
    store = Path(args.cache)
    store.mkdir(parents=True, exist_ok=True)
    tl, af, cim = Timeloop.find(args.timeloop_bin, None), AccelForge(), Cim()
    ffm_engine = {"backend": af.name, **af.versions()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        priced = {}  # the component tables of a system at some bits (slow to build)
        for system, name, layer, bits in pairs(args):
            key = (system.model_dump_json(), bits)
            if key not in priced:
                priced[key] = component_tables(system, WorkloadSpec(name="w", source="s", bits=bits, layers=[layer]))
            tables = priced[key]
            path = store / f"{ffm_key(system, _af.einsum_of(layer), bits, ffm_engine)}.json"
            a = cache.read(path, cache.result_from_json) if path.exists() else None
            if a is None:
                a = af.map_layer(system, layer, bits, Path(tmp))
                cache.write(path, cache.result_to_json(a))
            c = cim.map_layer(system, layer, bits)
            shape, plan = exported(system, layer, bits)  # the mapping the export fixes
            x = evaluate(system, shape, bits, plan, component_costs(system, bits)[0])
            t1 = time.perf_counter()
            try:
                b = tl.map_layer(system, layer, bits, Path(tmp), args.timeout)
            except Exception as e:  # reported as a row, not a crash of the whole table
                print(f"{system.name:34s} {name:22s} timeloop failed: {str(e)[:200]}", flush=True)
                rows.append((float("nan"),) * 6)
                continue
            t2 = time.perf_counter()
            e, lat = energy(b, tables) / energy(a, tables), b.latency_s / a.latency_s
            ec, latc = energy(b, tables) / energy(c, tables), b.latency_s / c.latency_s
            ex, latx = energy(b, tables) / energy(x, tables), b.latency_s / x.latency_s
            rows.append((e, lat, ec, latc, ex, latx))
            print(f"{system.name:34s} {name:22s} FFM: energy {e:6.3f} latency {lat:6.3f}; "
                  f"cimco: energy {ec:6.3f} latency {latc:6.3f}; exported plan: energy {ex:6.3f} "
                  f"latency {latx:6.3f} (Timeloop {t2 - t1:5.1f} s); {largest_difference(b, a, tables)}",
                  flush=True)
    ok = [r for r in rows if r[0] == r[0]]

    def near(e: float, lat: float) -> bool:
        return abs(e - 1) <= args.energy_tol and abs(lat - 1) <= args.latency_tol

    within = sum(near(*r[:2]) for r in ok)
    either = sum(near(*r[:2]) or near(*r[2:4]) for r in ok)
    same = sum(near(*r[4:]) for r in ok)
    print(f"RESULT pairs={len(rows)} failed={len(rows) - len(ok)} within={within} within_either={either} "
          f"within_plan={same} plan_energy_min={min(r[4] for r in ok):.3f} plan_energy_max={max(r[4] for r in ok):.3f} "
          f"plan_latency_min={min(r[5] for r in ok):.3f} plan_latency_max={max(r[5] for r in ok):.3f} "
          f"energy_min={min(r[0] for r in ok):.3f} energy_max={max(r[0] for r in ok):.3f} "
          f"latency_min={min(r[1] for r in ok):.3f} latency_max={max(r[1] for r in ok):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
