"""Export of torch models to workloads (needs torch, installed by `make test`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hand_shapes import NETS, TRANSFORMERS
from torch import nn

from cimco.cli import main
from cimco.errors import ExportError
from cimco.spec import load
from cimco.spec.workload import Layer, WorkloadSpec
from cimco.torch import export, zoo

ROOT = Path(__file__).resolve().parent.parent


def _macs(layers: list[dict]) -> Counter:
    return Counter(Layer.model_validate({k: v for k, v in x.items() if k != "bits"}).macs
                   for x in layers)


@pytest.mark.parametrize("name", sorted(NETS))
def test_zoo_macs_equal_hand_count(name: str) -> None:
    """Every exported layer's MACs equal the layer list written by hand from the paper."""
    model, example = zoo.get(name)
    ex = export(model, example, name)
    assert _macs(ex.workload["layers"]) == _macs(NETS[name]())
    WorkloadSpec.model_validate(ex.workload)
    shipped = load(ROOT / f"workloads/{name}.yaml")  # the bundled graph is the export's
    assert [(x.name, x.inputs, x.residual) for x in shipped.layers] == \
        [(x["name"], x.get("inputs"), x.get("residual", [])) for x in ex.workload["layers"]]


def _resnet_graph(blocks: list[int], last: str, shortcut_convs: tuple[int, ...]) -> dict[str, dict]:
    """The skip connections of a ResNet, from its architecture: each block's input is added
    to its last conv's output (option A: subsampled and zero-padded where the width doubles),
    or, where a 1x1 shortcut conv runs (after the main branch, in the zoo), that conv reads
    the block input and the main branch's output is added to it (stages ``shortcut_convs``)."""
    graph, prev = {}, "conv1"
    for stage, n in enumerate(blocks, start=1):
        for b in range(n):
            block = f"layer{stage}.{b}"
            if b == 0 and stage in shortcut_convs:
                graph[f"{block}.downsample.0"] = {"inputs": [prev], "residual": [f"{block}.{last}"]}
                prev = f"{block}.downsample.0"
            else:
                graph[f"{block}.{last}"] = {"residual": [prev]}
                prev = f"{block}.{last}"
    return graph


# Hand-written from the papers: residual edges = blocks (ResNet-20: 3 stages x 3 blocks = 9).
GRAPHS = {
    "resnet20_cifar": (_resnet_graph([3, 3, 3], "conv2", ()), 9),
    "resnet56_cifar": (_resnet_graph([9, 9, 9], "conv2", ()), 27),
    "resnet18_cifar": (_resnet_graph([2, 2, 2, 2], "conv2", (2, 3, 4)), 8),
    "resnet18_imagenet": (_resnet_graph([2, 2, 2, 2], "conv2", (2, 3, 4)), 8),
    "resnet50_imagenet": (_resnet_graph([3, 4, 6, 3], "conv3", (1, 2, 3, 4)), 16),
    "vgg16_cifar": ({}, 0),
    # stride-1 blocks keeping the width (Sandler et al. Table 2): features 3, 5-6, 8-10, 12-13, 15-16
    "mobilenetv2_imagenet": ({f"features.{i}.conv.6": {"residual": [f"features.{i - 1}.conv.6"]}
                              for i in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)}, 10),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_bundled_graph_by_hand(name: str) -> None:
    graph, edges = GRAPHS[name]
    got = {}
    for x in load(ROOT / f"workloads/{name}.yaml").layers:
        fields = {k: v for k, v in (("inputs", x.inputs), ("residual", x.residual or None)) if v is not None}
        if fields:
            got[x.name] = fields
    assert got == graph
    assert sum(len(v.get("residual", [])) for v in graph.values()) == edges


def test_shipped_workloads_are_the_zoo_exports() -> None:
    assert set(zoo.ZOO) == set(NETS) | set(TRANSFORMERS)
    for name in NETS:
        shipped = load(ROOT / f"workloads/{name}.yaml")
        assert _macs([x.model_dump() for x in shipped.layers]) == _macs(NETS[name]())


@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
def test_transformer_macs_equal_hand_count(name: str) -> None:
    """Static (weights) and dynamic (matmuls of activations) MACs of the zoo's transformers,
    exported and as bundled, against the paper dimensions counted by hand."""
    model, example = zoo.get(name)
    ex = export(model, example, name)
    for layers in (ex.workload["layers"], [x.model_dump(exclude_defaults=True) for x in
                                           load(ROOT / f"workloads/{name}.yaml").layers]):
        total = Counter()
        for x in layers:
            layer = Layer.model_validate({k: v for k, v in x.items() if k != "bits"})
            total[layer.dynamic] += layer.macs * layer.repeat
        assert (total[False], total[True]) == TRANSFORMERS[name]


class MyConv(nn.Conv2d):
    """A user subclass: exported through the MRO."""


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = MyConv(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 16, 3, padding=1, groups=4)
        self.dw = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
        self.head = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.grouped(x)) + 1.0
        x = self.dw(x)
        return self.head(torch.flatten(x, 1))


