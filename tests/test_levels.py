"""A system's levels as a list (cimco.spec.levels): the template as its default expansion, a NoC
and a memory in each core honoured by the backends, hand-counted; bad level lists refused."""

from __future__ import annotations

import copy
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cimco.cli import main
from cimco.noc import hops
from cimco.spec import load
from cimco.spec.levels import as_levels
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer

ROOT = Path(__file__).resolve().parent.parent
MARS = ROOT / "arch_specs/mars_system.yaml"
BITS = Bits(input=8, weight=8, output=8)
NOC = {"kind": "noc", "name": "mesh", "topology": "mesh",
       "hop_energy_per_bit_j": {"value": 0.1e-12, "source": "assumed"}, "hop_latency_s": 1e-9,
       "link_bandwidth_bits_per_s": 1e12}
CORE_BUFFER = {"kind": "memory", "name": "cb", "keeps": ["input", "output"], "size_bits": 8192,
               "energy_per_bit_j": {"value": 0.1e-12, "source": "assumed"}, "bandwidth_bits_per_s": 1e12,
               "area_m2": {"value": 0.01e-6, "source": "assumed"}}


def _template_free(system: SystemSpec) -> dict:
    d = system.model_dump(mode="json")
    for k in ("dram", "global_buffer", "cores", "macros_per_core", "noc", "core_buffer"):
        d.pop(k)
    return d


def _with_levels(levels: list[dict]) -> SystemSpec:
    return SystemSpec.model_validate({**_template_free(load(MARS)), "levels": levels})


def _levels(noc: bool = True, core_buffer: bool = False, cores: int = 2, macros: int = 2) -> list[dict]:
    top = as_levels(load(MARS))[:2]
    return copy.deepcopy([*top, *([NOC] if noc else []), {"kind": "fanout", "name": "core", "count": cores},
                          *([CORE_BUFFER] if core_buffer else []),
                          {"kind": "fanout", "name": "macro", "count": macros}])


@pytest.mark.parametrize("topology, cores, expected", [
    ("bus", 64, 1.0), ("htree", 1, 1.0), ("htree", 16, 4.0), ("htree", 17, 5.0),
    ("mesh", 1, 1.0), ("mesh", 2, 1.5), ("mesh", 3, 1 + 2 / 3), ("mesh", 4, 2.0),
    ("mesh", 9, 1 + (0 + 1 + 2 + 1 + 2 + 3 + 2 + 3 + 4) / 9),
])
def test_hops_by_topology(topology: str, cores: int, expected: float) -> None:
    """Counted by hand: a mesh's cores row by row on a ceil(sqrt(n)) grid, the buffer at the
    corner router (one hop in, then the Manhattan distance); an H-tree a level a hop."""
    assert hops(topology, cores) == pytest.approx(expected, rel=1e-12)


def test_the_template_is_the_default_expansion(tmp_path: Path) -> None:
    """Every bundled system written as its levels loads as the same spec (so the same totals,
    and the same cache key); the levels file validates through the CLI."""
    systems = [p for p in (ROOT / "arch_specs").glob("*.yaml") if yaml.safe_load(p.read_text())["kind"] == "system"]
    assert systems
    for path in systems:
        system = load(path)
        data = yaml.safe_load(path.read_text())
        levels = {k: v for k, v in data.items() if k not in ("dram", "global_buffer", "cores", "macros_per_core")}
        levels["macro"] = str(path.parent / data["macro"])
        levels["levels"] = as_levels(system)
        out = tmp_path / path.name
        out.write_text(yaml.safe_dump(levels, sort_keys=False))
        again = load(out)
        assert again == system
        assert again.model_dump_json() == system.model_dump_json()
        assert main(["specs", "validate", str(out)]) == 0


def test_levels_name_what_the_template_cannot() -> None:
    system = _with_levels(_levels(noc=True, core_buffer=True, cores=4, macros=8))
    assert (system.cores, system.macros_per_core) == (4, 8)
    assert system.noc.topology == "mesh" and system.noc.link_bandwidth_bits_per_s == 1e12
    assert system.core_buffer.size_bits == 8192 and system.core_buffer.keeps == ["input", "output"]
    assert [x["kind"] for x in as_levels(system)] == ["memory", "memory", "noc", "fanout", "memory", "fanout"]
    assert _with_levels(as_levels(system)) == system


