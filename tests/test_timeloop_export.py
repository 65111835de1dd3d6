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
    files = sorted((tmp_path / "timeloop").glob("*.yaml"))
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
