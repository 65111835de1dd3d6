"""Per-layer options of a spatial (layer-pipelined) mapping: macros, stage time, energy.

See :mod:`cimco.codesign.lrmp` for the model. Its stage times are checked against
AccelForge mapping each layer alone on exactly its macros (tests/test_lrmp.py: within 10%
for conv layers; a single-vector linear layer AccelForge maps up to 3x slower, since its
abstract macro lets columns split the reduction with per-column inputs). Counts per input vector come from the exact
block occupancy of the layer's mask (dense when it has none) at each weight precision;
energies from the component models' ERT (macro actions only: in spatial mode weights stay
in their macros and activations move between neighbouring stages, which is not modeled).
"""

from __future__ import annotations

import math

import numpy as np

from cimco.codesign.lrmp import Option
from cimco.errors import Problem
from cimco.geometry import MacroGeometry
from cimco.parts import ADC, ADDER_TREE, CELL_ARRAY, INDEX_MEMORY, SHIFT_ADD, WORDLINE_DRIVER
from cimco.sparse.layout import as_matrices, dense_matrices, weight_shape
from cimco.sparse.occupancy import occupancy
from cimco.spec.system import SystemSpec
from cimco.spec.workload import MAX_MASK_WEIGHTS, Layer, WorkloadSpec


def proxy_loss(layer: Layer, bits: int) -> float:
    """Assumed sensitivity when none is measured: quantization noise power ~ 2**(-2b),
    summed over the layer's weights (uniform-noise model of rounding)."""
    return layer.reduction * layer.out_channels * 4.0 ** (-bits)


def too_large(workload: WorkloadSpec, file: str) -> list[Problem]:
    """Layers the spatial model cannot evaluate: its exact block occupancy holds one boolean
    per weight, bounded like a mask (``cimco map`` falls back for them; LRMP has no fallback)."""
    return [Problem(file, f"layers[{i}]", f"layer {x.name!r} has {x.out_channels * x.reduction:,} weights, above "
                    f"the {MAX_MASK_WEIGHTS:,} the spatial model of LRMP holds in memory; split the layer")
            for i, x in enumerate(workload.layers) if x.out_channels * x.reduction > MAX_MASK_WEIGHTS]


def layer_options(system: SystemSpec, layer: Layer, ert: dict, bits_choices: list[int],
                  mask: np.ndarray | None = None, max_replication: int = 64,
                  loss: dict[int, float] | None = None) -> list[Option]:
    m = system.macro
    if mask is not None and mask.shape != weight_shape(layer):
        raise ValueError(f"mask of {layer.name} has shape {mask.shape}")
    mats = as_matrices(mask, layer) if mask is not None else dense_matrices(layer)
    e = {k: ert.get(c, {}).get("read", 0.0) for k, c in
         (("wl", WORDLINE_DRIVER), ("cell", CELL_ARRAY), ("adc", ADC), ("tree", ADDER_TREE),
          ("sa", SHIFT_ADD), ("idx", INDEX_MEMORY))}
    out = []
    for b in bits_choices:
        geo = MacroGeometry.of(m, b, b, 1)
        occ = occupancy(mats, geo)
        in_sl, w_sl = m.n_input_slices(b), m.n_weight_slices(b)
        busy = max(occ.tile_loads) if occ.tile_loads else 0
        tiles = len(occ.tile_loads)
        # an activation's column group needs this many conversions; the macro's ADCs share them
        outs = min(geo.group_outputs, layer.out_channels // layer.groups)
        per_activation = outs * (1 if m.combines_weight_columns else w_sl)
        adc_cycles = math.ceil(per_activation / m.readout_units())
        per_vector = (occ.conversions * (e["adc"] + e["tree"] + e["sa"]) + occ.gathered_inputs * in_sl * e["wl"]
                      + occ.executed_macs * in_sl * w_sl * e["cell"]
                      + (occ.kept_blocks * e["idx"] if occ.kept_blocks < occ.blocks else 0.0))
        energy = per_vector * layer.positions * layer.repeat
        r = 1
        while r <= max_replication and r <= layer.positions:
            t = math.ceil(layer.positions / r) * busy * in_sl * adc_cycles * m.cycle_s * layer.repeat
            out.append(Option(bits=b, replication=r, macros=r * tiles, time_s=t, energy_j=energy,
                              loss=(loss or {}).get(b, proxy_loss(layer, b))))
            r *= 2
    return out
