"""Export workloads for classic Timeloop v0.4 (CNN-layer problem YAML, one file per layer).

The problem shape is Timeloop's CNN-Layer (dimensions C, M, R, S, N, P, Q; Inputs indexed by
``R*Wdilation + P*Wstride`` and ``S*Hdilation + Q*Hstride``), as pytorch2timeloop-converter
writes it. Here R and P run along the input's height and S and Q along its width, so
``Wstride``/``Wdilation`` carry the height stride/dilation. Grouped and depthwise convs
add a G dimension to every data space.

v0.4 has no padding and no repeat count, so:
- P and Q are the layer's real output size (its per-side padding included); each file's
  comment gives the input size and the padding per side.
- A strided kernel one wide (a strided 1x1 conv) is written at stride 1: it reads only every
  stride-th input, while Timeloop would count the whole box its reads span.
- ``index.yaml`` beside the problem files lists them in execution order with each layer's
  name, ``repeat`` (runs per inference) and MACs per run: an inference costs the sum over the
  files of ``repeat`` times the file's result. Timeloop reads only the problem files; the
  index is plain YAML for whoever sums the results.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cimco.io import write_atomic
from cimco.spec.workload import Layer, WorkloadSpec


def _shape(grouped: bool) -> dict:
    g = [[["G"]]] if grouped else []
    return {
        "name": "Grouped-CNN-Layer" if grouped else "CNN-Layer",
        "dimensions": (["G"] if grouped else []) + ["C", "M", "R", "S", "N", "P", "Q"],
        "coefficients": [{"name": n, "default": 1} for n in ("Wstride", "Hstride", "Wdilation", "Hdilation")],
        "data-spaces": [
            {"name": "Weights", "projection": g + [[["C"]], [["M"]], [["R"]], [["S"]]]},
            {"name": "Inputs", "projection": [[["N"]]] + g + [
                [["C"]], [["R", "Wdilation"], ["P", "Wstride"]], [["S", "Hdilation"], ["Q", "Hstride"]]]},
            {"name": "Outputs", "projection": [[["N"]]] + g + [[["M"]], [["P"]], [["Q"]]],
             "read-write": True},
        ],
    }


def problem(layer: Layer) -> dict:
    """One layer as a Timeloop v0.4 problem (batch N = tokens for linear layers)."""
    (p, q), (r, s) = layer.output_hw(), layer.kernel_hw
    (sh, sw), (dh, dw) = layer.read_stride_hw, layer.dilation_hw
    g = layer.groups
    inst = {"C": layer.in_channels // g, "M": layer.out_channels // g, "R": r, "S": s,
            "N": layer.tokens, "P": p, "Q": q,
            "Wstride": sh, "Hstride": sw, "Wdilation": dh, "Hdilation": dw}
    if g > 1:
        inst = {"G": g, **inst}
    return {"problem": {"shape": _shape(g > 1), "instance": inst}}


def _comment(workload: WorkloadSpec, layer: Layer) -> str:
    (h, w), (top, bottom, left, right) = layer.input_hw, layer.pads
    text = (f"# {workload.name} layer {layer.name} (cimco export, Timeloop v0.4)\n"
            f"# input {h}x{w}, zero padding top {top} bottom {bottom} left {left} right {right}: "
            f"P, Q are the padded output size\n")
    if layer.repeat > 1:
        text += f"# runs {layer.repeat} times per inference (repeat; see index.yaml)\n"
    return text


def export(workload: WorkloadSpec, out: Path) -> list[Path]:
    """One problem file per layer and ``index.yaml`` into ``out``; returns the problem files."""
    paths, index = [], []
    for i, layer in enumerate(workload.layers):
        path = out / f"{i:03d}_{re.sub(r'[^A-Za-z0-9._-]', '_', layer.name)}.yaml"
        write_atomic(path, _comment(workload, layer)
                     + yaml.safe_dump(problem(layer), sort_keys=False, default_flow_style=None))
        paths.append(path)
        index.append({"file": path.name, "layer": layer.name, "repeat": layer.repeat, "macs": layer.macs})
    write_atomic(out / "index.yaml", f"# {workload.name}: Timeloop v0.4 problem files in execution order; "
                 f"an inference costs the sum of repeat x each file's result (cimco export)\n"
                 + yaml.safe_dump({"workload": workload.name, "layers": index}, sort_keys=False))
    return paths
