"""Export a torch model to a cimco workload: every multiply-accumulate the macro computes, in order.

The model runs once on the example input (batch 1) under a ``TorchFunctionMode`` that sees
every torch call, with forward hooks keeping the stack of running modules. So a layer is what
actually ran, not what a module's attributes say: a ``Conv2d`` subclass that pads inside its
forward, or calls its conv twice, exports what it did; data-dependent branches take the path
the example input takes (say which input you used).

- ``conv2d`` becomes a conv layer (stride, dilation, groups, per-side padding, including
  ``padding='same'`` with an even kernel); ``conv1d`` a conv of height 1; ``conv_transpose2d``
  a linear layer (each input position times the weight, the overlaps added outside the macro).
  An LSTM/GRU/RNN module or cell, and ``nn.MultiheadAttention``, are exported from their
  weights and arguments when they return (:meth:`_Recorder._recurrent`,
  :meth:`_Recorder._attention`); their own ops are not recorded. ``scaled_dot_product_attention``
  is its two matmuls of activations per head, a causal one as the dense blocks that exactly
  cover the products its mask keeps (:func:`_causal_blocks`); other masks are refused. A
  zero ``F.pad`` (``nn.ZeroPad2d``) of the height and width whose output a conv consumes is
  folded into that conv's padding; any other pad (reflect, non-zero) is a conv on the padded
  input, which has the same MACs.
- ``linear``, the matmul family (:data:`PRODUCTS`) and ``einsum`` become linear layers when
  they are a (batched) matrix product. A parameter operand (a tensor sharing a parameter's or
  buffer's storage; in a ``Conv2d``/``Linear`` module, its weight however computed) is the
  stored weight: ``tokens`` rows stream through it and its zeros are the mask (a module's own
  ``weight`` parameter for a ``Conv2d``/``Linear``, as pruning left it). Two activations
  (attention's Q.K^T) are a matmul of activations (``dynamic``): the right operand is the
  stored one, and each of the ``repeat`` batch entries loads its own. An einsum that is not a
  matrix product (three operands, a diagonal, an index summed over one operand alone, no index
  summed over both) and a parameter operand with its own batch of weights are refused.
- Ops in :data:`UNSUPPORTED` and modules in :data:`MACRO_WORK` are refused with the op, the
  module and its class named; an in-place op (``addmm_``) is its op. Ops in
  :data:`NO_MACRO_WORK` (activations, pooling, adds, elementwise products, batch norm,
  reshapes) are listed as passed through, and those that compute on every element
  (:data:`VECTOR_OPS`) counted as ``ops`` of the layer whose output they work on, with every
  layer's requantization (:mod:`cimco.vector`); any other op returning a tensor is refused by name
  (it may multiply: a refusal beats a silently lost layer), and so is a TorchScript submodule.

A module or op that runs twice gives two layers, named ``name`` and ``name#2`` in execution
order. The workload is validated before it is returned, so export never writes one that
``cimco specs validate`` rejects. Input densities (with a calibration set) are the fraction
of non-zero values in the streamed operand of each layer (for a folded pad, before padding).

The dataflow graph is recorded in the same run: every tensor a layer produces is tagged with
its name, and ops with no macro work pass the tags on. A layer's ``inputs`` are the tags of
the operands it multiplies (both, for a matmul of activations; none: the network's input),
written only when they are not the previous layer. Tensors combined elementwise (``x + y``,
``x * y``, ``where``) are attributed to the newest producer among them, and the others'
producers become that layer's ``residual`` (kept until it has run; so is a tagged bias or
``addmm`` addend). Concatenation (:data:`CONCAT`, slice assignment) keeps all its tags.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn
from torch.overrides import TorchFunctionMode

from cimco.errors import ExportError
from cimco.spec.workload import Bits, Layer, WorkloadSpec
from cimco.torch.data import inputs_of

# Matmul-family ops: full signature (the two multiplied operands are named in _OPERANDS).
PRODUCTS: dict[str, tuple[str, ...]] = {
    "matmul": ("input", "other"), "__matmul__": ("input", "other"), "__rmatmul__": ("input", "other"),
    "linalg_matmul": ("input", "other"), "mm": ("input", "mat2"), "bmm": ("input", "mat2"),
    "mv": ("input", "vec"), "dot": ("input", "tensor"), "addmm": ("input", "mat1", "mat2"),
    "addmv": ("input", "mat", "vec"), "baddbmm": ("input", "batch1", "batch2"),
    "linear": ("input", "weight", "bias"),
}
_OPERANDS = {"__rmatmul__": ("other", "input"), "addmm": ("mat1", "mat2"), "addmv": ("mat", "vec"),
             "baddbmm": ("batch1", "batch2")}
_CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_T = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
_SDPA = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_PAD = ("input", "pad", "mode", "value")
UNSUPPORTED: frozenset[str] = frozenset({
    "conv3d", "conv_transpose1d", "conv_transpose3d", "conv_tbc",
    "convolution", "_convolution", "bilinear", "embedding", "embedding_bag", "addbmm", "addr",
    "vdot", "inner", "outer", "ger", "tensordot", "chain_matmul", "multi_dot", "vecdot", "kron",
    "multi_head_attention_forward", "lstm", "gru", "rnn_tanh",
    "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "cdist",
    "matrix_power", "linalg_multi_dot", "linalg_vecdot", "cosine_similarity", "pairwise_distance",
})
MACRO_WORK: tuple[type, ...] = (nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose3d, nn.Bilinear,
                                nn.Embedding, nn.EmbeddingBag)
# Modules exported from their weights and arguments when they return (their own ops are not
# recorded): recurrent nets (_Recorder._recurrent) and multi-head attention (_Recorder._attention)
WHOLE_MODULES: tuple[type, ...] = (nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention)
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1, "LSTMCell": 4, "GRUCell": 3, "RNNCell": 1}
# Non-MAC elements (cimco.vector) per hidden unit and step, after the gate products. LSTM: the
# input and hidden gates added (4), sigmoid x3 and tanh for the gates and tanh(c), then f*c + i*g
# and o*tanh(c) (4). GRU: r and z added (2), sigmoid x2 and tanh, r*(W_hn h) and its add (2),
# (1-z)*n + z*h (4). RNN: the add, then tanh (or ReLU).
STEP_OPS = {"LSTM": {"activation": 5, "elementwise": 8}, "GRU": {"activation": 3, "elementwise": 8},
            "RNN_TANH": {"activation": 1, "elementwise": 1}, "RNN_RELU": {"elementwise": 2}}
# Ops known to do no macro work (their in-place variants, ``relu_``, too), passed through. Any
# other op that returns a tensor is refused by name: an op cimco does not know may multiply
# (``torch.cdist``, a new fused kernel), and a refusal beats a silently lost layer.
NO_MACRO_WORK: frozenset[str] = frozenset({
    # shapes, views, indexing, copies, dtypes
    "__get__", "__getitem__", "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "squeeze",
    "unsqueeze", "permute", "transpose", "swapaxes", "swapdims", "t", "T", "mT", "contiguous", "expand",
    "expand_as", "repeat", "repeat_interleave", "tile", "narrow", "select", "index_select", "gather",
    "masked_select", "split", "split_with_sizes", "tensor_split", "chunk", "unbind", "movedim", "moveaxis",
    "roll", "flip", "fliplr", "flipud", "clone", "detach", "to", "type", "type_as", "float", "half", "double",
    "int", "long", "bool", "bfloat16", "cpu", "cuda", "copy", "fill", "zero", "masked_fill", "scatter",
    "index_put", "index_copy", "index_fill", "pad", "constant_pad_nd", "zeros", "ones", "zeros_like",
    "ones_like", "empty", "empty_like", "full", "full_like", "arange", "tensor", "as_tensor", "new_zeros",
    "new_ones", "new_empty", "new_full", "new_tensor", "tril", "triu", "diag_embed", "broadcast_to",
    "broadcast_tensors", "meshgrid", "one_hot", "nan_to_num", "requires_grad", "__reduce_ex__",
    "__deepcopy__", "__setstate__",
    # elementwise arithmetic, comparisons and logic (no sum of products)
    "add", "__add__", "__radd__", "__iadd__", "sub", "__sub__", "__rsub__", "__isub__", "rsub", "mul",
    "__mul__", "__rmul__", "__imul__", "div", "__truediv__", "__rtruediv__", "__itruediv__", "true_divide",
    "floor_divide", "__floordiv__", "remainder", "__mod__", "fmod", "neg", "__neg__", "abs", "sign", "pow",
    "__pow__", "__rpow__", "square", "sqrt", "rsqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
    "reciprocal", "clamp", "clamp_min", "clamp_max", "clip", "where", "maximum", "minimum", "fmax", "fmin",
    "round", "floor", "ceil", "trunc", "frac", "lerp", "addcmul", "addcdiv", "eq", "ne", "lt", "le", "gt",
    "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "logical_and", "logical_or",
    "logical_not", "logical_xor", "__and__", "__or__", "__xor__", "__invert__", "isnan", "isinf", "isfinite",
    "sin", "cos", "erf", "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "hardtanh", "elu", "selu", "celu",
    "gelu", "silu", "mish", "softplus", "hardswish", "hardsigmoid", "prelu", "rrelu", "threshold",
    "glu", "logsigmoid", "softmax", "log_softmax", "softmin", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alpha_dropout", "feature_alpha_dropout",
    # reductions and normalizations (sums, and sums of squares of one tensor: digital work, no stored operand)
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "std", "var", "var_mean", "std_mean",
    "prod", "cumsum", "cumprod", "logsumexp", "norm", "all", "any", "topk", "sort", "argsort", "batch_norm",
    "layer_norm", "group_norm", "instance_norm", "local_response_norm", "normalize", "rms_norm",
    # pooling and resampling
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "lp_pool2d", "interpolate", "upsample", "pixel_shuffle",
    "pixel_unshuffle", "channel_shuffle", "unfold", "fold",
})
# Ops of NO_MACRO_WORK that compute on every element (cimco.vector), by kind: recorded as ``ops``
# of the layer whose output they work on. The rest move data (views, copies, indexing, pads,
# dropout in eval), are batch norm (folded into the conv before it), or are comparisons and
# logic (masks).
VECTOR_OPS: dict[str, str] = {
    **dict.fromkeys(("add", "__add__", "__radd__", "__iadd__", "sub", "__sub__", "__rsub__", "__isub__", "rsub",
                     "mul", "__mul__", "__rmul__", "__imul__", "div", "__truediv__", "__rtruediv__",
                     "__itruediv__", "true_divide", "neg", "__neg__", "abs", "square", "clamp", "clamp_min",
                     "clamp_max", "clip", "where", "maximum", "minimum", "fmax", "fmin", "round", "floor",
                     "ceil", "trunc", "relu", "relu6", "leaky_relu", "hardtanh", "threshold", "prelu", "rrelu",
                     "addcmul", "addcdiv", "lerp", "masked_fill"), "elementwise"),
    **dict.fromkeys(("pow", "__pow__", "__rpow__", "sqrt", "rsqrt", "exp", "exp2", "expm1", "log", "log2",
                     "log10", "log1p", "reciprocal", "sin", "cos", "erf", "sigmoid", "tanh", "elu", "selu",
                     "celu", "gelu", "silu", "mish", "softplus", "hardswish", "hardsigmoid", "glu",
                     "logsigmoid"), "activation"),
    **dict.fromkeys(("softmax", "log_softmax", "softmin", "logsumexp"), "softmax"),
    **dict.fromkeys(("layer_norm", "group_norm", "instance_norm", "local_response_norm", "normalize"),
                    "layer_norm"),
    "rms_norm": "rms_norm",
    **dict.fromkeys(("max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "avg_pool1d",
                     "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
                     "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                     "lp_pool2d"), "pool"),
    **dict.fromkeys(("sum", "mean", "max", "min", "amax", "amin", "std", "var", "var_mean", "std_mean", "prod",
                     "cumsum", "cumprod", "norm"), "reduce"),
}
# Ops whose result is all of their operands (no add, so no residual).
CONCAT: frozenset[str] = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack",
                                    "column_stack", "row_stack", "__setitem__"})
SUPPORTED = ("conv1d/2d, conv_transpose2d, linear, einsum, matmul/mm/bmm/mv/dot/addmm/addmv/baddbmm, "
             "LSTM/GRU/RNN modules and cells, scaled_dot_product_attention and MultiheadAttention (unmasked or "
             "causal)")


@dataclass
class Exported:
    """A workload (as the YAML dict), its masks, and what happened to every op."""

    workload: dict
    masks: dict[str, np.ndarray]
    summary: list[tuple[str, str, str]] = field(default_factory=list)  # (name, op, what)

    def write(self, out: Path) -> list[Path]:
        """``out/NAME.yaml`` and, if there are masks, ``out/NAME.masks.npz``, each atomically."""
        import io

        import yaml

        from cimco.io import write_atomic

        name = self.workload["name"]
        text = "# Written by cimco export; regenerate rather than edit.\n" + yaml.safe_dump(
            self.workload, sort_keys=False, default_flow_style=None, width=100)
        paths = [out / f"{name}.yaml"]
        write_atomic(paths[0], text)
        if self.masks:
            buf = io.BytesIO()
            np.savez_compressed(buf, **self.masks)
            paths.append(out / f"{name}.masks.npz")
            write_atomic(paths[1], buf.getvalue())
        return paths


def example_input(shape: tuple[int, ...], kind: str = "random", seed: int = 0) -> torch.Tensor:
    """An example input: standard normal values from ``seed`` (``random``), or ``zeros``, which
    makes every data-dependent branch take one path and every input density zero."""
    if kind == "zeros":
        return torch.zeros(shape)
    if kind != "random":
        raise ExportError(f"example input {kind!r}: expected 'random' or 'zeros'")
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _matrix(eq: str, a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, int, int, list[int], list[int]]:
    """Sizes (batch, n, k, m) of the two-operand einsum ``eq`` as a batched matrix product
    (a: batch x n x k, b: batch x k x m), and the permutations that order each operand's
    dimensions as (free, summed, others). ValueError saying why if it is not one."""
    lhs, arrow, out = eq.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        raise ValueError(f"{len(terms)} operands")
    shapes = (tuple(a.shape), tuple(b.shape))
    n_ell = [len(s) - len(t) + 3 if "..." in t else 0 for t, s in zip(terms, shapes)]
    ell = "".join(chr(0x3B1 + i) for i in range(max(n_ell)))  # Greek: never an einsum index
    terms = [t.replace("...", ell[len(ell) - e:]) for t, e in zip(terms, n_ell)]
    if not arrow:  # implicit output: the ellipsis, then indices used once, in order
        joined = "".join(terms)
        out = ell + "".join(sorted(c for c in set(joined) - set(ell) if joined.count(c) == 1))
    out = out.replace("...", ell)
    if any(len(set(t)) < len(t) for t in terms):
        raise ValueError("an index repeats within one operand (a diagonal)")
    size: dict[str, int] = {}
    for t, s in zip(terms, shapes):
        for c, d in zip(t, s):
            size[c] = max(size.get(c, 1), d)
    # size-1 dimensions multiply nothing: only dimensions > 1 take part
    ia, ib = ({c for c, d in zip(t, s) if d > 1} for t, s in zip(terms, shapes))
    io = {c for c in out if size.get(c, 1) > 1}
    alone = (ia - ib - io) | (ib - ia - io)
    if alone:
        raise ValueError(f"index {''.join(sorted(alone))} is summed over one operand alone")
    summed = (ia & ib) - io
    if not summed:
        raise ValueError("no index is summed over both operands")

    def order(t: str, free: set[str]) -> list[int]:
        return sorted(range(len(t)), key=lambda i: 0 if t[i] in free else 1 if t[i] in summed else 2)

    p = lambda cs: math.prod(size[c] for c in cs)  # noqa: E731
    return (p(ia & ib & io), p((ia & io) - ib), p(summed), p((ib & io) - ia),
            order(terms[0], ia - ib), order(terms[1], ib - ia))


def _matmul_eq(a: torch.Tensor, b: torch.Tensor) -> str:
    """torch.matmul's broadcasting rules as an einsum equation."""
    ta, tb = ("...nk" if a.dim() > 1 else "k"), ("...km" if b.dim() > 1 else "k")
    return f"{ta},{tb}->..." + ("n" if a.dim() > 1 else "") + ("m" if b.dim() > 1 else "")


