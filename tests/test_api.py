"""The notebook API: cimco.map -> Report (totals, layers DataFrame, HTML), cimco.sweep ->
DataFrame; importing cimco stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import cimco
from cimco.spec import load

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "arch_specs/mars_system.yaml"
SMALL = """\
kind: workload
name: small
source: test
layers:
  - {name: l1, type: linear, in_channels: 32, out_channels: 8, sparsity: {pattern: row_block, density: 0.5}}
  - {name: l2, type: linear, in_channels: 64, out_channels: 16}
"""


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("api")
    (d / "w.yaml").write_text(SMALL)
    report = cimco.map(str(SYSTEM), d / "w.yaml", out=d / "out")
    return {"dir": d, "report": report}


def test_report_object_matches_the_written_report(mapped: dict) -> None:
    r, out = mapped["report"], mapped["dir"] / "out"
    data = json.loads((out / "report.json").read_text())
    assert r.totals == data["totals"]
    layers = r.layers
    assert isinstance(layers, pd.DataFrame) and list(layers.index) == ["l1", "l2"]
    assert layers["energy_j"].sum() == pytest.approx(r.totals["energy_j"], rel=1e-12)
    assert layers.loc["l1", "block_density"] == data["layers"][0]["block_density"] < 1.0
    assert {"bits.weight", "busiest_part", "energy_j.DRAM"} <= set(layers.columns)
    assert layers.loc["l2", "busiest_part"] in data["layers"][1]["latency_by_component_s"]
    html = r._repr_html_()
    assert "<svg" in html and "<html" not in html  # a fragment for notebooks
    assert r.to_html() == (out / "report.html").read_text()
    assert "small on mars_system" in repr(r)


def test_map_takes_spec_objects_and_writes_nothing_without_out(mapped: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    system, workload = load(SYSTEM), load(mapped["dir"] / "w.yaml")
    r = cimco.map(system, workload, cache_dir=mapped["dir"] / "out/cache")  # served from the cache
    assert r.totals == mapped["report"].totals
    assert list(tmp_path.iterdir()) == []


def test_bits_the_macro_cannot_run_are_a_spec_error(mapped: dict) -> None:
    w = load(mapped["dir"] / "w.yaml")
    w2 = w.model_copy(update={"bits": w.bits.model_copy(update={"weight": 2})})
    with pytest.raises(cimco.SpecError, match="supports weight bits 4..8, got 2"):
        cimco.map(SYSTEM, w2)


def test_execution_options_match_the_cli(mapped: dict, tmp_path: Path) -> None:
    from cimco.cli import main

    cache, w = mapped["dir"] / "out/cache", mapped["dir"] / "w.yaml"
    r = cimco.map(SYSTEM, w, cache_dir=cache, weights="reload", batch=4)
    assert main(["map", "--quiet", "--system", str(SYSTEM), "--workload", str(w), "--cache-dir", str(cache),
                 "--weights", "reload", "--batch", "4", "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "report.json").read_text())["totals"]
    assert (r.totals["weights"], r.totals["batch"]) == ("reload", 4)
    assert r.totals == cli
    # the default (auto) keeps this small network resident: no weights move per inference
    assert mapped["report"].totals["weights"] == "resident"
    assert r.totals["energy_j"] > mapped["report"].totals["energy_j"]


@pytest.mark.parametrize("kw, words", [({"mode": "parallel"}, "mode must be one of sequential, pipelined, "
                                        "got 'parallel'"),
                                       ({"batch": 0}, "batch must be a whole number >= 1, got 0"),
                                       ({"weights": "once", "batch": 2.5}, "weights must be one of auto, "
                                        "resident, reload, got 'once'; batch must be")])
def test_bad_execution_options_are_refused_before_mapping(mapped: dict, kw: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        cimco.map(SYSTEM, mapped["dir"] / "w.yaml", cache_dir=mapped["dir"] / "nothing", **kw)
    assert not (mapped["dir"] / "nothing").exists()


def test_sweep_returns_the_results_table(mapped: dict, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"kind: sweep\nsystem: {SYSTEM}\nworkload: {mapped['dir'] / 'w.yaml'}\n"
                    "grid:\n  workload.input_density: [0.5, 1.0]\n")
    out = tmp_path / "out"
    import shutil

    shutil.copytree(mapped["dir"] / "out/cache", out / "cache")
    df = cimco.sweep(spec, out)
    assert list(df["workload.input_density"]) == [0.5, 1.0]
    assert df.loc[1, "energy_j"] == pytest.approx(mapped["report"].totals["energy_j"], rel=1e-12)
    assert df.loc[0, "energy_j"] < df.loc[1, "energy_j"]
    assert df.attrs["stats"]["mapper_calls"] == 0 and df.attrs["stats"]["computed"] == 2
    assert df.equals(pd.read_parquet(out / "results.parquet"))


def test_import_stays_light() -> None:
    code = ("import sys, cimco; cimco.Report; cimco.map; cimco.sweep; "
            "heavy = [m for m in ('accelforge', 'torch', 'pandas', 'dask', 'pyarrow', 'matplotlib') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
