"""CIM-aware structured pruning by block magnitude (MARS row blocks, CRIMP kernel groups
and crossbars), with a gradual schedule and CRIMP's zerorize-recover.

Blocks are the ones :mod:`cimco.sparse.patterns` defines for the target macro, in the im2col
layout of :mod:`cimco.sparse.layout`: a ``row_block`` is the ``wordlines_on`` rows x one
column group a macro activation covers, so a pruned block is a skipped activation.

Schedule: density falls from 1 to the target along Zhu & Gupta's cubic curve (arXiv
1710.01878) over ``ramp_epochs``; during the first ``recover_epochs`` after that the mask is
recomputed every step from the current weights (pruned blocks are zeroed but keep their
gradients, so a block may regrow: CRIMP's zerorize-recover); then it is frozen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cimco.errors import Problem, SpecError
from cimco.geometry import MacroGeometry
from cimco.sparse.patterns import unit_shape
from cimco.spec.macro import MacroSpec

PRUNABLE = ("row_block", "kernel_group", "crossbar", "unstructured")


def _geometry(macro: MacroSpec, w_bits: int, in_bits: int) -> MacroGeometry:
    return MacroGeometry.of(macro, in_bits, w_bits, 1)


def _unit_shape(m: nn.Module, pattern: str, geo: MacroGeometry) -> tuple[int, int]:
    kernel = tuple(m.kernel_size) if isinstance(m, nn.Conv2d) else (1, 1)
    return unit_shape(pattern, geo, kernel, _matrix(m).shape[2])


def _matrix(m: nn.Module) -> torch.Tensor:
    g = getattr(m, "groups", 1)
    w = m.weight
    return w.reshape(g, w.shape[0] // g, -1)


def block_scores(m: nn.Module, pattern: str, geo: MacroGeometry, p: int = 1) -> torch.Tensor:
    """Lp norm of every unit, shape (groups, unit rows of outputs, unit cols of rows)."""
    w = _matrix(m).detach().abs() ** p
    g, mo, k = w.shape
    uo, ur = _unit_shape(m, pattern, geo)
    n_o, n_r = -(-mo // uo), -(-k // ur)
    padded = torch.zeros(g, n_o * uo, n_r * ur, dtype=w.dtype)
    padded[:, :mo, :k] = w
    return padded.reshape(g, n_o, uo, n_r, ur).sum(dim=(2, 4))


def block_mask(m: nn.Module, pattern: str, density: float, geo: MacroGeometry, p: int = 1) -> torch.Tensor:
    """Keep the ``round(density * units)`` units of largest Lp norm (at least one when the
    density is above zero, so no layer vanishes); weight-shaped bool."""
    scores = block_scores(m, pattern, geo, p)
    n_keep = int(round(density * scores.numel()))
    if density > 0:
        n_keep = max(n_keep, 1)
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    keep[torch.argsort(scores.flatten(), descending=True, stable=True)[:n_keep]] = True
    keep = keep.reshape(scores.shape)
    g, mo, k = _matrix(m).shape
    uo, ur = _unit_shape(m, pattern, geo)
    full = keep.repeat_interleave(uo, dim=1).repeat_interleave(ur, dim=2)[:, :mo, :k]
    return full.reshape(m.weight.shape)


def check(model: nn.Module, pattern: str, density: float, macro: MacroSpec,
          skip: tuple[str, ...] = ()) -> list[Problem]:
    """Problems pruning ``model`` with ``pattern`` at ``density`` for ``macro``, per layer."""
    out = []
    if pattern not in PRUNABLE:
        out.append(Problem("prune", "pattern", f"expected one of {PRUNABLE}, got {pattern!r}"))
        return out
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or name in skip:
            continue
        if not 0.0 <= density <= 1.0:
            out.append(Problem("prune", f"{name}.density", f"layer {name!r}: density must be in "
                               f"[0, 1], got {density}"))
        if pattern == "kernel_group" and (isinstance(m, nn.Linear) or math.prod(m.kernel_size) == 1):
            out.append(Problem("prune", f"{name}.pattern", f"layer {name!r}: kernel_group needs a "
                               f"kernel larger than 1x1 (this layer has none)"))
        if pattern == "crossbar":
            w_bits = getattr(m, "w_bits", macro.weight_bits.max)
            geo = _geometry(macro, w_bits, macro.input_bits.max)
            g, mo, k = _matrix(m).shape
            if -(-mo // geo.outputs_per_macro) * -(-k // geo.rows) * g < 2:
                out.append(Problem("prune", f"{name}.pattern", f"layer {name!r} fits in one crossbar "
                                   f"of macro {macro.name!r}: crossbar pruning would remove it whole"))
    return out


def attention_projections(model: nn.Module, example: torch.Tensor | None = None) -> set[str]:
    """The Conv2d/Linear modules that are attention's projections: inside an
    ``nn.MultiheadAttention`` (its ``out_proj``), and, from one run on ``example``, every layer
    whose output a matmul of activations multiplies (query, key, value) or that multiplies one's
    output (the output projection), as ``cimco export`` sees the run."""
    names = {f"{q}.{n}" for q, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)
             for n, sub in m.named_modules() if isinstance(sub, nn.Linear)}
    if example is not None:
        from cimco.spec.workload import WorkloadSpec
        from cimco.torch.export import export

        w = WorkloadSpec.model_validate(export(model, example, "probe", masks=False).workload)
        dynamic = {x.name for x in w.layers if x.dynamic}
        for i, x in enumerate(w.layers):
            inputs = set(w.producers(i))
            names |= inputs - dynamic if x.dynamic else ({x.name} if inputs & dynamic else set())
    modules = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    return names & modules


@dataclass
class Pruner:
    """Gradual CIM-aware pruning of every Conv2d/Linear in a model (call per step).

    Attention's projections (:func:`attention_projections`; give ``example``, an input, for
    attention written with ``scaled_dot_product_attention`` or matmuls) stay dense unless
    ``attention`` is set: the feed-forward and other weight layers are pruned."""

    model: nn.Module
    pattern: str
    density: float
    macro: MacroSpec
    ramp_epochs: int = 3
    recover_epochs: int = 2
    p: int = 1
    skip: tuple[str, ...] | None = None  # default: the first and last layer stay dense
    example: torch.Tensor | None = None  # an input, to find attention's projections
    attention: bool = False  # prune attention's projections too

    def __post_init__(self) -> None:
        names = [n for n, m in self.model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        if self.skip is None:
            self.skip = (names[0], names[-1])
        if self.attention:
            held = [q for q, m in self.model.named_modules() if isinstance(m, nn.MultiheadAttention)]
            if held:
                raise SpecError([Problem("prune", "attention", f"module {held[0]!r} (MultiheadAttention) holds "
                                         f"its query, key and value weights as parameters, not Linear modules: "
                                         f"cimco prunes Linear and Conv2d modules only")])
        else:
            self.skip = tuple(self.skip) + tuple(sorted(attention_projections(self.model, self.example)))
        problems = check(self.model, self.pattern, self.density, self.macro, self.skip)
        if problems:
            raise SpecError(problems)
        self.masks: dict[str, torch.Tensor] = {}

    def layers(self):
        return [(n, m) for n, m in self.model.named_modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in self.skip]

    def target(self, epoch: int) -> float:
        if epoch >= self.ramp_epochs:
            return self.density
        t = (epoch + 1) / self.ramp_epochs
        return self.density + (1 - self.density) * (1 - t) ** 3

    def __call__(self, model: nn.Module, epoch: int) -> None:
        frozen = epoch >= self.ramp_epochs + self.recover_epochs and self.masks
        with torch.no_grad():
            for name, m in self.layers():
                if not frozen:
                    geo = _geometry(self.macro, getattr(m, "w_bits", self.macro.weight_bits.max),
                                    getattr(m, "a_bits", self.macro.input_bits.max))
                    self.masks[name] = block_mask(m, self.pattern, self.target(epoch), geo, self.p)
                m.weight.mul_(self.masks[name])

    def epochs(self) -> int:
        """Epochs to train for the whole schedule (ramp, recover, then one frozen)."""
        return self.ramp_epochs + self.recover_epochs + 1


def weight_masks(model: nn.Module) -> dict[str, np.ndarray]:
    return {n: (m.weight.detach() != 0).numpy() for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}
