"""A reference of the spec schema, generated from the pydantic models (`cimco specs schema`).

Every field of every spec model: its dotted path, type, allowed range (with unit), default
and description, so the reference cannot drift from what the loader accepts.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cimco.spec._base import UNIT_HINTS
from cimco.spec.macro import MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec

# Meanings of the system spec's fields (spec/system.py carries no descriptions of its own).
_DOC = {
    "kind": "the spec's kind", "name": "name used in reports", "citation": "the paper the system comes from",
    "macro": "the macro: a mapping as in the macro table, or the file name of a macro spec beside this file",
    "cores": "CIM cores", "macros_per_core": "macros in each core",
    "dram": "off-chip memory", "global_buffer": "on-chip buffer of inputs and outputs",
    "index_memory": "per-macro memory of the index codes of kept weight blocks (MARS); none: dense storage",
    "digital_unit": "a digital matrix unit that runs the dynamic layers (matmuls of activations); none: the "
    "macros run them, writing their operand at every run",
    "energy_per_bit_j": "energy per bit read or written (J)", "bandwidth_bits_per_s": "bandwidth (bit/s)",
    "size_bits": "capacity (bits)", "area_m2": "area (m^2)", "code_bits": "bits of one index code",
}
_UNITS = {"_m2": "m^2", "_j": "J", "_m": "m", "_v": "V", "_s": "s", "_bits_per_s": "bit/s", "macs_per_s": "MAC/s"}


def _unit(name: str) -> str:
    for suffix, _ in UNIT_HINTS:
        if name.endswith(suffix):
            return _UNITS[suffix]
    return ""


def _bounds(metadata: list) -> str:
    lo = hi = ""
    for c in metadata:
        if isinstance(c, Ge | Gt):
            lo = f"{'>=' if isinstance(c, Ge) else '>'} {getattr(c, 'ge', getattr(c, 'gt', None)):g}"
        if isinstance(c, Le | Lt):
            hi = f"{'<=' if isinstance(c, Le) else '<'} {getattr(c, 'le', getattr(c, 'lt', None)):g}"
    return ", ".join(x for x in (lo, hi) if x)


def _type(annotation: Any) -> str:
    """A short human name for a field's type."""
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        flat = [m for x in meta for m in (getattr(x, "metadata", None) or [x])]
        b = _bounds(flat)
        return f"{_type(base)}" + (f" ({b})" if b else "")
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in typing.get_args(annotation))
    if origin is dict:
        k, v = typing.get_args(annotation)
        return f"mapping {_type(k)} -> {_type(v)}"
    return getattr(annotation, "__name__", str(annotation))


def _value_model(annotation: Any) -> list[type[BaseModel]]:
    out = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for a in typing.get_args(annotation):
        out += _value_model(a)
    return out


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(path, type, unit, default, description) of every field below ``model``."""
    out = []
    for name, f in model.model_fields.items():
        path = f"{prefix}{name}"
        t = _type(f.annotation)
        b = _bounds(f.metadata)
        if b:
            t += f" ({b})"
        default = "required" if f.default is PydanticUndefined and f.default_factory is None else (
            "none" if f.default is None else f"`{f.default.value}`" if isinstance(f.default, BaseModel)
            and hasattr(f.default, "value") else f"`{f.default}`")
        out.append((path, t, _unit(name), default, f.description or _DOC.get(name, "")))
        subs = [m for m in _value_model(f.annotation)
                if m.__name__ not in ("Sourced", "Joules", "SquareMetres", "Factor")]  # described below
        for sub in subs:
            out += rows(sub, f"{path}[{sub.__name__}]." if len(subs) > 1 else f"{path}.")
    return out


def markdown() -> str:
    """The schema reference as Markdown tables (macro, system, workload)."""
    lines = ["# cimco spec schema", "",
             "Generated from the pydantic models by `cimco specs schema`. Units are SI. A *sourced* "
             "number is a mapping `{value: NUMBER, source: TEXT}` whose source cites a paper, a "
             "measurement, or says `assumed`. Ranges are checked on load; a value outside one is an "
             "error with a unit hint.", ""]
    for title, model in (("Macro (`kind: macro`)", MacroSpec), ("System (`kind: system`)", SystemSpec),
                         ("Workload (`kind: workload`)", WorkloadSpec)):
        lines += [f"## {title}", "", inspect.cleandoc(model.__doc__ or ""), "",
                  "| field | type (range) | unit | default | meaning |", "|---|---|---|---|---|"]
        for path, t, unit, default, desc in rows(model):
            if title.startswith("System") and path.startswith("macro."):
                continue
            lines.append(f"| `{path}` | {t} | {unit} | {default} | {' '.join(desc.split())} |")
        lines.append("")
    lines += ["Sourced numbers: `Joules` 0 or 2.87e-21..1e-9 J (at least the Landauer limit kT ln 2 at "
              "300 K), `SquareMetres` 1e-18..1e-3 m^2, `Factor` 1e-3..1e3, "
              "plain sourced >= 0; `source` is 1..2000 characters.", ""]
    return "\n".join(lines)
