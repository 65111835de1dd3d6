"""Per-layer options of a spatial (layer-pipelined) mapping: macros, stage time, energy.

See :mod:`cimco.codesign.lrmp` for the model. Its stage times are checked against
AccelForge mapping each layer alone on exactly its macros (tests/test_lrmp.py: within 10%
for conv layers; a single-vector linear layer AccelForge maps up to 3x slower, since its
abstract macro lets columns split the reduction with per-column inputs). Counts per input vector come from the exact
block occupancy of the layer's mask (dense when it has none) at each weight precision;
energies from the component models' ERT (macro actions only: in spatial mode weights stay
in their macros). On a system with a NoC (:mod:`cimco.noc`) a stage also receives its inputs
(and a skip connection's tensor) from the stage before over it: their energy is added, and the
stage takes at least their time over one link (received while the previous input is computed,
double-buffered: assumed); replication does not shorten it. Without a NoC the transfers
between stages are not modeled.
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


def mapped_costs(system: SystemSpec, layer: Layer, bits: int, macros: int, mask: np.ndarray | None,
                 backend, output_bits: int = 8) -> tuple[float, float]:
    """(time per output position, energy per run) of ``layer`` at ``bits`` (weights and inputs)
    mapped by ``backend`` on its own ``macros`` with weights resident, behind a free, unbounded
    memory (in spatial mode activations come from the neighbouring stage, which is not
    modeled): the layer run alone through :func:`cimco.pipeline.run`, its mask applied, and
    the macros' time and the energy of their compute actions and index codes taken from it."""
    from cimco import pipeline
    from cimco.calibrate import is_macro_compute, macro_only_system
    from cimco.execution import Execution
    from cimco.spec.workload import Bits, WorkloadSpec

    alone = macro_only_system(system.macro.model_copy(update={"weights_loaded": "once"}))
    sub = alone.model_copy(update={"name": f"{system.name}-{macros}m", "macros_per_core": macros,
                                   "index_memory": system.index_memory})
    alone_layer = layer.model_copy(update={"bits": None, "repeat": 1, "residual": [], "inputs": None})
    one = WorkloadSpec.model_construct(name=layer.name, source="cimco lrmp",
                                       bits=Bits(input=bits, weight=bits, output=output_bits), layers=[alone_layer])
    res = pipeline.run(sub, one, {layer.name: mask} if mask is not None else None, Execution(replicate=False),
                       backend, None)
    row, ert = res.report["layers"][0], res.tables.ert
    counts = {tuple(k.split(".", 1)): n for k, n in row["action_counts"].items()}
    energy = sum(n * ert.get(c, {}).get(a, 0.0) for (c, a), n in counts.items()
                 if is_macro_compute(c, a) or c == INDEX_MEMORY)
    return row["latency_s"] / layer.positions, energy


def received(workload: WorkloadSpec, layer: Layer) -> int:
    """Elements a stage receives per inference: its input and the tensors its skip connections add."""
    by_name = {x.name: x for x in workload.layers}
    return layer.input_elements + sum(by_name[n].output_elements for n in layer.residual)


def layer_options(system: SystemSpec, layer: Layer, ert: dict, bits_choices: list[int],
                  mask: np.ndarray | None = None, max_replication: int = 64,
                  loss: dict[int, float] | None = None, backend=None, output_bits: int = 8,
                  elements_in: int = 0) -> list[Option]:
    """Each (weight precision, replication) of ``layer`` in spatial mode: its macros (from the
    block occupancy of its mask), stage time and energy from the spatial model, or, with a
    mapping ``backend``, from that backend's mapping of the layer on its macros
    (:func:`mapped_costs`); with a NoC, the transfer of the ``elements_in`` it receives
    (:func:`received`) at the precision's bits."""
    from cimco.noc import transfer

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
        per_position_s = busy * in_sl * adc_cycles * m.cycle_s
        if backend is not None and tiles:
            per_position_s, energy = mapped_costs(system, layer, b, tiles, mask, backend, output_bits)
            energy *= layer.repeat
        moved_j, moved_s = transfer(system.noc, system.cores, elements_in * b) if system.noc else (0.0, 0.0)
        r = 1
        while r <= max_replication and r <= layer.positions:
            t = math.ceil(layer.positions / r) * per_position_s * layer.repeat
            out.append(Option(bits=b, replication=r, macros=r * tiles, time_s=max(t, moved_s),
                              energy_j=energy + moved_j, loss=(loss or {}).get(b, proxy_loss(layer, b)),
                              transfer_s=moved_s, transfer_j=moved_j))
            r *= 2
    return out
