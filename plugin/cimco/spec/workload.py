"""Workload spec: an ordered list of conv / linear layers with per-tensor bits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cimco.errors import Problem
from cimco.spec._base import Bounded, Number, Strict
from cimco.vector import OPS


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


# Masks are held as boolean arrays (and n:m scores as floats): bound them to what fits.
MAX_MASK_WEIGHTS = 2**27


class Bits(Strict):
    input: Bounded(1, 32) = Field(8, description="bits of each input (activation)")
    weight: Bounded(1, 32) = Field(8, description="bits of each weight")
    output: Bounded(1, 32) = Field(8, description="bits of each output kept between layers")


VectorOp = Literal[tuple(OPS)]  # kinds of non-MAC work (cimco.vector)

# Pruning patterns cimco can generate (cimco.sparse.patterns); one definition of the names.
Pattern = Literal["unstructured", "row_block", "kernel_group", "crossbar", "channel", "n:m"]


class Sparsity(Strict):
    """How a layer's weights are pruned: a real mask, or a seeded pattern at a density.

    ``mask`` names an ``.npz`` file beside the workload holding an array named after the
    layer (torch weight shape; non-zero = kept). Otherwise ``pattern`` and ``density``
    generate one for the target macro (see :mod:`cimco.sparse.patterns`); ``n:m`` takes
    ``n`` and ``m`` instead of a density.
    """

    mask: str | None = Field(default=None, min_length=1, max_length=1000,
                             description="an .npz file beside the workload holding the layer's mask")
    pattern: Pattern | None = Field(None, description="a pattern cimco generates (with density, or n and m)")
    density: Number(ge=0.0, le=1.0) | None = Field(None, description="share of weights kept")
    n: Bounded(1, 1024) | None = Field(None, description="n:m pattern: weights kept in each group of m")
    m: Bounded(1, 1024) | None = Field(None, description="n:m pattern: group size")
    seed: Bounded(0, 2**63 - 1) = Field(0, description="seed of the generated pattern")

    def check(self, file: str, path: str, layer: str) -> list[Problem]:
        out = []
        where = f"layer {layer!r}: "
        if (self.mask is None) == (self.pattern is None):
            out.append(Problem(file, path, where + "give exactly one of `mask` or `pattern`"))
        if self.pattern == "n:m":
            if self.n is None or self.m is None:
                out.append(Problem(file, path, where + "pattern n:m needs `n` and `m`"))
            elif self.n > self.m:
                out.append(Problem(file, f"{path}.n", where + f"N:M needs n <= m, got {self.n}:{self.m}"))
        elif self.pattern is not None and self.density is None:
            out.append(Problem(file, f"{path}.density", where + f"pattern {self.pattern} needs a density"))
        return out


class Layer(Strict):
    """A conv (``type: conv``) or fully-connected (``type: linear``) layer.

    Linear layers are convs with a 1x1 kernel on a 1x1 input; ``tokens`` > 1 models a
    matmul over several rows (batch of vectors).
    """

    name: str = Field(min_length=1, max_length=200, description="unique within the workload")
    type: Literal["conv", "linear"] = Field(description="`conv` or `linear` (a linear is a 1x1 conv on a 1x1 input)")
    in_channels: Bounded(1, 2**20) = Field(description="input channels (a linear: input features)")
    out_channels: Bounded(1, 2**20) = Field(description="output channels (a linear: output features)")
    input_hw: tuple[Bounded(1, 2**16), Bounded(1, 2**16)] = Field((1, 1), description="input height, width")
    kernel: Bounded(1, 2**10) | tuple[Bounded(1, 2**10), Bounded(1, 2**10)] = Field(1, description="n or [h, w]")
    stride: Bounded(1, 2**10) | tuple[Bounded(1, 2**10), Bounded(1, 2**10)] = Field(1, description="n or [h, w]")
    padding: Bounded(0, 2**10) | tuple[Bounded(0, 2**10), ...] = Field(
        0, description="n, [h, w] or [top, bottom, left, right]")
    dilation: Bounded(1, 2**10) | tuple[Bounded(1, 2**10), Bounded(1, 2**10)] = Field(1, description="n or [h, w]")
    groups: Bounded(1, 2**20) = Field(1, description="grouped conv (in_channels for depthwise)")
    tokens: Bounded(1, 2**24) = Field(1, description="rows a linear layer multiplies (a matmul over tokens)")
    bits: Bits | None = Field(None, description="this layer's precision (default: the workload's)")
    repeat: Bounded(1, 2**20) = Field(1, description="times the layer runs per inference")
    sparsity: Sparsity | None = Field(None, description="how its weights are pruned")
    # Both operands are activations (attention's Q K^T, a matmul of activations): the stored
    # operand is written into the macros at every run, so it is never resident.
    dynamic: bool = Field(False, description="both operands are activations (a matmul of activations): its "
                          "stored operand is written into the macros at every run, never resident")
    ops: dict[VectorOp, Bounded(0, 2**50)] = Field(
        default={}, description="elements per inference of non-MAC ops on its output (activations, adds, "
        "pooling, softmax, norms), by kind (cimco.vector.OPS), run on the system's vector_unit")
    kv_cache_writes: Bounded(0, 2**50) = Field(0, description="elements of keys and values its attention "
                                               "appends to a KV cache per inference (written to DRAM)")
    # Fraction of non-zero inputs (activations) entering the layer; zeros are gated.
    input_density: Number(gt=0.0, le=1.0) = Field(1.0, description="share of non-zero inputs (zeros are gated)")
    # The dataflow graph (for on-chip residency of activations). ``inputs``: earlier layers
    # whose outputs make this layer's input through ops with no macro work (activations,
    # pooling, adds, concatenation); [] is the network's input; omitted means the previous
    # layer (a chain). ``residual``: earlier layers whose outputs are added to this layer's
    # output (skip connections), so they must be kept until this layer has run.
    inputs: list[str] | None = Field(default=None, max_length=64,
                                     description="earlier layers whose outputs make this layer's input "
                                     "(default: the previous layer; []: the network's input)")
    residual: list[str] = Field(default=[], max_length=64,
                                description="earlier layers whose outputs are added to this layer's output")

    def output_hw(self) -> tuple[int, int]:
        (h, w), (r, s) = self.input_hw, _pair(self.kernel)
        (sh, sw), (dh, dw), (top, bottom, left, right) = _pair(self.stride), _pair(self.dilation), self.pads
        return ((h + top + bottom - dh * (r - 1) - 1) // sh + 1, (w + left + right - dw * (s - 1) - 1) // sw + 1)

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """Zero padding per side (top, bottom, left, right): asymmetric padding (an even kernel
        with ``padding='same'``, an explicit ``F.pad``) needs the four sides."""
        p = self.padding
        if isinstance(p, int):
            return (p, p, p, p)
        return (p[0], p[0], p[1], p[1]) if len(p) == 2 else (p[0], p[1], p[2], p[3])

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return _pair(self.kernel)

    @property
    def stride_hw(self) -> tuple[int, int]:
        return _pair(self.stride)

    @property
    def read_stride_hw(self) -> tuple[int, int]:
        """Stride over the inputs the layer reads: 1 along a kernel one wide. A strided 1x1 conv
        reads every k-th input only, while AccelForge and Timeloop size an input tile by the box
        its reads span; indexed at stride 1 on the inputs it reads it has the same MACs and
        outputs and the input traffic of the inputs used."""
        (r, s), (sh, sw) = self.kernel_hw, self.stride_hw
        return (1 if r == 1 else sh), (1 if s == 1 else sw)

    @property
    def dilation_hw(self) -> tuple[int, int]:
        return _pair(self.dilation)

    @property
    def reduction(self) -> int:
        """Weights per output channel: C*R*S/groups (the word-line dimension)."""
        r, s = self.kernel_hw
        return self.in_channels // self.groups * r * s

    @property
    def macs(self) -> int:
        p, q = self.output_hw()
        return self.tokens * p * q * self.out_channels * self.reduction

    def check(self, file: str, path: str) -> list[Problem]:
        out = []
        if self.type == "linear" and (self.input_hw != (1, 1) or self.kernel_hw != (1, 1)):
            out.append(Problem(file, path, "a linear layer takes no input_hw or kernel"))
        for what, n in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if n % self.groups:
                out.append(Problem(file, f"{path}.{what}",
                                   f"expected a multiple of groups={self.groups}, got {n}"))
        if not isinstance(self.padding, int) and len(self.padding) not in (2, 4):
            out.append(Problem(file, f"{path}.padding", f"expected n, [h, w] or [top, bottom, left, right], "
                               f"got {len(self.padding)} values {list(self.padding)}"))
        elif min(self.output_hw()) < 1:
            p, q = self.output_hw()
            out.append(Problem(file, f"{path}.kernel",
                               f"kernel {self.kernel_hw} (dilation {self.dilation_hw}) does not fit "
                               f"the padded input {self.input_hw} + padding {self.padding}; "
                               f"output would be {p}x{q}"))
        if self.sparsity is not None:
            out += self.sparsity.check(file, f"{path}.sparsity", self.name)
            weights = self.out_channels * self.reduction
            if weights > MAX_MASK_WEIGHTS:
                out.append(Problem(file, f"{path}.sparsity", f"layer {self.name!r}: a mask of {weights:,} "
                                   f"weights is above the {MAX_MASK_WEIGHTS:,} cimco holds in memory"))
            if self.sparsity.m is not None and self.sparsity.m > self.reduction:
                out.append(Problem(file, f"{path}.sparsity.m", f"layer {self.name!r}: expected m at most "
                                   f"the layer's reduction C*R*S/groups={self.reduction}, got {self.sparsity.m}"))
        return out

    @property
    def positions(self) -> int:
        """Output positions (input vectors) per run: P*Q for conv, tokens for linear."""
        p, q = self.output_hw()
        return p * q * self.tokens

    @property
    def input_elements(self) -> int:
        """Elements of its input tensor per inference (all runs)."""
        h, w = self.input_hw
        return h * w * self.in_channels * self.tokens * self.repeat

    @property
    def output_elements(self) -> int:
        """Elements of its output tensor per inference (all runs)."""
        return self.positions * self.out_channels * self.repeat


class WorkloadSpec(Strict):
    """A network as the layers the macros compute (``cimco export`` writes one from a torch
    model); layers run in order, each taking the previous one's output unless ``inputs`` says."""

    kind: Literal["workload"] = "workload"
    name: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=2000, description="where the network comes from")
    bits: Bits = Field(Bits(), description="every layer's precision unless the layer gives its own")
    tokens: Bounded(1, 2**24) = Field(1, description="tokens an inference processes (a prompt's length; 1 for "
                                      "a decoded token or an image): energy per token is energy over it")
    layers: list[Layer] = Field(min_length=1, description="the layers, in execution order")

    def layer_bits(self, layer: Layer) -> Bits:
        return layer.bits or self.bits

    def check(self, file: str) -> list[Problem]:
        out = []
        seen: dict[str, int] = {}  # name -> index of its first layer: one lookup per reference
        for i, layer in enumerate(self.layers):
            out += layer.check(file, f"layers[{i}]")
            for what in ("inputs", "residual"):
                for j, ref in enumerate(getattr(layer, what) or []):
                    if ref not in seen:
                        out.append(Problem(file, f"layers[{i}].{what}[{j}]", f"layer {layer.name!r}: expected "
                                           f"the name of an earlier layer, got {ref!r}"))
            if layer.name in seen:
                out.append(Problem(file, f"layers[{i}].name", f"duplicate layer name {layer.name!r} (first "
                                   f"at layers[{seen[layer.name]}])"))
            seen.setdefault(layer.name, i)
        return out

    def producers(self, i: int) -> list[str]:
        """Names of the layers whose outputs make layer ``i``'s input ([] = network input)."""
        layer = self.layers[i]
        if layer.inputs is not None:
            return list(layer.inputs)
        return [self.layers[i - 1].name] if i else []

    @property
    def macs(self) -> int:
        return sum(layer.macs * layer.repeat for layer in self.layers)

    @property
    def ops(self) -> dict[str, int]:
        """Elements per inference of the layers' non-MAC ops, by kind (:mod:`cimco.vector`)."""
        out: dict[str, int] = {}
        for layer in self.layers:
            for kind, n in layer.ops.items():
                out[kind] = out.get(kind, 0) + n
        return dict(sorted(out.items()))
