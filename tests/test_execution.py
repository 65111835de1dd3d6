"""Whole-network execution: activation residency (spill, skip-connection lifetime), weight
residency and batch amortization, pipelined mode against LRMP's spatial model (issue 12).

Oracles are hand counts of tensor sizes; the corrections are checked against AccelForge's
own per-tensor counts of the same single-layer mappings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cimco.execution import Execution, _residency, apply
from cimco.spec.workload import WorkloadSpec

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = str(ROOT / "arch_specs/mars_system.yaml")


def _w(*layers: dict) -> WorkloadSpec:
    w = WorkloadSpec.model_validate({"name": "w", "source": "test", "layers": list(layers)})
    assert not w.check("w")
    return w


def _conv(name: str, c: int, m: int, hw: int, **kw) -> dict:
    return {"name": name, "type": "conv", "in_channels": c, "out_channels": m, "input_hw": [hw, hw],
            "kernel": 3, "padding": 1, **kw}


# 8x8x16 at 8 bits = 8192 bits per tensor; each layer's own input + output = 16384
CHAIN = _w(_conv("a", 16, 16, 8), _conv("b", 16, 16, 8), _conv("c", 16, 16, 8))
SKIP = _w(_conv("a", 16, 16, 8), _conv("b", 16, 16, 8), _conv("c", 16, 16, 8, residual=["a"]))


def test_chain_kept_when_it_fits_and_last_output_goes_to_dram() -> None:
    assert _residency(CHAIN, 16384, pipelined=False) == [True, True, False]


def test_chain_spills_when_a_layer_input_and_output_do_not_fit() -> None:
    assert _residency(CHAIN, 16383, pipelined=False) == [False, False, False]


def test_skip_connection_lives_until_the_layer_that_adds_it() -> None:
    # a's output is b's input (counted in b's input) and must also be there while c runs:
    # at c: c's input (b's output) + c's output + a's output = 3 x 8192
    assert _residency(SKIP, 3 * 8192, pipelined=False) == [True, True, False]
    # one bit short at c: a cannot stay for its whole life, so it spills; b still fits
    assert _residency(SKIP, 3 * 8192 - 1, pipelined=False) == [False, True, False]


def test_pipelined_keeps_every_inter_stage_tensor_double_buffered() -> None:
    assert _residency(CHAIN, 4 * 8192, pipelined=True) == [True, True, False]
    assert _residency(CHAIN, 4 * 8192 - 1, pipelined=True) == [True, False, False]


def test_graph_references_are_validated(tmp_path: Path, capsys) -> None:
    from cimco.cli import main

    f = tmp_path / "w.yaml"
    f.write_text("kind: workload\nname: w\nsource: t\nlayers:\n"
                 "  - {name: a, type: linear, in_channels: 8, out_channels: 8, residual: [b]}\n"
                 "  - {name: b, type: linear, in_channels: 8, out_channels: 8, inputs: [zz]}\n")
    assert main(["specs", "validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "layers[0].residual[0]: layer 'a': expected the name of an earlier layer, got 'b'" in err
    assert "layers[1].inputs[0]: layer 'b': expected the name of an earlier layer, got 'zz'" in err


# --- with the real mapper -----------------------------------------------------------------

@pytest.fixture(scope="module")
def mapped():
    from cimco.backends.accelforge import AccelForge
    from cimco.mapping import map_workload
    from cimco.spec import load
    from cimco.tables import component_tables

    system = load(SYSTEM)
    runs = map_workload(system, SKIP, AccelForge(), None, progress=False)
    return system, runs, component_tables(system, SKIP)


def _count(run, comp: str, act: str) -> float:
    return run.actions.get((comp, act), 0.0)


def test_nothing_kept_is_accelforges_single_layer_result(mapped) -> None:
    """Equivalence: with no room in the buffer, weights reloaded every inference and no skip
    connection, the execution model changes nothing: AccelForge's counts, exactly."""
    system, runs, tables = mapped
    small = system.model_copy(update={"global_buffer": system.global_buffer.model_copy(update={"size_bits": 1})})
    out, plan = apply(small, CHAIN, runs, how=Execution(weights="reload"))
    assert plan.output_on_chip == [False] * 3 and not plan.weight_load_actions
    for before, after in zip(runs, out):
        assert after.actions == before.actions == before.result.actions
        assert after.latency_by_component == before.latency_by_component


