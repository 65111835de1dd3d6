"""Export never drops or miscounts a MAC: small models, each layer counted by hand here.

Each model holds one op class that export once passed through silently or miscounted
(issue 10): einsum, functional conv2d/linear with a parameter, matmuls under data-dependent
control flow, Conv2d subclasses whose forward pads or runs the conv twice, asymmetric
padding, a module run twice, batch > 1 and an all-zeros example input.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cimco.cli import main
from cimco.errors import ExportError
from cimco.spec import load
from cimco.spec.workload import Layer, WorkloadSpec
from cimco.torch import export, zoo


def _layers(model: nn.Module, shape: tuple[int, ...], **kw) -> dict[str, dict]:
    ex = export(model, torch.randn(shape, generator=torch.Generator().manual_seed(1)), "m", **kw)
    WorkloadSpec.model_validate(ex.workload)
    return {x["name"]: x for x in ex.workload["layers"]}


def _macs(layer: dict) -> int:
    """MACs of one exported layer, all its runs (cimco's count of the exported shape)."""
    return Layer.model_validate(layer).macs * layer.get("repeat", 1)


# --- einsum -------------------------------------------------------------------------------

class EinsumProj(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("bnk,km->bnm", x, self.w)  # a linear layer: 5 tokens, 8 -> 6
        return torch.einsum("...qd,...kd->...qk", y, y)  # attention scores: a matmul of activations


def test_einsum_matmuls_are_exported() -> None:
    model = EinsumProj()
    with torch.no_grad():
        model.w[0, :3] = 0
    ex = export(model, torch.randn(1, 5, 8), "e")
    w, scores = ex.workload["layers"]
    assert (w["name"], w["type"], w["in_channels"], w["out_channels"], w["tokens"]) == ("w", "linear", 8, 6, 5)
    assert _macs(w) == 5 * 8 * 6
    assert np.array_equal(ex.masks["w"], model.w.detach().numpy().T != 0)  # (out, in) as nn.Linear
    assert (scores["in_channels"], scores["out_channels"], scores["tokens"]) == (6, 5, 5)
    assert _macs(scores) == 5 * 5 * 6


class Heads(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:  # (1, heads, tokens, dim)
        return torch.einsum("bhqd,bhkd->bhqk", q, q)


def test_batched_einsum_of_activations_repeats_per_head() -> None:
    (layer,) = _layers(Heads(), (1, 3, 5, 8)).values()
    assert (layer["tokens"], layer["in_channels"], layer["out_channels"], layer["repeat"]) == (5, 8, 5, 3)
    assert _macs(layer) == 3 * 5 * 5 * 8


class EinsumOdd(nn.Module):
    def __init__(self, eq: str) -> None:
        super().__init__()
        self.eq = eq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.eq.split("->")[0].count(",") + 1
        return torch.einsum(self.eq, *[x[0]] * n)


class HasOdd(nn.Module):
    def __init__(self, eq: str) -> None:
        super().__init__()
        self.odd = EinsumOdd(eq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.odd(x)


@pytest.mark.parametrize("eq, why", [
    ("ij,ij->ij", "no index is summed over both operands"),  # elementwise product
    ("ij,jk,kl->il", "3 operands"),
    ("ij,kl->ik", "summed over one operand alone"),
    ("ii,ij->ij", "diagonal"),
])
def test_einsum_that_is_no_matrix_product_is_refused(eq: str, why: str) -> None:
    with pytest.raises(ExportError, match=rf"einsum.*module 'odd' \(EinsumOdd\).*{why}"):
        export(HasOdd(eq), torch.randn(1, 4, 4), "odd")


# --- functional conv2d / linear / addmm with a parameter ------------------------------------

class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.proj = nn.Parameter(torch.randn(10, 8))
        self.head = nn.Parameter(torch.randn(10, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.kernel, stride=2, padding=1)  # (1, 8, 5, 5)
        x = F.linear(x.flatten(2).transpose(1, 2), self.proj)  # 25 tokens, 8 -> 10
        return torch.addmm(torch.zeros(4), x[0], self.head)  # 25 tokens, 10 -> 4


def test_functional_ops_with_a_parameter_are_layers() -> None:
    by = _layers(Functional(), (1, 3, 9, 9))
    assert list(by) == ["kernel", "proj", "head"]
    k = by["kernel"]
    assert (k["input_hw"], k["kernel"], k["stride"], k["padding"]) == ([9, 9], 3, 2, 1)
    assert _macs(k) == 5 * 5 * 8 * (3 * 3 * 3)  # out (9 + 2 - 3) // 2 + 1 = 5
    assert _macs(by["proj"]) == 25 * 8 * 10 and by["proj"]["tokens"] == 25
    assert _macs(by["head"]) == 25 * 10 * 4 and by["head"]["out_channels"] == 4


class PerHeadWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.w)  # (1, 2, 5, 8) @ (2, 8, 4): one weight per head


def test_a_weight_per_batch_entry_is_refused() -> None:
    with pytest.raises(ExportError, match=r"matmul.*weight operand w holds 2 weight matrices"):
        export(PerHeadWeights(), torch.randn(1, 2, 5, 8), "p")


class Conv3dInside(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv3d(x, torch.ones(4, 3, 3, 3, 3))


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blk = Conv3dInside()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.blk(x))


def test_unsupported_functional_op_is_refused_with_op_and_module() -> None:
    with pytest.raises(ExportError, match=r"conv3d in module 'blk' \(Conv3dInside\)"):
        export(Outer(), torch.randn(1, 3, 5, 5, 5), "o")


# --- in-place products, ops cimco does not know (issue 23: once passed through, 73% of MACs lost) ---

class InPlace(nn.Module):
    """A bias buffer updated in place with products: addmm_, baddbmm_, addmv_."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 6))
        self.v = nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (1, 5, 8)
        y = torch.zeros(5, 6).addmm_(x[0], self.w)  # 5 tokens, 8 -> 6: 240 MACs
        s = torch.zeros(1, 5, 5).baddbmm_(y.unsqueeze(0), y.t().unsqueeze(0))  # (5x6)(6x5): 150 MACs
        return torch.zeros(5).addmv_(y, self.v) + s.sum()  # (5x6)(6): 30 MACs


def test_in_place_products_are_their_ops() -> None:
    layers = _layers(InPlace(), (1, 5, 8))
    assert [(x["name"], _macs(x)) for x in layers.values()] == [("w", 240), ("baddbmm", 150), ("v", 30)]


class Distances(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, x)  # a product of the two operands, per pair of rows


class Outer2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[0].addr_(self.w, self.w)  # an outer product, in place


class Kron(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.w, x[0].t())  # an op cimco does not know: not passed through


@pytest.mark.parametrize(("model", "shape", "words"), [
    (Distances(), (1, 4, 3), "cdist in the forward of Distances needs macro work"),
    (Outer2(), (1, 6, 6), "addr_ in the forward of Outer2 needs macro work"),
    (Kron(), (1, 3, 2), "linalg_solve in the forward of Kron is an op cimco does not know"),
], ids=["cdist", "addr_", "unknown"])
def test_products_cimco_cannot_export_and_unknown_ops_are_refused(model: nn.Module, shape: tuple, words: str) -> None:
    with pytest.raises(ExportError, match=re.escape(words)):
        export(model, torch.randn(shape), "m")


class Scripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        with warnings.catch_warnings():  # newer torch deprecates torch.jit.script (FutureWarning)
            warnings.simplefilter("ignore", FutureWarning)
            self.s = torch.jit.script(nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s(torch.relu(self.a(x)))


def test_a_torchscript_submodule_is_refused_by_name() -> None:
    """Its ops run inside TorchScript, where the export cannot see them (once: exit 1)."""
    with pytest.raises(ExportError, match=r"module 's' is a TorchScript module"):
        export(Scripted(), torch.randn(1, 8), "j")


# --- conv1d, transposed convs and recurrent nets (issue 23: once refused) ---------------------------

class Signal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(4, 6, 3, stride=2, padding=1)  # 10 -> 5 positions
        self.up = nn.ConvTranspose2d(6, 5, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.c(x).unsqueeze(-1))  # a 5 x 1 image


def test_conv1d_and_transposed_conv_count_their_macs() -> None:
    layers = _layers(Signal(), (1, 4, 10))
    c, up = layers["c"], layers["up"]
    assert (c["input_hw"], c["kernel"], c["stride"], _macs(c)) == ([1, 10], [1, 3], [1, 2], 6 * 4 * 3 * 5)
    # each of the 5 input positions times the 6 x (5 x 3 x 3) weight: the transposed conv's own MACs
    assert (up["type"], up["in_channels"], up["out_channels"], up["tokens"], _macs(up)) == (
        "linear", 6, 45, 5, 6 * 5 * 9 * 5)


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(32, 12)
        self.rnn = nn.RNN(12, 5, nonlinearity="relu")
        self.proj = nn.LSTM(5, 10, proj_size=4)
        self.cell = nn.GRUCell(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, 7 steps, 8)
        y, _ = self.lstm(x)
        z, _ = self.gru(y.transpose(0, 1))
        r, _ = self.rnn(z)
        p, _ = self.proj(r)
        h = torch.zeros(1, 6)
        for t in range(2):  # a cell run twice: two layers
            h = self.cell(p[t], h)
        return h


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")  # torch's, on CPU
def test_recurrent_nets_are_their_gate_products_per_step() -> None:
    """Per layer and direction: the input's gates over the 7 steps at once, then the hidden
    state's gates step by step with the same weights (repeat = steps); counted by hand."""
    layers = _layers(Recurrent(), (1, 7, 8))
    got = {n: (x["in_channels"], x["out_channels"], x.get("tokens", 1), x.get("repeat", 1), _macs(x))
           for n, x in layers.items()}
    assert got == {
        "lstm.weight_ih_l0": (8, 64, 7, 1, 7 * 8 * 64), "lstm.weight_hh_l0": (16, 64, 1, 7, 7 * 16 * 64),
        "lstm.weight_ih_l0_reverse": (8, 64, 7, 1, 7 * 8 * 64),
        "lstm.weight_hh_l0_reverse": (16, 64, 1, 7, 7 * 16 * 64),
        "lstm.weight_ih_l1": (32, 64, 7, 1, 7 * 32 * 64), "lstm.weight_hh_l1": (16, 64, 1, 7, 7 * 16 * 64),
        "lstm.weight_ih_l1_reverse": (32, 64, 7, 1, 7 * 32 * 64),
        "lstm.weight_hh_l1_reverse": (16, 64, 1, 7, 7 * 16 * 64),
        "gru.weight_ih_l0": (32, 36, 7, 1, 7 * 32 * 36), "gru.weight_hh_l0": (12, 36, 1, 7, 7 * 12 * 36),
        "rnn.weight_ih_l0": (12, 5, 7, 1, 7 * 12 * 5), "rnn.weight_hh_l0": (5, 5, 1, 7, 7 * 5 * 5),
        # with a projection the hidden state is the projected one (4), then 10 -> 4 each step
        "proj.weight_ih_l0": (5, 40, 7, 1, 7 * 5 * 40), "proj.weight_hh_l0": (4, 40, 1, 7, 7 * 4 * 40),
        "proj.weight_hr_l0": (10, 4, 1, 7, 7 * 10 * 4),
        "cell.weight_ih": (4, 18, 1, 1, 4 * 18), "cell.weight_hh": (6, 18, 1, 1, 6 * 18),
        "cell.weight_ih#2": (4, 18, 1, 1, 4 * 18), "cell.weight_hh#2": (6, 18, 1, 1, 6 * 18),
    }
    # the graph: the second LSTM layer reads both directions of the first; reverse starts from the input
    assert layers["lstm.weight_ih_l1"]["inputs"] == ["lstm.weight_hh_l0", "lstm.weight_hh_l0_reverse"]
    assert layers["lstm.weight_ih_l0_reverse"]["inputs"] == []
    assert layers["gru.weight_ih_l0"]["inputs"] == ["lstm.weight_hh_l1", "lstm.weight_hh_l1_reverse"]


class Sdpa(nn.Module):
    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.qkv, self.causal = nn.Linear(16, 48), causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, 5, 16): 2 heads of 8
        q, k, v = self.qkv(x).view(1, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


class CrossAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.att = nn.MultiheadAttention(16, 4, kdim=10, vdim=12)  # sequence first

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, 3, 16): 3 queries
        memory_k, memory_v = torch.ones(7, 1, 10), torch.ones(7, 1, 12)  # 7 keys and values
        return self.att(x.transpose(0, 1), memory_k, memory_v)[0]


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)


def test_attention_is_its_projections_and_two_matmuls_per_head() -> None:
    """SDPA, nn.MultiheadAttention (cross-attention with other key and value widths) and a
    transformer encoder layer, counted by hand: projections are weight layers; Q K^T and
    softmax(Q K^T) V are matmuls of activations, one per head (repeat = heads)."""
    got = {n: (x["in_channels"], x["out_channels"], x.get("tokens", 1), x.get("repeat", 1), _macs(x))
           for n, x in _layers(Sdpa(), (1, 5, 16)).items()}
    assert got == {"qkv": (16, 48, 5, 1, 5 * 16 * 48),
                   "scaled_dot_product_attention.scores": (8, 5, 5, 2, 2 * 5 * 5 * 8),
                   "scaled_dot_product_attention.values": (5, 8, 5, 2, 2 * 5 * 5 * 8)}
    got = {n: (x["in_channels"], x["out_channels"], x.get("tokens", 1), x.get("repeat", 1), _macs(x))
           for n, x in _layers(CrossAttention(), (1, 3, 16)).items()}
    assert got == {"att.q_proj": (16, 16, 3, 1, 3 * 16 * 16), "att.k_proj": (10, 16, 7, 1, 7 * 10 * 16),
                   "att.v_proj": (12, 16, 7, 1, 7 * 12 * 16), "att.scores": (4, 7, 3, 4, 4 * 3 * 7 * 4),
                   "att.values": (7, 4, 3, 4, 4 * 3 * 7 * 4), "att.out_proj": (16, 16, 3, 1, 3 * 16 * 16)}
    layers = _layers(Encoder().eval(), (1, 5, 16))
    assert [(n, _macs(x)) for n, x in layers.items()] == [
        ("enc.self_attn.q_proj", 1280), ("enc.self_attn.k_proj", 1280), ("enc.self_attn.v_proj", 1280),
        ("enc.self_attn.scores", 400), ("enc.self_attn.values", 400), ("enc.self_attn.out_proj", 1280),
        ("enc.linear1", 5 * 16 * 32), ("enc.linear2", 5 * 32 * 16)]
    assert layers["enc.self_attn.values"]["inputs"] == ["enc.self_attn.v_proj", "enc.self_attn.scores"]
    assert layers["enc.linear2"]["residual"] == ["enc.self_attn.out_proj"]  # the feed-forward's skip


class Masked(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, 2, 5, 8): any mask but a causal one
        return F.scaled_dot_product_attention(x, x, x, attn_mask=torch.ones(5, 5, dtype=torch.bool))


def test_a_causal_attention_counts_the_products_its_mask_keeps() -> None:
    """5 queries: query i multiplies keys 0..i, 1 + 2 + ... + 5 = 15 of the 25 products, per head
    and per element of the 8-wide head: exactly, as dense blocks (3 queries x 2 keys... down to
    single products), each a matmul of activations."""
    layers = _layers(Sdpa(causal=True), (1, 5, 16))
    scores = [x for n, x in layers.items() if ".scores" in n]
    values = [x for n, x in layers.items() if ".values" in n]
    assert sum(_macs(x) for x in scores) == 2 * 8 * 15 and sum(_macs(x) for x in values) == 2 * 8 * 15
    assert all(x["dynamic"] for x in scores + values)
    assert all(set(x["inputs"]) >= {y["name"] for y in scores} for x in values)


def test_a_mask_other_than_causal_is_refused() -> None:
    with pytest.raises(ExportError, match="has an attention mask other than a causal one"):
        export(Masked(), torch.randn(1, 2, 5, 8), "m")


# --- data-dependent control flow (fx cannot trace it) ---------------------------------------

class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x != 0).any():  # data-dependent: fx cannot trace this
            x = torch.softmax(x @ x.transpose(-1, -2), -1) @ x  # two matmuls of activations
        return x @ self.w


def test_matmuls_under_data_dependent_control_flow() -> None:
    with pytest.raises(Exception):  # noqa: B017 (whatever fx raises: it cannot trace this model)
        torch.fx.symbolic_trace(Branchy())
    by = _layers(Branchy(), (1, 2, 5, 8))
    assert list(by) == ["matmul", "matmul#2", "w"]
    assert [_macs(x) for x in by.values()] == [2 * 5 * 8 * 5, 2 * 5 * 5 * 8, 2 * 5 * 8 * 6]
    assert by["matmul"]["repeat"] == 2 and by["w"]["tokens"] == 10  # one stored weight for both heads
    assert [x["name"] for x in export(Branchy(), torch.zeros(1, 2, 5, 8), "z").workload["layers"]] == ["w"]


# --- Conv2d subclasses: what forward does, not what the attributes say ----------------------

class PadInside(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 1, 0, 1)))  # right and bottom only


