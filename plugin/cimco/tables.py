"""Energy per action (ERT) and area (ART) of every part of a system, from cimco's component
models through hwcomponents, beside the mapping backends: the report's energies are these
tables times the backends' action counts, and the Timeloop export writes them for Timeloop.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from cimco import cache
from cimco.parts import INDEX_MEMORY
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, WorkloadSpec


@dataclass
class Tables:
    """Energy per action (J) and area (m^2, all instances) of every part of a system."""

    ert: dict[str, dict[str, float]]
    art: dict[str, float]

    def energy(self, part: str, action: str) -> float:
        """Energy of one action (0 for an action the part does not charge)."""
        return self.ert.get(part, {}).get(action, 0.0)


_COSTS: dict[tuple[str, Bits], tuple[dict, dict]] = {}
_KEPT = 64  # systems x bits whose costs a process keeps (a sweep worker sees one per point)


def component_costs(system: SystemSpec, bits: Bits, einsum: dict,
                    scratch: Path | None = None) -> tuple[dict[str, dict[str, float]], dict[str, dict]]:
    """ERT and ART of ``system`` at ``bits`` (:func:`cimco._af.component_costs`), computed once
    per process: the costs do not depend on the layer, whose ``einsum`` only completes the spec
    (tests/test_cim_backend.py checks that)."""
    from cimco import _af, arch

    key = (system.model_dump_json(), bits)
    if key not in _COSTS:
        with _af.scratch_cwd(scratch):
            costs = _af.component_costs(arch.build_nodes(system, bits), einsum, bits)
        if len(_COSTS) >= _KEPT:
            del _COSTS[next(iter(_COSTS))]
        _COSTS[key] = costs
    return _COSTS[key]


def component_tables(system: SystemSpec, workload: WorkloadSpec, cache_dir: Path | None) -> Tables:
    """ERT and ART from the component models (cached like mappings, same key rules)."""
    from cimco import _af

    layer = workload.layers[0]
    bits = workload.layer_bits(layer)
    einsum = _af.einsum_of(layer)
    path = cache_dir / f"{cache.key(system, einsum, bits, _af.versions())}.tables.json" if cache_dir else None
    if path and path.exists():
        cached = cache.read(path, _from_json)
        if cached is not None:
            return cached
    ert, art = component_costs(system, bits, einsum, cache_dir / ".scratch" if cache_dir else None)
    tables = Tables(ert={c: dict(a) for c, a in ert.items()}, art={c: v["total_area_m2"] for c, v in art.items()})
    im = system.index_memory
    if im is not None:  # outside the AccelForge arch (a per-macro memory slows its mapper 20-60x)
        from cimco.models import CimcoIndexMemory

        model = CimcoIndexMemory(code_bits=im.code_bits, energy_per_bit=im.energy_per_bit_j.value,
                                 index_area=im.area_m2.value)
        tables.ert[INDEX_MEMORY] = {"read": model.read().energy}
        tables.art[INDEX_MEMORY] = model.area * system.n_macros
    if path:
        cache.write(path, json.dumps(asdict(tables)))
    return tables


def _from_json(text: str) -> Tables:
    """A cached Tables, checked: anything else raises ValueError (and is remapped)."""
    d = json.loads(text)

    def ok(x: object) -> bool:
        return isinstance(x, float) and x >= 0 and x != float("inf")

    good = (isinstance(d, dict) and set(d) == {"ert", "art"} and isinstance(d["ert"], dict)
            and isinstance(d["art"], dict)
            and all(isinstance(a, dict) and all(ok(e) for e in a.values()) for a in d["ert"].values())
            and all(ok(v) for v in d["art"].values()))
    if not good:
        raise ValueError("not the component tables cimco writes")
    return Tables(**d)


def ert_yaml(ert: dict[str, dict[str, float]], system: str) -> str:
    """Accelergy v0.4 ERT: energy per action in pJ."""
    out = {"ERT": {"version": "0.4", "tables": [
        {"name": f"{system}.{comp}",
         "actions": [{"name": a, "arguments": None, "energy": e * 1e12} for a, e in acts.items()]}
        for comp, acts in ert.items()]}}
    return yaml.safe_dump(out, sort_keys=False)


def art_yaml(art: dict[str, float], system: str) -> str:
    """Accelergy v0.4 ART: the area of each component in um^2 (as given: per instance or
    all instances, which the caller states in a comment)."""
    out = {"ART": {"version": "0.4", "tables": [
        {"name": f"{system}.{comp}", "area": a * 1e12} for comp, a in art.items()]}}
    return yaml.safe_dump(out, sort_keys=False)