def test_kept_tensors_leave_dram_exactly(mapped) -> None:
    system, runs, tables = mapped
    out, plan = apply(system, SKIP, runs, how=Execution(weights="resident"))
    assert plan.output_on_chip == [True, True, False] and plan.input_on_chip == [0.0, 1.0, 1.0]
    for i, (before, after) in enumerate(zip(runs, out)):
        t = before.result.tensor_actions
        dram_in = t[("DRAM", "I", "read")] if i else 0.0  # the network input stays in DRAM
        dram_out = t[("DRAM", "O", "write")] if i < 2 else 0.0
        dram_w = t[("DRAM", "W", "read")]
        assert _count(after, "DRAM", "read") == pytest.approx(_count(before, "DRAM", "read") - dram_in - dram_w)
        assert _count(after, "DRAM", "write") == pytest.approx(_count(before, "DRAM", "write") - dram_out)
    # the skip tensor (a's output, 8192 bits) is read from the buffer when c adds it
    gb_c = runs[2].result.tensor_actions
    assert _count(out[2], "GlobalBuffer", "read") == pytest.approx(
        _count(runs[2], "GlobalBuffer", "read") + 8192)
    assert _count(out[2], "GlobalBuffer", "write") == pytest.approx(
        _count(runs[2], "GlobalBuffer", "write") - gb_c[("GlobalBuffer", "I", "write")])
    # one programming of the weights, reported apart: every layer's DRAM weight reads
    assert plan.weight_load_actions[("DRAM", "read")] == pytest.approx(
        sum(r.result.tensor_actions[("DRAM", "W", "read")] for r in runs))


def test_spilled_skip_connection_is_read_back_from_dram(mapped) -> None:
    system, runs, tables = mapped
    small = system.model_copy(update={"global_buffer": system.global_buffer.model_copy(
        update={"size_bits": 3 * 8192 - 1})})
    out, plan = apply(small, SKIP, runs, how=Execution(weights="resident"))
    assert plan.output_on_chip == [False, True, False]
    t = runs[2].result.tensor_actions
    assert _count(out[2], "DRAM", "read") == pytest.approx(
        _count(runs[2], "DRAM", "read") - t[("DRAM", "I", "read")] - t[("DRAM", "W", "read")] + 8192)


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_batch_amortizes_weight_loads(mapped, batch: int) -> None:
    system, runs, tables = mapped
    one, _ = apply(system, SKIP, runs, how=Execution(weights="reload", batch=1))
    many, plan = apply(system, SKIP, runs, how=Execution(weights="reload", batch=batch))
    assert plan.weights == "reload" and not plan.weight_load_actions
    for r, a, b in zip(runs, one, many):
        w = r.result.tensor_actions[("DRAM", "W", "read")]
        assert _count(a, "DRAM", "read") - _count(b, "DRAM", "read") == pytest.approx(w * (1 - 1 / batch))
        cw = r.result.tensor_actions[("CellArray", "W", "write")]
        assert _count(a, "CellArray", "write") - _count(b, "CellArray", "write") == pytest.approx(cw * (1 - 1 / batch))


def test_pipelined_stages_are_lrmps(mapped) -> None:
    """`cimco map --mode pipelined` and `cimco lrmp` share one spatial model: each stage's
    macro time is LRMP's option at replication 1 and the layer's bits."""
    from cimco.codesign.spatial import layer_options

    system, runs, tables = mapped
    out, plan = apply(system, SKIP, runs, how=Execution(mode="pipelined"))
    for x, run, stage in zip(SKIP.layers, out, plan.stage_s):
        opt = layer_options(system, x, tables.ert, [8], None, 1)[0]
        assert max(run.latency_by_component[c] for c in ("ADC", "CellArray", "ShiftAdd", "WordlineDriver")) \
            == pytest.approx(opt.time_s)
        assert stage == pytest.approx(max(run.latency_by_component.values()))
    assert plan.macros_needed == sum(layer_options(system, x, tables.ert, [8], None, 1)[0].macros
                                     for x in SKIP.layers)


def test_weights_that_do_not_fit_cannot_be_resident(mapped) -> None:
    from cimco.errors import SpecError

    system, runs, tables = mapped
    tiny = system.model_copy(update={"cores": 1, "macros_per_core": 1})
    with pytest.raises(SpecError, match=r"needs 3 macros; system 'mars_system' has 1"):
        apply(tiny, SKIP, runs, how=Execution(weights="resident"))
    _, plan = apply(tiny, SKIP, runs)  # auto: reload
    assert plan.weights == "reload"