class Twice(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(super().forward(x))


def test_conv_subclass_that_pads_in_forward() -> None:
    (layer,) = _layers(nn.Sequential(PadInside(4, 8, 2)), (1, 4, 6, 6)).values()
    assert layer["name"] == "0" and layer["padding"] == [0, 1, 0, 1] and layer["input_hw"] == [6, 6]
    assert _macs(layer) == 6 * 6 * 8 * (4 * 2 * 2)  # (6 + 0 + 1 - 2) + 1 = 6, not 5 from the attributes


def test_conv_subclass_that_runs_its_conv_twice() -> None:
    by = _layers(nn.Sequential(Twice(4, 4, 3, padding=1)), (1, 4, 8, 8))
    assert list(by) == ["0", "0#2"]
    assert [_macs(x) for x in by.values()] == [8 * 8 * 4 * 4 * 9] * 2


# --- asymmetric padding ----------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_padding_with_an_even_kernel() -> None:
    (layer,) = _layers(nn.Sequential(nn.Conv2d(3, 4, 4, padding="same")), (1, 3, 7, 7)).values()
    assert layer["padding"] == [1, 2, 1, 2]  # 3 rows in all, the extra one at the bottom (torch's rule)
    assert Layer.model_validate(layer).output_hw() == (7, 7)
    assert _macs(layer) == 7 * 7 * 4 * (3 * 4 * 4)


def test_zero_pad_folds_into_the_conv() -> None:
    model = nn.Sequential(nn.ZeroPad2d((1, 2, 0, 3)), nn.Conv2d(3, 4, 3))  # left 1, right 2, top 0, bottom 3
    (layer,) = _layers(model, (1, 3, 6, 5)).values()
    assert layer["input_hw"] == [6, 5] and layer["padding"] == [0, 3, 1, 2]
    assert _macs(layer) == 7 * 6 * 4 * (3 * 9)  # out (6 + 3 - 3) + 1 = 7 by (5 + 3 - 3) + 1 = 6


def test_reflect_pad_is_a_conv_on_the_padded_input() -> None:
    model = nn.Sequential(nn.ReflectionPad2d((1, 2, 0, 3)), nn.Conv2d(3, 4, 3))
    (layer,) = _layers(model, (1, 3, 6, 5)).values()
    assert layer["input_hw"] == [9, 8] and "padding" not in layer
    assert _macs(layer) == 7 * 6 * 4 * (3 * 9)


def test_per_side_padding_round_trips_through_yaml(tmp_path: Path) -> None:
    import yaml

    model = nn.Sequential(nn.ZeroPad2d((1, 2, 0, 3)), nn.Conv2d(3, 4, 3))
    ex = export(model, torch.randn(1, 3, 6, 5), "pad")
    (tmp_path / "pad.yaml").write_text(yaml.safe_dump(ex.workload))
    (layer,) = load(tmp_path / "pad.yaml").layers
    assert layer.pads == (0, 3, 1, 2) and layer.output_hw() == (7, 6)


# --- a module run twice ------------------------------------------------------------------------

class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(torch.relu(self.fc(x))))


