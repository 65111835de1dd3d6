"""The `cimco` backend against AccelForge's FFM mapper, layer by layer.

Every distinct layer of the chosen workloads is mapped alone, dense, at its bits, by both
backends on each system: `mars_system`, a digital-macro system (the MARS system with
Chih's adder-tree macro) and a generated family of 20 variants (global buffer 16 KB-1 MB,
4-64 macros, DRAM bandwidth x0.25-x4, the three macro families; see :func:`systems`), or with
--noc the same systems each with mars_system_cores.yaml's mesh NoC (--cores: that NoC and its
buffer in each core). A pair agrees when
energy and latency are each within --tol of FFM's, or the cimco mapping has a lower
energy-delay product (listed with both). A pair that does neither while FFM's mapping runs
more tiles side by side than a core has macros or the system cores (AccelForge's model counts
an imperfect spatial loop's use of a fanout as its mean occupancy) is counted apart as
``ffm_overfull``: FFM's mapping does not fit the hardware; and one where the model counts
FFM's mapping, and not cimco's, fewer readouts than any mapping on the macro's rows has (the
same mean occupancy, e.g. of a rank split imperfectly at two levels) as ``ffm_undercounted``;
``ours_undercounted`` counts cimco's mappings the model counts so (a kernel rank's partial last
turn, counted as its share of a readout). FFM results are kept in --cache
(keyed as `cimco map`'s cache is) so a rerun maps only what is new.

Prints one line per pair that does not agree, then the worst ratios, and ends
RESULT layers=... agree=... worst_energy=... worst_latency=... better_edp=... ffm_overfull=...
ffm_undercounted=... worse=... ours_undercounted=...
(worst_*: largest cimco/FFM ratio over the pairs that agree or are worse).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
WORKLOADS = ("resnet18_imagenet", "resnet50_imagenet", "mobilenetv2_imagenet", "vgg16_cifar", "resnet20_cifar",
             "resnet56_cifar", "resnet18_cifar")
BUFFERS_KB = (16, 64, 128, 256, 1024)
MACROS = ((1, 4), (2, 4), (2, 8), (4, 8), (8, 8))  # cores x macros per core: 4-64 macros
DRAM_BW = (0.25, 0.5, 1.0, 2.0, 4.0)
FAMILIES = ("mars_macro_28nm", "chih_isscc_2021", "colonnade_jssc_2021")


def systems():
    """mars_system, its digital variant, the 9 systems of ``timeloop_agreement.py``'s Latin
    square (buffer 16/128/1024 KB x 4/16/64 macros x the three families), then 11 variants
    that also vary DRAM bandwidth: variant i takes buffer i mod 5, macros (i + 2) mod 5,
    bandwidth (2i + 1) mod 5 and family i mod 3 of the tables above."""
    from timeloop_agreement import systems as square

    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.sweeps import _system_data

    base = _system_data(ROOT / "arch_specs/mars_system.yaml")
    yield SystemSpec.model_validate(base)
    yield SystemSpec.model_validate({**base, "name": "mars_system-chih",
                                     "macro": read_yaml(ROOT / "arch_specs/chih_isscc_2021.yaml")})
    yield from square()
    for i in range(11):
        kb, (cores, per) = BUFFERS_KB[i % 5], MACROS[(i + 2) % 5]
        bw, family = DRAM_BW[(2 * i + 1) % 5], FAMILIES[i % 3]
        dram = {**base["dram"], "bandwidth_bits_per_s": base["dram"]["bandwidth_bits_per_s"] * bw}
        data = {**base, "name": f"{family}-{cores * per}m-{kb}KB-bw{bw:g}", "cores": cores, "macros_per_core": per,
                "dram": dram, "global_buffer": {**base["global_buffer"], "size_bits": kb * 8 * 1024}}
        if family != "mars_macro_28nm":
            data["macro"] = read_yaml(ROOT / f"arch_specs/{family}.yaml")
        yield SystemSpec.model_validate(data)


def distinct_layers(n_systems: int, workloads: list[str], noc: bool = False, cores: bool = False):
    """(system, workload name, layer, bits, einsum) for each distinct layer (shape and bits) of
    ``workloads`` on each of the first ``n_systems`` systems (``noc``: each with the NoC of
    ``mars_system_cores.yaml`` between its buffer and its cores; ``cores``: that NoC and its
    buffer in each core)."""
    from cimco import _af
    from cimco.spec import load

    with_cores = load(ROOT / "arch_specs/mars_system_cores.yaml")
    for system in list(systems())[:n_systems]:
        if noc or cores:
            system = system.model_copy(update={"name": f"{system.name}-{'cores' if cores else 'noc'}",
                                               "noc": with_cores.noc,
                                               "core_buffer": with_cores.core_buffer if cores else None})
        seen = set()
        for name in workloads:
            workload = load(ROOT / f"workloads/{name}.yaml")
            for layer in workload.layers:
                bits = workload.layer_bits(layer)
                einsum = _af.einsum_of(layer)
                key = (einsum["einsum"], tuple(einsum["iteration_space_shape"]), bits)
                if key not in seen:
                    seen.add(key)
                    yield system, name, layer, bits, einsum


def ffm_key(system, einsum: dict, bits, engine: dict) -> str:
    """The key of FFM's result in --cache: what FFM is given (the architecture cimco builds
    for ``system`` at ``bits``, and the Einsum) and the engine's versions; not the rest of
    cimco's code, which FFM's result does not depend on."""
    import hashlib
    import json

    from cimco import arch

    payload = {"architecture": arch.build_nodes(system, bits), "einsum": einsum, "engine": engine}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def overfull(result, system) -> bool:
    """Whether a mapping runs more tiles side by side than a core has macros, or than the
    system has cores: AccelForge's model counts an imperfect spatial loop's use of a fanout as
    its mean occupancy, so FFM may put e.g. 3 x 3 tiles on an 8-macro core."""
    import math

    return any(math.prod(d["bound"] for d in result.loops if d["node"] == "spatial" and d.get("component") == c) > n
               for c, n in (("macro", system.macros_per_core), ("core", system.cores)))


def undercounted(result, system, layer, bits, einsum: dict) -> bool:
    """Whether a mapping's readouts (ADC or adder tree) are fewer than any mapping can have:
    a readout converts one activation of at most ``wordlines_on`` rows, so each output needs
    ceil(reduction / wordlines_on) of them (times the conversions per output). AccelForge's model
    counts an imperfect spatial loop at its mean occupancy, so a rank split imperfectly at
    two levels (e.g. 32 channels as 3 macros of 11, each over 2 cores of 7) is counted below
    the row groups physically active, and can be below this bound."""
    import math

    from cimco.backends.cim import RELEVANT, Shape
    from cimco.geometry import MacroGeometry
    from cimco.parts import ADC, ADDER_TREE

    shape, g = Shape.of(layer, einsum), MacroGeometry.of_system(system, bits)
    outputs = math.prod(shape.size(k) for k in RELEVANT["O"])
    least = math.ceil(math.prod(shape.size(k) for k in ("c", "r", "s")) / g.wordlines_on)
    readouts = sum(result.actions.get((p, "read"), 0.0) for p in (ADC, ADDER_TREE))
    return readouts < outputs * least * g.conversions_per_output * (1 - 1e-9)


def verdict(ours, ffm, tol: float, system, layer, bits, einsum: dict) -> str:
    """"agree", "better" (lower energy-delay product), or, where neither: "overfull" (FFM's
    mapping uses more macros or cores than ``system`` has: :func:`overfull`),
    "undercounted" (the model counts FFM's mapping, not ours, fewer readouts than any
    mapping has: :func:`undercounted`) or "worse"."""
    e, lat = ours.energy_j / ffm.energy_j, ours.latency_s / ffm.latency_s
    if abs(e - 1) <= tol and abs(lat - 1) <= tol:
        return "agree"
    if e * lat < 1:
        return "better"
    if overfull(ffm, system):
        return "overfull"
    if undercounted(ffm, system, layer, bits, einsum) and not undercounted(ours, system, layer, bits, einsum):
        return "undercounted"
    return "worse"


def main() -> int:
    from cimco import cache
    from cimco.backends.accelforge import AccelForge
    from cimco.backends.cim import Cim
    from cimco.errors import MappingError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated bundled workload names")
    p.add_argument("--systems", type=int, default=22, help="the first N systems (mars, digital, then the 20 variants)")
    p.add_argument("--tol", type=float, default=0.01, help="relative tolerance on energy and latency")
    p.add_argument("--noc", action="store_true", help="give every system mars_system_cores.yaml's mesh NoC")
    p.add_argument("--cores", action="store_true",
                   help="give every system mars_system_cores.yaml's mesh NoC and buffer in each core")
    p.add_argument("--cache", default=str(Path.home() / ".cache/cimco-agreement"),
                   help="where FFM's results are kept between runs")
    args = p.parse_args()
    store = Path(args.cache)
    store.mkdir(parents=True, exist_ok=True)
    ffm_engine = {"backend": "accelforge", **AccelForge().versions()}
    counts = {"agree": 0, "better": 0, "overfull": 0, "undercounted": 0, "worse": 0}
    worst_e = worst_l = 1.0
    ours_under = 0  # cimco's mappings the model counts below the readouts any mapping has
    t_ours = t_ffm = 0.0
    for system, name, layer, bits, einsum in distinct_layers(args.systems, args.workloads.split(","), args.noc,
                                                             args.cores):
        k = ffm_key(system, einsum, bits, ffm_engine)
        path = store / f"{k}.json"
        ffm = cache.read(path, cache.result_from_json) if path.exists() else None
        try:
            if ffm is None:
                t = time.perf_counter()
                ffm = AccelForge().map_layer(system, layer, bits)
                t_ffm += time.perf_counter() - t
                cache.write(path, cache.result_to_json(ffm))
            t = time.perf_counter()
            ours = Cim().map_layer(system, layer, bits)
            t_ours += time.perf_counter() - t
        except MappingError as e:
            print(f"{system.name} {name}:{layer.name} unmappable: {e}", flush=True)
            continue
        assert not overfull(ours, system), (system.name, layer.name)
        ours_under += undercounted(ours, system, layer, bits, einsum)
        v = verdict(ours, ffm, args.tol, system, layer, bits, einsum)
        counts[v] += 1
        e, lat = ours.energy_j / ffm.energy_j, ours.latency_s / ffm.latency_s
        if v != "agree":
            print(f"{v:8s} {system.name} {name}:{layer.name} energy {e:.3f} latency {lat:.3f} "
                  f"EDP {e * lat:.3f} (FFM {ffm.energy_j:.4g} J {ffm.latency_s:.4g} s)", flush=True)
        if v in ("agree", "worse"):
            worst_e, worst_l = max(worst_e, e), max(worst_l, lat)
    total = sum(counts.values())
    print(f"cimco backend {t_ours:.1f} s, FFM (not from cache) {t_ffm:.1f} s")
    print(f"RESULT layers={total} agree={counts['agree']} worst_energy={worst_e:.4f} worst_latency={worst_l:.4f} "
          f"better_edp={counts['better']} ffm_overfull={counts['overfull']} "
          f"ffm_undercounted={counts['undercounted']} worse={counts['worse']} ours_undercounted={ours_under}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
