"""Findings of an outside fuzz run of the CLI (issue 19): each exits 2 with the flag, file or
field named, no upstream text or traceback, nothing written outside OUT and nothing
half-written."""

from __future__ import annotations

import errno
import html
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cimco.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = str(ROOT / "arch_specs/mars_system.yaml")
TINY = """\
kind: workload
name: tiny
source: test
layers:
  - {name: fc, type: linear, in_channels: 32, out_channels: 10}
"""


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pydantic" not in err and "internal error" not in err
    return code, err


def _tree(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (relative path -> bytes)."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "a\x00b", "-x", "a\\b", "x" * 201])
def test_export_name_is_a_plain_file_name(tmp_path: Path, capsys, name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, err = _run(capsys, "export", "--model", "resnet20_cifar", f"--name={name}", "--out", str(work / "OUT"))
    assert code == 2 and "--name" in err and "plain file name" in err
    assert list(tmp_path.rglob("*")) == [work]  # nothing written, OUT not even made


@pytest.mark.parametrize("bits", ["99,99,99", "0,8,8", "8,8", "8,8,33", "a,b,c", "\u00b2,8,8", "9" * 5000 + ",8,8"])
def test_export_bits_out_of_range(tmp_path: Path, capsys, bits: str) -> None:
    code, err = _run(capsys, "export", "--model", "resnet20_cifar", "--bits", bits, "--out", str(tmp_path / "OUT"))
    assert code == 2 and "--bits" in err and "from 1 to 32" in err
    assert not (tmp_path / "OUT").exists()


@pytest.mark.parametrize("shape, count", [("1,3,100000,100000", "30,000,000,000"),
                                          ("1,3,8192,8192", "201,326,592"),
                                          ("1," + "9" * 2000 + ",9", "over 2^")])
def test_export_input_shape_too_large(tmp_path: Path, capsys, shape: str, count: str) -> None:
    code, err = _run(capsys, "export", "--model", "resnet20_cifar", "--input-shape", shape,
                     "--out", str(tmp_path / "OUT"))
    assert code == 2 and "--input-shape" in err and count in err and "67,108,864" in err
    assert not (tmp_path / "OUT").exists()


def test_lrmp_layer_too_large_for_the_spatial_model(tmp_path: Path, capsys) -> None:
    w = tmp_path / "big.yaml"
    w.write_text(TINY.replace("in_channels: 32, out_channels: 10", "in_channels: 1048576, out_channels: 1048576"))
    code, err = _run(capsys, "lrmp", "--system", SYSTEM, "--workload", str(w), "--out", str(tmp_path / "OUT"))
    assert code == 2
    assert "big.yaml: layers[0]" in err and "'fc'" in err and "1,099,511,627,776" in err and "134,217,728" in err
    assert not (tmp_path / "OUT").exists()


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a clean `cimco map` of TINY, its cache dir)."""
    d = tmp_path_factory.mktemp("mapped")
    (d / "tiny.yaml").write_text(TINY)
    assert main(["map", "--system", SYSTEM, "--workload", str(d / "tiny.yaml"), "--out", str(d / "OUT"),
                 "--cache-dir", str(d / "cache"), "--quiet", "--jobs", "1"]) == 0
    return d / "OUT", d / "cache"


def _edited(tmp_path: Path, mapped: tuple[Path, Path], edit) -> Path:
    d = tmp_path / "rep"
    d.mkdir()
    report = json.loads((mapped[0] / "report.json").read_text())
    edit(report)
    (d / "report.json").write_text(json.dumps(report))  # NaN and Infinity as Python writes them
    return d


def _set(path: str, value):
    """An edit setting the dotted ``path`` (list indices as numbers) of a report."""
    def edit(report: dict) -> None:
        *head, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        for k in head:
            report = report[k]
        if value is KeyError:
            del report[last]
        else:
            report[last] = value
    return edit


@pytest.mark.parametrize("path, value, words", [
    ("totals.energy_j", -1.0, "totals.energy_j: expected a finite number above 0, got -1.0"),
    ("totals.energy_j", 0, "totals.energy_j: expected a finite number above 0, got 0"),  # was ZeroDivisionError
    ("layers.0.energy_j", 0.0, "layers[0].energy_j: expected a finite number above 0"),
    ("layers.0.latency_s", float("nan"), "layers[0].latency_s: expected a finite number, got nan"),
    ("totals.fps", float("inf"), "totals.fps: expected a finite number, got inf"),
    ("layers.0.energy_by_component.ADC", float("-inf"), "energy_by_component.ADC: expected a finite number, got -inf"),
    ("totals.dense_macs", 10**400, "totals.dense_macs: expected a finite number at least 0, got a huge number"),
    ("totals", {}, "totals.energy_j: required field is missing"),
    ("totals.latency_s", -2e-9, "totals.latency_s: expected a finite number at least 0"),
    ("totals.tops", KeyError, "totals.tops: required field is missing"),
    ("totals.mode", 3, "totals.mode: expected text, got int"),
    ("totals.dense_macs", 1.5, "totals.dense_macs: expected an integer, got float"),
    ("layers.0.dense_macs", True, "layers[0].dense_macs: expected an integer, got bool"),
    ("layers.0.bits", [8, 8, 8], "layers[0].bits: expected an object, got list"),
    ("energy_by_component.DRAM", -1, "energy_by_component.DRAM: expected a finite number at least 0"),
    ("layers", {}, "layers: expected a list, got dict"),
], ids=lambda v: str(v)[:40])
def test_report_checks_an_edited_report(tmp_path: Path, capsys, mapped, path, value, words) -> None:
    d = _edited(tmp_path, mapped, _set(path, value))
    code, err = _run(capsys, "report", str(d))
    assert code == 2 and f"{d / 'report.json'}" in err and words in err


def test_report_lists_every_bad_value_capped(tmp_path: Path, capsys, mapped) -> None:
    def edit(report: dict) -> None:
        report["totals"]["area_m2"] = -1
        report["totals"]["tops"] = -1
        report["layers"] = report["layers"] * 30
        for x in report["layers"]:
            x["latency_s"] = -1
    code, err = _run(capsys, "report", str(_edited(tmp_path, mapped, edit)))
    assert code == 2 and "totals.area_m2" in err and "totals.tops" in err and "layers[17].latency_s" in err
    assert "layers[18].latency_s" not in err and "and 12 more" in err


@pytest.mark.parametrize("text, words", [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                                         ('{"totals": 1e400}', "totals: expected a finite number, got inf"),
                                         ('{"a": [{"b": NaN}, -Infinity]}', "a[0].b: expected a finite number"),
                                         ("[1, 2]", "expected a JSON object at top level")])
def test_report_hostile_json(tmp_path: Path, capsys, text: str, words: str) -> None:
    (tmp_path / "report.json").write_text(text)
    code, err = _run(capsys, "report", str(tmp_path))
    assert code == 2 and "report.json" in err and words in err


def test_report_of_a_clean_map_still_prints(capsys, mapped) -> None:
    assert main(["report", str(mapped[0])]) == 0
    assert "TOTAL" in capsys.readouterr().out


def _disk_fills(monkeypatch: pytest.MonkeyPatch, out: Path, after: int) -> None:
    """Make the write of every atomic temp file under ``out`` after the first ``after`` fail
    half-way with ENOSPC, as on a full disk."""
    real = os.fdopen
    calls = [0]

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}")
        if not (target.startswith(str(out)) and target.endswith(".tmp")):
            return f
        calls[0] += 1
        return Full(f) if calls[0] > after else f

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_export_disk_full(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    w = tmp_path / "w.yaml"
    w.write_text(TINY.replace("layers:", "layers:\n  - {name: c, type: conv, in_channels: 3, out_channels: 8, "
                              "input_hw: [8, 8], kernel: 3}"))
    args = ["export", "--workload", str(w), "--out"]
    assert main(args + [str(tmp_path / "clean")]) == 0
    out = (tmp_path / "OUT").absolute()
    _disk_fills(monkeypatch, out, after=1)
    code, err = _run(capsys, *args, str(out))
    assert code == 2 and "no space left on device" in err and f"{out / 'timeloop'}/" in err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no half-written file left
    monkeypatch.undo()  # space freed
    assert main(args + [str(out)]) == 0
    assert _tree(out) == _tree(tmp_path / "clean")


def test_map_disk_full(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, mapped) -> None:
    clean, cache = mapped
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = (tmp_path / "OUT").absolute()
    args = ["map", "--system", SYSTEM, "--workload", str(tmp_path / "tiny.yaml"), "--out", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--quiet", "--jobs", "1"]
    shutil.copytree(cache, tmp_path / "cache")  # the layer is cached: only the report is written
    _disk_fills(monkeypatch, out, after=2)
    code, err = _run(capsys, *args)
    assert code == 2 and "no space left on device" in err and str(out) in err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert main(args) == 0
    assert sorted(_tree(out)) == sorted(_tree(clean))
    again, first = json.loads((out / "report.json").read_text()), json.loads((clean / "report.json").read_text())
    assert again["totals"] == first["totals"]


# --- found by scripts/fuzz_specs.py on these entry points -----------------------------------

@pytest.mark.parametrize("model, words", [
    ("collections:OrderedDict", "OrderedDict() returned a OrderedDict, not a torch.nn.Module"),
    ("os:getcwd", "getcwd() returned a str, not a torch.nn.Module"),
    ("nosuchmodule_xyz:f", "no module named 'nosuchmodule_xyz' (is it on PYTHONPATH?)"),
    ("a:b:c", "no module named 'a' (is it on PYTHONPATH?)"),
    ("math:pi", "module 'math' has no callable 'pi'"),
    ("json:loads", "calling loads() failed: "),
    ("torch.nn:Linear", "calling Linear() failed: "),
])
def test_export_model_that_is_not_a_module(tmp_path: Path, capsys, model: str, words: str) -> None:
    """Found by the fuzzer: no Python exception names in the refusal (raw_msg)."""
    code, err = _run(capsys, "export", "--model", model, "--input-shape", "1,3,8,8", "--out", str(tmp_path / "OUT"))
    assert code == 2 and f"--model {model!r}: {words}" in err
    assert "Error" not in err


def test_export_seed_beyond_what_torch_takes(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["export", "--model", "resnet20_cifar", "--seed", "9" * 20, "--out", str(tmp_path / "OUT")])
    assert e.value.code == 2 and "--seed: expected a whole number from 0 to 2^63-1" in capsys.readouterr().err


@pytest.mark.parametrize("text, words", [("layer,bits,loss\nf\rc,8,0.1\n", "line 2: not CSV: new-line character"),
                                         ("layer,bits,loss\n", "no rows: expected a CSV"),
                                         ("", "no rows: expected a CSV")])
def test_lrmp_sensitivity_that_is_not_a_table(tmp_path: Path, capsys, text: str, words: str) -> None:
    (tmp_path / "w.yaml").write_text(TINY)
    (tmp_path / "s.csv").write_text(text)
    code, err = _run(capsys, "lrmp", "--system", SYSTEM, "--workload", str(tmp_path / "w.yaml"),
                     "--sensitivity", str(tmp_path / "s.csv"), "--out", str(tmp_path / "OUT"))
    assert code == 2 and f"s.csv: {words}" in err
    assert not (tmp_path / "OUT").exists()


def test_sweep_problems_are_capped(tmp_path: Path, capsys) -> None:
    (tmp_path / "w.yaml").write_text(TINY)
    (tmp_path / "s.yaml").write_text(f"kind: sweep\nsystem: {SYSTEM}\nworkload: w.yaml\n"
                                     f"grid:\n  macro.adc_bits: [{', '.join(str(-i) for i in range(1, 200))}]\n")
    code, err = _run(capsys, "sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "OUT"))
    assert code == 2 and "and 179 more problems not listed" in err and len(err) < 20_000


def test_art_yaml_is_per_instance_as_accelergys(mapped) -> None:
    """ART.yaml from `cimco map` held the area of all instances, the Timeloop export's per
    instance (issue 21): both per instance now, with the instances in a comment; instances x
    area per instance is the report's total area."""
    text = (mapped[0] / "ART.yaml").read_text()
    assert text.startswith("# area per instance in um^2 (Accelergy's convention)")
    instances = dict((p, int(n.replace(",", ""))) for p, n in
                     (x.rsplit(" ", 1) for x in text.split("# instances: ")[1].split("\n")[0].split(", ")))
    system = json.loads((mapped[0] / "report.json").read_text())
    areas = {t["name"].split(".", 1)[1]: t["area"] * 1e-12 for t in yaml.safe_load(text)["ART"]["tables"]}
    assert instances["WordlineDriver"] == 32 and instances["DRAM"] == 1  # the MARS-like system's 32 macros
    assert instances["CellArray"] == 32 * 256 * 16  # each macro's columns x word lines on at once
    assert sum(a * instances[p] for p, a in areas.items()) == pytest.approx(system["totals"]["area_m2"], rel=1e-9)


# --- cimco diff --------------------------------------------------------------------------

def test_diff_of_two_runs_names_totals_components_and_layers(tmp_path: Path, capsys, mapped) -> None:
    """B is A with its DRAM at 4x the energy per bit: the totals' ratio, DRAM first among the
    components explaining the difference (all of it), each layer's ratio; --out writes both files."""
    d = tmp_path / "B"
    assert main(["map", "--system", _dram_x4(tmp_path), "--workload", str(mapped[0].parent / "tiny.yaml"),
                 "--out", str(d), "--quiet"]) == 0
    capsys.readouterr()
    a, b = (json.loads((p / "report.json").read_text()) for p in (mapped[0], d))
    assert main(["diff", str(mapped[0]), str(d), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    ratio = b["totals"]["energy_j"] / a["totals"]["energy_j"]
    assert ratio > 1 and f"{ratio:.4g}x" in out
    components = out.split("Energy by component")[1].split("\n")
    assert components[3].startswith("DRAM") and components[3].rstrip().endswith("100.0%")
    assert all(f"{x['name']} " in out for x in a["layers"])
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {"diff.md", "diff.html"}
    assert "DRAM" in (tmp_path / "cmp" / "diff.html").read_text()


def _dram_x4(tmp_path: Path) -> str:
    """The bundled system with 4x DRAM energy per bit, written into ``tmp_path``; its path."""
    from cimco.spec.load import read_yaml

    data = read_yaml(Path(SYSTEM))
    data["macro"] = str(Path(SYSTEM).parent / data["macro"])
    data["dram"]["energy_per_bit_j"]["value"] *= 4
    (tmp_path / "sys.yaml").write_text(yaml.safe_dump(data))
    return str(tmp_path / "sys.yaml")


@pytest.mark.parametrize("path, value, words", [
    ("workload", KeyError, "workload: required field is missing"),
    ("totals.executed_macs", "many", "totals.executed_macs: expected an integer, got str"),
])
def test_diff_checks_the_fields_it_reads(tmp_path: Path, capsys, mapped, path, value, words) -> None:
    """Found by the fuzzer: a report without `workload` or with a text executed_macs was an
    internal error (exit 1) in `cimco diff`."""
    d = _edited(tmp_path, mapped, _set(path, value))
    code, err = _run(capsys, "diff", str(mapped[0]), str(d))
    assert code == 2 and words in err


def test_diff_refuses_every_bad_report_at_once(tmp_path: Path, capsys, mapped) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "report.json").write_text('{"totals": 1e400}')
    code, err = _run(capsys, "diff", str(tmp_path / "none"), str(tmp_path / "bad"))
    assert code == 2 and "none/report.json: no report.json here" in err and "totals: expected a finite number" in err
    code, err = _run(capsys, "diff", str(mapped[0]), str(mapped[0]), "--out", "/proc/cimco")
    assert code == 2 and "--out" in err


def test_map_warns_of_a_chain_mismatch_and_keeps_it_in_the_report(tmp_path: Path, capsys) -> None:
    """Chained layers 16 -> 32 channels were accepted without a word (issue 21)."""
    (tmp_path / "w.yaml").write_text(TINY + "  - {name: fc2, type: linear, in_channels: 32, out_channels: 4}\n")
    assert main(["map", "--system", SYSTEM, "--workload", str(tmp_path / "w.yaml"), "--out", str(tmp_path / "OUT"),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    words = "layer 'fc2' takes 32 input channels, but 'fc' gives 10"
    assert f"cimco: warning: {words}" in err
    report = json.loads((tmp_path / "OUT" / "report.json").read_text())
    assert any(words in w for w in report["warnings"])
    assert words in (tmp_path / "OUT" / "report.md").read_text()
    assert html.escape(words) in (tmp_path / "OUT" / "report.html").read_text()


def test_spatial_utilization_is_counted_from_the_mapping(tmp_path: Path, capsys) -> None:
    """Issue 21: the HTML showed "array busy / layer time" = 1.0 for ResNet-20's layer1, which
    uses 9 of 32 macros. Hand count on the MARS-like system (32 macros of 256 columns, 16 word
    lines on at once, 8-bit weights on 8 columns): 16 -> 16 channels, 3x3: 144 rows in 9 groups
    of 16, one a macro; 16 outputs x 8 columns = 128 of 256: 9/32 x 16/16 x 128/256 = 0.140625."""
    (tmp_path / "w.yaml").write_text("kind: workload\nname: l1\nsource: test\nlayers:\n  - {name: c, type: conv, "
                                     "in_channels: 16, out_channels: 16, input_hw: [32, 32], kernel: 3, padding: 1}\n")
    assert main(["map", "--system", SYSTEM, "--workload", str(tmp_path / "w.yaml"), "--out", str(tmp_path / "OUT"),
                 "--quiet", "--no-replicate"]) == 0
    x = json.loads((tmp_path / "OUT" / "report.json").read_text())["layers"][0]
    assert (x["macros_used"], x["rows_used"], x["columns_used"]) == (9, 16, 128)
    assert x["spatial_utilization"] == 0.140625 and x["temporal_utilization"] == pytest.approx(1.0)
    # with copies of its weights in the 23 idle macros (default): 3 copies, 27 macros
    assert main(["map", "--system", SYSTEM, "--workload", str(tmp_path / "w.yaml"), "--out", str(tmp_path / "R"),
                 "--quiet"]) == 0
    r = json.loads((tmp_path / "R" / "report.json").read_text())["layers"][0]
    assert (r["replication"], r["macros_used"], r["spatial_utilization"]) == (3, 27, 3 * 0.140625)
    row = (tmp_path / "OUT" / "layers.csv").read_text().splitlines()
    assert "macros_used,rows_used,columns_used,spatial_utilization,temporal_utilization" in row[0]
    assert ",9,16,128,0.140625," in row[1]
    assert "spatial_utilization" in (tmp_path / "OUT" / "report.html").read_text()


def test_roofline_points_lie_under_the_systems_ceilings(tmp_path: Path) -> None:
    """Every layer of ResNet-20 attains at most the macros' peak and at most each memory's
    bandwidth times its arithmetic intensity (the model's latency is at least each part's time),
    and report.html draws the roofline with human units."""
    from cimco.report.html import roofline_data

    r20 = Path(SYSTEM).parent.parent / "workloads/resnet20_cifar.yaml"
    assert main(["map", "--system", SYSTEM, "--workload", str(r20), "--out", str(tmp_path / "OUT"), "--quiet"]) == 0
    report = json.loads((tmp_path / "OUT" / "report.json").read_text())
    d = roofline_data(report, report["layers"])
    assert len(d["points"]) == len(report["layers"])
    for name, dram_x, buffer_x, attained in d["points"]:
        assert attained <= d["peak"] * (1 + 1e-9), name
        assert attained <= d["dram"] * dram_x * (1 + 1e-9) and attained <= d["buffer"] * buffer_x * (1 + 1e-9), name
    page = (tmp_path / "OUT" / "report.html").read_text()
    assert "<h2>Roofline</h2>" in page and "attained GOPS" in page and "energy (uJ)" in page


@pytest.mark.parametrize("flags", [["--batch", "4"], ["--weights", "reload", "--batch", "1"]])
def test_breakdown_by_level_and_tensor_adds_up_and_counts_weights(tmp_path: Path, flags: list[str]) -> None:
    """Issue 21: reads, writes and energy by level and tensor, as Timeloop's stats give them,
    after the sparsity and execution steps: they add up to every layer's energy and the total,
    and the weights move as counted by hand: every weight bit read from DRAM and written into
    the cells once per batch, and once more into each copy of a layer's weights (read from DRAM
    once and broadcast) (ResNet-20, 8-bit weights)."""
    from cimco.spec import load

    r20 = Path(SYSTEM).parent.parent / "workloads/resnet20_cifar.yaml"
    assert main(["map", "--system", SYSTEM, "--workload", str(r20), "--out", str(tmp_path / "OUT"), "--quiet",
                 *flags]) == 0
    report = json.loads((tmp_path / "OUT" / "report.json").read_text())
    for x in report["layers"]:
        assert sum(b["energy_j"] for b in x["breakdown"]) == pytest.approx(x["energy_j"], rel=1e-12), x["name"]
    total = {(b["level"], b["tensor"]): b for b in report["breakdown"]}
    assert sum(b["energy_j"] for b in total.values()) == pytest.approx(report["totals"]["energy_j"], rel=1e-12)
    batch = int(flags[-1])
    bits = {x.name: x.out_channels * x.reduction * x.repeat * 8 for x in load(r20).layers}
    copies = {x["name"]: x["replication"] for x in report["layers"]}
    assert max(copies.values()) > 1  # the copies are counted below, not absent
    assert total["DRAM", "W"]["reads"] == pytest.approx(sum(bits.values()) / batch, rel=1e-12)
    assert total["CellArray", "W"]["writes"] == pytest.approx(sum(copies[n] * b for n, b in bits.items()) / batch,
                                                              rel=1e-12)
    head = (tmp_path / "OUT" / "layers.csv").read_text().splitlines()[0]
    assert "energy_j.DRAM.W" in head and "energy_j.GlobalBuffer.I" in head
    assert "## By level and tensor" in (tmp_path / "OUT" / "report.md").read_text()
    assert "By level and tensor" in (tmp_path / "OUT" / "report.html").read_text()


def test_screenshot_of_a_real_report_shows_every_plot(tmp_path: Path) -> None:
    """Issue 21: report.html of ResNet-20, rendered in headless Chromium: five plots (energy,
    latency, utilization, roofline, area), each drawn (colour in its part of the page), and
    the figures in human units in the page's text."""
    import re
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from html_screenshot import chromium, screenshot

    if chromium() is None:
        pytest.skip("chromium not installed (make setup installs it as root)")
    from PIL import Image

    r20 = Path(SYSTEM).parent.parent / "workloads/resnet20_cifar.yaml"
    assert main(["map", "--system", SYSTEM, "--workload", str(r20), "--out", str(tmp_path / "OUT"), "--quiet"]) == 0
    page = (tmp_path / "OUT" / "report.html").read_text()
    assert page.count("<svg") == 5
    for title in ("Energy", "Latency", "Utilization and densities", "Roofline", "Area by part", "By level and tensor"):
        assert f"<h2>{title}</h2>" in page
    for unit in ("energy (uJ)", "latency (us)", "area (mm^2)", "GOPS"):
        assert unit in page
    screenshot(tmp_path / "OUT" / "report.html", tmp_path / "shot.png", 1280, 6000)
    img = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB")).astype(int)
    colour = (img.max(axis=2) - img.min(axis=2)) > 60
    # each plot is a band of coloured rows; the page without its SVGs would have none
    rows = colour.mean(axis=1) > 0.01
    bands = sum(1 for a, b in zip(rows[:-1], rows[1:]) if b and not a)
    assert bands >= 5, bands
    assert not re.search(r"energy_j|latency_s\b", page.split("<h2>Layers</h2>")[0]), "SI keys before the table"