def test_subclass_grouped_and_depthwise() -> None:
    ex = export(Tiny(), torch.zeros(1, 3, 8, 8), "tiny")
    w = WorkloadSpec.model_validate(ex.workload)
    by = {x.name: x for x in w.layers}
    assert list(by) == ["stem", "grouped", "dw", "head"]
    assert by["grouped"].reduction == 2 * 9 and by["dw"].reduction == 9
    assert by["dw"].output_hw() == (4, 4)
    passed = {n for n, _, what in ex.summary if what.startswith("passed")}
    assert {"relu", "add", "flatten"} <= {p.rstrip("_0123456789") for p in passed}


def test_masks_round_trip_bit_exact(tmp_path: Path) -> None:
    from cimco.sparse.masks import resolve

    model = Tiny()
    with torch.no_grad():
        model.grouped.weight[model.grouped.weight.abs() < 0.1] = 0
        model.head.weight[:, :40] = 0
    ex = export(model, torch.zeros(1, 3, 8, 8), "tiny", mask_file="tiny.masks.npz")
    assert set(ex.masks) == {"grouped", "head"}
    np.savez_compressed(tmp_path / "tiny.masks.npz", **ex.masks)
    w = WorkloadSpec.model_validate(ex.workload)
    got = resolve(load(ROOT / "arch_specs/mars_system.yaml"), w, tmp_path / "w.yaml")
    for name in ("grouped", "head"):
        want = getattr(model, name).weight.detach().numpy() != 0
        assert got[name].dtype == bool and np.array_equal(got[name], want)


def test_input_density_from_calibration() -> None:
    model = Tiny()
    batches = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    ex = export(model, torch.zeros(1, 3, 8, 8), "tiny", calibration=batches)
    dens = {x["name"]: x.get("input_density", 1.0) for x in ex.workload["layers"]}
    assert dens["stem"] == 1.0  # gaussian inputs: no zeros
    assert 0.3 < dens["grouped"] < 0.7  # after a ReLU, about half are zero
    hooks = []
    seen = {}
    hooks.append(model.grouped.register_forward_pre_hook(
        lambda m, a: seen.setdefault("g", []).append(float((a[0] != 0).float().mean()))))
    with torch.no_grad():
        for b in batches:
            model(b)
    hooks[0].remove()
    assert dens["grouped"] == pytest.approx(np.mean(seen["g"]), abs=1e-6)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            x = self.a(x)
        return self.b(x)


def test_untraceable_models_export_the_path_taken() -> None:
    with pytest.raises(Exception):  # noqa: B017 (whatever fx raises: it cannot trace this model)
        torch.fx.symbolic_trace(Untraceable())
    assert [x["name"] for x in export(Untraceable(), torch.ones(1, 4), "u").workload["layers"]] == ["a", "b"]
    assert [x["name"] for x in export(Untraceable(), -torch.ones(1, 4), "u").workload["layers"]] == ["b"]


def test_matmul_of_activations_is_exported() -> None:
    class Attn(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            return torch.matmul(q, q.transpose(-1, -2))

    ex = export(Attn(), torch.zeros(1, 2, 5, 8), "attn")
    (layer,) = ex.workload["layers"]
    assert (layer["tokens"], layer["in_channels"], layer["out_channels"], layer["repeat"]) == (5, 8, 5, 2)


class WithConv3d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Conv3d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


def test_unsupported_op_names_the_module() -> None:
    with pytest.raises(ExportError, match="'seq'.*Conv3d"):
        export(WithConv3d(), torch.zeros(1, 3, 5, 5, 5), "c3")


def test_cli_bad_inputs(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    cases = [
        (["--model", "test_torch_export:WithConv3d", "--input-shape", "1,3,5,5,5"], "'seq'"),
        (["--model", "resnet20_cifar", "--input-shape", "1,5,32,32"],
         "fails on an example input of shape (1, 5, 32, 32) in module 'conv1'"),
        (["--model", "resnet20_cifar", "--bits", "8,8"], "expected three positive integers"),
        (["--model", "no_such_model"], "not a zoo model"),
    ]
    for argv, words in cases:
        code = main(["export", *argv, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2, argv
        assert words in err and "Traceback" not in err


@pytest.mark.e2e
def test_cli_export_then_map_end_to_end(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["export", "--model", "test_torch_export:Tiny", "--input-shape", "1,3,8,8",
                 "--out", str(tmp_path), "--bits", "8,4,8"]) == 0
    w = tmp_path / "Tiny.yaml"
    assert main(["specs", "validate", str(w)]) == 0
    assert len(list((tmp_path / "timeloop").glob("[0-9]*.yaml"))) == 4
    assert main(["map", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload", str(w),
                 "--out", str(tmp_path / "map"), "--quiet"]) == 0
    assert (tmp_path / "map/report.json").exists()
