"""``cimco map --backend timeloop``: stats parsing, the missing-binary message, the runner's
plumbing (with a stand-in mapper script), and, where a real timeloop-mapper is installed,
agreement with cimco's AccelForge numbers on a dense layer."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml
from timeloop_fake import REAL, fake_mapper

from cimco.cli import main
from cimco.timeloop.runner import parse_stats

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/timeloop"
SYSTEM = str(ROOT / "arch_specs/mars_system.yaml")
LAYER = {"name": "conv", "type": "conv", "in_channels": 64, "out_channels": 64, "input_hw": [14, 14], "kernel": 3,
         "padding": 1}


def _workload(tmp_path: Path, layers: list[dict]) -> str:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"kind": "workload", "name": "w", "source": "test", "layers": layers}))
    return str(path)


def test_parse_stats_summary() -> None:
    s = parse_stats((FIXTURES / "timeloop-mapper.stats.txt").read_text())
    assert (s.cycles, s.computes) == (1280, 7225344)
    assert s.energy_j == pytest.approx(1696.89e-15 * 7225344)
    by = s.energy_by_component_j()
    assert by["DRAM"] == pytest.approx(1490.00e-15 * 7225344)
    # networks are Timeloop's own (cimco models none): lumped, and the parts add up to the total
    assert "ADC <==> CellArray" not in by and by["TimeloopOther"] == pytest.approx(18.12e-15 * 7225344, rel=1e-3)
    assert sum(by.values()) == pytest.approx(s.energy_j)


def test_parse_stats_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="no Timeloop summary"):
        parse_stats("Cycles: 3\n")


def test_missing_binary_is_exit_2(tmp_path: Path, capsys) -> None:
    rc = main(["map", "--backend", "timeloop", "--timeloop-bin", str(tmp_path / "no-such-mapper"),
               "--system", SYSTEM, "--workload", _workload(tmp_path, [LAYER]), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "is not an executable" in err and "--backend accelforge" in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_runner_writes_report_from_timeloop_stats(tmp_path: Path) -> None:
    small = {**LAYER, "name": "small", "input_hw": [7, 7]}
    layers = [LAYER, {**LAYER, "name": "again", "repeat": 2}, small]
    out = tmp_path / "out"
    assert main(["map", "--backend", "timeloop", "--timeloop-bin", str(fake_mapper(tmp_path)), "--quiet",
                 "--weights", "reload", "--system", SYSTEM, "--workload", _workload(tmp_path, layers),
                 "--out", str(out)]) == 0
    # identical layers run the mapper once, in a directory named after the first of them
    assert sorted((tmp_path / "calls.log").read_text().split()) == ["conv", "small"]
    report = json.loads((out / "report.json").read_text())
    stats = parse_stats((REAL / "timeloop-mapper.stats.txt").read_text())
    cycle_s = 2 * 4.1e-9  # one activation of the MARS macro at 8-bit inputs
    conv, again, sm = report["layers"]
    assert report["backend"] == "timeloop" and conv["engine_energy_j"] == pytest.approx(stats.energy_j)
    # the first layer reads its input from DRAM and keeps its output on chip: its DRAM time
    # shrinks with its traffic, so it takes its macros' time, Timeloop's cycles without throttling
    assert conv["latency_s"] == pytest.approx(256 * cycle_s)
    assert again["latency_s"] == pytest.approx(2 * 256 * cycle_s)
    t = report["totals"]
    assert t["latency_s"] == pytest.approx(conv["latency_s"] + again["latency_s"] + sm["latency_s"])
    assert t["tops_per_w"] == pytest.approx(2 * t["dense_macs"] / t["energy_j"] / 1e12)
    assert conv["mapping"].lstrip().startswith("DRAM [ Weights:9216")
    # the loops in cimco's names (ranks, fanouts), as the other backends give them, Timeloop's
    # placeholder loops of one iteration left out
    loops = conv["mapping_loops"]
    assert loops[:2] == [{"node": "storage", "component": "DRAM", "tensors": ["W", "I", "O"]},
                         {"node": "storage", "component": "GlobalBuffer", "tensors": ["I", "O"]}]
    assert {d["component"] for d in loops if d["node"] == "spatial"} == {"macro", "column", "row"}
    assert all(d["rank"] in "gmcrstpq" and d["bound"] > 1 for d in loops if "rank" in d)
    assert conv["macros_used"] == math.prod(d["bound"] for d in loops if d.get("component") == "macro")
    for name in ("report.json", "layers.csv", "report.md", "ERT.yaml", "ART.yaml"):
        assert (out / name).exists()
    assert (out / "timeloop" / "conv" / "timeloop-mapper.stats.txt").exists()


def _real_binary() -> str | None:
    return os.environ.get("CIMCO_TIMELOOP_BIN") or shutil.which("timeloop-mapper")


# ResNet-18 ImageNet conv1: 147 reduction rows, the 16 word lines filled only with a partial
# group (Timeloop's ruby mapspace), and outputs that overflow the global buffer
STEM = {"name": "stem", "type": "conv", "in_channels": 3, "out_channels": 64, "input_hw": [224, 224], "kernel": 7,
        "stride": 2, "padding": 3}
# MobileNetV2's first depthwise conv and ResNet-50's layer1.0.conv3: all weights fit the macros
# at once but inputs and outputs overflow the global buffer (output positions at DRAM)
DEPTHWISE = {"name": "dw", "type": "conv", "in_channels": 32, "out_channels": 32, "groups": 32,
             "input_hw": [112, 112], "kernel": 3, "padding": 1}
EXPAND = {"name": "expand", "type": "conv", "in_channels": 64, "out_channels": 256, "input_hw": [56, 56], "kernel": 1}


@pytest.mark.slow
@pytest.mark.skipif(_real_binary() is None, reason="no timeloop-mapper (set CIMCO_TIMELOOP_BIN or put it on PATH)")
@pytest.mark.parametrize("layer", [LAYER, STEM, DEPTHWISE, EXPAND], ids=["conv", "stem", "depthwise", "expand"])
def test_real_timeloop_agrees_with_accelforge_on_dense_layer(tmp_path: Path, layer: dict) -> None:
    """The acceptance check of the export: same latency, energy within 15%, same ERT."""
    w = _workload(tmp_path, [layer])
    assert main(["map", "--quiet", "--weights", "reload", "--system", SYSTEM, "--workload", w,
                 "--out", str(tmp_path / "af")]) == 0
    assert main(["map", "--backend", "timeloop", "--timeloop-bin", _real_binary(), "--quiet", "--weights", "reload",
                 "--system", SYSTEM, "--workload", w, "--out", str(tmp_path / "tl")]) == 0
    af = json.loads((tmp_path / "af" / "report.json").read_text())["totals"]
    tl = json.loads((tmp_path / "tl" / "report.json").read_text())["totals"]
    assert tl["latency_s"] == pytest.approx(af["latency_s"], rel=0.02)
    assert tl["energy_j"] == pytest.approx(af["energy_j"], rel=0.15)


def _family_system(cores: int, per_core: int, kb: int, family: str):
    """The MARS-like system with other macros, counts and buffer: systems the export was not tuned on."""
    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.sweeps import _system_data

    data = _system_data(ROOT / "arch_specs/mars_system.yaml")
    data = {**data, "cores": cores, "macros_per_core": per_core,
            "global_buffer": {**data["global_buffer"], "size_bits": kb * 8 * 1024}}
    if family != "mars_macro_28nm":
        data["macro"] = read_yaml(ROOT / f"arch_specs/{family}.yaml")
    return SystemSpec.model_validate(data)


# (system, ResNet-18 ImageNet layer, energy tolerance): Timeloop's counts of the mapping the
# export fixes against AccelForge's model's for it (the cimco backend's closed form). The wider
# tolerance is where Timeloop models the word-line drivers as a buffer that keeps the overlap of
# consecutive sliding windows (cimco's drivers, as AccelForge's, drive every input of a window),
# documented in docs/timeloop.md
FAMILY = [((1, 4, 16, "mars_macro_28nm"), "conv1", 0.03),
          ((1, 4, 16, "mars_macro_28nm"), "layer3.0.conv2", 0.05),
          ((2, 8, 16, "colonnade_jssc_2021"), "conv1", 0.15),
          ((2, 8, 128, "chih_isscc_2021"), "layer2.0.conv1", 0.05),
          ((8, 8, 1024, "colonnade_jssc_2021"), "layer2.0.downsample.0", 0.03)]


@pytest.mark.slow
@pytest.mark.skipif(_real_binary() is None, reason="no timeloop-mapper (set CIMCO_TIMELOOP_BIN or put it on PATH)")
@pytest.mark.parametrize(("system", "name", "tol"), FAMILY, ids=[f"{s[3]}-{s[0] * s[1]}m-{s[2]}KB-{n}"
                                                                  for s, n, _ in FAMILY])
def test_real_timeloop_models_the_exported_mapping_on_other_systems(system: tuple, name: str, tol: float) -> None:
    """Small buffers, few macros, the three macro families: Timeloop's latency of the exported
    mapping is AccelForge's model's (to 2%), its energy within ``tol``."""
    from cimco.backends.cim import evaluate
    from cimco.spec import load
    from cimco.spec.workload import Bits
    from cimco.tables import component_costs
    from cimco.timeloop.layout import plan
    from cimco.timeloop.runner import Timeloop

    s, bits = _family_system(*system), Bits(input=8, weight=8, output=8)
    layer = next(x for x in load(ROOT / "workloads/resnet18_imagenet.yaml").layers if x.name == name)
    ert = component_costs(s, bits)[0]
    shape, p = plan(s, layer, bits)
    want = evaluate(s, shape, bits, p, ert)
    got = Timeloop.find(_real_binary(), None).map_layer(s, layer, bits, None, 600)

    def energy(r) -> float:
        return sum(ert.get(c, {}).get(a, 0.0) * n for (c, a), n in r.actions.items())

    assert got.latency_s == pytest.approx(want.latency_s, rel=0.02)
    assert energy(got) == pytest.approx(energy(want), rel=tol)


def _noc_only():
    """The MARS-like system with mars_system_cores' mesh NoC and no memory in its cores."""
    from cimco.spec import load

    cores = load(ROOT / "arch_specs/mars_system_cores.yaml")
    return cores.model_copy(update={"name": "mars_system_noc", "core_buffer": None})


