"""Classic Timeloop against AccelForge on a generated family of systems, layer by layer.

The systems vary what the Timeloop export's constraints depend on: the global buffer
(16 KB, 128 KB, 1 MB), the macros (4, 16, 64) and the macro family (the MARS-like analog
macro, Chih's digital adder tree, Colonnade's bit-serial array), in a 9-system Latin square
(each level of each factor three times). Each ResNet-18 ImageNet layer below is mapped alone,
dense, 8-bit, by both backends (`cimco.backends`); energy is cimco's ERT times each backend's
action counts, latency the backend's own. Needs a timeloop-mapper (--timeloop-bin,
$CIMCO_TIMELOOP_BIN or PATH).

Prints one line per system and layer (Timeloop / AccelForge energy and latency), then
RESULT pairs=... within=... energy_min=... energy_max=... latency_min=... latency_max=...
where `within` counts pairs inside --energy-tol / --latency-tol (relative).
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
    return (f"most: {'.'.join(k)} Timeloop {tl.tensor_actions.get(k, 0.0):.4g} vs AccelForge "
            f"{af.tensor_actions.get(k, 0.0):.4g} ({diff[k] * 1e6:+.3g} uJ)")


def main() -> int:
    from cimco.backends.accelforge import AccelForge
    from cimco.spec import load
    from cimco.spec.workload import Bits, WorkloadSpec
    from cimco.tables import component_tables
    from cimco.timeloop.runner import Timeloop

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeloop-bin")
    p.add_argument("--energy-tol", type=float, default=0.10)
    p.add_argument("--latency-tol", type=float, default=0.05)
    p.add_argument("--layers", default=",".join(LAYERS), help="comma-separated ResNet-18 layer names")
    p.add_argument("--systems", type=int, default=9, help="the first N systems of the square")
    p.add_argument("--timeout", type=float, default=300.0, help="most seconds timeloop-mapper may take on one layer")
    args = p.parse_args()
    workload = load(ROOT / "workloads/resnet18_imagenet.yaml", "workload")
    by_name = {x.name: x for x in workload.layers}
    bits = Bits(input=8, weight=8, output=8)
    tl, af = Timeloop.find(args.timeloop_bin, None), AccelForge()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for system in list(systems())[:args.systems]:
            tables = component_tables(system, WorkloadSpec(name="w", source="s", bits=bits,
                                                           layers=[by_name[LAYERS[-1]]]))
            for name in args.layers.split(","):
                layer = by_name[name]
                t0 = time.perf_counter()
                a = af.map_layer(system, layer, bits, Path(tmp))
                t1 = time.perf_counter()
                try:
                    b = tl.map_layer(system, layer, bits, Path(tmp), args.timeout)
                except Exception as e:  # reported as a row, not a crash of the whole table
                    print(f"{system.name:34s} {name:22s} timeloop failed: {str(e)[:200]}", flush=True)
                    rows.append((float("nan"), float("nan")))
                    continue
                t2 = time.perf_counter()
                e, lat = energy(b, tables) / energy(a, tables), b.latency_s / a.latency_s
                rows.append((e, lat))
                print(f"{system.name:34s} {name:22s} energy {e:6.3f} latency {lat:6.3f} "
                      f"(AccelForge {t1 - t0:5.1f} s, Timeloop {t2 - t1:5.1f} s); {largest_difference(b, a, tables)}",
                      flush=True)
    ok = [r for r in rows if r[0] == r[0]]
    within = sum(abs(e - 1) <= args.energy_tol and abs(lat - 1) <= args.latency_tol for e, lat in ok)
    print(f"RESULT pairs={len(rows)} failed={len(rows) - len(ok)} within={within} "
          f"energy_min={min(r[0] for r in ok):.3f} energy_max={max(r[0] for r in ok):.3f} "
          f"latency_min={min(r[1] for r in ok):.3f} latency_max={max(r[1] for r in ok):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