def test_module_run_twice_gives_two_layers_with_unique_names(tmp_path: Path, monkeypatch) -> None:
    by = _layers(Shared(), (1, 6))
    assert list(by) == ["fc", "fc#2", "out"]
    assert [_macs(x) for x in by.values()] == [36, 36, 12]
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["export", "--model", "test_export_exact:Shared", "--input-shape", "1,6", "--out", str(tmp_path)]) == 0
    assert main(["specs", "validate", str(tmp_path / "Shared.yaml")]) == 0


# --- batch, example input, CLI ------------------------------------------------------------------

def test_batch_above_one_is_refused() -> None:
    with pytest.raises(ExportError, match=r"shape \(2, 6\).*batch 1"):
        export(Shared(), torch.randn(2, 6), "s")


class ZeroBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x != 0).any():
            x = self.a(x)
        return self.b(x)


def test_cli_example_input_is_random_by_default_and_said(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    base = ["export", "--model", "test_export_exact:ZeroBranch", "--input-shape", "1,4"]
    assert main([*base, "--out", str(tmp_path / "r")]) == 0
    assert "example input 1x4, random normal, seed 0" in capsys.readouterr().out
    assert [x.name for x in load(tmp_path / "r/ZeroBranch.yaml").layers] == ["a", "b"]
    assert main([*base, "--example", "zeros", "--out", str(tmp_path / "z")]) == 0
    assert "example input 1x4, all zeros" in capsys.readouterr().out
    w = load(tmp_path / "z/ZeroBranch.yaml")
    assert [x.name for x in w.layers] == ["b"] and "all zeros" in w.source


def test_zoo_example_is_seeded_random() -> None:
    _, x = zoo.get("resnet20_cifar")
    assert torch.equal(x, torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(0)))
    assert torch.equal(zoo.get("resnet20_cifar", "zeros")[1], torch.zeros(1, 3, 32, 32))


