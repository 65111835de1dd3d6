"""The pipeline's sparsity step: a layer's sparsity applied to a backend's result for the dense layer.

No backend has a sparsity model. cimco maps the dense layer (so a pruned layer shares the
dense layer's mapping and cache entry) and corrects what it counts, using the exact block
occupancy of the real mask over that of a dense mask of the same layer:

- the macro's own actions: ADC conversions and shift-adds by ``conversions``, word-line
  drives by ``gathered_inputs``, cell MACs by ``executed_macs``; inputs that are zero skip
  word-line drives and cell MACs (zero-gating), not conversions;
- weight traffic everywhere (DRAM and buffer reads of weights, writes into the cells) by
  the stored fraction ``executed_macs``: compressed weights store kept blocks only;
- one index-memory read per kept block per input vector;
- the macros' latency by ``busy``: fewer activations, and the imbalance between macros
  (the busiest sets the pace); buffer and DRAM latencies stay as mapped (conservative).

Input and output traffic are left as mapped (inputs are gathered from the same buffers).
A mask that prunes no block gives ratios of exactly 1: density 1.0 is the dense result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimco.geometry import MacroGeometry
from cimco.parts import ADC, ADDER_TREE, CELL_ARRAY, INDEX_MEMORY, MACRO_PARTS, SHIFT_ADD, WORDLINE_DRIVER
from cimco.sparse.layout import as_matrices, dense_matrices
from cimco.sparse.occupancy import Occupancy, occupancy
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Layer

# (component, action) -> Occupancy field that scales its count
SCALED = {(ADC, "read"): "conversions", (ADDER_TREE, "read"): "conversions", (SHIFT_ADD, "read"): "conversions",
          (WORDLINE_DRIVER, "read"): "gathered_inputs", (CELL_ARRAY, "read"): "executed_macs"}
GATED = {WORDLINE_DRIVER, CELL_ARRAY}  # skipped for zero inputs
INDEX = (INDEX_MEMORY, "read")


@dataclass(frozen=True)
class SparseLayer:
    """A layer's sparsity as cimco applies it."""

    occ: Occupancy | None  # of the real mask (None: input sparsity only)
    ref: Occupancy | None  # of a dense mask of the same layer
    input_density: float

    @property
    def compressed(self) -> bool:
        """Stored compressed (with index codes): some block or output channel was dropped."""
        return self.occ is not None and (self.occ.kept_blocks < self.ref.kept_blocks
                                         or self.occ.kept_outputs < self.ref.kept_outputs)

    def ratio(self, field: str) -> float:
        if self.occ is None:
            return 1.0
        ref = getattr(self.ref, field)
        return getattr(self.occ, field) / ref if ref else 0.0


def plan(layer: Layer, mask: np.ndarray | None, geo: MacroGeometry) -> SparseLayer | None:
    """How ``layer``'s sparsity applies; None when it is plain dense."""
    if mask is None:
        return None if layer.input_density == 1.0 else SparseLayer(None, None, layer.input_density)
    return SparseLayer(occupancy(as_matrices(mask, layer), geo), occupancy(dense_matrices(layer), geo),
                       layer.input_density)


def correct(sp: SparseLayer, actions: dict[tuple[str, str, str], float], latency_by_component: dict[str, float],
            positions: int) -> tuple[dict[tuple[str, str, str], float], dict[str, float]]:
    """The dense layer's counts by (part, tensor, action) and per-component latency -> the
    sparse layer's: the weights' traffic scaled by the weights stored, the macro parts' actions
    by their occupancy ratios (and the input density where zeros are gated), and the index
    codes read (counted with the weights)."""
    out = dict(actions)
    stored = sp.ratio("executed_macs")
    for (part, tensor, action), n in actions.items():
        field = SCALED.get((part, action))
        if field is not None:
            out[part, tensor, action] = n * sp.ratio(field) * (sp.input_density if part in GATED else 1.0)
        elif tensor == "W":
            out[part, tensor, action] = n * stored
    if sp.compressed:
        out[INDEX[0], "W", INDEX[1]] = float(sp.occ.kept_blocks * positions)
    busy = sp.ratio("busy")
    lat = {c: v * busy if c in MACRO_PARTS else v for c, v in latency_by_component.items()}
    return out, lat


def apply(system: SystemSpec, runs: list) -> list:
    """Each of ``runs`` (:class:`cimco.mapping.LayerRun`, mapped dense) with its layer's
    sparsity applied (its mask and input density); dense layers unchanged. A corrected layer
    takes as long as its slowest part."""
    from cimco.mapping import with_counts

    out = []
    for run in runs:
        sp = plan(run.layer, run.mask, MacroGeometry.of_system(system, run.bits))
        if sp is None:
            out.append(run)
            continue
        actions, lat = correct(sp, run.tensor_actions, run.latency_by_component, run.layer.positions)
        out.append(with_counts(run, actions, lat, sparse=sp))
    return out
