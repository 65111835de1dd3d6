"""Batch-norm folding and quantization-aware training for CIM (MARS, CRIMP).

- :func:`fold_bn` folds every BatchNorm2d that directly follows a Conv2d into the conv's
  weight and bias, so no high-precision BN multiplies remain on chip (MARS).
- :class:`QConv2d` / :class:`QLinear` fake-quantize weights symmetrically per output
  channel and inputs per tensor, with a straight-through estimator. ``pot=True`` rounds
  every scale up to a power of two (CRIMP) so the macro's shifters apply it.
- :func:`integer_forward` runs a quantized sequential model with integers only (integer
  MACs, shifts, clamps; no float multiply) and equals the fake-quant model bit-exactly
  when scales are powers of two.

Rounding is half-up everywhere (``floor(x + 1/2)``): what a shifter with a rounding bit
does, and what makes the two paths agree on ties.
"""

from __future__ import annotations

import torch
from torch import nn

from cimco.errors import Problem, SpecError
from cimco.spec.workload import Bits
from cimco.torch.data import inputs_of


def rnd(x: torch.Tensor) -> torch.Tensor:
    """Round half up."""
    return torch.floor(x + 0.5)


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return x + (q - x).detach()


def _pot(scale: torch.Tensor) -> torch.Tensor:
    return torch.exp2(torch.ceil(torch.log2(scale)))


