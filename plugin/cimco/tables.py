"""Energy per action (ERT) and area (ART) of every part of a system, from cimco's component
models through hwcomponents, beside the mapping backends: the report's energies are these
tables times the backends' action counts, and the Timeloop export writes them for Timeloop.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import yaml

from cimco.parts import DIGITAL_UNIT, INDEX_MEMORY, VECTOR_UNIT
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, WorkloadSpec


@dataclass
class Tables:
    """Energy per action (J) and area (m^2, all instances) of every part of a system, and
    each part's instances (where known: :func:`instances`)."""

    ert: dict[str, dict[str, float]]
    art: dict[str, float]
    instances: dict[str, int] = field(default_factory=dict)

    def art_per_instance(self) -> dict[str, float]:
        """Area of one instance of each part (Accelergy's ART convention)."""
        return {part: a / self.instances[part] for part, a in self.art.items()}

    def energy(self, part: str, action: str) -> float:
        """Energy of one action (0 for an action the part does not charge)."""
        return self.ert.get(part, {}).get(action, 0.0)


_PRICED: dict[tuple[str, Bits], tuple[dict, dict]] = {}


def component_costs(system: SystemSpec, bits: Bits) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """:func:`priced`, once per process for a system and precision (milliseconds, asked once a
    layer; the last 64 kept); copies, so that a caller may add to them."""
    key = (system.model_dump_json(), bits)
    if key not in _PRICED:
        if len(_PRICED) >= 64:
            del _PRICED[next(iter(_PRICED))]
        _PRICED[key] = priced(system, bits)
    ert, art = _PRICED[key]
    return {c: dict(a) for c, a in ert.items()}, dict(art)


def priced(system: SystemSpec, bits: Bits) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Energy per action (ERT: {part: {action: J}}) and area of all instances (ART: {part: m^2})
    of every part of ``system``'s architecture at ``bits`` (:func:`cimco.arch.build_nodes`),
    from cimco's hwcomponents models, priced as AccelForge prices the architecture: each part's
    model built from the attributes the architecture gives it, a memory charged ``read`` and
    ``write``, a toll ``read``, the compute unit nothing; its area times the instances the
    containers above it fan out to. ``tests/test_upstream.py`` checks every entry against
    AccelForge's own component costs (:func:`cimco._af.component_costs`) on each macro family
    at several precisions, so an upgrade of either that changes one fails loudly."""
    from cimco.models import MODELS

    classes = {m.__name__: m for m in MODELS}
    ert: dict[str, dict[str, float]] = {}
    art: dict[str, float] = {}
    for node, instances in _placed(system, bits):
        name, kind = node["name"], node["kind"]
        if kind == "Compute":
            ert[name], art[name] = {"compute": 0.0}, 0.0
            continue
        cls = classes[node["component_class"]]
        given = node.get("extra_attributes_for_component_model", {})
        model = cls(**{k: v for k, v in given.items() if k in _parameters(cls)})
        actions = ("read", "write") if kind == "Memory" else ("read",)
        ert[name] = {a: float(getattr(model, a)().energy) for a in actions}
        art[name] = float(model.area) * instances
    return ert, art


def _placed(system: SystemSpec, bits: Bits):
    """(node, instances) for each part of ``system``'s architecture at ``bits``: the fanouts
    of the containers above it multiplied."""
    from cimco import arch

    instances = 1
    for node in arch.build_nodes(system, bits):
        if node["kind"] == "Container":
            instances *= math.prod(s["fanout"] for s in node["spatial"])
        else:
            yield node, instances


def instances(system: SystemSpec, bits: Bits) -> dict[str, int]:
    """Instances of each part (:func:`_placed`); the index memory is one per macro."""
    out = {node["name"]: n for node, n in _placed(system, bits)}
    if system.index_memory is not None:
        out[INDEX_MEMORY] = system.n_macros
    if system.digital_unit is not None:
        out[DIGITAL_UNIT] = 1
    if system.vector_unit is not None:
        out[VECTOR_UNIT] = 1
    return out


@functools.cache
def _parameters(cls: type) -> frozenset[str]:
    import inspect

    return frozenset(inspect.signature(cls).parameters)


def component_tables(system: SystemSpec, workload: WorkloadSpec) -> Tables:
    """ERT and ART of ``system`` at the bits of the workload's first layer
    (:func:`component_costs`), with the index memory and the digital and vector units beside them."""
    bits = workload.layer_bits(workload.layers[0])
    ert, art = component_costs(system, bits)
    tables = Tables(ert=ert, art=art, instances=instances(system, bits))
    im = system.index_memory
    if im is not None:  # outside the AccelForge arch (a per-macro memory slows its mapper 20-60x)
        from cimco.models import CimcoIndexMemory

        model = CimcoIndexMemory(code_bits=im.code_bits, energy_per_bit=im.energy_per_bit_j.value,
                                 index_area=im.area_m2.value)
        tables.ert[INDEX_MEMORY] = {"read": model.read().energy}
        tables.art[INDEX_MEMORY] = model.area * system.n_macros
    unit = system.digital_unit
    if unit is not None:  # the spec's figures (cimco.digital): a "read" is one MAC
        tables.ert[DIGITAL_UNIT] = {"read": unit.energy_per_mac_j.value}
        tables.art[DIGITAL_UNIT] = unit.area_m2.value
    vec = system.vector_unit
    if vec is not None:  # the spec's figures (cimco.vector): a "read" is one basic operation
        tables.ert[VECTOR_UNIT] = {"read": vec.energy_per_op_j.value}
        tables.art[VECTOR_UNIT] = vec.area_m2.value
    return tables


def ert_yaml(ert: dict[str, dict[str, float]], system: str) -> str:
    """Accelergy v0.4 ERT: energy per action in pJ."""
    out = {"ERT": {"version": "0.4", "tables": [
        {"name": f"{system}.{comp}",
         "actions": [{"name": a, "arguments": None, "energy": e * 1e12} for a, e in acts.items()]}
        for comp, acts in ert.items()]}}
    return yaml.safe_dump(out, sort_keys=False)


def art_yaml(art: dict[str, float], system: str) -> str:
    """Accelergy v0.4 ART: the area of one instance of each component (``art``, m^2) in um^2."""
    out = {"ART": {"version": "0.4", "tables": [
        {"name": f"{system}.{comp}", "area": a * 1e12} for comp, a in art.items()]}}
    return yaml.safe_dump(out, sort_keys=False)
