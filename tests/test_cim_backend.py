"""The ``cimco`` backend (cimco's own search of the CIM mapspace, evaluated by AccelForge's
model) against AccelForge's FFM mapper on the same layers.

The agreement condition: energy and latency each within 1% of FFM's best mapping, or a
lower energy-delay product. Drawn layers (``drawn.layers``) on the three macro families:
``CIMCO_DRAWN`` per family (default 4, so 12 in the default run; 70 gives the 210 of the
slow run in docs/benchmarks.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from drawn import layers
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir

from cimco.backends.accelforge import AccelForge
from cimco.backends.cim import Cim, Shape, mapping_nodes, ranked
from cimco.errors import MappingError
from cimco.spec import load
from cimco.spec.load import read_yaml
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer, WorkloadSpec
from cimco.tables import component_tables

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from backend_agreement import verdict  # noqa: E402

MARS = load(ROOT / "arch_specs/mars_system.yaml")
FAMILIES = {
    "analog": MARS,
    "digital_adder_tree": SystemSpec.model_validate({**MARS.model_dump(mode="json"), "name": "chih",
                                                     "macro": read_yaml(ROOT / "arch_specs/chih_isscc_2021.yaml")}),
    # a small buffer as well: DRAM loops, tiles held below the top
    "digital_bit_serial": SystemSpec.model_validate({
        **MARS.model_dump(mode="json"), "name": "colonnade-16KB", "cores": 2,
        "global_buffer": {**MARS.model_dump(mode="json")["global_buffer"], "size_bits": 16 * 8 * 1024},
        "macro": read_yaml(ROOT / "arch_specs/colonnade_jssc_2021.yaml")}),
}
BITS = Bits(input=8, weight=8, output=8)
DRAWN = int(os.environ.get("CIMCO_DRAWN", "4"))
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "cimco-hypothesis")


def _agrees(layer: Layer, system: SystemSpec, scratch: Path) -> None:
    try:
        ffm = AccelForge().map_layer(system, layer, BITS, scratch=scratch)
    except MappingError:
        return  # the FFM test (test_map_fuzz) checks such refusals
    ours = Cim().map_layer(system, layer, BITS, scratch=scratch)
    assert ours.computes == layer.macs
    e, lat = ours.energy_j / ffm.energy_j, ours.latency_s / ffm.latency_s
    assert verdict(ours, ffm, 0.01) != "worse", (
        f"{layer}: cimco/FFM energy {e:.4f} latency {lat:.4f}\nFFM  {ffm.mapping}\nours {ours.mapping}")
    # every number is AccelForge's: energy is the counts times the ERT
    ert = component_tables(system, WorkloadSpec(name="w", source="t", bits=BITS, layers=[layer]), None).ert
    total = sum(ert.get(c, {}).get(a, 0.0) * k for (c, a), k in ours.actions.items())
    # (AccelForge's model rounds a lone mapping's columns to float32: rel 1e-7)
    assert total == pytest.approx(ours.energy_j, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=DRAWN, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(layer=layers())
def test_drawn_layers_agree_with_ffm(family: str, layer: Layer, tmp_path_factory) -> None:
    _agrees(layer, FAMILIES[family], tmp_path_factory.mktemp("m"))


@pytest.mark.parametrize("name", ["conv1", "layer1.0.conv1", "layer2.0.conv1", "layer2.0.downsample.0", "fc"])
def test_bundled_layers_agree_with_ffm(name: str, tmp_path: Path) -> None:
    workload = load(ROOT / "workloads/resnet18_imagenet.yaml")
    layer = next(x for x in workload.layers if x.name == name)
    _agrees(layer, FAMILIES["digital_bit_serial"], tmp_path)


def test_every_plan_keeps_the_architecture_rules() -> None:
    """Weights never copied (no fanout over output positions), columns take output
    channels only, fanouts within the system, and every rank covered."""
    workload = load(ROOT / "workloads/resnet18_imagenet.yaml")
    from cimco import _af

    for layer in workload.layers[:6]:
        einsum = _af.einsum_of(layer)
        shape = Shape.of(layer, einsum)
        for system in FAMILIES.values():
            for _, plan in ranked(system, layer, einsum, BITS, {})[:50]:
                nodes = mapping_nodes(system, shape, plan)
                spatial = [n for n in nodes if n["node"] == "spatial"]
                assert all(n["rank"] not in ("p", "q", "t") for n in spatial)
                assert {n["rank"] for n in spatial if n["name"] == "column"} == {"m"}
                for name, fanout in (("macro", system.macros_per_core), ("core", system.cores)):
                    used = 1
                    for _, n in (plan.macro if name == "macro" else plan.core):
                        used *= n
                    assert used <= fanout
                covered = {k: 1 for k in shape.dims}
                for k, n in plan.loops:
                    covered[k] *= n
                for k, n in (*plan.array, *plan.macro, *plan.core):
                    covered[k] = covered.get(k, 1) * n
                assert all(covered[k] >= v for k, v in shape.dims.items()), (plan, shape.dims)


def test_closed_form_dram_traffic_is_accelforges() -> None:
    """The estimate's DRAM traffic per tensor (what ranks plans on small buffers) against
    AccelForge's model on the same plans: equal for weights and outputs (partial sums
    included) everywhere, and for inputs where every rank divides evenly on the MARS system
    with a 16 KB buffer; else within 5% (a partial last window is counted whole)."""
    import math

    from cimco import _af, arch
    from cimco.backends.cim import RELEVANT, WEIGHT_RANKS, _tile

    small = SystemSpec.model_validate({**MARS.model_dump(mode="json"), "name": "mars-4m-16KB", "cores": 1,
                                       "macros_per_core": 4, "global_buffer": {
                                           **MARS.model_dump(mode="json")["global_buffer"], "size_bits": 131072}})
    workload = load(ROOT / "workloads/resnet18_imagenet.yaml")
    exact = 0
    for system, input_tol in ((small, 1e-6), (FAMILIES["digital_bit_serial"], 0.05)):
        for name in ("conv1", "layer1.0.conv1", "layer2.0.conv2", "layer3.0.downsample.0", "layer4.0.conv2", "fc"):
            layer = next(x for x in workload.layers if x.name == name)
            einsum = _af.einsum_of(layer)
            shape = Shape.of(layer, einsum)
            model = _af.Evaluator(arch.build_nodes(system, BITS), einsum, BITS)
            plans = [p for _, p in ranked(system, layer, einsum, BITS, model.ert)[:3]]
            results = model.evaluate([mapping_nodes(system, shape, p) for p in plans])
            for plan, evaluated in zip(plans, results):
                assert evaluated is not None, plan
                r = evaluated.result()
                outputs = math.prod(shape.size(k) for k in RELEVANT["O"])
                ours = {"I": _tile(shape, plan, "I")[1] * BITS.input,
                        "O": (2 * _tile(shape, plan, "O")[1] - outputs) * BITS.output,
                        "W": math.prod(shape.size(k) for k in WEIGHT_RANKS) * BITS.weight}
                theirs = {t: sum(v for (c, u, _), v in r.tensor_actions.items() if c == "DRAM" and u == t)
                          for t in "IOW"}
                assert ours["W"] == pytest.approx(theirs["W"], rel=1e-6)
                assert ours["O"] == pytest.approx(theirs["O"], rel=1e-6), (name, plan)
                covered = dict.fromkeys(shape.dims, 1)
                for k, n in (*plan.array, *plan.macro, *plan.core, *plan.loops):
                    covered[k] = covered.get(k, 1) * n
                even = all(covered[k] == v for k, v in shape.dims.items())
                tol = input_tol if even else 0.05  # a partial last tile's halo is counted whole
                assert ours["I"] == pytest.approx(theirs["I"], rel=tol), (name, plan)
                exact += tol < 1e-3
    assert exact >= 4  # the exact case is exercised
