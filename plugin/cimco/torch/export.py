"""Export a torch model to a cimco workload: every layer the macro computes, in order.

Tracing uses torch.fx with shape propagation, so each layer gets its real input shape; a
model fx cannot trace falls back to forward hooks (which see modules, not functional
matmuls). Layers are found by walking each module class's MRO against :data:`HANDLERS`,
so subclasses of ``nn.Conv2d``/``nn.Linear`` export like their bases. Modules in
:data:`MACRO_WORK` would need the macro but are not supported: they fail with the module's
name. Everything else (activations, pooling, adds, batch norm, reshapes) costs nothing on
the macro and is listed in the summary as passed through.

Weight masks are the weights' actual zeros; input densities are the fraction of non-zero
values entering each layer over a calibration batch.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn

from cimco.errors import ExportError
from cimco.spec.workload import Bits
from cimco.torch.data import inputs_of


@dataclass
class Exported:
    """A workload (as the YAML dict), its masks, and what happened to every op."""

    workload: dict
    masks: dict[str, np.ndarray]
    summary: list[tuple[str, str, str]] = field(default_factory=list)  # (name, op, what)


def _conv(name: str, m: nn.Conv2d, shape: tuple[int, ...]) -> dict:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        pad = m._reversed_padding_repeated_twice  # resolved 'same' padding
        padding = [pad[2], pad[0]]
    else:
        padding = list(m.padding)
    return {"name": name, "type": "conv", "in_channels": m.in_channels,
            "out_channels": m.out_channels, "input_hw": [int(shape[-2]), int(shape[-1])],
            "kernel": list(m.kernel_size), "stride": list(m.stride), "padding": padding,
            "dilation": list(m.dilation), "groups": m.groups}


def _linear(name: str, m: nn.Linear, shape: tuple[int, ...]) -> dict:
    tokens = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
    return {"name": name, "type": "linear", "in_channels": m.in_features,
            "out_channels": m.out_features, "tokens": tokens}


HANDLERS: dict[type, Callable[[str, nn.Module, tuple[int, ...]], dict]] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
}
MACRO_WORK: tuple[type, ...] = (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                nn.ConvTranspose3d, nn.Bilinear, nn.MultiheadAttention, nn.RNNBase,
                                nn.Embedding)
MATMULS = {torch.matmul, torch.bmm, torch.mm, operator.matmul}


_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "tokens": 1, "repeat": 1}


def _compact(layer: dict, default_bits: dict) -> dict:
    """Readable YAML: square pairs as one number, defaults and default bits left out."""
    out = {}
    for k, v in layer.items():
        if isinstance(v, list) and len(v) == 2 and v[0] == v[1] and k != "input_hw":
            v = v[0]
        if _DEFAULTS.get(k) == v or (k == "bits" and v == default_bits):
            continue
        out[k] = v
    return out


def handler(module: nn.Module):
    """The handler of the nearest class in the module's MRO, or None."""
    for cls in type(module).__mro__:
        if cls in HANDLERS:
            return HANDLERS[cls]
    return None


def _is_leaf(m: nn.Module) -> bool:
    return handler(m) is not None or isinstance(m, MACRO_WORK) or not list(m.children())


def _trace(model: nn.Module, example: torch.Tensor):
    """[(qualified name, module or None, op name, input shapes)] in execution order, via fx."""
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return _is_leaf(m)

    graph = Tracer().trace(model)
    gm = torch.fx.GraphModule(model, graph)
    ShapeProp(gm).propagate(example)
    mods = dict(model.named_modules())
    ops = []
    for node in gm.graph.nodes:
        shapes = [tuple(a.meta["tensor_meta"].shape) for a in node.args
                  if isinstance(a, torch.fx.Node) and "tensor_meta" in a.meta]
        if node.op == "call_module":
            ops.append((node.target, mods[node.target], type(mods[node.target]).__name__, shapes))
        elif node.op in ("call_function", "call_method"):
            fn = node.target
            name = getattr(fn, "__name__", str(fn))
            ops.append((node.name, fn if fn in MATMULS or name in ("matmul", "bmm") else None, name, shapes))
    return ops


@contextlib.contextmanager
def _hooked(model: nn.Module, which: Callable[[str, nn.Module], bool], enter=None, leave=None):
    """Forward (pre-)hooks ``enter(name, module, args)`` / ``leave(name)`` on the named modules
    ``which`` selects, removed on exit; runs inside ``torch.no_grad``."""
    def pre(mod, args, n):
        enter(n, mod, args)  # returns None: a hook's return value would replace the input

    def post(mod, args, out, n):
        leave(n)  # returns None: a hook's return value would replace the output

    handles = []
    for name, m in model.named_modules():
        if name and which(name, m):
            if enter:
                handles.append(m.register_forward_pre_hook(partial(pre, n=name)))
            if leave:
                handles.append(m.register_forward_hook(partial(post, n=name)))
    try:
        with torch.no_grad():
            yield
    finally:
        for h in handles:
            h.remove()


