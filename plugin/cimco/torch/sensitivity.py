"""Per-layer precision sensitivity: quantize one layer at a time, measure accuracy drop.

The drop is measured on a validation loader (not the test split) and feeds LRMP's
accuracy budget (:mod:`cimco.codesign.lrmp`) as ``layer,bits,loss`` rows.
"""

from __future__ import annotations

import copy

from torch import nn

from cimco.spec.workload import Bits
from cimco.torch.data import accuracy
from cimco.torch.quant import calibrate, quantize


def layer_sensitivity(model: nn.Module, val, bits_choices: list[int], calib) -> dict[str, dict[int, float]]:
    """{layer: {bits: accuracy drop}} with only that layer quantized (PoT scales)."""
    ref = accuracy(model, val)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    out: dict[str, dict[int, float]] = {}
    for name in names:
        for b in bits_choices:
            m = copy.deepcopy(model)
            target = m.get_submodule(name)
            holder = nn.Sequential(target)
            quantize(holder, Bits(input=b, weight=b, output=8), pot=True,
                     first_signed=name == names[0])
            parent, _, attr = name.rpartition(".")
            setattr(m.get_submodule(parent) if parent else m, attr, holder[0])
            calibrate(m, calib)
            out.setdefault(name, {})[b] = max(0.0, ref - accuracy(m.eval(), val))
    return out
