"""CIM-faithful inference: integer MACs computed the way the macro computes them.

For each layer (im2col view): inputs enter bit-serially in slices of ``input_slice`` bits,
weights sit in columns of ``bits_per_cell`` bits (or, with ``analog_weight_combine``, a
weight's columns are summed in the analog domain first); signed values use differential
pairs (x = x+ - x-, w = w+ - w-). The ``wordlines_on`` rows on at once produce one analog
partial sum per column, which an ADC of ``adc_bits`` digitizes: its step is the power of two
that fits the partial sum's full scale into ``2**adc_bits`` codes, and it clips at the top
code. Shift-add then weights the codes by their slice positions and sums the row groups.
Optional Gaussian variation scales each cell's contribution by ``1 + sigma * N(0, 1)``
(fixed per cell by ``seed``). With enough ADC bits and no variation the result is the
exact integer MAC.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from cimco.spec.macro import MacroSpec
from cimco.torch.quant import integer_forward


def _slices(v: torch.Tensor, bits: int, per: int) -> list[tuple[int, torch.Tensor]]:
    """Unsigned ``v`` (< 2**bits) as (shift, slice) pairs of ``per`` bits."""
    return [(j, torch.bitwise_and(torch.bitwise_right_shift(v, j), (1 << per) - 1))
            for j in range(0, bits, per)]


def _adc(psum: torch.Tensor, full_scale: float, adc_bits: int) -> torch.Tensor:
    need = math.ceil(math.log2(full_scale + 1)) if full_scale > 0 else 1
    step = 2.0 ** max(0, need - adc_bits)
    return torch.clamp(torch.floor(psum / step + 0.5), 0, 2**adc_bits - 1) * step


def cim_mac(layer: nn.Module, x_int: torch.Tensor, w_int: torch.Tensor, macro: MacroSpec,
            adc_bits: int, sigma: float = 0.0, seed: int = 0) -> torch.Tensor:
    """One layer's integer accumulator as the macro computes it (int64 when ideal)."""
    conv = isinstance(layer, nn.Conv2d)
    g = layer.groups if conv else 1
    if conv:
        cols = nn.functional.unfold(x_int.double(), layer.kernel_size, layer.dilation,
                                    layer.padding, layer.stride)  # (N, C*R*S, L)
        n, _, L = cols.shape
        cols = cols.reshape(n, g, -1, L)
    else:
        cols = x_int.double().reshape(x_int.shape[0], 1, -1, 1)
        n, L = cols.shape[0], 1
    m_out = w_int.shape[0]
    w = w_int.reshape(g, m_out // g, -1).double()  # (g, M/g, K)
    k, wl = w.shape[2], macro.wordlines_on
    n_rg = -(-k // wl)
    pad = n_rg * wl - k
    cols = nn.functional.pad(cols, (0, 0, 0, pad)).reshape(n, g, n_rg, wl, L)
    w = nn.functional.pad(w, (0, pad)).reshape(g, m_out // g, n_rg, wl)
    # Magnitude bits of the configured precision (not of this batch's data): they set the
    # slices and the ADC's full scale, as the hardware's are fixed.
    in_bits = layer.a_bits - 1 if layer.signed_input else layer.a_bits
    w_bits = layer.w_bits - 1
    in_per = macro.input_slice()
    w_per = w_bits if macro.analog_weight_combine else macro.bits_per_cell
    gen = torch.Generator().manual_seed(seed)
    acc = torch.zeros(n, g, m_out // g, L, dtype=torch.float64)
    for xs_sign, xs in ((1, cols.clamp_min(0)), (-1, (-cols).clamp_min(0))):
        if not xs.any():
            continue
        for ws_sign, ws in ((1, w.clamp_min(0)), (-1, (-w).clamp_min(0))):
            if not ws.any():
                continue
            for wj, wsl in _slices(ws.to(torch.int64), w_bits, w_per):
                cell = wsl.double()
                if sigma:
                    cell = cell * (1 + sigma * torch.randn(cell.shape, generator=gen, dtype=torch.float64))
                fs = wl * ((1 << min(in_per, in_bits)) - 1) * ((1 << min(w_per, w_bits)) - 1)
                for xj, xsl in _slices(xs.to(torch.int64), in_bits, in_per):
                    psum = torch.einsum("ngrwl,gmrw->ngmrl", xsl.double(), cell)
                    acc += xs_sign * ws_sign * 2.0 ** (xj + wj) * _adc(psum, fs, adc_bits).sum(dim=3)
    out = acc.reshape(n, m_out, L)
    if conv:
        p, q = _out_hw(layer, x_int.shape[-2:])
        out = out.reshape(n, m_out, p, q)
    else:
        out = out.reshape(n, m_out)
    return torch.round(out).to(torch.int64)  # the shift-add output is an integer


def _out_hw(layer: nn.Conv2d, hw) -> tuple[int, int]:
    return tuple((hw[i] + 2 * layer.padding[i] - layer.dilation[i] * (layer.kernel_size[i] - 1) - 1)
                 // layer.stride[i] + 1 for i in range(2))


def cim_forward(model: nn.Sequential, x: torch.Tensor, macro: MacroSpec, adc_bits: int,
                sigma: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Integer-only inference of a quantized Sequential with every MAC done as on ``macro``."""
    return integer_forward(model, x, mac=partial(cim_mac, macro=macro, adc_bits=adc_bits,
                                                 sigma=sigma, seed=seed))
