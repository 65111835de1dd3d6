"""Timeloop v0.4 export: one problem per layer whose dimensions multiply to the layer's MACs."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from cimco.cli import main
from cimco.spec import load

ROOT = Path(__file__).resolve().parent.parent


def test_export_resnet18(tmp_path: Path) -> None:
    assert main(["export", "--workload", str(ROOT / "workloads/resnet18_imagenet.yaml"),
                 "--out", str(tmp_path)]) == 0
    w = load(ROOT / "workloads/resnet18_imagenet.yaml")
    files = sorted((tmp_path / "timeloop").glob("[0-9]*.yaml"))
    assert len(files) == len(w.layers)
    for f, layer in zip(files, w.layers):
        p = yaml.safe_load(f.read_text())["problem"]
        dims = p["shape"]["dimensions"]
        assert math.prod(p["instance"][d] for d in dims) == layer.macs
    stem = yaml.safe_load(files[0].read_text())["problem"]["instance"]
    assert (stem["R"], stem["P"], stem["Wstride"]) == (7, 112, 2)


def test_grouped_conv_gets_g_dimension(tmp_path: Path) -> None:
    from cimco.spec.workload import Layer
    from cimco.timeloop import problem

    dw = Layer(name="dw", type="conv", in_channels=32, out_channels=32, input_hw=(8, 8), kernel=3,
               padding=1, groups=32)
    p = problem(dw)["problem"]
    assert p["shape"]["dimensions"][0] == "G" and p["instance"]["G"] == 32
    assert math.prod(p["instance"][d] for d in p["shape"]["dimensions"]) == dw.macs


def test_repeat_and_asymmetric_padding_survive(tmp_path: Path) -> None:
    """v0.4 has neither: P, Q are the padded output size and index.yaml keeps the repeat."""
    from cimco.spec.workload import WorkloadSpec
    from cimco.timeloop import export

    w = WorkloadSpec.model_validate({"name": "w", "source": "test", "layers": [
        {"name": "pad", "type": "conv", "in_channels": 3, "out_channels": 4, "input_hw": [6, 5], "kernel": 3,
         "padding": [0, 3, 1, 2]},
        {"name": "scores#2", "type": "linear", "in_channels": 8, "out_channels": 5, "tokens": 5, "repeat": 3}]})
    files = export(w, tmp_path)
    assert [f.name for f in files] == ["000_pad.yaml", "001_scores_2.yaml"]
    pad = yaml.safe_load(files[0].read_text())["problem"]["instance"]
    assert (pad["P"], pad["Q"]) == (6 + 0 + 3 - 3 + 1, 5 + 1 + 2 - 3 + 1)
    assert "padding top 0 bottom 3 left 1 right 2" in files[0].read_text()
    index = yaml.safe_load((tmp_path / "index.yaml").read_text())
    assert index["layers"] == [{"file": "000_pad.yaml", "layer": "pad", "repeat": 1, "macs": 7 * 6 * 4 * 27},
                               {"file": "001_scores_2.yaml", "layer": "scores#2", "repeat": 3, "macs": 5 * 8 * 5}]
    assert "runs 3 times per inference" in files[1].read_text()
