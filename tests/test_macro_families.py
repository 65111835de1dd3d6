"""Macro families (analog, digital adder tree, digital bit-serial): spec rules, action counts
from the real mapper against hand counts, and report energy = counts x ERT energies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cimco.cli import main
from cimco.errors import SpecError
from cimco.spec import load

ROOT = Path(__file__).resolve().parent.parent
BASE = {"kind": "macro", "citation": "test", "rows": 32, "cols": 32, "wordlines_on": 16,
        "input_bits": {"max": 8}, "weight_bits": {"max": 8}, "output_bits": {"max": 24},
        "tech_node_m": 22e-9, "voltage_v": 0.8, "reference_voltage_v": 0.8, "cycle_s": 5e-9,
        "energy": {"model": "components"}}
MACROS = {
    "analog": {**BASE, "name": "t_analog", "adc_bits": 5, "adcs": 8},
    "digital_adder_tree": {**BASE, "name": "t_tree", "family": "digital_adder_tree"},
    # 32 rows accumulate in the array: 5 guard columns per weight
    "digital_bit_serial": {**BASE, "name": "t_serial", "family": "digital_bit_serial", "wordlines_on": 32},
}
IN, W, OUT, TOKENS, K = 4, 4, 8, 3, 32


def _write(tmp: Path, name: str, data: dict) -> Path:
    (tmp / name).write_text(yaml.safe_dump(data))
    return tmp / name


def _system(tmp: Path, macro: dict) -> Path:
    s = yaml.safe_load((ROOT / "arch_specs/mars_system.yaml").read_text())
    s.update(macro=macro, cores=1, macros_per_core=1)
    s.pop("index_memory")
    return _write(tmp, "system.yaml", s)


def _problems(tmp: Path, macro: dict) -> str:
    with pytest.raises(SpecError) as e:
        load(_write(tmp, "m.yaml", macro))
    return str(e.value)


@pytest.mark.parametrize("family", list(MACROS))
def test_counts_times_ert_equal_reported_energy(tmp_path: Path, family: str) -> None:
    """One matrix-vector layer on one macro: the mapper's counts match hand counts, and every
    reported energy is sum(count x ERT energy), from the files cimco writes."""
    macro = MACROS[family]
    m = load(_write(tmp_path, "m.yaml", macro))
    outs = m.cols // m.n_weight_slices(W)
    workload = {"kind": "workload", "name": "fill", "source": "test", "bits": {"input": IN, "weight": W, "output": OUT},
                "layers": [{"name": "fc", "type": "linear", "in_channels": K, "out_channels": outs,
                            "tokens": TOKENS}]}
    out = tmp_path / "out"
    assert main(["map", "--system", str(_system(tmp_path, macro)), "--workload",
                 str(_write(tmp_path, "w.yaml", workload)), "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    ert = {t["name"].split(".", 1)[1]: {a["name"]: a["energy"] * 1e-12 for a in t["actions"]}
           for t in yaml.safe_load((out / "ERT.yaml").read_text())["ERT"]["tables"]}
    layer = report["layers"][0]
    counts = layer["action_counts"]

    # hand counts: readouts per output and row group, cell MACs per input x weight slice
    in_sl, w_sl = IN, m.n_weight_slices(W)  # bit-serial inputs; bit-serial: w_sl has guard columns
    row_groups = K // m.wordlines_on
    readouts = TOKENS * outs * row_groups * (IN if family == "digital_bit_serial" else in_sl * w_sl)
    readout = {"analog": "ADC", "digital_adder_tree": "AdderTree", "digital_bit_serial": None}[family]
    assert set(m.parts) == {c.split(".")[0] for c in counts} & {"WordlineDriver", "ADC", "AdderTree",
                                                                 "ShiftAdd", "CellArray"}
    if readout:
        assert counts[f"{readout}.read"] == readouts
    assert counts["ShiftAdd.read"] == readouts
    assert counts["CellArray.read"] == TOKENS * outs * K * in_sl * w_sl

    missing = {c for c, n in counts.items() if n and c.split(".")[1] not in ert.get(c.split(".")[0], {})}
    assert not missing  # every action that happened has an energy in ERT.yaml
    total = sum(n * ert.get(c.split(".")[0], {}).get(c.split(".")[1], 0.0) for c, n in counts.items())
    assert layer["energy_j"] == pytest.approx(total, rel=1e-9)
    assert report["totals"]["energy_j"] == pytest.approx(total, rel=1e-9)
    for part in m.parts:
        own = sum(n * ert[part].get(c.split(".")[1], 0.0) for c, n in counts.items() if c.split(".")[0] == part)
        assert layer["energy_by_component"][part] == pytest.approx(own, rel=1e-9)
    macro_j = sum(n * ert[c.split(".")[0]]["read"] for c, n in counts.items()
                  if c.endswith(".read") and c.split(".")[0] in m.parts)
    assert report["totals"]["tops_per_w_macro"] == pytest.approx(2 * K * outs * TOKENS / macro_j / 1e12, rel=1e-9)
    assert report["totals"]["tops_per_w_macro"] > report["totals"]["tops_per_w"]


def test_analog_needs_adcs(tmp_path: Path) -> None:
    m = {k: v for k, v in MACROS["analog"].items() if k not in ("adc_bits", "adcs")}
    text = _problems(tmp_path, m)
    assert "adc_bits: required field is missing" in text and "adcs: required field is missing" in text


def test_digital_refuses_adc_fields(tmp_path: Path) -> None:
    text = _problems(tmp_path, {**MACROS["digital_adder_tree"], "adc_bits": 4, "adcs": 4,
                                "energy": {"model": "components", "adc_scale": {"value": 2, "source": "x"}}})
    assert "adc_bits: a digital_adder_tree macro has no ADCs" in text
    assert "adcs: a digital_adder_tree macro has no ADCs" in text
    assert "energy.adc_scale" in text


def test_table_macro_needs_no_voltage_or_node(tmp_path: Path) -> None:
    table = {"model": "table", **{k: {"value": 1e-15, "source": "datasheet"} for k in
                                  ("wordline_drive_j", "cell_mac_j", "shift_add_j", "weight_write_j")}}
    m = {k: v for k, v in MACROS["digital_bit_serial"].items()
         if k not in ("tech_node_m", "voltage_v", "reference_voltage_v")}
    assert load(_write(tmp_path, "m.yaml", {**m, "energy": table})).voltage_v is None
    # a bit-serial macro has no readout energy; an adder-tree one needs it
    text = _problems(tmp_path, {**m, "energy": {**table, "adc_convert_j": {"value": 1e-15, "source": "x"}}})
    assert "energy.adc_convert_j: a digital_bit_serial macro has neither" in text
    tree = {k: v for k, v in MACROS["digital_adder_tree"].items() if k != "voltage_v"}
    assert "energy.adc_convert_j: required field is missing" in _problems(tmp_path, {**tree, "energy": table})
    # the components model scales with node and voltage: both required there
    assert "voltage_v: required field is missing" in _problems(tmp_path, tree)


def test_area_by_part_rejects_unknown_part(tmp_path: Path) -> None:
    area = {"ADC": {"value": 1e-9, "source": "x"}, "CellArray": {"value": 1e-9, "source": "x"}}
    text = _problems(tmp_path, {**MACROS["digital_adder_tree"], "area_m2": area})
    assert "area_m2.ADC: not a part of a digital_adder_tree macro" in text


@pytest.mark.parametrize("area", [
    {"value": 2e-9, "source": "measured"},
    {"CellArray": {"value": 1.5e-9, "source": "measured"}, "AdderTree": {"value": 0.25e-9, "source": "measured"},
     "ShiftAdd": {"value": 0.2e-9, "source": "measured"}, "WordlineDriver": {"value": 0.05e-9, "source": "x"}},
])
def test_measured_area_is_used_on_the_component_path(tmp_path: Path, area) -> None:
    """A measured macro area (total, or per part) is what ART reports, not the models' area."""
    from cimco.spec.workload import WorkloadSpec
    from cimco.tables import component_tables

    system = load(_system(tmp_path, {**MACROS["digital_adder_tree"], "area_m2": area}))
    w = WorkloadSpec.model_validate({"kind": "workload", "name": "w", "source": "t",
                                     "bits": {"input": 4, "weight": 4, "output": 8},
                                     "layers": [{"name": "fc", "type": "linear", "in_channels": 32,
                                                 "out_channels": 8}]})
    art = component_tables(system, w).art
    parts = system.macro.parts
    assert sum(art[p] for p in parts) == pytest.approx(2e-9, rel=1e-9)
    if "CellArray" in area:
        assert {p: art[p] for p in parts} == pytest.approx({p: a["value"] for p, a in area.items()}, rel=1e-9)