def _hooks(model: nn.Module, example: torch.Tensor):
    """Fallback: forward pre-hooks on leaf modules record calls in execution order."""
    ops = []

    def record(name, mod, args):
        ops.append((name, mod, type(mod).__name__, [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]))

    with _hooked(model, lambda n, m: _is_leaf(m), enter=record):
        model(example)
    return ops


def _check_runs(model: nn.Module, example: torch.Tensor, name: str) -> None:
    """Run the model once; on failure name the innermost module that was running."""
    stack: list[str] = []
    try:
        with _hooked(model, lambda n, m: True, enter=lambda n, mod, args: stack.append(n),
                     leave=lambda n: stack.pop()):
            model(example)
    except Exception as e:  # the user's model: report it, do not crash
        where = f" in module {stack[-1]!r}" if stack else ""
        raise ExportError(f"model {name!r} fails on an example input of shape "
                          f"{tuple(example.shape)}{where}: {type(e).__name__}: {e}") from None


def _densities(model: nn.Module, names: set[str], batches: Iterable) -> dict[str, float]:
    """Fraction of non-zero inputs entering each named module over the calibration batches."""
    nz: dict[str, int] = dict.fromkeys(names, 0)
    total: dict[str, int] = dict.fromkeys(names, 0)

    def count(name, mod, args):
        nz[name] += int(torch.count_nonzero(args[0]))
        total[name] += args[0].numel()

    with _hooked(model, lambda n, m: n in names, enter=count):
        for b in batches:
            model(inputs_of(b))
    return {n: nz[n] / total[n] for n in names if total[n]}


def export(model: nn.Module, example_input: torch.Tensor, name: str, source: str = "torch export",
           bits: Bits | dict[str, Bits] | None = None,
           calibration: Iterable[torch.Tensor] | None = None, mask_file: str | None = None) -> Exported:
    """Export ``model`` run on ``example_input`` (batch 1) to a cimco workload.

    ``bits``: one :class:`Bits` for all layers, or a mapping from layer name (and
    ``"default"``) to Bits; a module's own ``cimco_bits`` attribute (set by cimco's quantized
    modules) wins. ``calibration``: batches (or a DataLoader) to measure input densities.
    ``mask_file``: the ``.npz`` name layers with zero weights will reference.
    """
    model = model.eval()
    _check_runs(model, example_input, name)
    try:
        ops = _trace(model, example_input)
        how = "torch.fx"
    except Exception:  # fx cannot trace data-dependent control flow: fall back to hooks
        ops = _hooks(model, example_input)
        how = "forward hooks"
    default = bits if isinstance(bits, Bits) else (bits or {}).get("default", Bits())
    layers, masks, summary = [], {}, []
    for qual, obj, op, shapes in ops:
        if isinstance(obj, nn.Module) and handler(obj) is not None:
            layer = handler(obj)(qual, obj, shapes[0])
            per_layer = bits.get(qual) if isinstance(bits, dict) else None
            layer["bits"] = (getattr(obj, "cimco_bits", None) or per_layer or default).model_dump()
            w = obj.weight.detach()
            if bool((w == 0).any()):
                masks[qual] = (w != 0).cpu().numpy()
                layer["sparsity"] = {"mask": mask_file or f"{name}.masks.npz"}
            layers.append(layer)
            summary.append((qual, op, "exported"))
        elif isinstance(obj, MACRO_WORK):
            raise ExportError(f"module {qual!r} ({op}) needs macro work but cimco cannot export it "
                              f"yet; supported: {', '.join(c.__name__ for c in HANDLERS)} and matmul")
        elif obj in MATMULS:
            a, b = shapes[0], shapes[1]
            batch = int(np.prod(a[1:-2])) if len(a) > 2 else 1
            layers.append({"name": qual, "type": "linear", "in_channels": int(a[-1]),
                           "out_channels": int(b[-1]), "tokens": int(a[-2]) if len(a) > 1 else 1,
                           "repeat": max(batch, 1), "bits": default.model_dump()})
            summary.append((qual, op, "exported (matmul of activations)"))
        else:
            summary.append((qual, op, "passed through (no macro work)"))
    if not layers:
        raise ExportError(f"model {name!r} has no layer that runs on the macro")
    if calibration is not None:
        dens = _densities(model, {x["name"] for x in layers}, calibration)
        for x in layers:
            if x["name"] in dens:
                x["input_density"] = max(round(dens[x["name"]], 6), 1e-6)
    layers = [_compact(x, default.model_dump()) for x in layers]
    workload = {"kind": "workload", "name": name, "source": f"{source} (cimco export via {how})",
                "bits": default.model_dump(), "layers": layers}
    return Exported(workload, masks, summary)
