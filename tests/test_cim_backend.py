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
from cimco.backends.cim import Cim, Shape, evaluate, mapping_nodes, ranked
from cimco.errors import MappingError
from cimco.spec import load
from cimco.spec.load import read_yaml
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer, WorkloadSpec
from cimco.tables import component_tables

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from backend_agreement import overfull, verdict  # noqa: E402

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
    from cimco import _af

    try:
        ffm = AccelForge().map_layer(system, layer, BITS, scratch=scratch)
    except MappingError:
        return  # the FFM test (test_map_fuzz) checks such refusals
    ours = Cim().map_layer(system, layer, BITS, scratch=scratch)
    assert ours.computes == layer.macs
    e, lat = ours.energy_j / ffm.energy_j, ours.latency_s / ffm.latency_s
    einsum = _af.einsum_of(layer)
    assert not overfull(ours, system), layer
    assert verdict(ours, ffm, 0.01, system, layer, BITS, einsum) != "worse", (
        f"{layer}: cimco/FFM energy {e:.4f} latency {lat:.4f}\nFFM  {ffm.mapping}\nours {ours.mapping}")
    # every number is AccelForge's: energy is the counts times the ERT
    ert = component_tables(system, WorkloadSpec(name="w", source="t", bits=BITS, layers=[layer])).ert
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


@pytest.mark.parametrize("system_name, workload, name", [
    ("mars_macro_28nm-16m-1024KB", "resnet18_imagenet", "conv1"),  # a looped kernel rank spread over macros
    ("chih_isscc_2021-64m-16KB", "mobilenetv2_imagenet", "features.12.conv.6"),  # input channels over cores
    ("mars_system", "mobilenetv2_imagenet", "features.4.conv.3"),  # depthwise, groups looped imperfectly
])
def test_closed_form_of_layers_it_once_missed(system_name: str, workload: str, name: str) -> None:
    """Layers of scripts/closed_form_check.py whose best plan the closed form once priced off
    the model (by 0.6% and 0.3% in energy; the third by 11% in its readouts' time)."""
    from backend_agreement import systems

    from cimco import _af, arch

    system = next(x for x in systems() if x.name == system_name)
    wl = load(ROOT / f"workloads/{workload}.yaml")
    layer = next(x for x in wl.layers if x.name == name)
    bits = wl.layer_bits(layer)
    einsum = _af.einsum_of(layer)
    model = _af.Evaluator(arch.build_nodes(system, bits), einsum, bits)
    estimate, plan = ranked(system, layer, einsum, bits, model.ert)[0]
    _is_the_models(system, Shape.of(layer, einsum), bits, plan, model, estimate)


CLOSED_FORM_DRAWN = int(os.environ.get("CIMCO_DRAWN_CLOSED_FORM", "8"))


@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=CLOSED_FORM_DRAWN, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(layer=layers())
def test_drawn_layers_closed_form_is_the_models(family: str, layer: Layer) -> None:
    """On layers the closed form was not written for (groups, strides, dilations, padding,
    linear, sparse masks), the best plans' results are the model's own, entry by entry."""
    from cimco import _af, arch

    system = FAMILIES[family]
    einsum = _af.einsum_of(layer)
    shape = Shape.of(layer, einsum)
    model = _af.Evaluator(arch.build_nodes(system, BITS), einsum, BITS)
    for estimate, plan in ranked(system, layer, einsum, BITS, model.ert)[:3]:
        _is_the_models(system, shape, BITS, plan, model, estimate)


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
                    covered[k] = covered.get(k, 1) * n
                for k, n in (*plan.array, *plan.macro, *plan.core):
                    covered[k] = covered.get(k, 1) * n
                assert all(covered[k] >= v for k, v in shape.dims.items()), (plan, shape.dims)


def _is_the_models(system: SystemSpec, shape: Shape, bits: Bits, plan, model, estimate=None) -> None:
    """The closed form's result of ``plan`` (:func:`cimco.backends.cim.evaluate`) is AccelForge's
    model's evaluation of it, entry by entry: every count by part, tensor and action, the
    energy by part and action, each part's latency, the totals and the loops; and the
    estimate that ranked it is the same energy and latency."""
    evaluated = model.evaluate([mapping_nodes(system, shape, plan)])[0]
    assert evaluated is not None, f"the model refused a plan whose tiles the closed form fits: {plan}"
    theirs, ours = evaluated.result(), evaluate(system, shape, bits, plan, model.ert)
    # (AccelForge's model rounds a lone mapping's columns to float32: rel 1e-7)
    assert not ours.differences(theirs, rel=1e-6), (system.name, shape.dims, plan, ours.differences(theirs, 1e-6))
    if estimate is not None:
        assert (estimate.energy_j, estimate.latency_s) == pytest.approx((ours.energy_j, ours.latency_s), rel=1e-9)


