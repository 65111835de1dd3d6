"""Every upstream behaviour cimco relies on, so an AccelForge/hwcomponents upgrade that
changes one fails here first."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from cimco import _af
from cimco._af import chain as af_chain

ROOT = Path(__file__).resolve().parent.parent


def test_pinned_versions_are_installed() -> None:
    for name, pinned in _af.PINNED.items():
        assert version(name) == pinned


def test_stage_functions_exist() -> None:
    from accelforge.mapper.FFM.main import join_pmappings, make_pmappings
    from accelforge.model.main import evaluate_mapping
    from accelforge.util import _fillna_and__numeric_cast, set_n_parallel_jobs

    assert all(map(callable, (join_pmappings, make_pmappings, evaluate_mapping,
                              _fillna_and__numeric_cast, set_n_parallel_jobs)))


def test_accelforge_wrapper_still_writes_mapping_svg() -> None:
    """Why _af calls the mapper stages itself: the wrapper writes mapping.svg into cwd."""
    import inspect

    from accelforge.mapper.FFM import main

    assert 'open("mapping.svg", "w")' in inspect.getsource(main.map_workload_to_arch)


def test_hwcomponents_lists_cimco_models() -> None:
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "hwc"), "--list"],
                         capture_output=True, text=True, timeout=300)
    for name in ("CimcoAdc", "CimcoCellArray", "CimcoWordlineDriver", "CimcoShiftAdd"):
        assert name in out.stdout


def test_hwcomponents_passes_attributes_by_init_name() -> None:
    from cimco.models import CimcoShiftAdd

    m = CimcoShiftAdd(tech_node=28e-9, voltage=0.9, reference_voltage=0.9, width_bits=16, adcs=4,
                      cycle_s=1e-8)
    assert m.read().energy > 0 and m.area > 0


@pytest.fixture(scope="module")
def small_map():
    """One small layer mapped by the real mapper (a few seconds)."""
    from cimco import arch
    from cimco.spec import load
    from cimco.spec.workload import Bits, Layer

    system = load(ROOT / "arch_specs/mars_system.yaml")
    bits = Bits(input=8, weight=8, output=8)
    layer = Layer(name="l", type="conv", in_channels=16, out_channels=32, input_hw=(8, 8),
                  kernel=3, padding=1)
    nodes = arch.build_nodes(system, bits)
    einsum = _af.einsum_of(layer)
    with _af.scratch_cwd():
        r = _af.map_layer(nodes, einsum, bits)
        ert, _ = _af.component_costs(nodes, einsum, bits)
    return layer, r, ert


def test_action_counts_follow_the_cim_dataflow(small_map) -> None:
    """AccelForge counts what the arch docstring says: one compute per MAC, one ADC
    conversion per output, row group and conversion slice."""
    layer, r, _ = small_map
    assert r.computes == layer.macs
    row_groups = -(-layer.reduction // 16)  # MARS macro: 16 word lines on at once
    outputs = 8 * 8 * 32
    assert r.actions[("ADC", "read")] == outputs * row_groups * 2  # 8b input in 4b slices


def test_energy_is_ert_times_counts(small_map) -> None:
    _, r, ert = small_map
    total = sum(ert.get(c, {}).get(a, 0.0) * n for (c, a), n in r.actions.items())
    assert total == pytest.approx(r.energy_j, rel=1e-5)  # AccelForge sums in float32


def test_import_cimco_is_light() -> None:
    """No AccelForge, hwcomponents or torch at import time; public names resolve lazily."""
    code = ("import sys, cimco; heavy = [m for m in ('accelforge', 'hwcomponents', 'torch') "
            "if m in sys.modules]; assert not heavy, heavy; assert callable(cimco.run)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def fused_chain():
    """Two small linear layers mapped as one AccelForge multi-Einsum workload (fusable
    DRAM) and each alone (cimco's default arch); ~30 s with 1 job."""
    from cimco import arch
    from cimco.spec import load
    from cimco.spec.workload import Bits, Layer

    system = load(ROOT / "arch_specs/mars_system.yaml")
    bits = Bits(input=8, weight=8, output=8)
    layers = [Layer(name="a", type="linear", in_channels=64, out_channels=32),
              Layer(name="b", type="linear", in_channels=32, out_channels=16)]
    with _af.scratch_cwd():
        fused = af_chain.map_chain(arch.build_nodes(system, bits, fuse=True), af_chain.chain_einsums(layers),
                                   bits, max_fused_loops=0)
        singles = [_af.map_layer(arch.build_nodes(system, bits), _af.einsum_of(layer), bits)
                   for layer in layers]
    return fused, singles


def test_fused_chain_keeps_the_intermediate_off_dram(fused_chain) -> None:
    """AccelForge fuses a tensor that bypasses the outermost memory: with DRAM
    ``keep: ~Intermediates, may_keep: All`` the 32x8 b intermediate, which fits in the
    GlobalBuffer, never touches DRAM; the chain's other tensors move as when each layer
    is mapped alone (each read or written once), within 1%."""
    chain, (first, second) = fused_chain
    assert chain.intermediates == ["T1"] and chain.on_chip == {"T1": True}
    assert chain.dram_bits.get(("T1", "read"), 0) == chain.dram_bits.get(("T1", "write"), 0) == 0

    def dram(r, tensor: str, action: str) -> float:
        return r.tensor_actions.get(("DRAM", tensor, action), 0.0)

    pairs = [(("T0", "read"), dram(first, "I", "read")), (("W1", "read"), dram(first, "W", "read")),
             (("W2", "read"), dram(second, "W", "read")), (("T2", "write"), dram(second, "O", "write"))]
    for key, alone in pairs:
        assert alone > 0 and chain.dram_bits[key] == pytest.approx(alone, rel=0.01), key
    assert chain.computes == first.computes + second.computes


def test_set_literal_loop_bounds_constrain_one_letter_rank_variables() -> None:
    """arch.py writes ``loop_bounds`` expressions as ``{p, q, t}``. AccelForge cannot
    evaluate that (a Python set of its sets is unhashable), keeps the text, and its mapper
    then splits it per CHARACTER: it constrains one-letter rank variables (einsum_of's)
    and silently nothing else. af_chain.map_chain rewrites it as ``p | q | t``."""
    from accelforge.frontend.arch import Comparison
    from accelforge.util._setexpressions import InvertibleSet, eval_set_expression
    from accelforge.util.exceptions import EvaluationError

    space = frozenset({"p", "q"})
    st = {v: InvertibleSet(instance=frozenset({v}), full_space=space, space_type=str) for v in space}
    assert set(eval_set_expression("p | q", st, expected_space=str, location="x").instance) == space
    with pytest.raises(EvaluationError, match="unhashable"):
        eval_set_expression("{p, q}", st, expected_space=str, location="x", fast_error=True)
    split = Comparison(expression="{p, q, t}", operator="<=", value=1)._split_expression()
    assert {"p"} in [set(s) for s in split] and {"p1"} not in [set(s) for s in split]
    nodes = [{"spatial": [{"loop_bounds": [{"expression": "{p, q, t}"}]}]}]
    assert af_chain._set_literals_as_unions(nodes)[0]["spatial"][0]["loop_bounds"][0]["expression"] == "p | q | t"


def test_residency_model_agrees_with_accelforge_fusion(fused_chain) -> None:
    """Issue 12's cross-check: cimco's activation residency (each layer mapped alone, then
    corrected by cimco.execution) moves the same DRAM bits as AccelForge's own
    fused mapping of the chain, which keeps the intermediate on chip."""
    from cimco.execution import Execution, apply
    from cimco.mapping import LayerRun
    from cimco.spec import load
    from cimco.spec.workload import Bits, WorkloadSpec

    chain, singles = fused_chain
    system = load(ROOT / "arch_specs/mars_system.yaml")
    workload = WorkloadSpec(name="chain", source="test", bits=Bits(input=8, weight=8, output=8), layers=[
        {"name": "a", "type": "linear", "in_channels": 64, "out_channels": 32},
        {"name": "b", "type": "linear", "in_channels": 32, "out_channels": 16}])
    runs = [LayerRun.of(layer, workload.bits, r, False, None) for layer, r in zip(workload.layers, singles)]
    # the fused mapping reads weights once too
    out, plan = apply(system, workload, runs, how=Execution(weights="reload"))
    assert plan.output_on_chip == [True, False]
    ours = sum(v for run in out for (c, _), v in run.actions.items() if c == "DRAM")
    alone = sum(v for run in runs for (c, _), v in run.actions.items() if c == "DRAM")
    fused = sum(chain.dram_bits.values())
    # the issue asks 5%; the intermediate is small here (2.4% of the traffic), so hold 0.5%,
    # which the uncorrected counts miss
    assert ours == pytest.approx(fused, rel=0.005)
    assert alone != pytest.approx(fused, rel=0.005)


# MobileNetV2 ImageNet features.2.conv.3: depthwise 3x3, 96 groups, 112x112, stride 2
DEPTHWISE = {"name": "dw", "type": "conv", "in_channels": 96, "out_channels": 96, "groups": 96,
             "input_hw": [112, 112], "kernel": 3, "stride": 2, "padding": 1}


@pytest.fixture(scope="module")
def depthwise_map(tmp_path_factory):
    """The layer mapped once with the spec's global buffer (the model's verdict on the
    mapper's best mapping) and once through :func:`_af.map_layer` (its budget retry)."""
    from accelforge.model.main import InvalidMappingError

    from cimco import arch
    from cimco.spec import load
    from cimco.spec.workload import Bits, Layer

    system = load(ROOT / "arch_specs/mars_system.yaml")
    bits, layer = Bits(input=8, weight=8, output=8), Layer.model_validate(DEPTHWISE)
    nodes, einsum = arch.build_nodes(system, bits), _af.einsum_of(layer)
    with _af.scratch_cwd(tmp_path_factory.mktemp("dw")):
        try:
            first = _af._map_once(nodes, einsum, bits)
        except InvalidMappingError as e:
            first = e
        retried = _af.map_layer(nodes, einsum, bits)
    return system, first, retried


def test_mapper_can_pick_a_mapping_its_model_rejects_for_capacity(depthwise_map) -> None:
    """Why _af.map_layer retries with a smaller budget: the mapper charges the global buffer
    from where the input is reserved, the model from where it is stored (a loop between);
    the model then rejects the mapper's best mapping, in words _af._OVER_CAPACITY reads.
    If this starts to fail, upstream fixed it: remove the budget retry."""
    system, first, _ = depthwise_map
    over = _af._OVER_CAPACITY.search(str(first))
    assert over is not None, first
    used, name, size = float(over[1]), over[2], float(over[3])
    assert name == "GlobalBuffer" and size == system.global_buffer.size_bits < used


def test_budget_retry_finds_a_mapping_the_model_accepts(depthwise_map) -> None:
    system, _, r = depthwise_map
    assert 0 < r.budget_bits["GlobalBuffer"] < system.global_buffer.size_bits
    assert r.computes == 96 * 56 * 56 * 9  # the whole layer, once
    # every tensor crosses DRAM once (inputs with their padding row and column)
    dram = {t: sum(v for (c, tt, a), v in r.tensor_actions.items() if c == "DRAM" and tt == t)
            for t in ("I", "W", "O")}
    assert dram["W"] == 96 * 9 * 8 and dram["O"] == 96 * 56 * 56 * 8
    assert 96 * 112 * 112 * 8 <= dram["I"] <= 96 * 113 * 113 * 8


def test_component_costs_need_no_search_of_installed_models(monkeypatch) -> None:
    """cimco turns hwcomponents' search of installed models off (every component class is
    cimco's): the tables must be those the search gives, on all three macro families."""
    from cimco import arch
    from cimco.spec import load
    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.spec.workload import Bits

    mars = load(ROOT / "arch_specs/mars_system.yaml")
    bits = Bits(input=8, weight=8, output=8)
    make = _af.make_spec

    def searching(*args, **kwargs):
        spec = make(*args, **kwargs)
        spec.config.use_installed_component_models = True
        return spec

    for macro in ("mars_macro_28nm", "chih_isscc_2021", "colonnade_jssc_2021"):
        system = SystemSpec.model_validate({**mars.model_dump(mode="json"),
                                            "macro": read_yaml(ROOT / f"arch_specs/{macro}.yaml")})
        nodes = arch.build_nodes(system, bits)
        ours = _af.component_costs(nodes, None, bits)
        with monkeypatch.context() as m:
            m.setattr(_af, "make_spec", searching)
            assert _af.component_costs(nodes, None, bits) == ours


def test_component_tables_are_accelforges_component_costs() -> None:
    """cimco prices its parts without AccelForge (:func:`cimco.tables.component_costs`: each
    part's model called with the attributes the architecture gives it, areas times the
    containers' fanouts above it): every ERT and ART entry must be AccelForge's own, on the
    three macro families and the systems of scripts/backend_agreement.py, at several
    precisions, whatever layer completes AccelForge's spec (conv, grouped, linear)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from backend_agreement import systems

    from cimco import arch
    from cimco.spec.workload import Bits, Layer
    from cimco.tables import component_costs

    layers = [Layer(name="c", type="conv", in_channels=16, out_channels=64, input_hw=(14, 14), kernel=3, padding=1),
              Layer(name="g", type="conv", in_channels=32, out_channels=32, input_hw=(7, 9), kernel=3, groups=32),
              Layer(name="l", type="linear", in_channels=300, out_channels=10)]
    checked = 0
    for i, system in enumerate(systems()):
        for bits in (Bits(input=8, weight=8, output=8), Bits(input=4, weight=4, output=8),
                     Bits(input=8, weight=4, output=16)):
            layer = layers[(i + bits.weight) % 3]
            ert, art = _af.component_costs(arch.build_nodes(system, bits), _af.einsum_of(layer), bits)
            ours_ert, ours_art = component_costs(system, bits)
            flat = {(c, a): e for c, acts in ert.items() for a, e in acts.items()}
            assert {(c, a): e for c, acts in ours_ert.items() for a, e in acts.items()} == \
                pytest.approx(flat, rel=1e-12), (system.name, bits)
            assert ours_art == pytest.approx({k: v["total_area_m2"] for k, v in art.items()}, rel=1e-12)
            checked += 1
    assert checked == 66


def test_a_hand_built_mapping_evaluates_as_the_mapper_found_it(small_map) -> None:
    """The cimco backend builds mappings as plain nodes and has the model evaluate them
    (``_af.Evaluator``): FFM's best mapping of the small layer, rebuilt from its loops, costs
    what FFM's evaluation said."""
    from cimco import arch
    from cimco.spec import load
    from cimco.spec.workload import Bits

    layer, r, _ = small_map
    system = load(ROOT / "arch_specs/mars_system.yaml")
    bits = Bits(input=8, weight=8, output=8)
    sizes = {line.split(" < ")[0].split()[-1]: int(line.split(" < ")[1])
             for line in _af.einsum_of(layer)["iteration_space_shape"]}
    plain, below = [], {}
    for d in reversed(r.loops):  # tile shapes from the bottom up: each loop's tile is what is below it
        if d["node"] in ("spatial", "temporal"):
            tile = below.get(d["rank"], 1)
            below[d["rank"]] = min(sizes[d["rank"]], tile * d["bound"])
            n = {"node": d["node"], "rank": d["rank"], "tile": tile}
            if d["node"] == "spatial":
                n.update(name=d["component"], component=d["component"].capitalize())
            plain.append(n)
        elif d["node"] == "compute":
            plain.append({"node": "compute", "component": d["component"]})
        else:
            plain.append({"node": d["node"], "tensors": d["tensors"], "component": d["component"]})
    plain.reverse()
    with _af.scratch_cwd():
        evaluated = _af.Evaluator(arch.build_nodes(system, bits), _af.einsum_of(layer), bits).evaluate([plain])[0]
    assert evaluated is not None
    assert evaluated.energy_j == pytest.approx(r.energy_j, rel=1e-6)
    assert evaluated.latency_s == pytest.approx(r.latency_s, rel=1e-6)


def test_the_model_accepts_more_tiles_than_a_core_has_macros() -> None:
    """Why scripts/backend_agreement.py counts ``ffm_overfull`` apart: AccelForge's model
    counts an imperfect spatial loop's use of a fanout as its mean occupancy, so it accepts
    (and FFM may return) a mapping of 3 x 3 tiles side by side on a core of 8 macros (FFM's
    best mapping of MobileNetV2's features.12.conv.6, 576 -> 96 channels, on 2 cores x 8 Chih
    macros). When an upgrade refuses it, the category (and this test) can go."""
    from cimco import arch
    from cimco.spec import load
    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.spec.workload import Bits, Layer

    mars = load(ROOT / "arch_specs/mars_system.yaml").model_dump(mode="json")
    system = SystemSpec.model_validate({**mars, "cores": 2, "macros_per_core": 8,
                                        "macro": read_yaml(ROOT / "arch_specs/chih_isscc_2021.yaml")})
    layer = Layer(name="p", type="conv", in_channels=576, out_channels=96, input_hw=(14, 14), kernel=1)
    bits = Bits(input=8, weight=8, output=8)
    store = [{"node": "storage", "tensors": ["W", "O", "I"], "component": "DRAM"},
             {"node": "storage", "tensors": ["O"], "component": "GlobalBuffer"},
             {"node": "temporal", "rank": "c", "tile": 288},
             {"node": "storage", "tensors": ["W"], "component": "CellArray"},
             {"node": "temporal", "rank": "p", "tile": 1}, {"node": "temporal", "rank": "q", "tile": 1},
             {"node": "storage", "tensors": ["I"], "component": "GlobalBuffer"}]
    spread = [{"node": "spatial", "rank": "m", "tile": 32, "name": "macro", "component": "Macro"},
              {"node": "spatial", "rank": "c", "tile": 116, "name": "macro", "component": "Macro"},
              {"node": "spatial", "rank": "c", "tile": 64, "name": "core", "component": "Core"}]
    below = [{"node": "toll", "tensors": ["I"], "component": "WordlineDriver"},
             {"node": "toll", "tensors": ["O"], "component": "AdderTree"},
             {"node": "toll", "tensors": ["O"], "component": "ShiftAdd"},
             {"node": "spatial", "rank": "c", "tile": 1, "name": "row", "component": "Row"},
             {"node": "spatial", "rank": "m", "tile": 1, "name": "column", "component": "Column"},
             {"node": "compute", "component": "Compute"}]
    with _af.scratch_cwd():
        evaluated = _af.Evaluator(arch.build_nodes(system, bits), _af.einsum_of(layer), bits).evaluate(
            [store + spread + below])[0]
    assert evaluated is not None
    macro = [d["bound"] for d in evaluated.result().loops if d.get("component") == "macro"]
    assert macro == [3, 3] and 3 * 3 > system.macros_per_core


def test_the_model_counts_a_two_level_imperfect_split_below_the_row_groups_used() -> None:
    """Why scripts/backend_agreement.py counts ``ffm_undercounted`` apart: FFM's best mapping
    of ResNet-20's layer2.0.conv2 (32 -> 32 channels, 3x3, 16x16) on 8 Chih macros splits the 32
    input channels as 3 macros of 11, each over 2 cores of 7 (63 rows a macro). Physically six
    row groups (7, 4, 7, 4, 7 and 3 channels) each read out every output, and no mapping on
    64-row activations reads out fewer than ceil(288 / 64) = 5 per output; the model, counting
    each imperfect loop at its mean occupancy, counts 33/7 = 4.71. When an upgrade counts the
    row groups used, the category (and this test) can go."""
    from cimco import arch
    from cimco.geometry import MacroGeometry
    from cimco.spec import load
    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.spec.workload import Bits, Layer

    mars = load(ROOT / "arch_specs/mars_system.yaml").model_dump(mode="json")
    system = SystemSpec.model_validate({**mars, "cores": 2, "macros_per_core": 4,
                                        "macro": read_yaml(ROOT / "arch_specs/chih_isscc_2021.yaml")})
    layer = Layer(name="c", type="conv", in_channels=32, out_channels=32, input_hw=(16, 16), kernel=3, padding=1)
    bits = Bits(input=8, weight=8, output=8)
    nodes = [{"node": "storage", "tensors": ["W", "O", "I"], "component": "DRAM"},
             {"node": "storage", "tensors": ["I", "O"], "component": "GlobalBuffer"},
             {"node": "spatial", "rank": "c", "tile": 11, "name": "macro", "component": "Macro"},
             {"node": "spatial", "rank": "c", "tile": 7, "name": "core", "component": "Core"},
             {"node": "toll", "tensors": ["I"], "component": "WordlineDriver"},
             {"node": "toll", "tensors": ["O"], "component": "AdderTree"},
             {"node": "toll", "tensors": ["O"], "component": "ShiftAdd"},
             *({"node": "spatial", "rank": k, "tile": 1, "name": "row", "component": "Row"} for k in "src"),
             {"node": "spatial", "rank": "m", "tile": 1, "name": "column", "component": "Column"},
             {"node": "storage", "tensors": ["W"], "component": "CellArray"},
             {"node": "temporal", "rank": "p", "tile": 1}, {"node": "temporal", "rank": "q", "tile": 1},
             {"node": "compute", "component": "Compute"}]
    with _af.scratch_cwd():
        evaluated = _af.Evaluator(arch.build_nodes(system, bits), _af.einsum_of(layer), bits).evaluate([nodes])[0]
    assert evaluated is not None
    g = MacroGeometry.of_system(system, bits)
    per_output = evaluated.result().actions[("AdderTree", "read")] / (32 * 16 * 16 * g.conversions_per_output)
    assert per_output == pytest.approx(33 / 7, rel=1e-6)
    assert per_output < math.ceil(32 * 9 / g.wordlines_on) == 5


def test_accelforge_network_cannot_cost_a_sliding_window_spread(monkeypatch) -> None:
    """Why cimco's NoC is a pass-through of its own hops (cimco.noc) and not AccelForge's
    ``Network``: the model raises NotImplementedError for a spatial loop over a rank only
    partly relevant to a tensor (a kernel rank of a convolution spread over macros), which
    the best mapping of nearly every convolution has. When this fails, move to the Network."""
    from accelforge import arch as A
    from hwcomponents import ActionCost, ComponentModel, action

    import cimco.models
    from cimco import arch
    from cimco.backends.cim import Shape, mapping_nodes, ranked
    from cimco.spec import load
    from cimco.spec.workload import Bits

    class Link(ComponentModel):
        component_name = "TestLink"
        priority = 0.9

        def __init__(self, hop_energy: float):
            self.e = hop_energy
            super().__init__(area=0.0, leak_power=0.0)

        @action
        def hop(self) -> ActionCost:
            return ActionCost(energy=self.e, latency=0.0, throughput=1e12)

    def with_network(nodes: list[dict]):
        built = []
        for n in nodes:
            n = dict(n)
            cls = {"Memory": A.Memory, "Toll": A.Toll, "Container": A.Container, "Compute": A.Compute,
                   "Network": A.Network}[n.pop("kind")]
            built.append(cls(**n) if cls is A.Container else cls(leak_power=0, **n))
        return A.Arch(nodes=built)

    monkeypatch.setattr(cimco.models, "MODELS", (*cimco.models.MODELS, Link))
    monkeypatch.setattr(_af, "_arch", with_network)
    system = load(ROOT / "arch_specs/mars_system.yaml")
    bits = Bits(input=8, weight=8, output=8)
    layer = next(x for x in load(ROOT / "workloads/resnet20_cifar.yaml").layers if x.name == "layer1.0.conv1")
    einsum = _af.einsum_of(layer)
    nodes = arch.build_nodes(system, bits)
    network = {"kind": "Network", "name": "NoC", "topology": "mesh", "bits_per_action": 1,
               "component_class": "TestLink", "actions": [{"name": "hop"}],
               "extra_attributes_for_component_model": {"hop_energy": 1e-13}}
    model = _af.Evaluator([*nodes[:2], network, *nodes[2:]], einsum, bits)
    _, plan = ranked(system, layer, einsum, bits, model.ert)[0]
    assert any(k in ("r", "s") and n > 1 for k, n in (*plan.macro, *plan.core))
    with pytest.raises(NotImplementedError):
        model.evaluate([mapping_nodes(system, Shape.of(layer, einsum), plan)])