def _own_weight(mod: nn.Module, operand: torch.Tensor) -> torch.Tensor:
    """A Conv2d/Linear's mask comes from its own ``weight`` parameter (what pruning zeroed),
    not from a weight its forward computes (quantized modules round small weights to zero)."""
    own = getattr(mod, "weight", None)
    return own if isinstance(own, torch.Tensor) and own.shape == operand.shape else operand


@dataclass
class _Layer:
    layer: dict
    module: nn.Module
    weight: torch.Tensor | None  # the stored operand in torch layout (out, in, ...); None: activations
    what: str
    inputs: frozenset[str]  # producers of the multiplied operands
    residual: set[str] = field(default_factory=set)  # producers added to its output
    ops: Counter[str] = field(default_factory=Counter)  # elements of non-MAC ops on its output, by kind


def _tensors(x) -> list[torch.Tensor]:
    """The tensors in an op's arguments or result (nested in lists, tuples and dicts)."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        x = list(x.values())
    return [t for v in x for t in _tensors(v)] if isinstance(x, (list, tuple)) else []


class _Recorder(TorchFunctionMode):
    """One real run of a model: the layers it computed and the ops it passed through."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.stack: list[tuple[str, nn.Module]] = [("", model)]
        self.owner: dict[int, str] = {}  # storage address -> parameter or buffer name
        for n, t in chain(model.named_parameters(), model.named_buffers()):
            if t.numel():
                self.owner.setdefault(t.untyped_storage().data_ptr(), n)
        self.pads: dict[int, tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, int]]] = {}
        self.count: Counter[str] = Counter()
        self.layers: list[_Layer] = []
        self.index: dict[str, int] = {}  # layer name -> position in self.layers
        # id(tensor) -> (weak reference, names of the layers it came from); the reference
        # tells a live tensor from a freed one whose id was reused
        self.tags: dict[int, tuple[weakref.ref, frozenset[str]]] = {}
        self.summary: list[tuple[str, str, str]] = []
        self.nonzero: Counter[str] = Counter()
        self.numel: Counter[str] = Counter()
        self.inside = 0  # WHOLE_MODULES running: their own ops are not recorded

    def run(self, x: torch.Tensor, name: str) -> None:
        """Run the model on ``x``; a failure names the innermost module that was running."""
        def enter(mod: nn.Module, args, kwargs, *, qual: str) -> None:
            if isinstance(mod, MACRO_WORK):
                raise ExportError(f"module {qual!r} ({type(mod).__name__}) needs macro work but cimco "
                                  f"cannot export it yet; supported: {SUPPORTED}")
            self.stack.append((qual, mod))
            self.inside += isinstance(mod, WHOLE_MODULES)

        def leave(mod: nn.Module, args, kwargs, out) -> None:  # returns None: a value would replace the output
            if isinstance(mod, WHOLE_MODULES):  # (its own torch calls unrecorded, as the module's were)
                if isinstance(mod, nn.MultiheadAttention):
                    self._attention(mod, {**dict(zip(("query", "key", "value"), args)), **kwargs}, out)
                else:
                    self._recurrent(mod, args, out)
                self.inside -= 1
            self.stack.pop()

        scripted = [q or "the model" for q, m in self.model.named_modules() if isinstance(m, torch.jit.ScriptModule)]
        if scripted:  # its ops run inside TorchScript, unseen: they would be lost, not exported
            raise ExportError(f"module {scripted[0]!r} is a TorchScript module (torch.jit.script or trace): "
                              f"cimco sees the ops a model runs in Python, not inside TorchScript; export the "
                              f"model before scripting it")
        handles = []
        for qual, m in self.model.named_modules():
            if qual:
                handles += [m.register_forward_pre_hook(partial(enter, qual=qual), with_kwargs=True),
                            m.register_forward_hook(leave, with_kwargs=True)]
        try:
            with torch.no_grad(), self:
                self.model(x)
        except ExportError:
            raise
        except Exception as e:  # the user's model: report it, do not crash
            where = f" in module {self.stack[-1][0]!r}" if len(self.stack) > 1 else ""
            raise ExportError(f"model {name!r} fails on an example input of shape {tuple(x.shape)}"
                              f"{where}: {type(e).__name__}: {e}") from None
        finally:
            for h in handles:
                h.remove()

    def _where(self) -> str:
        qual, mod = self.stack[-1]
        return f"module {qual!r} ({type(mod).__name__})" if qual else f"the forward of {type(mod).__name__}"

    def _param(self, t: torch.Tensor) -> str | None:
        return self.owner.get(t.untyped_storage().data_ptr()) if t.numel() else None

    def _tags(self, *args) -> frozenset[str]:
        out = frozenset()
        for t in _tensors(args):
            ref, tags = self.tags.get(id(t), (None, frozenset()))
            if ref is not None and ref() is t:
                out |= tags
        return out

    def _tag(self, result, tags: frozenset[str]) -> None:
        for t in _tensors(result):
            self.tags[id(t)] = (weakref.ref(t), tags)

    def _flow(self, op: str, args: tuple, kwargs: dict, out) -> None:
        """Pass the producers of an op with no macro work on to its result (the module docstring)."""
        if op == "__setitem__":
            out = args[0]
        per_operand = [tags for tags in map(self._tags, _tensors((args, kwargs))) if tags]
        if op in CONCAT or len(set(per_operand)) < 2:
            self._tag(out, frozenset().union(*per_operand))
            return
        tags = frozenset().union(*per_operand)
        newest = max(tags, key=self.index.__getitem__)
        self.layers[self.index[newest]].residual |= tags - {newest}
        self._tag(out, frozenset({newest}))

    def _vector(self, kind: str, args: tuple, kwargs: dict, out) -> None:
        """Count an op's elements (the largest of its tensors: what pooling reads, what an add
        writes) as ``ops`` of the newest layer whose output it works on. An op on the network's
        input alone (preprocessing) or on weights alone (fake quantization of a weight) is not
        counted: it is not done per inference on the system."""
        tags = self._tags(args, kwargs)
        if tags:
            newest = max(tags, key=self.index.__getitem__)
            self.layers[self.index[newest]].ops[kind] += max(t.numel() for t in _tensors((args, kwargs, out)))

    def _add(self, base: str, layer: dict, weight: torch.Tensor | None, x: torch.Tensor | None, op: str, what: str,
             reads: tuple | frozenset[str], adds: tuple = ()) -> str:
        """Record a layer that multiplies ``reads`` (the tensors, whose producers are its inputs,
        or those producers' names, for a module exported whole) and adds ``adds`` to its output;
        its name."""
        self.count[base] += 1
        name = base if self.count[base] == 1 else f"{base}#{self.count[base]}"
        layer = {"name": name, **layer}
        self.index[name] = len(self.layers)
        inputs = reads if isinstance(reads, frozenset) else self._tags(*reads)
        self.layers.append(_Layer(layer, self.stack[-1][1], None if weight is None else weight.detach(), what,
                                  inputs, set(self._tags(*adds))))
        self.summary.append((name, op, what))
        if x is not None:  # (a recurrent layer's inner inputs are not seen: no density measured)
            self.nonzero[name] += int(torch.count_nonzero(x))
            self.numel[name] += x.numel()
        return name

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        op = name[:-1] if name.endswith("_") and not name.endswith("__") else name  # in place: its op
        if self.inside:  # inside an LSTM/GRU/RNN or attention: exported from its weights when it returns
            return func(*args, **kwargs)
        if op in UNSUPPORTED:
            raise ExportError(f"{name} in {self._where()} needs macro work but cimco cannot export it yet; "
                              f"supported: {SUPPORTED}")
        out = func(*args, **kwargs)
        known = op in ("conv1d", "conv2d", "conv_transpose2d", "scaled_dot_product_attention", "einsum") \
            or op in PRODUCTS or op in NO_MACRO_WORK or op in CONCAT
        if not known and _tensors(out):
            raise ExportError(f"{name} in {self._where()} is an op cimco does not know, so it cannot tell "
                              f"whether it multiplies and accumulates: it refuses it rather than drop it "
                              f"(supported: {SUPPORTED}; ops known to do no macro work, such as activations, "
                              f"pooling and elementwise arithmetic, pass through)")
        n = len(self.layers)
        if op in ("conv1d", "conv2d"):
            self._conv({**dict(zip(_CONV, args)), **kwargs}, out, op)
        elif op == "conv_transpose2d":
            self._transposed({**dict(zip(_CONV_T, args)), **kwargs}, out)
        elif op == "scaled_dot_product_attention":
            a = {**dict(zip(_SDPA, args)), **kwargs}
            causal = self._causal(op, a.get("attn_mask"), a.get("is_causal"))
            q, k, v = a["query"], a["key"], a["value"]
            heads = math.prod(int(n) for n in q.shape[:-2])
            self._scores(f"{self.stack[-1][0]}.{op}" if self.stack[-1][0] else op, q.shape[-2], k.shape[-2],
                         q.shape[-1], v.shape[-1], heads, self._tags(q, k), self._tags(v), q, causal)
        elif op in PRODUCTS:
            a = {**dict(zip(PRODUCTS[op], args)), **kwargs}
            keys = _OPERANDS.get(op, PRODUCTS[op][:2])
            x, w = (a[k] for k in keys)
            eq = "...k,mk->...m" if op == "linear" else _matmul_eq(x, w)
            self._product(op, eq, x, w, tuple(a.get(k) for k in PRODUCTS[op] if k not in keys))
        elif op == "einsum":
            operands = args[1:]
            if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
                operands = tuple(operands[0])
            if len(operands) != 2:
                raise ExportError(f"einsum {args[0]!r} in {self._where()} has {len(operands)} operands; "
                                  f"cimco exports an einsum only when it is a (batched) matrix product")
            self._product(op, args[0], *operands)
        elif isinstance(out, torch.Tensor) and op != "__get__":
            if op == "pad":
                self._pad({**dict(zip(_PAD, args)), **kwargs}, out)
            qual = self.stack[-1][0]
            self.summary.append((f"{qual}.{name}" if qual else name, name, "passed through (no macro work)"))
            if op in VECTOR_OPS:
                self._vector(VECTOR_OPS[op], args, kwargs, out)
        if len(self.layers) > n:  # a layer ran: its result is its own
            self._tag(out, frozenset({self.layers[-1].layer["name"]}))
        else:
            self._flow(op, args, kwargs, out)
        return out

    def _pad(self, a: dict, out: torch.Tensor) -> None:
        """Remember a zero pad of height and width, to fold into the conv that consumes it."""
        pad = list(a["pad"])
        if (a.get("mode", "constant") == "constant" and not a.get("value") and len(pad) >= 2
                and min(pad[:4]) >= 0 and not any(pad[4:])):
            left, right, top, bottom = (pad + [0, 0])[:4]
            self.pads[id(out)] = (out, a["input"], (top, bottom, left, right))

    def _conv(self, a: dict, out: torch.Tensor, op: str = "conv2d") -> None:
        """A conv2d, or a conv1d as a conv2d of height 1 (its length is the width)."""
        x, w = a["input"], a["weight"]
        flat = op == "conv1d"

        def hw(v, height: int = 1) -> tuple[int, int]:  # a conv1d's value is the width's
            return (height, int(v if isinstance(v, int) else v[0])) if flat else _pair(v)

        (kh, kw), (dh, dw) = ((1, w.shape[-1]) if flat else w.shape[-2:]), hw(a.get("dilation", 1))
        padding = a.get("padding", 0)
        if padding == "same":  # torch pads the extra row/column at the bottom/right
            th, tw = dh * (kh - 1), dw * (kw - 1)
            sides = [th // 2, th - th // 2, tw // 2, tw - tw // 2]
        else:
            ph, pw = (0, 0) if padding == "valid" else hw(padding, 0)
            sides = [ph, ph, pw, pw]
        what = "exported"
        while id(x) in self.pads and self.pads[id(x)][0] is x:  # fold zero pads into the conv
            _, x, extra = self.pads[id(x)]
            sides = [s + e for s, e in zip(sides, extra)]
            what = "exported (zero F.pad folded into its padding)"
        qual, mod = self.stack[-1]
        spatial = 1 if flat else 2
        layer = {"type": "conv", "in_channels": int(x.shape[-spatial - 1]), "out_channels": int(w.shape[0]),
                 "input_hw": [1 if flat else int(x.shape[-2]), int(x.shape[-1])], "kernel": [int(kh), int(kw)],
                 "stride": list(hw(a.get("stride", 1))), "padding": sides, "dilation": [int(dh), int(dw)],
                 "groups": int(a.get("groups", 1)), "tokens": int(x.shape[0]) if x.dim() == spatial + 2 else 1}
        h, wd, (sh, sw) = layer["input_hw"][0], layer["input_hw"][1], layer["stride"]
        out_hw = ((h + sides[0] + sides[1] - dh * (kh - 1) - 1) // sh + 1,
                  (wd + sides[2] + sides[3] - dw * (kw - 1) - 1) // sw + 1)
        if out_hw != ((1,) if flat else ()) + tuple(out.shape[-spatial:]):  # never export a wrong convention
            raise ExportError(f"{op} in {self._where()}: cimco computes a {out_hw} output, torch gave "
                              f"{tuple(out.shape[-spatial:])}; please report this model")
        flow = {"reads": (x, w), "adds": (a.get("bias"),)}
        as_2d = (lambda t: t.unsqueeze(-2)) if flat else (lambda t: t)  # the mask: (out, in, 1, k)
        if isinstance(mod, nn.Conv1d | nn.Conv2d):
            self._add(qual, layer, as_2d(_own_weight(mod, w)), x, op, what, **flow)
        elif self._param(w) is not None:
            self._add(self._param(w).removesuffix(".weight"), layer, as_2d(w), x, op, what, **flow)
        else:
            self._add(f"{qual}.{op}" if qual else op, layer, None, x, op, what + " (computed weight: no mask)", **flow)

    def _transposed(self, a: dict, out: torch.Tensor) -> None:
        """A transposed conv as the product it is: each input position times the weight gives
        kh x kw x out_channels partial outputs (a linear layer: in_channels -> that, one token a
        position), which are added into the output where they overlap (no macro work)."""
        x, w = a["input"], a["weight"]  # w: (in, out / groups, kh, kw)
        if int(a.get("groups", 1)) != 1:
            raise ExportError(f"conv_transpose2d in {self._where()} has groups={a['groups']}; cimco exports a "
                              f"transposed conv with groups=1 only")
        cin, cout, kh, kw = (int(v) for v in w.shape)
        positions = int(x.shape[-1] * x.shape[-2]) * (int(x.shape[0]) if x.dim() == 4 else 1)
        layer = {"type": "linear", "in_channels": cin, "out_channels": cout * kh * kw, "tokens": positions}
        qual, mod = self.stack[-1]
        weight = (_own_weight(mod, w) if isinstance(mod, nn.ConvTranspose2d) else w).permute(1, 2, 3, 0)
        name = qual if isinstance(mod, nn.ConvTranspose2d) else (self._param(w) or f"{qual}.conv_transpose2d")
        self._add(name.removesuffix(".weight"), layer, weight.reshape(cout * kh * kw, cin), x, "conv_transpose2d",
                  "exported (as the product of each input position and the weight; overlaps added)",
                  (x, w), (a.get("bias"),))

    def _causal(self, op: str, mask, causal, padding=None) -> bool:
        """Whether the attention is causal (torch's top-left mask: query i attends keys 0..i); any
        other mask is refused (cimco would count products it drops)."""
        if (mask is not None and not causal) or padding is not None:
            raise ExportError(f"{op} in {self._where()} has an attention mask other than a causal one; cimco "
                              f"cannot count only the products such a mask keeps, and would overcount them")
        return bool(causal)

    def _scores(self, base: str, n_q: int, n_k: int, e: int, ev: int, heads: int, qk_from: frozenset[str],
                v_from: frozenset[str], x: torch.Tensor | None, causal: bool = False) -> list[str]:
        """Attention's two matmuls of activations (``dynamic``), each head loading its own keys
        and values: the scores (queries x keys^T: n_q tokens, e -> n_k) and the weighted values
        (scores x V: n_q tokens, n_k -> ev), ``repeat`` = heads (x batch). A causal attention is
        the dense blocks that exactly cover the products its mask keeps (:func:`_causal_blocks`).
        Returns the names of the value layers."""
        n_q, n_k, e, ev = int(n_q), int(n_k), int(e), int(ev)
        blocks = _causal_blocks(n_q, n_k) if causal else [(n_q, n_k, 1)]
        tag = (lambda q, k: f".{q}x{k}") if causal else (lambda q, k: "")
        scores = [self._add(f"{base}.scores{tag(q, k)}", {"type": "linear", "in_channels": e, "out_channels": k,
                            "tokens": q, "repeat": heads * times, "dynamic": True}, None, x if not i else None,
                            "attention", "exported (matmul of activations: Q K^T)", qk_from)
                  for i, (q, k, times) in enumerate(blocks)]
        for name, (q, k, times) in zip(scores, blocks):  # the scaled scores' softmax
            self.layers[self.index[name]].ops["softmax"] += q * k * heads * times
        if causal or n_k > n_q:  # a decoder: the queries' keys and values are kept for the tokens after
            self.layers[self.index[scores[0]]].layer["kv_cache_writes"] = heads * n_q * (e + ev)
        values = [self._add(f"{base}.values{tag(q, k)}", {"type": "linear", "in_channels": k, "out_channels": ev,
                            "tokens": q, "repeat": heads * times, "dynamic": True}, None, None, "attention",
                            "exported (matmul of activations: softmax(Q K^T) V)", v_from | set(scores))
                  for q, k, times in blocks]
        for i, name in enumerate(values):  # the blocks' partial sums are added, then requantized once
            self.layers[self.index[name]].ops["requantize"] = 0 if i else n_q * ev * heads
        return values

    def _attention(self, mod: nn.MultiheadAttention, a: dict, out) -> None:
        """``nn.MultiheadAttention`` that just ran, from its weights and arguments: the query, key
        and value projections (one ``in_proj_weight`` split in three, or three weights), the
        two matmuls of each head (:meth:`_scores`), the output projection."""
        causal = self._causal("multi-head attention", a.get("attn_mask"), a.get("is_causal"),
                              a.get("key_padding_mask"))
        q, k, v = a["query"], a["key"], a["value"]
        batched = q.dim() == 3
        seq = 1 if (mod.batch_first and batched) else 0
        n_q, n_k = int(q.shape[seq]), int(k.shape[seq])
        batch = int(q.shape[1 - seq]) if batched else 1
        e, heads, qual = mod.embed_dim, mod.num_heads, self.stack[-1][0]
        names = []
        for i, (t, n, dim) in enumerate(((q, n_q, e), (k, n_k, mod.kdim), (v, n_k, mod.vdim))):
            w = mod.in_proj_weight[i * e:(i + 1) * e] if mod._qkv_same_embed_dim else \
                getattr(mod, ("q", "k", "v")[i] + "_proj_weight")
            names.append(self._add(f"{qual}.{'qkv'[i]}_proj", {"type": "linear", "in_channels": int(dim),
                                   "out_channels": e, "tokens": n * batch}, w, t, "multi_head_attention",
                                   "exported (projection)", (t,)))
        values = self._scores(qual, n_q, n_k, e // heads, e // heads, heads * batch, frozenset(names[:2]),
                              frozenset(names[2:]), None, causal)
        last = self._add(f"{qual}.out_proj", {"type": "linear", "in_channels": e, "out_channels": e,
                                              "tokens": n_q * batch}, mod.out_proj.weight, None,
                         "multi_head_attention", "exported (output projection)", frozenset(values))
        self._tag(out, frozenset({last}))

    def _recurrent(self, mod: nn.Module, args: tuple, out) -> None:
        """An LSTM/GRU/RNN (or cell) that just ran, from its weights: for each layer and direction,
        the input's gate products over all time steps at once (``weight_ih``: tokens = steps),
        then the hidden state's, one step after another with the same weights (``weight_hh``:
        ``repeat`` = steps); an LSTM's projection (``weight_hr``) likewise."""
        qual = self.stack[-1][0]
        kind = getattr(mod, "mode", type(mod).__name__)
        gates, x = GATES[kind], args[0]
        cell_kind = kind.removesuffix("Cell")
        step_ops = STEP_OPS[f"RNN_{mod.nonlinearity.upper()}" if cell_kind == "RNN" else cell_kind]
        cell = isinstance(mod, nn.RNNCellBase)
        if cell:  # one step: (batch, input) or (input)
            steps, batch = 1, (int(x.shape[0]) if x.dim() == 2 else 1)
            layers, dirs, hidden, proj = 1, 1, mod.hidden_size, 0
        else:
            if isinstance(x, nn.utils.rnn.PackedSequence):
                raise ExportError(f"module {qual!r} ({type(mod).__name__}) ran on a PackedSequence; cimco "
                                  f"exports a recurrent module run on a padded tensor")
            t_axis = 1 if (mod.batch_first and x.dim() == 3) else 0
            steps, batch = int(x.shape[t_axis]), (int(x.shape[1 - t_axis]) if x.dim() == 3 else 1)
            layers, dirs = mod.num_layers, 2 if mod.bidirectional else 1
            hidden, proj = mod.hidden_size, getattr(mod, "proj_size", 0)
        produced: list[str] = []
        before = self._tags(x)
        for k in range(layers):
            made = []
            for d in range(dirs):
                suffix = "" if cell else f"_l{k}" + ("_reverse" if d else "")
                h_size = proj or hidden
                ih, hh = getattr(mod, f"weight_ih{suffix}"), getattr(mod, f"weight_hh{suffix}")
                last = self._add(f"{qual}.weight_ih{suffix}", {"type": "linear", "in_channels": int(ih.shape[1]),
                                 "out_channels": gates * hidden, "tokens": steps * batch}, ih,
                                 x if k == 0 else None, kind, "exported (input gates, all steps)",
                                 frozenset(before if k == 0 else produced))
                last = self._add(f"{qual}.weight_hh{suffix}", {"type": "linear", "in_channels": h_size,
                                 "out_channels": gates * hidden, "tokens": batch, "repeat": steps}, hh, None,
                                 kind, "exported (hidden-state gates, step by step)", frozenset({last}))
                for what, n in step_ops.items():  # the gates' activations and the state update
                    self.layers[self.index[last]].ops[what] += n * hidden * steps * batch
                if proj:
                    hr = getattr(mod, f"weight_hr{suffix}")
                    last = self._add(f"{qual}.weight_hr{suffix}", {"type": "linear", "in_channels": hidden,
                                     "out_channels": proj, "tokens": batch, "repeat": steps}, hr, None, kind,
                                     "exported (projection, step by step)", frozenset({last}))
                made.append(last)
            produced = made
        self._tag(out, frozenset(produced))

    def _product(self, op: str, eq: str, a: torch.Tensor, b: torch.Tensor, adds: tuple = ()) -> None:
        try:
            batch, n, k, m, order_a, order_b = _matrix(eq, a, b)
        except ValueError as e:
            raise ExportError(f"{op} {eq!r} in {self._where()} is not a (batched) matrix product ({e}); "
                              f"cimco cannot export it") from None
        qual, mod = self.stack[-1]
        stored_b = (op == "linear" and isinstance(mod, nn.Linear)) or self._param(b) is not None
        if stored_b or self._param(a) is not None:  # one operand is a weight
            w, x, out_ch, tokens, order = (b, a, m, n, order_b) if stored_b else (a, b, n, m, order_a)
            pname = self._param(w)
            if batch > 1:
                raise ExportError(f"{op} {eq!r} in {self._where()}: the weight operand {pname or '(computed)'} "
                                  f"holds {batch} weight matrices (one per batch entry); cimco cannot export it")
            base = qual if op == "linear" and isinstance(mod, nn.Linear) else pname.removesuffix(".weight")
            layer = {"type": "linear", "in_channels": k, "out_channels": out_ch, "tokens": tokens}
            weight = w.permute(order).reshape(out_ch, k)
            if op == "linear" and isinstance(mod, nn.Linear):
                weight = _own_weight(mod, weight)
            self._add(base, layer, weight, x, op, "exported", (a, b), adds)
        else:
            layer = {"type": "linear", "in_channels": k, "out_channels": m, "tokens": n, "repeat": batch,
                     "dynamic": True}
            self._add(f"{qual}.{op}" if qual else op, layer, None, a, op, "exported (matmul of activations)",
                      (a, b), adds)


_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "tokens": 1, "repeat": 1, "dynamic": False,
             "kv_cache_writes": 0}


def _causal_blocks(n_q: int, n_k: int) -> list[tuple[int, int, int]]:
    """(queries, keys, how many) dense blocks that exactly cover the products a causal mask keeps
    (query i attends keys 0..i): queries beyond the keys see them all; the triangle of the
    first min(n_q, n_k) splits into the later half's queries times the earlier half's keys and
    two triangles, down to single products. About 2 log2(n) shapes: 128 tokens, 8 blocks."""
    blocks: Counter[tuple[int, int]] = Counter()
    if n_q > n_k:
        blocks[n_q - n_k, n_k] += 1
    sizes = Counter({min(n_q, n_k): 1})
    while sizes:
        n, times = sizes.popitem()
        if n == 1:
            blocks[1, 1] += times
            continue
        a = (n + 1) // 2
        blocks[n - a, a] += times
        sizes[a] += times
        sizes[n - a] += times
    return sorted(((q, k, c) for (q, k), c in blocks.items()), reverse=True)


def _outputs(layer: dict) -> int:
    """Output elements of an exported layer per inference (all its runs)."""
    x = Layer.model_validate({k: v for k, v in layer.items() if k not in ("inputs", "residual", "ops")})
    return x.output_elements


def _compact(layer: dict, default_bits: dict) -> dict:
    """Readable YAML: equal sides and pairs as one number, defaults and default bits left out."""
    out = {}
    for k, v in layer.items():
        if k == "padding" and v[0] == v[1] and v[2] == v[3]:
            v = [v[0], v[2]]
        if k in ("kernel", "stride", "padding", "dilation") and len(v) == 2 and v[0] == v[1]:
            v = v[0]
        if _DEFAULTS.get(k) == v or (k == "bits" and v == default_bits):
            continue
        out[k] = v
    return out


def _validated(workload: dict) -> None:
    """Raise ExportError with every problem if ``cimco specs validate`` would reject it."""
    try:
        problems = WorkloadSpec.model_validate(workload).check(f"export of {workload['name']!r}")
    except ValidationError as e:
        problems = [str(e)]
    if problems:
        raise ExportError("the exported workload would not validate: " + "; ".join(map(str, problems)))


def export(model: nn.Module, example_input: torch.Tensor, name: str, source: str = "torch export",
           bits: Bits | dict[str, Bits] | None = None, calibration: Iterable[torch.Tensor] | None = None,
           mask_file: str | None = None, masks: bool = True, tokens: int = 1) -> Exported:
    """Export ``model`` run on ``example_input`` (batch first, batch 1) to a cimco workload.

    ``bits``: one :class:`Bits` for all layers, or a mapping from layer name (and
    ``"default"``) to Bits; a module's own ``cimco_bits`` attribute (set by cimco's quantized
    modules) wins. ``calibration``: batches (or a DataLoader) to measure input densities.
    ``masks``: reference the weights' exact zeros from ``mask_file`` (an ``.npz``); turn it
    off for shapes-only models, whose random init may hold an exact zero by chance.
    ``tokens``: how many an inference processes (a prompt's length), for energy per token.
    """
    if example_input.dim() == 0 or example_input.shape[0] != 1:
        raise ExportError(f"the example input has shape {tuple(example_input.shape)}: a workload is one "
                          f"inference, so give batch 1 (N inferences cost N times one)")
    model = model.eval()
    rec = _Recorder(model)
    rec.run(example_input, name)
    if not rec.layers:
        raise ExportError(f"model {name!r} has no layer that runs on the macro")
    default = bits if isinstance(bits, Bits) else (bits or {}).get("default", Bits())
    weight_masks = {}
    for i, x in enumerate(rec.layers):
        inputs = sorted(x.inputs, key=rec.index.__getitem__)
        if inputs != ([rec.layers[i - 1].layer["name"]] if i else []):  # not a chain
            x.layer["inputs"] = inputs
        if x.residual:
            x.layer["residual"] = sorted(x.residual, key=rec.index.__getitem__)
        if "requantize" not in x.ops:  # each accumulated output to the layer's output bits
            x.ops["requantize"] = _outputs(x.layer)
        x.layer["ops"] = {k: v for k, v in sorted(x.ops.items()) if v}
        per_layer = bits.get(x.layer["name"]) if isinstance(bits, dict) else None
        x.layer["bits"] = (getattr(x.module, "cimco_bits", None) or per_layer or default).model_dump()
        if masks and x.weight is not None and bool((x.weight == 0).any()):
            weight_masks[x.layer["name"]] = (x.weight != 0).cpu().numpy()
            x.layer["sparsity"] = {"mask": mask_file or f"{name}.masks.npz"}
    layers = [x.layer for x in rec.layers]
    if calibration is not None:
        nonzero, numel = Counter(), Counter()
        for batch in calibration:
            cal = _Recorder(model)
            cal.run(inputs_of(batch), name)
            nonzero.update(cal.nonzero)
            numel.update(cal.numel)
        for x in layers:
            if numel[x["name"]]:
                x["input_density"] = max(round(nonzero[x["name"]] / numel[x["name"]], 6), 1e-6)
    workload = {"kind": "workload", "name": name, "source": f"{source} (cimco export)",
                "bits": default.model_dump(), **({"tokens": tokens} if tokens != 1 else {}),
                "layers": [_compact(x, default.model_dump()) for x in layers]}
    _validated(workload)
    return Exported(workload, weight_masks, rec.summary)