def test_closed_form_counts_are_accelforges() -> None:
    """The closed form against AccelForge's model on the same plans, entry by entry (see
    :func:`_is_the_models`), on the three macro families, a small buffer, and plans whose
    factors do not divide (imperfect: the model's partial last turns)."""
    from cimco import _af, arch

    small = SystemSpec.model_validate({**MARS.model_dump(mode="json"), "name": "mars-4m-16KB", "cores": 1,
                                       "macros_per_core": 4, "global_buffer": {
                                           **MARS.model_dump(mode="json")["global_buffer"], "size_bits": 131072}})
    workload = load(ROOT / "workloads/resnet18_imagenet.yaml")
    imperfect = 0
    for system in (small, *FAMILIES.values()):
        for name in ("conv1", "layer1.0.conv1", "layer2.0.conv2", "layer3.0.downsample.0", "layer4.0.conv2"):
            layer = next(x for x in workload.layers if x.name == name)
            einsum = _af.einsum_of(layer)
            shape = Shape.of(layer, einsum)
            model = _af.Evaluator(arch.build_nodes(system, BITS), einsum, BITS)
            estimate = {p: e for e, p in ranked(system, layer, einsum, BITS, model.ert)}
            scored = list(estimate)

            def even(p, shape=shape) -> bool:
                covered = dict.fromkeys(shape.dims, 1)
                for k, n in (*p.array, *p.macro, *p.core, *p.loops):
                    covered[k] = covered.get(k, 1) * n
                return all(covered[k] == v for k, v in shape.dims.items())

            plans = [p for p in scored if even(p)][:2] + [p for p in scored if not even(p)][:2]
            for plan in plans:
                imperfect += not even(plan)
                _is_the_models(system, shape, BITS, plan, model, estimate[plan])
    assert imperfect >= 20  # partial last turns are exercised


def test_differences_finds_each_kind_of_difference() -> None:
    """The comparison the closed-form tests rely on sees a changed total, entry, key or loop."""
    import dataclasses

    r = Cim().map_layer(MARS, Layer(name="l", type="linear", in_channels=300, out_channels=10), BITS)
    assert r.differences(r, rel=1e-6) == []
    k = next(iter(r.energy))
    changed = [dataclasses.replace(r, latency_s=r.latency_s * 1.01),
               dataclasses.replace(r, energy={**r.energy, k: r.energy[k] + 1e-3 * max(r.energy.values())}),
               dataclasses.replace(r, actions={**r.actions, ("X", "read"): 0.0}),
               dataclasses.replace(r, loops=r.loops[1:])]
    for other in changed:
        assert r.differences(other, rel=1e-6) and other.differences(r, rel=1e-6)


def _best_of_all(system: SystemSpec, layer: Layer, bits: Bits, ert: dict):
    """The oracle of the bound in :func:`cimco.backends.cim.ranked`: every plan scored (each
    loop order with its own :class:`_Macros`; on a system with a memory in each core, its even
    plans both ways), the best by ranked's order."""
    from cimco import _af
    from cimco.backends.cim import (
        Plan,
        _Core,
        _Costs,
        _even,
        _holders,
        _Macros,
        _Nest,
        _score,
        _score_cores,
        nests,
        plans,
        resident,
    )
    from cimco.geometry import MacroGeometry

    shape = Shape.of(layer, _af.einsum_of(layer))
    costs, g = _Costs.of(system, shape, bits, ert), MacroGeometry.of_system(system, bits)
    positions = {k: shape.size(k) for k in ("t", "p", "q")}
    cores = system.core_buffer is not None
    best = None
    for n, (array, macro, core, turns) in enumerate(plans(system, shape, bits)):
        if cores and not _even(shape, array, macro, core, turns):
            continue
        held = resident(system, shape, bits) and not cores
        for j, (loops, starts_i, starts_o) in enumerate(nests(shape, turns, positions, held)):
            first = Plan(array, macro, core, loops, 0, 0)
            nest = _Nest(shape, first)
            macros = _Macros.of(shape, nest, first, bits, g)
            for above in (False, True) if cores else (False,):
                part = _Core.of(shape, first, bits, g) if above else None
                for i in starts_i:
                    for o in starts_o:
                        p = Plan(array, macro, core, loops, i, o, above)
                        e = (_score_cores(costs, bits, shape, p, nest, macros, part, system.noc is not None) if cores
                             else _score(costs, bits, nest, macros, _holders(shape, p)))
                        if e.glb_bits <= system.global_buffer.size_bits and (
                                not cores or e.core_bits <= system.core_buffer.size_bits):
                            if best is None or (e.edp, e.conversions, e.latency_s, (n, j, above, i)) < best[0]:
                                best = ((e.edp, e.conversions, e.latency_s, (n, j, above, i)), p)
                            break
    return None if best is None else best[1]


@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(layer=layers())
def test_bound_never_leaves_out_the_best_plan(family: str, layer: Layer) -> None:
    """The spreads ranked() skips by their lower bound hold no plan better than the one it
    picks: the same plan as scoring every plan, on drawn layers of the three families."""
    from cimco import _af
    from cimco.tables import component_costs

    system = FAMILIES[family]
    einsum = _af.einsum_of(layer)
    ert = component_costs(system, BITS)[0]
    best = ranked(system, layer, einsum, BITS, ert)
    assert (best[0][1] if best else None) == _best_of_all(system, layer, BITS, ert), layer


