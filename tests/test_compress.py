"""BN folding, quantization, integer-only and CIM-faithful inference, CIM-aware pruning."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from cimco.errors import SpecError
from cimco.geometry import MacroGeometry
from cimco.spec import load
from cimco.spec.workload import Bits
from cimco.torch import export, zoo
from cimco.torch.cim import cim_forward
from cimco.torch.data import digits_cnn
from cimco.torch.prune import Pruner, block_mask
from cimco.torch.quant import calibrate, fold_bn, integer_forward, quantize

ROOT = Path(__file__).resolve().parent.parent
MARS = load(ROOT / "arch_specs/mars_macro_28nm.yaml")
JIA = load(ROOT / "arch_specs/jia_jssc_2020.yaml")


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


@pytest.mark.parametrize("make, shape", [(digits_cnn, (8, 1, 8, 8)),
                                         (lambda: zoo.get("resnet20_cifar")[0], (2, 3, 32, 32))])
def test_folded_equals_bn_in_eval(make, shape) -> None:
    torch.manual_seed(0)
    model = _randomize_bn(make())
    x = torch.randn(shape)
    want = model(x)
    folded = fold_bn(copy.deepcopy(model))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(folded(x), want, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def qmodel():
    torch.manual_seed(1)
    model = fold_bn(_randomize_bn(digits_cnn()))
    q = quantize(model, Bits(input=8, weight=8, output=8), pot=True, macro=MARS)
    calibrate(q, [torch.randn(16, 1, 8, 8) for _ in range(3)])
    return q.double().eval()


def test_integer_only_equals_fake_quant_bit_exactly(qmodel) -> None:
    x = torch.randn(32, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(integer_forward(qmodel, x).double(), qmodel(x))


def test_integer_only_needs_power_of_two_scales() -> None:
    q = quantize(fold_bn(_randomize_bn(digits_cnn())), Bits(), pot=False)
    calibrate(q, [torch.randn(8, 1, 8, 8)])
    with pytest.raises(ValueError, match="power-of-two"):
        integer_forward(q.eval(), torch.randn(2, 1, 8, 8))


@pytest.mark.parametrize("macro", [MARS, JIA], ids=["mars-analog-combine", "jia-bit-serial"])
def test_ideal_cim_equals_plain_torch(qmodel, macro) -> None:
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    ideal = cim_forward(qmodel, x, macro, adc_bits=32).double()
    assert torch.equal(ideal, integer_forward(qmodel, x).double())
    assert torch.allclose(ideal, qmodel(x), atol=1e-9)


def test_adc_and_variation_change_results(qmodel) -> None:
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    ideal = cim_forward(qmodel, x, MARS, adc_bits=32)
    assert not torch.equal(cim_forward(qmodel, x, MARS, adc_bits=6), ideal)
    a = cim_forward(qmodel, x, MARS, adc_bits=32, sigma=0.05, seed=3)
    assert not torch.equal(a, ideal)
    assert torch.equal(a, cim_forward(qmodel, x, MARS, adc_bits=32, sigma=0.05, seed=3))


def test_quantized_layers_export_their_bits() -> None:
    q = quantize(fold_bn(_randomize_bn(digits_cnn())), Bits(input=4, weight=4, output=8), pot=True)
    ex = export(q, torch.zeros(1, 1, 8, 8), "q4")
    assert ex.workload["bits"] == {"input": 8, "weight": 8, "output": 8}
    assert all(x.get("bits") == {"input": 4, "weight": 4, "output": 8} for x in ex.workload["layers"])


@pytest.mark.parametrize("pattern", ["row_block", "kernel_group", "crossbar", "unstructured"])
def test_pruning_masks_respect_block_boundaries(pattern: str) -> None:
    conv = nn.Conv2d(64, 96, 3, padding=1)
    geo = MacroGeometry.of(MARS, 8, 8, 1)
    original = conv.weight.detach().clone()
    mask = block_mask(conv, pattern, 0.5, geo)
    with torch.no_grad():
        conv.weight.mul_(mask)
    w = conv.weight.detach().reshape(1, 96, -1)
    o = original.reshape(1, 96, -1)
    uo, ur = {"row_block": (32, 16), "kernel_group": (32, 9), "crossbar": (32, 256),
              "unstructured": (1, 1)}[pattern]
    for i in range(0, 96, uo):
        for j in range(0, w.shape[2], ur):
            blk, orig = w[0, i:i + uo, j:j + ur], o[0, i:i + uo, j:j + ur]
            assert bool((blk == 0).all()) or torch.equal(blk, orig)
    assert abs(float(mask.float().mean()) - 0.5) < 0.15


def test_zerorize_recover_then_frozen() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 64, 3), nn.ReLU(),
                          nn.Conv2d(64, 64, 3), nn.Flatten(), nn.Linear(64 * 2 * 2, 10))
    pr = Pruner(model, "row_block", 0.5, MARS, ramp_epochs=1, recover_epochs=1)
    assert pr.skip == ("0", "6")  # first and last layer stay dense
    layer = model[4]
    pr(model, 1)  # recover epoch: mask from current weights
    first = pr.masks["4"].clone()
    with torch.no_grad():  # a pruned block grows back (its gradient kept updating it)
        layer.weight.add_(10.0 * (~first))
    pr(model, 1)
    regrown = pr.masks["4"].clone()
    assert not torch.equal(first, regrown)
    pr(model, 2)  # frozen: the mask no longer changes
    with torch.no_grad():
        layer.weight.add_(100.0 * first)
    pr(model, 3)
    assert torch.equal(pr.masks["4"], regrown)
    assert bool((layer.weight[~regrown] == 0).all())
    assert abs(float(regrown.float().mean()) - 0.5) < 0.1


def test_bad_compression_input_names_the_layer() -> None:
    model = digits_cnn()
    with pytest.raises(SpecError, match=r"layer '0'.*input bits 4\.\.8, got 2"):
        quantize(copy.deepcopy(model), Bits(input=2, weight=8, output=8), macro=MARS)
    with pytest.raises(SpecError, match="layer '3'.*density must be in"):
        Pruner(copy.deepcopy(model), "row_block", 1.5, MARS)
    lin = nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 2))
    with pytest.raises(SpecError, match="layer '1'.*kernel_group needs a kernel"):
        Pruner(lin, "kernel_group", 0.5, MARS)
    with pytest.raises(SpecError, match="layer '1' fits in one crossbar"):
        Pruner(lin, "crossbar", 0.5, MARS)


def test_cim_result_of_a_sample_does_not_depend_on_its_batch(qmodel) -> None:
    """The ADC's full scale is fixed by the configured precision, not by the data seen."""
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    x[0] *= 0.05  # a quiet sample beside loud ones
    batch = cim_forward(qmodel, x, MARS, adc_bits=6)
    for i in range(4):
        assert torch.equal(cim_forward(qmodel, x[i:i + 1], MARS, adc_bits=6), batch[i:i + 1])


