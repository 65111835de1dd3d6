"""Work that is not a multiply-accumulate: activations, residual adds, pooling, softmax,
normalizations and requantization, counted per element and run on the system's ``vector_unit``.

A workload layer's ``ops`` gives, per kind, the elements (per inference) of such ops applied
to its output before its consumers read it. ``cimco export`` records them from the ops the
model ran, at the largest of the op's tensors (pooling counts the elements it reads, an add
the ones it writes), and every output element's requantization to the layer's output bits.
Each kind costs :data:`OPS` basic operations (an add, multiply or compare) per element,
written from the formula it computes; a system's ``vector_unit`` gives the energy of one such
operation and how many it does per second. The unit works on a layer's outputs as they are
produced, so its time overlaps the layer's (a layer takes its slowest part's time, as every
part does). Per-row work (one reciprocal or square root per softmax or normalization row) is
not counted. Batch norm is not counted: inference folds it into the preceding conv's weights
and bias. Without a ``vector_unit`` the elements are reported and a warning says they are not
priced.
"""

from __future__ import annotations

# Basic operations per element of each kind, and the formula they come from.
OPS: dict[str, tuple[int, str]] = {
    "elementwise": (1, "one add, multiply, compare or select: ReLU, clamp, a residual add, a scale"),
    "activation": (4, "a transcendental function (sigmoid, tanh, GELU, SiLU, exp, sqrt) as a piecewise-"
                      "quadratic approximation in Horner form: 2 multiplies and 2 adds (assumed)"),
    "softmax": (8, "max (a compare), subtract, exp (4, as an activation), sum (an add), multiply by the "
                   "row's reciprocal"),
    "layer_norm": (7, "mean (an add), subtract, square, variance (an add), multiply by the row's inverse "
                      "square root, scale, shift"),
    "rms_norm": (4, "square, sum (an add), multiply by the row's inverse square root, scale"),
    "pool": (1, "one compare (max) or add (average) per element read"),
    "requantize": (3, "a layer's accumulated output to its output bits: multiply by the scale, round (a shift), "
                      "clamp"),
    "reduce": (1, "one add or compare per element read: sum, mean, max"),
}


def operations(ops: dict[str, int]) -> int:
    """Basic operations of ``ops`` (elements by kind)."""
    return sum(OPS[kind][0] * n for kind, n in ops.items())
