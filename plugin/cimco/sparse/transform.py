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


def correct(sp: SparseLayer, actions: dict[tuple[str, str], float],
            weight_actions: dict[tuple[str, str], float], latency_by_component: dict[str, float],
            positions: int) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """AccelForge's counts and per-component latency for the dense layer -> the sparse layer's."""
    out = dict(actions)
    stored = sp.ratio("executed_macs")
    for key, w in weight_actions.items():
        if key not in SCALED:
            out[key] = out[key] - w + w * stored
    for key, field in SCALED.items():
        if key not in actions:  # a part this macro family does not have (ADC or AdderTree)
            continue
        r = sp.ratio(field) * (sp.input_density if key[0] in GATED else 1.0)
        out[key] = actions[key] * r
    if sp.compressed:
        out[INDEX] = float(sp.occ.kept_blocks * positions)
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
        actions, lat = correct(sp, run.actions, run.result.of_tensor("W"), run.latency_by_component,
                               run.layer.positions)
        out.append(with_counts(run, actions, lat, sparse=sp))
    return out