def _small_transformer() -> tuple[nn.Module, torch.Tensor]:
    """Two of the zoo's blocks (width 64, 2 heads, causal) and a head: as GPT-2's, smaller."""
    torch.manual_seed(0)
    return zoo.Encoder(64, 2, 2, 10, first=False, causal=True).eval(), torch.randn(1, 6, 64)


def test_transformer_presets_prune_the_feed_forward_not_attention() -> None:
    """MARS-style row-block pruning and 4-bit quantization on a transformer: the feed-forward
    weights are pruned (masks in the export), attention's projections stay dense unless asked;
    every weight layer carries the preset's bits."""
    model, x = _small_transformer()
    model = quantize(model, Bits(input=4, weight=4, output=8), pot=True)
    projections = {f"blocks.{i}.{n}" for i in range(2) for n in ("qkv", "proj")}
    pr = Pruner(model, "row_block", 0.5, MARS, ramp_epochs=1, recover_epochs=1, example=x)
    assert set(pr.skip) == {"blocks.0.qkv", "head"} | projections
    pr(model, 0)
    ex = export(model, x, "t")
    layers = {y["name"]: y for y in ex.workload["layers"]}
    assert set(ex.masks) == {f"blocks.{i}.{n}" for i in range(2) for n in ("fc1", "fc2")}
    assert all(abs(float(m.mean()) - 0.5) < 0.1 for m in ex.masks.values())
    assert all(layers[n]["bits"] == {"input": 4, "weight": 4, "output": 8} for n in projections | set(ex.masks))
    assert not any("sparsity" in y for y in layers.values() if y.get("dynamic"))
    asked = Pruner(model, "row_block", 0.5, MARS, example=x, attention=True)
    assert set(asked.skip) == {"blocks.0.qkv", "head"}


def test_attention_projections_found_in_multihead_attention_and_refused_when_asked() -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True).eval()
    model = nn.Sequential(nn.Linear(8, 16), layer, nn.Linear(16, 4))
    pr = Pruner(model, "row_block", 0.5, MARS)
    assert "1.self_attn.out_proj" in pr.skip and "1.linear1" not in pr.skip
    with pytest.raises(SpecError, match="MultiheadAttention"):
        Pruner(model, "row_block", 0.5, MARS, attention=True)