def test_zoo_export_carries_no_masks_by_default(tmp_path: Path) -> None:
    assert main(["export", "--model", "resnet20_cifar", "--out", str(tmp_path)]) == 0
    assert not list(tmp_path.glob("*.npz"))
    assert all(x.sparsity is None for x in load(tmp_path / "resnet20_cifar.yaml").layers)
    model, x = zoo.get("resnet20_cifar")
    with torch.no_grad():
        model.conv1.weight[0, 0, 0, 0] = 0  # the kind of exact zero a random init may hold
    assert export(model, x, "r", masks=False).masks == {}
    assert set(export(model, x, "r").masks) == {"conv1"}


@pytest.mark.parametrize("argv, words", [
    (["--model", "test_export_exact:Shared", "--input-shape", "3,6"], "batch 1"),
    (["--model", "test_export_exact:HeadsOdd", "--input-shape", "1,4,4"], "einsum 'ij,ij->ij' in module 'odd'"),
    (["--model", "test_export_exact:Outer", "--input-shape", "1,3,5,5,5"], "conv3d in module 'blk'"),
    (["--model", "test_export_exact:PerHeadWeights", "--input-shape", "1,2,5,8"], "2 weight matrices"),
    (["--model", "test_export_exact:Scripted", "--input-shape", "1,8"], "module 's' is a TorchScript module"),
    (["--model", "test_export_exact:Distances", "--input-shape", "1,4,3"], "cdist in the forward of Distances"),
])
def test_cli_refusals_exit_2_naming_the_op(argv: list[str], words: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["export", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.yaml"))


def HeadsOdd() -> nn.Module:  # noqa: N802 (a model factory for the CLI)
    return HasOdd("ij,ij->ij")


# --- input densities of matmul layers -----------------------------------------------------------

class ReluMatmul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x)
        return (h @ self.w).transpose(-1, -2) @ h


def test_matmul_layers_get_input_densities() -> None:
    batches = [torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    model = ReluMatmul()
    ex = export(model, torch.randn(1, 5, 8), "rm", calibration=batches)
    dens = {x["name"]: x["input_density"] for x in ex.workload["layers"]}
    relu = torch.cat([torch.relu(b).flatten() for b in batches])
    by_hand = float((relu != 0).sum()) / relu.numel()
    assert dens["w"] == pytest.approx(by_hand, abs=1e-6) and 0.3 < by_hand < 0.7
    with torch.no_grad():  # the matmul of activations streams its left operand, (relu(x) @ w)^T
        left = torch.cat([(torch.relu(b) @ model.w).flatten() for b in batches])
    assert dens["matmul"] == pytest.approx(float((left != 0).sum()) / left.numel(), abs=1e-6)


# --- the dataflow graph: inputs and residual, written by hand per model ----------------------

def _graph(model: nn.Module, shape: tuple[int, ...]) -> dict[str, dict]:
    """Every layer's graph fields as exported (none written: a chain link)."""
    return {name: {k: x[k] for k in ("inputs", "residual") if k in x} for name, x in _layers(model, shape).items()}


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 2 * 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.b(F.dropout(torch.relu(self.a(x)), 0.5, False))), 2)
        return self.fc(x.view(1, -1) * 0.5)


