"""Peak efficiency of one macro, as CIM papers measure it, through the real mapper.

A macro alone (1 core, 1 macro, free DRAM and buffer) runs a matrix-vector layer that fills
it exactly (reduction = rows, outputs = cols / weight slices) over many input vectors, and
we count the macro's compute energy only (word-line drivers, cell MACs, ADCs or adder trees,
shift-add: every macro part's ``read``), as papers do: weight loading (``CellArray.write``)
and off-macro traffic are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cimco.parts import ADC, ADDER_TREE, MACRO_PARTS
from cimco.spec.macro import MacroSpec, Sourced
from cimco.spec.system import BufferSpec, DramSpec, SystemSpec
from cimco.spec.workload import Bits, Layer

_FREE = Sourced(value=0.0, source="excluded from macro-level efficiency")


def is_macro_compute(component: str, action: str) -> bool:
    """A macro part's compute action (not a weight write, not leakage)."""
    return component in MACRO_PARTS and action == "read"


def macro_compute_energy(actions: dict[tuple[str, str], float], ert: dict[str, dict[str, float]]) -> float:
    """Energy of the macros' compute actions: sum of count x energy per action."""
    return sum(n * ert.get(c, {}).get(a, 0.0) for (c, a), n in actions.items() if is_macro_compute(c, a))


@dataclass(frozen=True)
class MacroPoint:
    tops_per_w: float
    tops: float
    energy_by_component_j: dict[str, float]
    macs: int
    conversions: float


def macro_only_system(macro: MacroSpec) -> SystemSpec:
    """The macro alone behind a free, unbounded memory: outside the ranges a user's spec may
    take, so built without validation (model_construct)."""
    return SystemSpec.model_construct(
        name=f"{macro.name}-alone", citation=macro.citation, macro=macro, cores=1, macros_per_core=1,
        dram=DramSpec.model_construct(energy_per_bit_j=_FREE, bandwidth_bits_per_s=1e30),
        global_buffer=BufferSpec.model_construct(size_bits=1 << 40, energy_per_bit_j=_FREE,
                                                 bandwidth_bits_per_s=1e30, area_m2=_FREE),
        index_memory=None,
    )


def macro_point(macro: MacroSpec, bits: Bits, vectors: int = 64, scratch: Path | None = None) -> MacroPoint:
    """Map a macro-filling matrix-vector layer; return the macro's compute efficiency.

    AccelForge runs in a dir under ``scratch`` (default: the system temp dir), removed after.
    """
    from cimco.backends.accelforge import AccelForge

    layer = Layer(name="fill", type="linear", in_channels=macro.rows,
                  out_channels=macro.cols // macro.n_weight_slices(bits.weight), tokens=vectors)
    r = AccelForge().map_layer(macro_only_system(macro), layer, bits, scratch)
    parts: dict[str, float] = {}
    for (comp, action), e in r.energy.items():
        if is_macro_compute(comp, action):
            parts[comp] = parts.get(comp, 0.0) + e
    energy = sum(parts.values())
    compute_latency = max(v for k, v in r.latency_by_component.items() if k in MACRO_PARTS)
    return MacroPoint(
        tops_per_w=2 * layer.macs / energy / 1e12,
        tops=2 * layer.macs / compute_latency / 1e12,
        energy_by_component_j=parts,
        macs=layer.macs,
        conversions=r.actions.get((ADC, "read"), r.actions.get((ADDER_TREE, "read"), 0.0)),
    )