def test_resnet20_is_not_dram_bound_when_everything_fits(tmp_path: Path) -> None:
    """ResNet-20 (CIFAR) MARS-style (4-bit, row blocks at 50% but the first and last layer).
    One copy of its weights takes 36 macros in cimco's layout (the MARS-like system has 32),
    so on a 4 x 16-macro variant every activation and all weights fit on chip: DRAM then
    moves only the image in and the logits out."""
    import yaml

    from cimco.cli import main
    from cimco.sparse.patterns import mars_style

    w = mars_style(yaml.safe_load((ROOT / "workloads/resnet20_cifar.yaml").read_text()))
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(w))
    system = (ROOT / "arch_specs/mars_system.yaml").read_text().replace(
        "macros_per_core: 8 ", "macros_per_core: 16 ").replace(
        "macro: mars_macro_28nm.yaml", f"macro: {ROOT / 'arch_specs/mars_macro_28nm.yaml'}")
    (tmp_path / "s.yaml").write_text(system)
    assert main(["map", "--system", str(tmp_path / "s.yaml"), "--workload", str(tmp_path / "w.yaml"),
                 "--out", str(tmp_path / "o"), "--quiet"]) == 0
    r = json.loads((tmp_path / "o/report.json").read_text())
    t = r["totals"]
    assert t["macros_needed"] == 36 and t["weights"] == "resident" and t["weight_load_j"] > 0
    assert all(x["output_on_chip"] for x in r["layers"][:-1])
    assert r["energy_by_component"]["DRAM"] / t["energy_j"] < 0.20