class IdentitySkip(nn.Module):  # stem, then a block whose input is added to its second conv's output
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.c1, self.c2 = (nn.Conv2d(4, 4, 3, padding=1) for _ in range(3))
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        out = self.c2(torch.relu(self.c1(x)))
        out += x  # in place
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(torch.relu(out), 1), 1))


class Shortcut(nn.Module):  # a 1x1 shortcut conv, run before (first) or after the main branch
    def __init__(self, first: bool) -> None:
        super().__init__()
        self.first = first
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.c1 = nn.Conv2d(4, 8, 3, 2, 1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.short = nn.Conv2d(4, 8, 1, 2)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        s = self.short(x) if self.first else None
        out = self.c2(torch.relu(self.c1(x)))
        return self.head(torch.relu(out + (s if self.first else self.short(x))))


class Branches(nn.Module):  # two branches on the stem's output, concatenated
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.left = nn.Conv2d(4, 4, 3, padding=1)
        self.right = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        return self.head(torch.cat([self.left(x), F.avg_pool2d(self.right(x), 3, 1, 1)], 1))


class PooledSkip(nn.Module):  # the stem's output, pooled, skips two strided convs
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, 2, 1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.conv(torch.relu(self.down(x))) + F.max_pool2d(x, 2)
        return self.fc(torch.flatten(y, 1))


class Attention(nn.Module):  # q, k, v from three linears on the input; scores are activation matmuls
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.proj = (nn.Linear(8, 8) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, -1)
        return self.proj(scores @ v) + v


class AddTwice(nn.Module):  # one module run twice, its first output added to the second's
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return self.out(torch.relu(self.fc(y) + y))


@pytest.mark.parametrize("model, shape, graph", [
    (Chain(), (1, 3, 4, 4), {"a": {}, "b": {}, "fc": {}}),
    (IdentitySkip(), (1, 4, 6, 6), {"stem": {}, "c1": {}, "c2": {"residual": ["stem"]}, "fc": {}}),
    (Shortcut(False), (1, 3, 8, 8),
     {"stem": {}, "c1": {}, "c2": {}, "short": {"inputs": ["stem"], "residual": ["c2"]}, "head": {}}),
    (Shortcut(True), (1, 3, 8, 8),
     {"stem": {}, "short": {}, "c1": {"inputs": ["stem"]}, "c2": {"residual": ["short"]}, "head": {}}),
    (Branches(), (1, 3, 6, 6),
     {"stem": {}, "left": {}, "right": {"inputs": ["stem"]}, "head": {"inputs": ["left", "right"]}}),
    (PooledSkip(), (1, 3, 8, 8), {"stem": {}, "down": {}, "conv": {"residual": ["stem"]}, "fc": {}}),
    (Attention(), (1, 5, 8),
     {"q": {}, "k": {"inputs": []}, "v": {"inputs": []}, "matmul": {"inputs": ["q", "k"]},
      "matmul#2": {"inputs": ["v", "matmul"]}, "proj": {"residual": ["v"]}}),
    (AddTwice(), (1, 6), {"fc": {}, "fc#2": {"residual": ["fc"]}, "out": {}}),
], ids=["chain", "identity_skip", "shortcut_after", "shortcut_first", "concat", "pooled_skip", "attention",
        "module_twice"])
def test_dataflow_graph_by_hand(model: nn.Module, shape: tuple[int, ...], graph: dict) -> None:
    assert _graph(model, shape) == graph


def test_graph_through_slice_assignment_and_addmm() -> None:
    class Writes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)
            self.w = nn.Parameter(torch.randn(8, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            buf = torch.zeros(2, 8)
            buf[0, :4], buf[1, 4:] = self.a(x)[0], self.b(x)[0]  # a concatenation: both, no residual
            return torch.addmm(self.a(x)[0, :3], buf, self.w)  # adds a's second run to its output

    assert _graph(Writes(), (1, 4)) == {"a": {}, "b": {"inputs": []}, "a#2": {"inputs": []},
                                        "w": {"inputs": ["a", "b"], "residual": ["a#2"]}}
