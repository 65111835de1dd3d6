"""`cimco map` end to end with the real mapper on a small workload (about a minute)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml

from cimco.cli import main

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = str(ROOT / "arch_specs/mars_system.yaml")
WORKLOAD = """\
kind: workload
name: tiny
source: test
layers:
  - {name: a, type: conv, in_channels: 16, out_channels: 32, input_hw: [8, 8], kernel: 3, padding: 1}
  - {name: b, type: conv, in_channels: 32, out_channels: 32, input_hw: [8, 8], kernel: 3, padding: 1}
  - {name: b_again, type: conv, in_channels: 32, out_channels: 32, input_hw: [8, 8], kernel: 3, padding: 1}
  - {name: fc, type: linear, in_channels: 2048, out_channels: 10, repeat: 2}
"""


def _mapping_files(cache: Path) -> list[Path]:
    return list(cache.glob("*.json"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    (d / "w.yaml").write_text(WORKLOAD)
    cwd = d / "cwd"
    cwd.mkdir()
    tmp_before = set(Path(tempfile.gettempdir()).iterdir())
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(["map", "--system", SYSTEM, "--workload", str(d / "w.yaml"),
                     "--out", str(d / "out"), "--quiet", "--jobs", "2"])
    finally:
        os.chdir(old)
    assert code == 0
    (d / "tmp_added.txt").write_text("\n".join(
        str(p) for p in set(Path(tempfile.gettempdir()).iterdir()) - tmp_before
        if p.name.endswith(".pkl") or p.name == "mapping.svg"))
    return d


def test_writes_every_file_and_nothing_else(run: Path) -> None:
    names = {p.name for p in (run / "out").iterdir()}
    assert names == {"report.json", "layers.csv", "report.md", "energy_by_component.png",
                     "ERT.yaml", "ART.yaml", "report.html", "cache"}
    assert list((run / "cwd").iterdir()) == []  # no mapping.svg, nothing else
    assert (run / "tmp_added.txt").read_text() == ""  # AccelForge's tmp*.pkl stay in scratch


def test_report_contract(run: Path) -> None:
    r = json.loads((run / "out/report.json").read_text())
    t = r["totals"]
    for k in ("energy_j", "latency_s", "dense_macs", "executed_macs", "tops_per_w",
              "tops_per_w_executed", "tops", "fps", "area_m2"):
        assert t[k] > 0
    assert t["dense_macs"] == 8 * 8 * 32 * 144 + 2 * 8 * 8 * 32 * 288 + 2 * 2048 * 10
    assert t["tops_per_w"] == pytest.approx(2 * t["dense_macs"] / t["energy_j"] / 1e12)
    on_chip = t["energy_j"] - r["energy_by_component"]["DRAM"]
    assert t["tops_per_w_on_chip"] == pytest.approx(2 * t["dense_macs"] / on_chip / 1e12)
    assert t["fps"] == pytest.approx(1 / t["latency_s"])
    layers = r["layers"]
    assert [x["name"] for x in layers] == ["a", "b", "b_again", "fc"]
    assert sum(x["energy_j"] for x in layers) == pytest.approx(t["energy_j"], rel=1e-12)
    assert sum(r["energy_by_component"].values()) == pytest.approx(t["energy_j"], rel=1e-12)
    for x in layers:  # on-chip residency only removes traffic from AccelForge's single-layer counts
        assert x["energy_j"] < x["engine_energy_j"]
        assert set(x["bits"]) == {"input", "weight", "output"}
    # identical layers are mapped once and get identical results
    b, b2 = layers[1], layers[2]
    assert (b["energy_j"], b["latency_s"], b["mapping"]) == (b2["energy_j"], b2["latency_s"], b2["mapping"])
    assert len(_mapping_files(run / "out/cache")) == 3


def test_ert_times_action_counts_is_total_energy(run: Path) -> None:
    """Independent re-derivation from the written files: ERT (pJ) x counts = total."""
    r = json.loads((run / "out/report.json").read_text())
    ert = yaml.safe_load((run / "out/ERT.yaml").read_text())["ERT"]["tables"]
    per_action = {f"{t['name'].split('.', 1)[1]}.{a['name']}": a["energy"] * 1e-12
                  for t in ert for a in t["actions"]}
    total = sum(per_action.get(k, 0.0) * n for x in r["layers"] for k, n in x["action_counts"].items())
    assert abs(total - r["totals"]["energy_j"]) / r["totals"]["energy_j"] < 1e-9


def test_second_run_is_cached_and_identical(run: Path) -> None:
    first = json.loads((run / "out/report.json").read_text())
    assert main(["map", "--system", SYSTEM, "--workload", str(run / "w.yaml"),
                 "--out", str(run / "out"), "--quiet"]) == 0
    second = json.loads((run / "out/report.json").read_text())
    assert all(x["cached"] for x in second["layers"])
    for x in (first, second):
        for layer in x["layers"]:
            layer.pop("cached")
    assert first == second


def test_changed_input_is_not_served_from_cache(run: Path) -> None:
    w = WORKLOAD.replace("name: tiny", "name: tiny4\nbits: {input: 4, weight: 4, output: 8}")
    (run / "w4.yaml").write_text(w)
    assert main(["map", "--system", SYSTEM, "--workload", str(run / "w4.yaml"),
                 "--out", str(run / "out4"), "--cache-dir", str(run / "out/cache"), "--quiet",
                 "--jobs", "1"]) == 0
    r = json.loads((run / "out4/report.json").read_text())
    assert not any(x["cached"] for x in r["layers"])
    assert len(_mapping_files(run / "out/cache")) == 6


TRANSFORMERS = ("deit_tiny_imagenet", "bert_base_seq128", "gpt2_small_prefill128", "gpt2_small_decode128")


@pytest.mark.slow
@pytest.mark.parametrize("macro", ["mars_macro_28nm", "chih_isscc_2021"], ids=["analog", "digital"])
@pytest.mark.parametrize("name", TRANSFORMERS)
def test_bundled_transformers_map_end_to_end(name: str, macro: str) -> None:
    """The bundled transformers on the MARS-like system and on its digital (adder-tree) variant,
    with the cimco backend: every layer mapped, the dynamic layers (Q K^T, softmax(Q K^T) V)
    writing their operand at every run even when the weights stay resident."""
    import cimco
    from cimco.spec import load
    from cimco.spec.load import read_yaml
    from cimco.spec.system import SystemSpec
    from cimco.sweeps import _system_data

    data = _system_data(ROOT / "arch_specs/mars_system.yaml")
    if macro != "mars_macro_28nm":
        data["macro"] = read_yaml(ROOT / f"arch_specs/{macro}.yaml")
    workload = load(ROOT / f"workloads/{name}.yaml")
    report = cimco.map(SystemSpec.model_validate(data), workload).data
    dynamic = {x.name for x in workload.layers if x.dynamic}
    layers = {x["name"]: x for x in report["layers"]}
    assert len(layers) == len(workload.layers) and dynamic
    assert report["totals"]["dense_macs"] == workload.macs and report["totals"]["energy_j"] > 0
    for n in dynamic:  # its keys or values are written into the cells at every run
        assert layers[n]["action_counts"].get("CellArray.write", 0) > 0