# (system, workload, layer, how the exported plan runs): a NoC alone, and core buffers with the
# cores below the loops (each core's buffer holds one turn's tiles) and above them (each core
# runs the loops on its part), where Timeloop's windows are AccelForge's (no kernel rank spread
# over macros whose inputs overlap)
LEVELS = [("noc", "resnet18_imagenet", "layer2.0.conv1", None),
          ("mars_system_cores", "resnet18_imagenet", "layer2.0.conv1", False),
          ("mars_system_cores", "resnet18_cifar", "layer1.0.conv1", True),
          ("neurosim_system", "resnet18_cifar", "layer3.0.conv2", True)]
# a finished value leaving a memory (outputs for DRAM, a core's partial sums for the global
# buffer) is no read there to Timeloop: docs/timeloop.md
DRAINS = {("GlobalBuffer", "O", "read"), ("CoreBuffer", "O", "read")}


@pytest.mark.skipif(_real_binary() is None, reason="no timeloop-mapper (set CIMCO_TIMELOOP_BIN or put it on PATH)")
@pytest.mark.parametrize(("system", "workload", "name", "above"), LEVELS, ids=[f"{s}-{n}" for s, _, n, _ in LEVELS])
def test_real_timeloop_counts_the_noc_and_core_buffers_as_accelforge(system: str, workload: str, name: str,
                                                                       above: bool | None) -> None:
    """Every count of the exported mapping, by part, tensor and action, is AccelForge's model's
    (the cimco backend's closed form of that plan): what crosses the NoC (weights down, inputs
    down, partial sums up and down again), the core buffers' fills, reads and updates, the
    macros', DRAM's; Timeloop only leaves out the reads of values drained upwards (and the
    buffers' time for them). DRAM's and the NoC's time are the model's, the macro's parts all take
    the busiest one's, and the layer's is the model's (the cells' weight writes aside: 0.1%)."""
    from cimco.backends.cim import evaluate
    from cimco.parts import MACRO_PARTS
    from cimco.spec import load
    from cimco.tables import component_costs
    from cimco.timeloop.layout import plan
    from cimco.timeloop.runner import Timeloop

    s = _noc_only() if system == "noc" else load(ROOT / f"arch_specs/{system}.yaml")
    w = load(ROOT / f"workloads/{workload}.yaml")
    layer = next(x for x in w.layers if x.name == name)
    bits = w.layer_bits(layer)
    ert = component_costs(s, bits)[0]
    shape, p = plan(s, layer, bits)
    assert above is None or p.cores_above == above
    want = evaluate(s, shape, bits, p, ert)
    got = Timeloop.find(_real_binary(), None).map_layer(s, layer, bits, None, 600)
    assert set(got.tensor_actions) <= set(want.tensor_actions)
    for key, n in want.tensor_actions.items():
        if key in DRAINS:
            assert got.tensor_actions.get(key, 0.0) <= n, key
        else:
            assert got.tensor_actions.get(key, 0.0) == pytest.approx(n, rel=1e-9), key
    assert sum(n for (part, _, _), n in got.tensor_actions.items() if part == "NoC") > 0
    assert got.energy["NoC", "all"] == pytest.approx(want.energy["NoC", "read"], rel=1e-9)
    # Timeloop's own total, by part (to its printed fJ per compute)
    assert sum(got.energy.values()) == pytest.approx(got.energy_j, rel=1e-4)
    for part in ("DRAM", "NoC"):
        assert got.latency_by_component[part] == pytest.approx(want.latency_by_component[part], rel=1e-9), part
    macro = max(v for k, v in want.latency_by_component.items() if k in MACRO_PARTS)  # Timeloop's cycles: the busiest
    assert [got.latency_by_component[k] for k in want.latency_by_component if k in MACRO_PARTS] == pytest.approx(
        [macro] * sum(k in MACRO_PARTS for k in want.latency_by_component), rel=1e-3)
    for part in ("GlobalBuffer", "CoreBuffer"):  # (the drains' reads)
        assert got.latency_by_component.get(part, 0.0) <= want.latency_by_component.get(part, 0.0)
    assert got.latency_s == pytest.approx(want.latency_s, rel=1e-3)


