"""The pipeline/backend seam: one place assembles a report, every backend gives the same
report keys and honours (or refuses before any work) every execution flag, and the Timeloop
backend's counts are Timeloop's own (its energies come back from them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from timeloop_fake import REAL, fake_mapper

from cimco.cli import main

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "plugin/cimco"
SYSTEM = str(ROOT / "arch_specs/mars_system.yaml")
LAYERS = [{"name": "a", "type": "conv", "in_channels": 16, "out_channels": 32, "input_hw": [8, 8], "kernel": 3,
           "padding": 1},
          {"name": "b", "type": "conv", "in_channels": 32, "out_channels": 32, "input_hw": [8, 8], "kernel": 3,
           "padding": 1, "residual": ["a"]},
          {"name": "fc", "type": "linear", "in_channels": 2048, "out_channels": 10}]


def _workload(tmp_path: Path, layers: list[dict] = LAYERS) -> str:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"kind": "workload", "name": "w", "source": "test", "layers": layers}))
    return str(path)


def _calls(pattern: str) -> list[str]:
    """Files of the package that call ``pattern`` (definitions excluded)."""
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if re.search(rf"(?<!def ){pattern}\(", p.read_text()))


@pytest.mark.unit
def test_one_place_assembles_a_report() -> None:
    assert _calls("build_report") == ["pipeline.py"]
    assert _calls("map_workload") == ["pipeline.py"]
    assert _calls(r"execution\.apply") == ["pipeline.py"]
    assert _calls(r"transform\.apply") == ["pipeline.py"]
    # and the pipeline's callers are the entry points
    assert _calls(r"pipeline\.run") == ["api.py", "cli.py", "codesign/spatial.py", "sweeps.py"]


def _keys(x, prefix: str = "") -> set[str]:
    """Every dotted key of a report, lists of layers read as their first element; maps whose
    keys are data (parts, actions, layer names) count as one key."""
    data = ("energy_by_component", "action_counts", "latency_by_component_s", "memory_budget_bits", "engine",
            "sparsity", "bits", "mapping_loops", "placement")
    if any(prefix.endswith(d) for d in data):
        return {prefix}
    if isinstance(x, list):
        return _keys(x[0], prefix + "[]") if x and isinstance(x[0], dict) else {prefix}
    if isinstance(x, dict):
        return {prefix} | set().union(*(_keys(v, f"{prefix}.{k}") for k, v in x.items()))
    return {prefix}


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict[str, dict]:
    d = tmp_path_factory.mktemp("both")
    w = _workload(d)
    out = {}
    for backend in ("accelforge", "timeloop", "cimco"):
        extra = ["--timeloop-bin", str(fake_mapper(d))] if backend == "timeloop" else []
        assert main(["map", "--quiet", "--jobs", "1", "--backend", backend, *extra, "--system", SYSTEM,
                     "--workload", w, "--out", str(d / backend)]) == 0
        out[backend] = json.loads((d / backend / "report.json").read_text())
    return out


def test_report_keys_are_the_same_whatever_the_backend(both: dict[str, dict]) -> None:
    af, tl, cim = both["accelforge"], both["timeloop"], both["cimco"]
    assert (af["backend"], tl["backend"], cim["backend"]) == ("accelforge", "timeloop", "cimco")
    assert _keys(af) == _keys(tl) == _keys(cim)
    assert set(af["totals"]) == set(tl["totals"]) and "tops_per_w_macro" in tl["totals"]
    for x, y in zip(af["layers"], tl["layers"]):
        assert set(x) == set(y) and "input_on_chip" in y
    # the same execution model ran on both: the skip connection's tensor is read once more
    assert [x["input_on_chip"] for x in tl["layers"]] == [x["input_on_chip"] for x in af["layers"]]


def test_cimco_backend_reports_accelforges_numbers_for_the_same_mappings(both: dict[str, dict]) -> None:
    """The cimco backend's per-layer numbers are within 1% of FFM's, or better in
    energy-delay product, on the small network (its search, AccelForge's model)."""
    for x, y in zip(both["accelforge"]["layers"], both["cimco"]["layers"]):
        e, lat = y["energy_j"] / x["energy_j"], y["latency_s"] / x["latency_s"]
        assert (abs(e - 1) <= 0.01 and abs(lat - 1) <= 0.01) or e * lat < 1, (x["name"], e, lat)


def test_timeloop_backend_honours_every_execution_flag(tmp_path: Path) -> None:
    w, mapper, cache = _workload(tmp_path), str(fake_mapper(tmp_path)), str(tmp_path / "cache")
    runs = {"reload": ["--weights", "reload"], "resident": ["--weights", "resident"],
            "batch4": ["--weights", "reload", "--batch", "4"], "pipelined": ["--mode", "pipelined"],
            "jobs2": ["--weights", "reload", "--jobs", "2"]}
    got = {}
    for name, flags in runs.items():
        assert main(["map", "--quiet", "--backend", "timeloop", "--timeloop-bin", mapper, "--system", SYSTEM,
                     "--workload", w, "--out", str(tmp_path / name), "--cache-dir", cache, *flags]) == 0
        got[name] = json.loads((tmp_path / name / "report.json").read_text())["totals"]
    assert [(t["mode"], t["weights"], t["batch"]) for t in got.values()] == [
        ("sequential", "reload", 1), ("sequential", "resident", 1), ("sequential", "reload", 4),
        ("pipelined", "resident", 1), ("sequential", "reload", 1)]
    e = {k: t["energy_j"] for k, t in got.items()}
    # resident: no weight traffic per inference, one programming reported apart; batch 4: a
    # quarter of the weight traffic (both measured against reloading every inference)
    assert got["resident"]["weight_load_j"] > 0 and e["resident"] < e["reload"]
    assert e["batch4"] - e["resident"] == pytest.approx((e["reload"] - e["resident"]) / 4, rel=1e-9)
    assert got["pipelined"]["fps"] > 1 / got["pipelined"]["latency_s"]  # the slowest stage, not the sum
    assert got["jobs2"] == got["reload"]


def test_timeloop_refusals_come_before_any_mapper_run(tmp_path: Path, capsys) -> None:
    big = [{"name": "big", "type": "linear", "in_channels": 8192, "out_channels": 8192}]
    mapper = fake_mapper(tmp_path)
    code = main(["map", "--backend", "timeloop", "--timeloop-bin", str(mapper), "--system", SYSTEM, "--workload",
                 _workload(tmp_path, big), "--out", str(tmp_path / "o"), "--weights", "resident"])
    err = capsys.readouterr().err
    assert code == 2 and "--weights: one copy of every layer's weights needs" in err
    assert not (tmp_path / "calls.log").exists() and not (tmp_path / "o").exists()


def test_timeloop_binary_from_the_environment(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CIMCO_TIMELOOP_BIN", str(fake_mapper(tmp_path)))
    assert main(["map", "--quiet", "--backend", "timeloop", "--system", SYSTEM, "--workload", _workload(tmp_path),
                 "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "calls.log").read_text().split()
    monkeypatch.setenv("CIMCO_TIMELOOP_BIN", str(tmp_path / "nothing"))
    assert main(["map", "--backend", "timeloop", "--system", SYSTEM, "--workload", _workload(tmp_path),
                 "--out", str(tmp_path / "o2")]) == 2
    assert "'" + str(tmp_path / "nothing") + "' is not an executable" in capsys.readouterr().err


@pytest.mark.engine
@pytest.mark.parametrize("run", ["008_layer2.0.conv2", "019_fc"])
def test_timeloop_counts_give_back_timeloops_own_energy(run: str) -> None:
    """The backend turns each Timeloop action back into the cimco actions it stands for (the
    inverse of the export's ERT): cimco's ERT times those counts is, level by level, the
    energy Timeloop computed from the same ERT (to its two printed decimals of fJ/compute)."""
    from cimco.spec import load
    from cimco.spec.workload import Bits
    from cimco.timeloop.runner import _tables, parse_levels, parse_stats, to_result

    system, bits = load(SYSTEM), Bits(input=8, weight=8, output=8)
    text = (REAL.parent / run / "timeloop-mapper.stats.txt").read_text()
    r = to_result(system, bits, text, "")
    tables = _tables(system.model_dump_json(), bits.model_dump_json())
    ours: dict[str, float] = {}
    for (part, action), n in r.actions.items():
        level = "ADC" if part == "ShiftAdd" else part  # the readout level carries the shift-add
        ours[level] = ours.get(level, 0.0) + tables.energy(part, action) * n
    theirs = parse_stats(text).energy_by_component_j()
    # this Timeloop run read the ERT exported then, which priced a cell fill (one weight) as a
    # write per input x weight slice; the export now prices it as one per weight bit (issue 21):
    # Timeloop's CellArray energy with its fills priced so
    ert = yaml.safe_load((REAL.parent / run / "ERT.yaml").read_text())["ERT"]["tables"]
    then = next(a["energy"] for t in ert if t["name"].endswith(".CellArray") for a in t["actions"]
                if a["name"] == "write") * 1e-12
    fills = sum(c["fill"] for c in parse_levels(text)["CellArray"].values())
    theirs["CellArray"] += fills * (tables.energy("CellArray", "write") * bits.weight - then)
    assert set(ours) == {k for k in theirs if k != "TimeloopOther"}
    for level, e in theirs.items():
        if level != "TimeloopOther":
            assert ours[level] == pytest.approx(e, rel=2e-3, abs=1e-17), level
    assert r.computes == r.actions[("Compute", "compute")] == r.actions[("CellArray", "read")] / 16