@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(layer=layers())
def test_bound_never_leaves_out_the_best_plan_with_core_buffers(layer: Layer) -> None:
    """As above on a system with a memory in each core and a NoC (the bounds of either way)."""
    from cimco import _af
    from cimco.tables import component_costs

    system = load(ROOT / "arch_specs/mars_system_cores.yaml")
    einsum = _af.einsum_of(layer)
    ert = component_costs(system, BITS)[0]
    best = ranked(system, layer, einsum, BITS, ert)
    assert (best[0][1] if best else None) == _best_of_all(system, layer, BITS, ert), layer


def test_bound_never_leaves_out_the_best_plan_of_bundled_layers() -> None:
    """As above on every distinct layer of ResNet-18 and MobileNetV2 (ImageNet) on a small
    system (4 macros, 16 KB buffer: DRAM loops and many tile choices)."""
    from cimco import _af
    from cimco.tables import component_costs

    small = SystemSpec.model_validate({**MARS.model_dump(mode="json"), "name": "mars-4m-16KB", "cores": 1,
                                       "macros_per_core": 4, "global_buffer": {
                                           **MARS.model_dump(mode="json")["global_buffer"], "size_bits": 131072}})
    for name in ("resnet18_imagenet", "mobilenetv2_imagenet"):
        workload = load(ROOT / f"workloads/{name}.yaml")
        seen = set()
        for layer in workload.layers:
            einsum = _af.einsum_of(layer)
            key = (einsum["einsum"], tuple(einsum["iteration_space_shape"]))
            if key in seen:
                continue
            seen.add(key)
            bits = workload.layer_bits(layer)
            ert = component_costs(small, bits)[0]
            best = ranked(small, layer, einsum, bits, ert)
            assert (best[0][1] if best else None) == _best_of_all(small, layer, bits, ert), (name, layer.name)


def test_a_looped_reduction_rank_is_not_left_out_for_its_turns() -> None:
    """A drawn layer on which FFM once beat cimco by 6% in energy-delay product: FFM loops the
    kernel's 5 rows at DRAM, so that the buffer's input tile, held below an output row, reads
    only the inputs the stride and dilation use; cimco then left spreads with more turns out
    (as dominated by ones with fewer). Its best plan is now at least as good as FFM's."""
    from cimco import _af
    from cimco.backends.cim import Plan, _Costs, _holders, _Macros, _Nest, _score
    from cimco.geometry import MacroGeometry
    from cimco.tables import component_costs

    layer = Layer(name="l", type="conv", in_channels=24, out_channels=18, input_hw=(9, 16), kernel=(5, 4),
                  stride=(2, 1), padding=(2, 1, 1, 0), dilation=(2, 2))
    einsum = _af.einsum_of(layer)
    shape, ert = Shape.of(layer, einsum), component_costs(MARS, BITS)[0]
    ffm = Plan((("m", 18), ("c", 4), ("r", 1), ("s", 4)), (("c", 6),), (), (("r", 5), ("p", 2), ("q", 11)), 2, 0)
    nest = _Nest(shape, ffm)
    macros = _Macros.of(shape, nest, ffm, BITS, MacroGeometry.of_system(MARS, BITS))
    theirs = _score(_Costs.of(MARS, shape, BITS, ert), BITS, nest, macros, _holders(shape, ffm))
    assert ranked(MARS, layer, einsum, BITS, ert)[0][0].edp <= theirs.edp * (1 + 1e-12)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_weight_writes_are_the_weight_bits_whatever_the_input_bits(family: str) -> None:
    """Hand count (issue 21): a 256 -> 32 linear of 8-bit weights reloaded writes 8,192 x 8 =
    65,536 weight bits into the cells, at 4-bit and at 8-bit inputs (it was counted once per
    input slice: 131,072 at 8 bits on the MARS macro), with either backend; their energy is
    that count times the ERT's energy per bit written."""
    system = FAMILIES[family]
    layer = Layer(name="fc", type="linear", in_channels=256, out_channels=32)
    for input_bits in (4, 8):
        bits = Bits(input=input_bits, weight=8, output=8)
        ert = component_tables(system, WorkloadSpec(name="w", source="t", bits=bits, layers=[layer])).ert
        for backend in (Cim(), AccelForge()):
            r = backend.map_layer(system, layer, bits)
            assert r.actions[("CellArray", "write")] == pytest.approx(65_536, rel=1e-9), (backend.name, input_bits)
            assert r.tensor_actions[("CellArray", "W", "write")] == pytest.approx(65_536, rel=1e-9)
            assert r.energy[("CellArray", "write")] == pytest.approx(65_536 * ert["CellArray"]["write"], rel=1e-6)