@pytest.mark.skipif(_real_binary() is None, reason="no timeloop-mapper (set CIMCO_TIMELOOP_BIN or put it on PATH)")
def test_real_timeloop_maps_a_dilated_kernel_wider_than_the_rows() -> None:
    """A layer hypothesis drew (tests/test_timeloop_export.py::DILATED) that Timeloop could not
    map on NeuroSim's subarrays while the drivers held only ``rows`` inputs: it maps, every MAC."""
    from test_timeloop_export import DILATED

    from cimco.spec import load
    from cimco.spec.workload import Bits, Layer
    from cimco.timeloop.runner import Timeloop

    layer = Layer.model_validate(DILATED)
    got = Timeloop.find(_real_binary(), None).map_layer(load(ROOT / "arch_specs/neurosim_system.yaml"), layer,
                                                        Bits(input=8, weight=8, output=8), None, 600)
    assert got.computes == layer.macs


@pytest.mark.skipif(_real_binary() is None, reason="no timeloop-mapper (set CIMCO_TIMELOOP_BIN or put it on PATH)")
def test_real_timeloop_on_drawn_layers_with_core_buffers() -> None:
    """Layers hypothesis draws (groups, strides, dilations, odd sizes, linears with tokens) on the
    MARS-like system with a mesh and a buffer in each core: Timeloop maps each exported plan, every
    MAC, and counts DRAM, the NoC's weights, the cells and the readouts as AccelForge's model does;
    inputs and outputs at the buffers and the drivers differ only as docs/timeloop.md says (drained
    values, window overlap or the box a strided window spans, partial sums held in the readout):
    what the model writes there Timeloop writes too."""
    from drawn import layers
    from hypothesis import HealthCheck, given, settings

    from cimco.backends.cim import evaluate
    from cimco.spec import load
    from cimco.spec.workload import Bits
    from cimco.tables import component_costs
    from cimco.timeloop.layout import plan
    from cimco.timeloop.runner import Timeloop

    system, bits = load(ROOT / "arch_specs/mars_system_cores.yaml"), Bits(input=8, weight=8, output=8)
    ert, tl = component_costs(system, bits)[0], Timeloop.find(_real_binary(), None)

    @settings(max_examples=15, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(layers())
    def check(layer) -> None:
        shape, p = plan(system, layer, bits)
        want, got = evaluate(system, shape, bits, p, ert), tl.map_layer(system, layer, bits, None, 600)
        assert got.computes == layer.macs
        for key, n in want.tensor_actions.items():
            part, tensor, _ = key
            if part in ("GlobalBuffer", "CoreBuffer", "WordlineDriver") or (part == "NoC" and tensor != "W"):
                assert (got.tensor_actions.get(key, 0.0) > 0) == (n > 0) or key[2] == "read", (layer, key)
            else:
                assert got.tensor_actions.get(key, 0.0) == pytest.approx(n, rel=1e-9), (layer, key)

    check()