@pytest.mark.parametrize("flags, words", [
    (["--mode", "pipelined", "--weights", "reload"], "--weights: pipelined mode keeps every layer's weights"),
    (["--weights", "resident"], "--weights: one copy of every layer's weights needs"),
    (["--mode", "pipelined"], "--mode: one copy of every layer's weights needs"),
])
def test_impossible_execution_is_refused_before_mapping(tmp_path: Path, capsys, monkeypatch, flags, words) -> None:
    from cimco.cli import main

    def no_mapping(*a, **k):
        raise AssertionError("mapped before checking the execution")

    monkeypatch.setattr("cimco.mapping.map_workload", no_mapping)
    (tmp_path / "w.yaml").write_text("kind: workload\nname: w\nsource: t\nlayers:\n"
                                     "  - {name: big, type: linear, in_channels: 8192, out_channels: 8192}\n")
    code = main(["map", "--system", SYSTEM, "--workload", str(tmp_path / "w.yaml"), "--out", str(tmp_path / "o"),
                 "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_macros_needed_follow_each_runs_own_mask(mapped) -> None:
    """The spatial model sees the mask each layer was mapped with (carried by its LayerRun),
    so no caller can hand the execution model dense weights for a pruned layer."""
    from dataclasses import replace

    import numpy as np

    system, runs, tables = mapped
    pruned = [replace(runs[0], mask=np.zeros((16, 16, 3, 3), bool)), *runs[1:]]
    pipelined = Execution(mode="pipelined")
    assert (apply(system, SKIP, runs, pipelined)[1].macros_needed,
            apply(system, SKIP, pruned, pipelined)[1].macros_needed) == (3, 2)
    # sequential: the placement of the layers' pieces as mapped (cimco.placement); every block of
    # a pruned, so it holds no cells
    dense, plan = (apply(system, SKIP, r, Execution(replicate=False))[1] for r in (runs, pruned))
    assert any("a" in m for m in dense.placement) and not any("a" in m for m in plan.placement)


def test_a_dynamic_layer_writes_its_operand_at_every_run(mapped) -> None:
    """A matmul of activations (``dynamic``: attention's Q K^T) is never resident: its operand's
    DRAM reads and cell writes stay in every run's counts, not amortized over a batch, and its
    macros come beside the resident weights (the largest dynamic layer's when layers take turns;
    each one's in a pipeline)."""
    from cimco.execution import _stages

    system, runs, _ = mapped
    dyn = _w(_conv("a", 16, 16, 8), _conv("b", 16, 16, 8, dynamic=True), _conv("c", 16, 16, 8, residual=["a"]))
    for how in (Execution(weights="resident"), Execution(weights="reload", batch=4)):
        out, plan = apply(system, dyn, runs, how=how)
        for r, after, layer in zip(runs, out, dyn.layers):
            for comp, act in (("DRAM", "read"), ("CellArray", "write")):
                kept = after.tensor_actions.get((comp, "W", act), 0.0)
                loaded = r.result.tensor_actions[(comp, "W", act)]
                if layer.dynamic:
                    assert kept == loaded
                else:
                    assert kept == pytest.approx(0.0 if how.weights == "resident" else loaded / 4)
        assert ("CellArray", "write") in plan.weight_load_actions or how.weights == "reload"
    macros = [s.macros for s in _stages(system, dyn, [None] * 3)]
    two = _w(*[{**x.model_dump(exclude_defaults=True), "dynamic": x.name != "a"} for x in dyn.layers])
    assert apply(system, two, runs, how=Execution(mode="pipelined"))[1].macros_needed == sum(macros)
    # sequential: the static layer's pieces packed, and the largest dynamic layer's macros (as
    # mapped) kept whole beside them
    from cimco.placement import piece

    plan = apply(system, two, runs, how=Execution(weights="resident", replicate=False))[1]
    used = sum(1 for m in plan.placement if m)
    assert {n for m in plan.placement for n in m} == {"a"}
    assert plan.macros_needed == used + max(piece(r, system).macros for r in runs[1:])


def test_a_dynamic_layer_on_preloaded_macros_is_refused_before_mapping(tmp_path: Path, capsys, monkeypatch) -> None:
    """Macros whose weights are preloaded (``weights_loaded: once``: writes cost no time) cannot
    take a matmul of activations, whose operand is written at every run: exit 2, naming the field."""
    import yaml

    from cimco.cli import main

    def no_mapping(*a, **k):
        raise AssertionError("mapped before checking the execution")

    monkeypatch.setattr("cimco.mapping.map_workload", no_mapping)
    macro = yaml.safe_load((ROOT / "arch_specs/mars_macro_28nm.yaml").read_text())
    system = yaml.safe_load((ROOT / "arch_specs/mars_system.yaml").read_text())
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({**macro, "weights_loaded": "once"}))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**system, "macro": "m.yaml"}))
    (tmp_path / "w.yaml").write_text("kind: workload\nname: w\nsource: t\nlayers:\n"
                                     "  - {name: scores, type: linear, in_channels: 64, out_channels: 16, "
                                     "tokens: 16, repeat: 4, dynamic: true}\n")
    code = main(["map", "--system", str(tmp_path / "s.yaml"), "--workload", str(tmp_path / "w.yaml"),
                 "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "macro.weights_loaded" in err and "'scores'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


UNIT = {"energy_per_mac_j": {"value": 0.3e-12, "source": "test"}, "macs_per_s": 2.56e11,
        "area_m2": {"value": 0.05e-6, "source": "test"}}


def test_dynamic_layers_run_on_the_digital_unit_counted_by_hand() -> None:
    """With a digital unit, a matmul of activations (16 queries x 64 -> 16 keys, 4 heads) is its
    MACs at the unit's energy and rate, its operands through the buffer; no macro works on it
    or is set aside for it; the other layers are the macros' as before."""
    import cimco
    from cimco.spec import load
    from cimco.spec.system import SystemSpec

    base = load(SYSTEM)
    system = SystemSpec.model_validate({**base.model_dump(mode="json"), "digital_unit": UNIT})
    w = _w({"name": "proj", "type": "linear", "in_channels": 64, "out_channels": 64, "tokens": 16},
           {"name": "scores", "type": "linear", "in_channels": 16, "out_channels": 16, "tokens": 16, "repeat": 4,
            "dynamic": True})
    on_unit, on_macros = (cimco.map(s, w, backend="cimco").data for s in (system, base))
    scores = {x["name"]: x for x in on_unit["layers"]}["scores"]
    macs = 4 * 16 * 16 * 16
    assert scores["energy_by_component"]["DigitalUnit"] == pytest.approx(macs * 0.3e-12)
    assert scores["latency_by_component_s"]["DigitalUnit"] == pytest.approx(macs / 2.56e11)
    assert not {"CellArray", "ADC", "WordlineDriver"} & {k for k, v in scores["energy_by_component"].items() if v}
    assert scores["action_counts"]["DigitalUnit.read"] == macs
    # both operands (16 x 16 at 8 bits, per head) come through the buffer; the output leaves it
    assert scores["action_counts"]["GlobalBuffer.read"] == pytest.approx(4 * (2 * 16 * 16 * 8 + 16 * 16 * 8))
    proj_unit, proj_macros = ({x["name"]: x for x in r["layers"]}["proj"] for r in (on_unit, on_macros))
    assert proj_unit["energy_by_component"] == proj_macros["energy_by_component"]
    assert on_unit["totals"]["macros_needed"] < on_macros["totals"]["macros_needed"]
    assert on_unit["totals"]["area_m2"] == pytest.approx(on_macros["totals"]["area_m2"] + 0.05e-6)