def test_schema_lists_every_field() -> None:
    from cimco.spec.macro import ComponentEnergy, MacroSpec, TableEnergy
    from cimco.spec.schema import markdown

    text = markdown()
    for model, prefix in ((MacroSpec, ""), (TableEnergy, "energy[TableEnergy]."),
                          (ComponentEnergy, "energy[ComponentEnergy].")):
        for name in model.model_fields:
            assert f"| `{prefix}{name}` |" in text
    assert "| `tech_node_m` | float (>= 1e-09, <= 1e-06) or null | m |" in text


def test_weights_loaded_once_takes_weight_writes_out_of_latency(tmp_path: Path) -> None:
    """A single-use layer (one input vector) on a digital macro: with weights loaded per
    layer the cell array's time includes its write cycles; preloaded, only compute cycles."""
    from cimco.backends.accelforge import AccelForge
    from cimco.calibrate import macro_only_system
    from cimco.spec.workload import Bits, Layer

    bits = Bits(input=1, weight=4, output=16)
    layer = Layer(name="fc", type="linear", in_channels=32, out_channels=8, tokens=1)
    res = {}
    for how in ("per_layer", "once"):
        m = load(_write(tmp_path, "m.yaml", {**MACROS["digital_adder_tree"], "weights_loaded": how}))
        res[how] = AccelForge().map_layer(macro_only_system(m), layer, bits)
    once, per_layer = res["once"], res["per_layer"]
    assert once.energy == per_layer.energy and once.actions == per_layer.actions
    assert once.actions[("CellArray", "write")] > 0  # still written, still charged
    # compute: 2 row groups x 1 input bit = 2 cycles; per layer adds the weight-write cycles
    assert once.latency_by_component["CellArray"] == pytest.approx(2 * 5e-9, rel=1e-6)
    assert per_layer.latency_by_component["CellArray"] > 1.5 * once.latency_by_component["CellArray"]


@pytest.mark.parametrize(("area", "path"), [
    ({"value": 0.2, "source": "x"}, "area_m2.value"),
    ({"AdderTree": {"value": 0.2, "source": "x"}}, "area_m2.AdderTree.value"),
])
def test_area_out_of_range_is_one_problem_with_a_unit_hint(tmp_path: Path, area, path) -> None:
    with pytest.raises(SpecError) as e:
        load(_write(tmp_path, "m.yaml", {**MACROS["digital_adder_tree"], "area_m2": area}))
    assert [(p.path, p.message) for p in e.value.problems] == [
        (path, "expected at most 0.001, got 0.2; area_m2 is in square metres (0.5 mm^2 is 0.5e-6)")]