def _bad(levels: list[dict], **extra) -> str:
    return yaml.safe_dump({**_template_free(load(MARS)), "levels": levels, **extra}, sort_keys=False)


def _cycle() -> list[dict]:
    x = _levels()
    x[1]["under"] = "core"
    return x


def _keeps_nothing() -> list[dict]:
    x = _levels()
    x[1]["keeps"] = []
    return x


def _zero_bandwidth() -> list[dict]:
    x = _levels()
    x[2]["link_bandwidth_bits_per_s"] = 0
    return x


def _two_under_one() -> list[dict]:
    x = _levels()
    x[3]["under"] = "DRAM"
    return x


def _unknown_under() -> list[dict]:
    x = _levels()
    x[4]["under"] = "tile"
    return x


def _weights_in_the_buffer() -> list[dict]:
    x = _levels()
    x[1]["keeps"] = ["input", "weight"]
    return x


def _no_macro_fanout() -> list[dict]:
    return _levels()[:-1]


def _below_the_macros() -> list[dict]:
    return [*_levels(), CORE_BUFFER]


@pytest.mark.parametrize("make, path, words", [
    (_cycle, "levels[1].under", "not a cycle (GlobalBuffer under core under mesh under GlobalBuffer)"),
    (_keeps_nothing, "levels[1].keeps", "a memory that keeps nothing"),
    (_zero_bandwidth, "levels[2].link_bandwidth_bits_per_s", "expected at least 1000.0, got 0"),
    (_two_under_one, "levels[3].under", "one level under 'DRAM'"),
    (_unknown_under, "levels[4].under", "the name of another level"),
    (_weights_in_the_buffer, "levels[1]", "weights stay in the macros' cells"),
    (_no_macro_fanout, "levels", "the macro fanout"),
    (_below_the_macros, "levels[5]", "nothing below the macro fanout"),
])
def test_bad_level_lists_exit_2_with_the_dotted_path(make, path: str, words: str, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "system.yaml"
    spec.write_text(_bad(make()))
    assert main(["specs", "validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}: {path}: expected" in err and words in err, err
    assert "Traceback" not in err


def test_template_keys_beside_levels_are_refused(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "system.yaml"
    spec.write_text(_bad(_levels(), cores=4))
    assert main(["specs", "validate", str(spec)]) == 2
    assert f"{spec}: cores: expected no template key beside `levels`" in capsys.readouterr().err


LAYER = Layer(name="fc", type="linear", in_channels=16, out_channels=4)  # one macro activation


def _oracle(system: SystemSpec) -> dict[tuple[str, str, str], float]:
    """The hand count of LAYER (16 inputs, 4 outputs, 8 bits; one activation of one macro:
    every value moves once) above the macros, in bits."""
    w, i, o = 16 * 4 * 8, 16 * 8, 4 * 8
    counts = {("DRAM", "W", "read"): w, ("DRAM", "I", "read"): i, ("DRAM", "O", "write"): o,
              ("GlobalBuffer", "I", "write"): i, ("GlobalBuffer", "I", "read"): i,
              ("GlobalBuffer", "O", "write"): o, ("GlobalBuffer", "O", "read"): o}
    if system.noc is not None:  # weights down to the cells, inputs down, outputs up: once each
        counts |= {("NoC", "W", "read"): w, ("NoC", "I", "read"): i, ("NoC", "O", "read"): o}
    if system.core_buffer is not None:  # inputs and outputs in and out of each core's buffer once
        counts |= {("CoreBuffer", "I", "write"): i, ("CoreBuffer", "I", "read"): i,
                   ("CoreBuffer", "O", "write"): o, ("CoreBuffer", "O", "read"): o}
    return counts


@pytest.mark.skipif(not (os.environ.get("CIMCO_TIMELOOP_BIN") or shutil.which("timeloop-mapper")),
                    reason="no timeloop-mapper (set CIMCO_TIMELOOP_BIN or put it on PATH)")
@pytest.mark.parametrize("core_buffer", [False, True])
def test_three_levels_and_a_noc_by_hand_in_timeloop(core_buffer: bool, tmp_path: Path) -> None:
    """The same hand count from classic Timeloop on the files `cimco timeloop export` writes, but
    for the outputs drained upwards, which are no reads to Timeloop (docs/timeloop.md); the NoC's
    energy and time as above."""
    from cimco.timeloop.runner import Timeloop

    system = _with_levels(_levels(noc=True, core_buffer=core_buffer))
    r = Timeloop.find(None, None).map_layer(system, LAYER, BITS, tmp_path)
    moved = {k: v for k, v in r.tensor_actions.items()
             if k[0] in ("DRAM", "GlobalBuffer", "NoC", "CoreBuffer") and v}
    drained = {("GlobalBuffer", "O", "read"), ("CoreBuffer", "O", "read")}
    assert moved == pytest.approx({k: v for k, v in _oracle(system).items() if k not in drained}, rel=1e-9)
    noc_bits = 16 * 4 * 8 + 16 * 8 + 4 * 8
    assert r.energy["NoC", "all"] == pytest.approx(noc_bits * 1.5 * 0.1e-12, rel=1e-9)
    assert r.latency_by_component["NoC"] == pytest.approx(noc_bits / 1e12, rel=1e-6)


@pytest.mark.engine
@pytest.mark.parametrize("core_buffer, backend", [(False, "cimco"), (False, "accelforge"), (True, "cimco"),
                                                 (True, "accelforge")])
def test_three_levels_and_a_noc_by_hand(core_buffer: bool, backend: str, tmp_path: Path) -> None:
    """DRAM -> buffer -> mesh NoC -> 2 cores [-> a buffer in each] -> 2 macros: every count
    above the macros is the hand count, the NoC's energy is its bits x 1.5 hops (a 2-core mesh:
    one hop in, half the cores one further) x 0.1 pJ, its time its bits over the link."""
    from cimco.backends import get

    system = _with_levels(_levels(noc=True, core_buffer=core_buffer))
    r = get(backend).map_layer(system, LAYER, BITS, scratch=tmp_path)
    moved = {k: v for k, v in r.tensor_actions.items()
             if k[0] in ("DRAM", "GlobalBuffer", "NoC", "CoreBuffer") and v}
    assert moved == pytest.approx(_oracle(system), rel=1e-9)
    noc_bits = 16 * 4 * 8 + 16 * 8 + 4 * 8
    assert r.energy["NoC", "read"] == pytest.approx(noc_bits * 1.5 * 0.1e-12, rel=1e-9)
    assert r.latency_by_component["NoC"] == pytest.approx(noc_bits / 1e12, rel=1e-6)
    if core_buffer:
        assert r.energy["CoreBuffer", "read"] + r.energy["CoreBuffer", "write"] == pytest.approx(
            2 * (16 * 8 + 4 * 8) * 0.1e-12, rel=1e-9)


@pytest.mark.engine
@pytest.mark.parametrize("topology", ["mesh", "htree"])
def test_noc_closed_form_is_the_models(topology: str) -> None:
    """With a NoC, the cimco backend's best plans of ResNet-18 layers (a 7x7 kernel spread over
    macros, 3x3, a downsample, the classifier) are AccelForge's model's evaluation of them,
    entry by entry (tests/test_cim_backend.py's check)."""
    from test_cim_backend import _is_the_models

    from cimco import _af, arch
    from cimco.backends.cim import Shape, ranked

    mars = load(MARS)
    system = SystemSpec.model_validate({**mars.model_dump(mode="json"), "noc": {
        **{k: v for k, v in NOC.items() if k not in ("kind", "name")}, "topology": topology}})
    workload = load(ROOT / "workloads/resnet18_imagenet.yaml")
    for name in ("conv1", "layer2.0.conv2", "layer3.0.downsample.0", "fc"):
        layer = next(x for x in workload.layers if x.name == name)
        einsum = _af.einsum_of(layer)
        model = _af.Evaluator(arch.build_nodes(system, BITS), einsum, BITS)
        for estimate, plan in ranked(system, layer, einsum, BITS, model.ert)[:2]:
            _is_the_models(system, Shape.of(layer, einsum), BITS, plan, model, estimate)


def _core_systems() -> list[SystemSpec]:
    """The two bundled systems with a memory in each core, and a 6-core system of Colonnade's
    bit-serial macros without a NoC (3 macros a core, a 16 KB buffer in each)."""
    from cimco.spec.load import read_yaml

    cores = load(ROOT / "arch_specs/mars_system_cores.yaml")
    small = {**cores.core_buffer.model_dump(mode="json"), "size_bits": 131072}
    return [cores, load(ROOT / "arch_specs/neurosim_system.yaml"), SystemSpec.model_validate({
        **cores.model_dump(mode="json"), "name": "colonnade-6-cores", "cores": 6, "macros_per_core": 3, "noc": None,
        "core_buffer": small, "macro": read_yaml(ROOT / "arch_specs/colonnade_jssc_2021.yaml")})]


@pytest.mark.engine
@pytest.mark.parametrize("system", _core_systems(), ids=lambda s: s.name)
def test_core_buffer_closed_form_is_the_models(system: SystemSpec) -> None:
    """With a memory in each core, the cimco backend's plans of ResNet-18 ImageNet layers (a 7x7
    kernel, 3x3, a downsample, the classifier), the two best with the cores above the loops
    (each core's buffer holding its tiles, the global buffer whole tensors) and the two best
    below them (each core's buffer holding one turn's tiles), are AccelForge's model's
    evaluation of them, entry by entry (tests/test_cim_backend.py's check)."""
    from test_cim_backend import _is_the_models

    from cimco import _af, arch
    from cimco.backends.cim import Shape, ranked

    workload = load(ROOT / "workloads/resnet18_imagenet.yaml")
    ways = set()
    for name in ("conv1", "layer1.0.conv1", "layer3.0.downsample.0", "layer4.0.conv2", "fc"):
        layer = next(x for x in workload.layers if x.name == name)
        einsum = _af.einsum_of(layer)
        model = _af.Evaluator(arch.build_nodes(system, BITS), einsum, BITS)
        plans = ranked(system, layer, einsum, BITS, model.ert)
        for above in (True, False):
            for estimate, plan in [x for x in plans if x[1].cores_above == above][:2]:
                ways.add(above)
                _is_the_models(system, Shape.of(layer, einsum), BITS, plan, model, estimate)
    assert ways == {True, False}


@pytest.mark.engine
@pytest.mark.parametrize("name", ["layer1.0.conv1", "layer2.0.conv2"])
def test_core_buffer_search_agrees_with_ffm(name: str, tmp_path: Path) -> None:
    """ResNet-18 CIFAR layers on the MARS-like system with a buffer in each core, where a search
    that split a spread between cores and macros one way only was 1.24x and 1.32x FFM's
    energy-delay product: within 1% of FFM's, or better (tests/test_cim_backend.py's check)."""
    from test_cim_backend import _agrees

    workload = load(ROOT / "workloads/resnet18_cifar.yaml")
    _agrees(next(x for x in workload.layers if x.name == name), _core_systems()[0], tmp_path)


@pytest.mark.engine
def test_core_buffer_closed_form_on_drawn_layers() -> None:
    """The same check on layers drawn by hypothesis (groups, strides, dilations, odd sizes), the
    best plan either way, on the MARS-like system with a buffer in each core."""
    from drawn import layers
    from hypothesis import HealthCheck, given, settings
    from test_cim_backend import _is_the_models

    from cimco import _af, arch
    from cimco.backends.cim import Shape, ranked

    system = _core_systems()[0]

    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(layers())
    def check(layer: Layer) -> None:
        einsum = _af.einsum_of(layer)
        model = _af.Evaluator(arch.build_nodes(system, BITS), einsum, BITS)
        plans = ranked(system, layer, einsum, BITS, model.ert)
        assert plans, layer
        for above in (True, False):
            for estimate, plan in [x for x in plans if x[1].cores_above == above][:1]:
                _is_the_models(system, Shape.of(layer, einsum), BITS, plan, model, estimate)

    check()


@pytest.mark.engine
def test_a_noc_adds_its_hops_to_a_network(tmp_path: Path) -> None:
    """ResNet-20 on the MARS-like system with a 4-core mesh NoC: the same mapping as without
    (the NoC only adds), and the NoC's energy is 2 hops x 0.1 pJ for every bit it carries."""
    import cimco

    noc = _with_levels(_levels(noc=True, cores=4, macros=8))
    plain = load(MARS)
    a = cimco.map(plain, ROOT / "workloads/resnet20_cifar.yaml", replicate=False)
    b = cimco.map(noc, ROOT / "workloads/resnet20_cifar.yaml", replicate=False)
    assert [x["mapping"] for x in a.data["layers"]] == [
        x["mapping"].replace(" [W in NoC]", "").replace(" [I,O in NoC]", "").replace(" [W,I,O in NoC]", "")
        for x in b.data["layers"]]
    for x in b.data["layers"]:
        assert x["energy_by_component"]["NoC"] == pytest.approx(x["action_counts"]["NoC.read"] * 2 * 0.1e-12,
                                                                rel=1e-9)
    rest = {k: v for k, v in b.data["energy_by_component"].items() if k != "NoC"}
    assert rest == pytest.approx(a.data["energy_by_component"], rel=1e-9)
    assert math.isclose(b.data["totals"]["energy_j"], a.data["totals"]["energy_j"]
                        + b.data["energy_by_component"]["NoC"], rel_tol=1e-9)


@pytest.mark.engine
def test_backends_that_cannot_honour_a_level_refuse_it(tmp_path: Path, capsys) -> None:
    """The cimco search (and the Timeloop export, which writes its mapping) covers a core memory
    that keeps inputs and outputs, not one that keeps one of them: exit 2 naming the backend,
    nothing written."""
    spec = tmp_path / "system.yaml"
    wl = str(ROOT / "workloads/resnet20_cifar.yaml")
    one = _levels(noc=True, core_buffer=True)
    one[4]["keeps"] = ["input"]
    spec.write_text(_bad(one))
    assert main(["map", "--system", str(spec), "--workload", wl, "--out", str(tmp_path / "a")]) == 2
    assert "--backend cimco: a memory in each core that keeps input only" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    one[3]["keeps"] = ["input"]  # on the core fanout
    spec.write_text(_bad(one))
    assert main(["specs", "validate", str(spec)]) == 2
    assert "levels[3].keeps: not a key of this kind of entry" in capsys.readouterr().err
    one[3].pop("keeps")
    spec.write_text(_bad(one))
    assert main(["timeloop", "export", "--system", str(spec), "--workload", wl, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "core_buffer.keeps: the Timeloop export: a memory in each core that keeps input only" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("topology, cores, expected", [
    ("bus", 8, 1.0), ("mesh", 16, 1.0), ("htree", 1, 1.0), ("htree", 2, 2.0),
    ("htree", 4, (2 + 4 + 2) / 3), ("htree", 8, (2 + 4 + 2 + 6 + 2 + 4 + 2) / 7),
])
def test_stage_hops(topology: str, cores: int, expected: float) -> None:
    """Consecutive stages on consecutive cores: an H-tree's leaves i and i + 1 meet at the
    branch of the highest bit that differs (up and down again), a snake mesh's are neighbours."""
    from cimco.noc import stage_hops

    assert stage_hops(topology, cores) == pytest.approx(expected, rel=1e-12)


def test_lrmp_stages_receive_their_inputs_over_the_noc() -> None:
    """Each option's transfer by hand: ResNet-20's layer1.0.conv2 receives its 32x32x16 input and
    the skip connection's 32x32x16 tensor; at b bits, over a 4-core bus (1 hop) of 1e10 b/s and
    1 ns hops. The stage takes the longer of its compute and the transfer, which replication
    does not shorten; without a NoC nothing is added."""
    from cimco.codesign.spatial import layer_options, received

    plain = load(MARS)
    slow = {**{k: v for k, v in NOC.items() if k not in ("kind", "name")}, "topology": "bus",
            "link_bandwidth_bits_per_s": 1e10}
    noc = SystemSpec.model_validate({**plain.model_dump(mode="json"), "noc": slow})
    workload = load(ROOT / "workloads/resnet20_cifar.yaml")
    layer = next(x for x in workload.layers if x.name == "layer1.0.conv2")
    elements = received(workload, layer)
    assert elements == 32 * 32 * 16 * 2
    without = layer_options(plain, layer, {}, [4, 8], max_replication=8, elements_in=elements)
    with_noc = layer_options(noc, layer, {}, [4, 8], max_replication=8, elements_in=elements)
    assert len(without) == len(with_noc) > 4
    for a, b in zip(without, with_noc):
        moved_s = elements * b.bits / 1e10 + 1e-9
        assert (a.transfer_s, a.transfer_j) == (0.0, 0.0)
        assert b.transfer_s == pytest.approx(moved_s, rel=1e-12)
        assert b.transfer_j == pytest.approx(elements * b.bits * 0.1e-12, rel=1e-12)
        assert b.time_s == pytest.approx(max(a.time_s, moved_s), rel=1e-12)
        assert b.energy_j == pytest.approx(a.energy_j + b.transfer_j, rel=1e-12)
    fastest = min(o.time_s for o in with_noc if o.bits == 8)
    assert fastest == pytest.approx(elements * 8 / 1e10 + 1e-9, rel=1e-12)  # replication stops at the link


@pytest.mark.engine
@pytest.mark.parametrize("system", ["mars_system_cores", "neurosim_system"])
def test_bundled_systems_with_core_memories_map_with_accelforge(system: str, tmp_path: Path) -> None:
    """The bundled systems that hold a memory in each core (and a NoC) map end to end with
    AccelForge's FFM: every bit of input and output passes the NoC and the core memory (a layer
    that fits one activation moves each value once), and the energy is the ERT times the counts."""
    import json

    (tmp_path / "w.yaml").write_text(yaml.safe_dump({
        "kind": "workload", "name": "tiny", "source": "test", "bits": {"input": 8, "weight": 8, "output": 8},
        "layers": [{"name": "fc", "type": "linear", "in_channels": 16, "out_channels": 4}]}))
    out = tmp_path / "o"
    assert main(["map", "--system", str(ROOT / f"arch_specs/{system}.yaml"), "--workload", str(tmp_path / "w.yaml"),
                 "--backend", "accelforge", "--weights", "reload", "--out", str(out), "--quiet"]) == 0
    r = json.loads((out / "report.json").read_text())
    counts = r["layers"][0]["action_counts"]
    assert counts["CoreBuffer.write"] == counts["CoreBuffer.read"] == 16 * 8 + 4 * 8
    assert counts["NoC.read"] == 16 * 4 * 8 + 16 * 8 + 4 * 8
    ert = {(t["name"].split(".")[-1], a["name"]): a["energy"]
           for t in yaml.safe_load((out / "ERT.yaml").read_text())["ERT"]["tables"] for a in t["actions"]}
    pj = load(ROOT / f"arch_specs/{system}.yaml").noc.hop_energy_per_bit_j.value * 1e12  # ERT.yaml is in pJ
    hops = {"mars_system_cores": 2.0, "neurosim_system": 4.0}[system]  # 2 x 2 mesh: 1 + 1; 16-leaf H-tree: 4
    assert ert["NoC", "read"] == pytest.approx(pj * hops, rel=1e-9)
    assert r["energy_by_component"]["NoC"] == pytest.approx(counts["NoC.read"] * pj * hops * 1e-12, rel=1e-6)
    # report.json's levels are the spec's, the NoC with its hops; report.md draws them in a line
    noc = next(x for x in r["levels"] if x["kind"] == "noc")
    assert noc["hops"] == hops
    spec = load(ROOT / f"arch_specs/{system}.yaml")
    levels = [{k: v for k, v in x.items() if k != "hops"} for x in r["levels"]]
    assert _with_levels(levels).model_copy(update={"name": spec.name, "citation": spec.citation,
                                                   "macro": spec.macro, "index_memory": spec.index_memory}) == spec
    assert "levels: DRAM -> GlobalBuffer" in (out / "report.md").read_text()


def test_every_problem_of_a_level_list_at_once(tmp_path: Path, capsys) -> None:
    levels = _levels()
    levels[1]["keeps"] = []
    levels[2]["under"] = "macro"  # the NoC under the macros: a cycle
    spec = tmp_path / "system.yaml"
    spec.write_text(_bad(levels))
    assert main(["specs", "validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "2 problems found" in err and "levels[1].keeps: expected" in err and "levels[2].under: expected" in err


@pytest.mark.engine
def test_pipelined_stages_wait_for_their_inputs_over_the_noc() -> None:
    """`cimco map --mode pipelined` on a system with a slow NoC: each stage's macro time is
    LRMP's option (its compute, or its inputs' transfer where longer: 16x8x8 values and, for
    the layer adding a skip connection, 16x8x8 more, at 8 bits over 1e8 b/s), and the stage
    takes the longest of its parts (the NoC's own time from the mapping included)."""
    from cimco.backends.cim import Cim
    from cimco.execution import Execution, apply
    from cimco.mapping import map_workload
    from cimco.spec.workload import WorkloadSpec

    conv = {"type": "conv", "in_channels": 16, "out_channels": 16, "input_hw": [8, 8], "kernel": 3, "padding": 1}
    skip = WorkloadSpec.model_validate({"kind": "workload", "name": "skip", "source": "test",
                                        "bits": {"input": 8, "weight": 8, "output": 8},
                                        "layers": [{"name": "a", **conv}, {"name": "b", **conv},
                                                   {"name": "c", **conv, "residual": ["a"]}]})
    slow = {**{k: v for k, v in NOC.items() if k not in ("kind", "name")}, "link_bandwidth_bits_per_s": 1e8}
    system = SystemSpec.model_validate({**load(MARS).model_dump(mode="json"), "noc": slow})
    runs = map_workload(system, skip, Cim(), None, progress=False)
    out, plan = apply(system, skip, runs, how=Execution(mode="pipelined"))
    hop = hops("mesh", 4)  # the stages' hops: 1 (consecutive cores of a snake-ordered mesh)
    assert hop == 2.0
    for x, run, stage in zip(skip.layers, out, plan.stage_s):
        moved = 16 * 8 * 8 * 8 * (2 if x.residual else 1)
        transfer = moved / 1e8 + 1 * 1e-9
        assert run.latency_by_component["CellArray"] == pytest.approx(transfer, rel=1e-12)  # slower than compute
        assert stage == pytest.approx(max(run.latency_by_component.values()), rel=1e-12)
        assert run.latency_by_component["NoC"] > 0


def test_a_sweep_varies_a_levels_system_by_its_template_paths(tmp_path: Path) -> None:
    """A base system written as levels is swept by the same dotted paths as the template form."""
    from cimco import sweeps

    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "kind": "sweep", "name": "noc", "system": str(ROOT / "arch_specs/mars_system_cores.yaml"),
        "workload": str(ROOT / "workloads/resnet20_cifar.yaml"),
        "grid": {"system.noc.link_bandwidth_bits_per_s": [3.2e10, 1.28e11], "system.cores": [2, 4]}}))
    _, points = sweeps.load(tmp_path / "s.yaml")
    got = sorted((p.system.noc.link_bandwidth_bits_per_s, p.system.cores) for p in points)
    assert got == [(3.2e10, 2), (3.2e10, 4), (1.28e11, 2), (1.28e11, 4)]
    assert all(p.system.core_buffer.size_bits == 262144 for p in points)
