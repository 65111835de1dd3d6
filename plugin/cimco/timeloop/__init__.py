"""Export workloads for classic Timeloop v0.4 (CNN-layer problem YAML, one file per layer).

The problem shape is Timeloop's CNN-Layer (dimensions C, M, R, S, N, P, Q; Inputs indexed by
``R*Wdilation + P*Wstride`` and ``S*Hdilation + Q*Hstride``), as pytorch2timeloop-converter
writes it. Here R and P run along the input's height and S and Q along its width, so
``Wstride``/``Wdilation`` carry the height stride/dilation. Grouped and depthwise convs
add a G dimension to every data space.
"""

from __future__ import annotations

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
    (sh, sw), (dh, dw) = layer.stride_hw, layer.dilation_hw
    g = layer.groups
    inst = {"C": layer.in_channels // g, "M": layer.out_channels // g, "R": r, "S": s,
            "N": layer.tokens, "P": p, "Q": q,
            "Wstride": sh, "Hstride": sw, "Wdilation": dh, "Hdilation": dw}
    if g > 1:
        inst = {"G": g, **inst}
    return {"problem": {"shape": _shape(g > 1), "instance": inst}}


def export(workload: WorkloadSpec, out: Path) -> list[Path]:
    paths = []
    for i, layer in enumerate(workload.layers):
        path = out / f"{i:03d}_{layer.name.replace('/', '_')}.yaml"
        write_atomic(path, f"# {workload.name} layer {layer.name} (cimco export, Timeloop v0.4)\n"
                     + yaml.safe_dump(problem(layer), sort_keys=False, default_flow_style=None))
        paths.append(path)
    return paths
