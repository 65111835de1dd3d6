"""Layer shapes and MAC counts against independent hand counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimco.spec import load
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
])
def test_zoo_totals_match_published(name: str, macs: float, tol: float) -> None:
    w = load(ROOT / f"workloads/{name}.yaml")
    assert abs(w.macs - macs) / macs < tol
