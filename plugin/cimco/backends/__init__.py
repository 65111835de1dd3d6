"""Mapping backends: what maps one layer on a system, behind one protocol.

A backend maps one dense layer at its bits on a system and returns a :class:`LayerResult`
in cimco's own vocabulary (:mod:`cimco.parts`): action counts by part, and by tensor,
energy, latency by part, the mapping as text and as data. Everything after that (the
cache, sparsity, whole-network execution, the report) is one pipeline
(:func:`cimco.pipeline.run`) whatever the backend, so the report has the same keys for all.

==============  ==========================================================================
``cimco``       cimco's own search of the CIM mapspace, the best mapping's counts in closed
                form, equal entry by entry to AccelForge's model (:mod:`cimco.backends.cim`)
``accelforge``  AccelForge's FFM mapper (exhaustive over its mapspace), evaluated by its
                model with cimco's hwcomponents models (the reference for every number)
``timeloop``    classic Timeloop v0.4's ``timeloop-mapper`` on the files
                ``cimco timeloop export`` writes (an optional binary)
==============  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Protocol

from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer

Key = tuple[str, str]  # (part, action)


def by_action(tensor_actions: dict[tuple[str, str, str], float]) -> dict[Key, float]:
    """Counts by (part, action), summed over the tensors of (part, tensor, action) counts."""
    out: dict[Key, float] = {}
    for (part, _, action), n in tensor_actions.items():
        out[part, action] = out.get((part, action), 0.0) + n
    return out


@dataclasses.dataclass
class LayerResult:
    """One dense layer mapped by a backend (plain numbers, picklable, cached as JSON)."""

    energy_j: float  # the engine's own total for what it mapped
    latency_s: float
    computes: float
    energy: dict[Key, float]  # (part, action) -> J, the engine's
    actions: dict[Key, float]  # (part, action) -> count
    tensor_actions: dict[tuple[str, str, str], float]  # (part, tensor I/W/O, action) -> count
    latency_by_component: dict[str, float]  # part -> s
    mapping: str  # the mapping as the engine prints it
    # the mapping as data, top to bottom: {"node": storage|toll|spatial|temporal|compute,
    # "component", and "tensors" or "rank" with "bound" (iterations)}
    loops: list[dict] = dataclasses.field(default_factory=list)
    column_split: bool = False  # mapped with the one-input-per-row rule lifted (fallback)
    # memories the mapper was given less of than the spec has (see cimco._af): name -> bits
    budget_bits: dict[str, float] = dataclasses.field(default_factory=dict)

    def spread(self, *components: str, ranks: frozenset[str] | None = None) -> int:
        """Iterations of the mapping's spatial loops at ``components`` (over ``ranks`` only, if
        given): 1 where it has none."""
        return math.prod(d["bound"] for d in self.loops if d["node"] == "spatial" and d.get("component") in components
                         and (ranks is None or d.get("rank") in ranks))

    def differences(self, other: LayerResult, rel: float) -> list[str]:
        """Where ``other`` differs from this result: a total, or an entry of a count, energy or
        latency table, off by more than ``rel`` of its value (zeros: of the table's largest),
        an entry only one has, or other loops. Empty when they agree."""
        out = [f"{f} {getattr(self, f):.6g} vs {getattr(other, f):.6g}" for f in ("energy_j", "latency_s", "computes")
               if abs(getattr(self, f) - getattr(other, f)) > rel * abs(getattr(other, f))]
        for f in ("energy", "actions", "tensor_actions", "latency_by_component"):
            a, b = getattr(self, f), getattr(other, f)
            scale = max(b.values(), default=0.0)
            out += [f"{f} {k}: only in one" for k in set(a) ^ set(b)]
            out += [f"{f} {k}: {a[k]:.6g} vs {v:.6g}" for k, v in b.items()
                    if k in a and abs(a[k] - v) > max(rel * abs(v), 1e-9 * scale)]
        if self.loops != other.loops:
            out.append(f"loops {self.loops} vs {other.loops}")
        return out


class Backend(Protocol):
    """What the pipeline needs of a mapping backend. Instances are picklable (they travel
    to worker processes with each layer)."""

    name: str
    # maps a layer quickly in little memory: the pipeline then maps in the calling process,
    # without worker processes (which would each start the engine), whatever --jobs says
    in_process: bool

    def versions(self) -> dict[str, str]:
        """The engine and its version(s): in report.json and in every cache key."""
        ...

    def check(self, system: SystemSpec, flags: dict[str, object]) -> list[str]:
        """Before any work: why this backend cannot run with these execution ``flags``
        (``{"--mode": ..., "--weights": ..., "--batch": ..., "--jobs": ...}``), one line
        per refused flag naming it; empty when it can."""
        ...

    def map_layer(self, system: SystemSpec, layer: Layer, bits: Bits, scratch: Path | None,
                  timeout_s: float | None) -> LayerResult:
        """Map the dense ``layer`` at ``bits``; MappingError or LimitError on failure."""
        ...


NAMES = ("cimco", "accelforge", "timeloop")
# what `cimco map`, `cimco sweep`, cimco.map and cimco.sweep use unless told
DEFAULT = "cimco"
# the backends a sweep may use (timeloop writes files per point)
SWEEP_NAMES = ("cimco", "accelforge")


def get(name: str, out: Path | None = None, timeloop_bin: str | None = None) -> Backend:
    """The backend called ``name``; ``out`` is where a file-based backend leaves its files,
    ``timeloop_bin`` the ``timeloop-mapper`` to run (default: ``CIMCO_TIMELOOP_BIN``, then PATH)."""
    if name == "cimco":
        from cimco.backends.cim import Cim

        return Cim()
    if name == "accelforge":
        from cimco.backends.accelforge import AccelForge

        return AccelForge()
    if name == "timeloop":
        from cimco.timeloop.runner import Timeloop

        return Timeloop.find(timeloop_bin, out)
    raise ValueError(f"backend must be one of {', '.join(NAMES)}, got {name!r}")
