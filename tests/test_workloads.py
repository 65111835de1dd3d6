"""Layer shapes and MAC counts against independent hand counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimco.sparse.masks import resolve
from cimco.spec import load, load_pair
from cimco.spec.workload import Layer

ROOT = Path(__file__).resolve().parent.parent


def test_conv_output_and_macs_by_hand() -> None:
    # 7x7/2 stem of ResNet-18 on 224x224, pad 3: out 112x112; MACs = 112*112*64*3*7*7
    stem = Layer(name="c", type="conv", in_channels=3, out_channels=64, input_hw=(224, 224),
                 kernel=7, stride=2, padding=3)
    assert stem.output_hw() == (112, 112)
    assert stem.macs == 118_013_952
    dil = Layer(name="d", type="conv", in_channels=8, out_channels=8, input_hw=(10, 10), kernel=3,
                dilation=2)
    assert dil.output_hw() == (6, 6)  # effective kernel 5
    grouped = Layer(name="g", type="conv", in_channels=32, out_channels=64, input_hw=(8, 8),
                    kernel=3, padding=1, groups=4)
    assert grouped.reduction == 8 * 9 and grouped.macs == 8 * 8 * 64 * 72
    dw = Layer(name="dw", type="conv", in_channels=32, out_channels=32, input_hw=(8, 8), kernel=3,
               padding=1, groups=32)
    assert dw.reduction == 9


# Published totals (multiply-accumulates, batch 1): ResNet-18 ImageNet 1.82 GMAC
# (He et al. 2016 Table 1: 1.8e9 FLOPs counted as multiply-adds); ResNet-20 CIFAR ~41 M.
@pytest.mark.parametrize("name, macs, tol", [
    ("resnet18_imagenet", 1.82e9, 0.01),
    ("resnet20_cifar", 40.8e6, 0.01),
    ("vgg16_cifar", 313.5e6, 0.01),
    ("deit_tiny_imagenet", 1.3e9, 0.05),  # Touvron et al., ICML 2021, Table 1: 1.3 G "FLOPs" (multiply-adds)
])
def test_zoo_totals_match_published(name: str, macs: float, tol: float) -> None:
    w = load(ROOT / f"workloads/{name}.yaml")
    assert abs(w.macs - macs) / macs < tol


@pytest.mark.parametrize("path", sorted((ROOT / "workloads").glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_workload_loads_with_its_masks(path: Path) -> None:
    """Everything `cimco map` reads before mapping: the pair, then every mask file."""
    system, workload = load_pair(ROOT / "arch_specs/mars_system.yaml", path)
    masks = resolve(system, workload, path)
    assert set(masks) == {x.name for x in workload.layers if x.sparsity is not None}


def test_per_side_padding_by_hand() -> None:
    # 'same' with a 4x4 kernel on 7x7: 3 padded rows, 1 on top and 2 at the bottom; out 7x7
    same = Layer(name="s", type="conv", in_channels=3, out_channels=4, input_hw=(7, 7), kernel=4,
                 padding=(1, 2, 1, 2))
    assert same.output_hw() == (7, 7) and same.macs == 7 * 7 * 4 * 3 * 16
    # [h, w] and n still mean both sides
    assert Layer(name="p", type="conv", in_channels=1, out_channels=1, input_hw=(5, 6), kernel=3,
                 padding=(1, 0)).output_hw() == (5, 4)
    assert Layer(name="q", type="conv", in_channels=1, out_channels=1, input_hw=(5, 6), kernel=3,
                 padding=2).pads == (2, 2, 2, 2)
    bad = Layer(name="b", type="conv", in_channels=1, out_channels=1, input_hw=(5, 6), kernel=3,
                padding=(1, 2, 3))
    (problem,) = bad.check("f.yaml", "layers[0]")
    assert problem.path == "layers[0].padding" and "[top, bottom, left, right]" in problem.message