def fold_bn(model: nn.Module) -> nn.Module:
    """Fold each BatchNorm2d that consumes a Conv2d's output (and nothing else) into it.

    Found on the torch.fx graph, so it works for any traceable model; the BN module is
    replaced by ``nn.Identity`` in place. Returns the model (eval mode).
    """
    import torch.fx

    model = model.eval()
    graph = torch.fx.symbolic_trace(model).graph
    mods = dict(model.named_modules())
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not (isinstance(src, torch.fx.Node) and src.op == "call_module"
                and isinstance(mods.get(src.target), nn.Conv2d) and len(src.users) == 1):
            continue
        conv, bn = mods[src.target], mods[node.target]
        with torch.no_grad():
            std = torch.sqrt(bn.running_var + bn.eps)
            gamma = bn.weight if bn.affine else torch.ones_like(std)
            beta = bn.bias if bn.affine else torch.zeros_like(std)
            k = gamma / std
            conv.weight.mul_(k.reshape(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
            new_bias = (bias - bn.running_mean) * k + beta
            conv.bias = nn.Parameter(new_bias)
        parent, _, attr = node.target.rpartition(".")
        setattr(mods[parent] if parent else model, attr, nn.Identity())
    return model


class _Quant:
    """Mixin: fake-quantized weights (per channel) and inputs (per tensor)."""

    w_bits: int
    a_bits: int
    pot: bool

    def _setup(self, a_bits: int, w_bits: int, out_bits: int, pot: bool, signed_input: bool) -> None:
        self.a_bits, self.w_bits, self.pot, self.signed_input = a_bits, w_bits, pot, signed_input
        self.cimco_bits = Bits(input=a_bits, weight=w_bits, output=out_bits)
        self.register_buffer("a_max", torch.zeros(()))
        self.momentum = 0.1

    def w_scale(self) -> torch.Tensor:
        w = self.weight.detach().reshape(self.weight.shape[0], -1)
        s = w.abs().amax(dim=1).clamp_min(1e-8) / (2 ** (self.w_bits - 1) - 1)
        return _pot(s) if self.pot else s

    def a_scale(self) -> torch.Tensor:
        s = self.a_max.clamp_min(1e-8) / self.a_range()[1]  # the largest code maps to a_max
        return _pot(s) if self.pot else s

    def a_range(self) -> tuple[int, int]:
        if self.signed_input:
            return -(2 ** (self.a_bits - 1) - 1), 2 ** (self.a_bits - 1) - 1
        return 0, 2**self.a_bits - 1

    def q_weight(self) -> torch.Tensor:
        s = self.w_scale().reshape(-1, *([1] * (self.weight.dim() - 1)))
        lim = 2 ** (self.w_bits - 1) - 1
        return _ste(self.weight, torch.clamp(rnd(self.weight / s), -lim, lim) * s)

    def q_bias(self) -> torch.Tensor | None:
        """Bias as an integer at the accumulator's scale (input scale x weight scale)."""
        if self.bias is None:
            return None
        s = self.a_scale() * self.w_scale()
        return _ste(self.bias, rnd(self.bias / s) * s)

    def q_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                m = x.detach().abs().max()
                self.a_max.copy_(m if self.a_max == 0 else (1 - self.momentum) * self.a_max + self.momentum * m)
        s = self.a_scale()
        lo, hi = self.a_range()
        return _ste(x, torch.clamp(rnd(x / s), lo, hi) * s)


class QConv2d(_Quant, nn.Conv2d):
    def __init__(self, *args, a_bits: int = 8, w_bits: int = 8, out_bits: int = 8,
                 pot: bool = False, signed_input: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup(a_bits, w_bits, out_bits, pot, signed_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.q_input(x), self.q_weight(), self.q_bias())


class QLinear(_Quant, nn.Linear):
    def __init__(self, *args, a_bits: int = 8, w_bits: int = 8, out_bits: int = 8,
                 pot: bool = False, signed_input: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup(a_bits, w_bits, out_bits, pot, signed_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(self.q_input(x), self.q_weight(), self.q_bias())


def check_bits(bits: Bits, macro, layer: str) -> list[Problem]:
    out = []
    for t in ("input", "weight", "output"):
        b, r = getattr(bits, t), getattr(macro, f"{t}_bits")
        if not r.min <= b <= r.max:
            out.append(Problem("quantize", f"{layer}.{t}_bits",
                               f"layer {layer!r}: macro {macro.name!r} supports {t} bits "
                               f"{r.min}..{r.max}, got {b}"))
    return out


def quantize(model: nn.Module, bits: Bits, pot: bool = False, macro=None,
             first_signed: bool = True) -> nn.Module:
    """Swap every Conv2d/Linear for its quantized twin (weights copied), in place.

    The first layer takes signed inputs (``first_signed``), the others follow a ReLU.
    With ``macro`` (a MacroSpec) every layer's bits are checked against what it supports.
    """
    problems, first = [], True
    for name, m in list(model.named_modules()):
        if type(m) not in (nn.Conv2d, nn.Linear):
            continue
        if macro is not None:
            problems += check_bits(bits, macro, name)
        kw = dict(a_bits=bits.input, w_bits=bits.weight, out_bits=bits.output, pot=pot,
                  signed_input=first and first_signed)
        if isinstance(m, nn.Conv2d):
            q = QConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                        m.dilation, m.groups, bias=m.bias is not None, **kw)
        else:
            q = QLinear(m.in_features, m.out_features, bias=m.bias is not None, **kw)
        q.load_state_dict(m.state_dict(), strict=False)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, q)
        first = False
    if problems:
        raise SpecError(problems)
    return model


def calibrate(model: nn.Module, batches) -> None:
    """Set activation ranges from data (a few batches in train mode, no weight update)."""
    was = model.training
    model.train()
    with torch.no_grad():
        for b in batches:
            model(inputs_of(b))
    model.train(was)


def _int_log2(s: torch.Tensor) -> torch.Tensor:
    e = torch.log2(s)
    if not torch.equal(e, torch.round(e)):
        raise ValueError("integer-only inference needs power-of-two scales (quantize(pot=True))")
    return e.to(torch.int64)


def _shift_round(acc: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """acc * 2**k, rounded half up, with integer shifts only."""
    k = k.expand_as(acc)
    left = torch.bitwise_left_shift(acc, k.clamp_min(0))
    r = (-k).clamp_min(0)
    half = torch.where(r > 0, torch.bitwise_left_shift(torch.ones_like(acc), (r - 1).clamp_min(0)), 0)
    right = torch.bitwise_right_shift(acc + half, r)
    return torch.where(k >= 0, left, right)


def int_matmul(layer: _Quant, x_int: torch.Tensor, w_int: torch.Tensor) -> torch.Tensor:
    """Exact integer MAC of one layer (float64 carries integers < 2**53 exactly)."""
    if isinstance(layer, nn.Conv2d):
        acc = nn.functional.conv2d(x_int.double(), w_int.double(), None, layer.stride,
                                   layer.padding, layer.dilation, layer.groups)
    else:
        acc = x_int.double() @ w_int.double().t()
    return acc.round().to(torch.int64)


def integer_forward(model: nn.Sequential, x: torch.Tensor, mac=int_matmul) -> torch.Tensor:
    """Integer-only inference of a Sequential of Q layers, ReLU, MaxPool2d and Flatten.

    Returns the last layer's output as float (integer accumulator times its scale).
    ``mac(layer, x_int, w_int) -> int64`` computes each layer's integer MACs (swap in the
    CIM-faithful simulator to run the macro). Per layer: input codes with scale 2**e_x,
    weight codes 2**e_w (per channel), bias as an integer at scale 2**(e_x + e_w), and the
    next layer's input requantized by a rounding shift.
    """
    qs = [m for m in model if isinstance(m, _Quant)]
    s0 = qs[0].a_scale()
    lo, hi = qs[0].a_range()
    e_x = _int_log2(s0)
    x_int = torch.clamp(rnd(x / s0), lo, hi).to(torch.int64)  # the input converter
    out = None
    for i, m in enumerate(model):
        if isinstance(m, _Quant):
            e_w = _int_log2(m.w_scale())
            lim = 2 ** (m.w_bits - 1) - 1
            w_s = m.w_scale().reshape(-1, *([1] * (m.weight.dim() - 1)))
            w_int = torch.clamp(rnd(m.weight.detach() / w_s), -lim, lim).to(torch.int64)
            acc = mac(m, x_int, w_int)
            shape = (1, -1, 1, 1) if acc.dim() == 4 else (1, -1)
            e_acc = (e_x + e_w).reshape(shape)
            if m.bias is not None:
                s_acc = (m.a_scale() * m.w_scale()).double()
                b_int = rnd(m.bias.detach().double() / s_acc).to(torch.int64)
                acc = acc + b_int.reshape(shape)
            nxt = next((q for q in model[i + 1:] if isinstance(q, _Quant)), None)
            if nxt is None:
                out = acc.double() * torch.exp2(e_acc.double())
                break
            e_y = _int_log2(nxt.a_scale())
            x_int = _shift_round(acc, e_acc - e_y)
            lo, hi = nxt.a_range()
            x_int = x_int.clamp(lo, hi)
            e_x = e_y
        elif isinstance(m, nn.ReLU):
            x_int = x_int.clamp_min(0)
        elif isinstance(m, nn.MaxPool2d):
            x_int = nn.functional.max_pool2d(x_int.double(), m.kernel_size, m.stride, m.padding).to(torch.int64)
        elif isinstance(m, nn.Flatten):
            x_int = torch.flatten(x_int, m.start_dim, m.end_dim)
        elif not isinstance(m, nn.Identity):
            raise ValueError(f"integer_forward cannot run {type(m).__name__}")
    return out.float()
