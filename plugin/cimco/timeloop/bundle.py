"""Write a workload on a system as classic Timeloop v0.4 inputs, one directory per layer.

Each ``OUT/NNN_layer/`` holds ``arch.yaml``, ``problem.yaml``, ``mapper.yaml``,
``constraints.yaml`` and Accelergy-format ``ERT.yaml``/``ART.yaml`` made from cimco's own
component models, so ``timeloop-mapper *.yaml`` runs there without Accelergy or its plug-ins.
``OUT/index.yaml`` lists the layers in execution order with their repeat counts, MACs and
``cycle_s`` (seconds per Timeloop cycle, to turn the mapper's cycles into latency).

A pruned layer is exported as its compressed dense equivalent: the output channels that keep
any weight and, per output, the reduction rows its kept blocks execute (rounded to whole
input channels), plus an ``IndexMemory`` level charged one index-code read per kept block.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from cimco.geometry import MacroGeometry
from cimco.io import write_atomic
from cimco.sparse import transform
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Layer, WorkloadSpec
from cimco.tables import Tables, art_yaml, ert_yaml
from cimco.timeloop import _comment, problem
from cimco.timeloop.arch import LayerPlan, arch, area_table, constraints, energy_table, mapper
from cimco.timeloop.layout import BUFFERS, layout

FILES = ("arch.yaml", "problem.yaml", "mapper.yaml", "constraints.yaml", "ERT.yaml", "ART.yaml")


@dataclass(frozen=True)
class Exported:
    layer: Layer
    dir: Path
    cycle_s: float
    compressed: Layer | None  # the dense equivalent exported for a pruned layer
    weight_density: float = 1.0
    block_density: float = 1.0


def compressed_layer(layer: Layer, sp: transform.SparseLayer) -> Layer:
    """The dense layer doing a pruned layer's work: kept outputs x executed rows per output."""
    occ, g = sp.occ, layer.groups
    r, s = layer.kernel_hw
    m = max(1, math.ceil(occ.kept_outputs / g))
    rows = occ.executed_macs / max(occ.kept_outputs, 1)  # reduction rows run per kept output
    c = max(1, round(rows / (r * s)))
    return layer.model_copy(update={"out_channels": m * g, "in_channels": c * g, "sparsity": None})


def _plan(system: SystemSpec, workload: WorkloadSpec, layer: Layer,
          mask: np.ndarray | None) -> tuple[LayerPlan, transform.SparseLayer | None]:
    """The layer's plan, and its sparsity when it is stored compressed."""
    bits = workload.layer_bits(layer)
    sp = transform.plan(layer, mask, MacroGeometry.of_system(system, bits))
    if sp is None or sp.occ is None or not sp.compressed:
        return LayerPlan(bits, layer.input_density), None
    updates = sp.occ.conversions / system.macro.conversions_per_output(bits.input, bits.weight)
    return LayerPlan(bits, layer.input_density, sp.occ.kept_blocks / updates), sp


def _dump(data: dict, head: str = "") -> str:
    return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)


def layer_files(system: SystemSpec, workload: WorkloadSpec, layer: Layer, tables: Tables, plan: LayerPlan,
                dense: Layer | None = None) -> dict[str, str]:
    """The six Timeloop input files of one layer (``dense``: the compressed dense equivalent
    exported for a pruned layer), by file name."""
    prob = problem(dense or layer)
    dims = prob["problem"]["shape"]["dimensions"]
    lay = layout(system, dense or layer, plan.bits)
    note = "" if dense is None else (
        f"# pruned: exported as its compressed dense equivalent, {dense.out_channels} kept outputs x "
        f"{dense.reduction} rows (dense {layer.out_channels} x {layer.reduction})\n")
    tl = Tables(ert=energy_table(tables, system, plan), art=area_table(tables, system, plan))
    for outer, inner in BUFFERS.items():  # a memory's second level: the same SRAM (its area counted once)
        if inner in lay.inner_words:
            tl.ert[inner], tl.art[inner] = tl.ert[outer], 0.0
    head = f"# {workload.name} layer {layer.name} on {system.name} (cimco timeloop export, Timeloop v0.4)\n"
    return {
        "arch.yaml": _dump(arch(system, plan, lay), head),
        "problem.yaml": _comment(workload, layer) + note + _dump(prob),
        "mapper.yaml": _dump(mapper(), head),
        "constraints.yaml": _dump(constraints(system, dims, dense is not None, lay), head),
        "ERT.yaml": head + "# energy per Timeloop action in pJ, from cimco's component models\n"
        + ert_yaml(tl.ert, system.name),
        "ART.yaml": head + "# area per instance in um^2, from cimco's component models\n"
        + art_yaml(tl.art, system.name),
    }


def layer_dir(out: Path, index: int, layer: Layer) -> Path:
    """The directory of a layer's files: its position in the workload and its name."""
    return out / f"{index:03d}_{re.sub(r'[^A-Za-z0-9._-]', '_', layer.name)}"


def export_system(system: SystemSpec, workload: WorkloadSpec, tables: Tables, out: Path,
                  masks: dict[str, np.ndarray] | None = None) -> list[Exported]:
    """All layers' Timeloop inputs into ``out`` (see the module docstring)."""
    masks = masks or {}
    done, index = [], []
    for i, layer in enumerate(workload.layers):
        if system.on_digital_unit(layer):  # not the macros' work: no Timeloop files (cimco.digital)
            index.append({"dir": None, "layer": layer.name, "repeat": layer.repeat, "macs": layer.macs,
                          "digital_unit": True})
            continue
        plan, sp = _plan(system, workload, layer, masks.get(layer.name))
        dense = compressed_layer(layer, sp) if sp else None
        d = layer_dir(out, i, layer)
        for name, text in layer_files(system, workload, layer, tables, plan, dense).items():
            write_atomic(d / name, text)
        cycle_s = MacroGeometry.of_system(system, plan.bits).cycle_s
        done.append(Exported(layer, d, cycle_s, dense, *((sp.occ.weight_density, sp.occ.block_density)
                                                         if sp else (1.0, 1.0))))
        index.append({"dir": d.name, "layer": layer.name, "repeat": layer.repeat, "macs": layer.macs,
                      "cycle_s": cycle_s, "compressed": dense is not None})
    write_atomic(out / "index.yaml", _dump(
        {"workload": workload.name, "system": system.name, "layers": index},
        f"# {workload.name} on {system.name}: one directory of Timeloop v0.4 inputs per layer, in execution "
        f"order; run `timeloop-mapper {' '.join(FILES)}` in each.\n# An inference costs the sum of repeat x "
        f"each layer's result; latency = cycles x cycle_s.\n"))
    return done
