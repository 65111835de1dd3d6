"""A system's levels as a list, top to bottom, and its default expansion.

A system spec may give its hierarchy as ``levels:`` instead of the template keys
(``dram``, ``global_buffer``, ``cores``, ``macros_per_core``)::

    levels:
      - {kind: memory, name: DRAM, keeps: [input, output, weight], energy_per_bit_j: ..., bandwidth_bits_per_s: ...}
      - {kind: memory, name: GLB, keeps: [input, output], size_bits: ..., energy_per_bit_j: ..., ...}
      - {kind: noc, name: mesh, topology: mesh, hop_energy_per_bit_j: ..., hop_latency_s: ..., ...}   # optional
      - {kind: fanout, name: core, count: 4}
      - {kind: memory, name: core_buffer, keeps: [input, output], size_bits: ..., ...}              # optional
      - {kind: fanout, name: macro, count: 8}

Each level sits under the entry before it unless it names another with ``under:``. The levels
must form one chain from an off-chip memory (no ``size_bits``, keeping all three tensors) down
to the macros, in the form every backend evaluates: an on-chip buffer of inputs and outputs, an
optional network-on-chip between it and the cores, the core fanout, an optional memory in each
core, the macro fanout. Anything else (a cycle, a level that keeps nothing, two levels under
one, a memory of weights outside the macros) is refused with its dotted path.

The template is the default expansion (:func:`expanded`, :func:`as_levels`): a spec in either
form is the same :class:`~cimco.spec.system.SystemSpec` and maps to the same numbers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from cimco.spec._base import BitsPerSecond, Bounded, Strict
from cimco.spec.macro import Joules, Seconds, SquareMetres

TENSORS = ("input", "output", "weight")
TEMPLATE = ("dram", "global_buffer", "cores", "macros_per_core", "noc", "core_buffer")
Name = Annotated[str, Field(min_length=1, max_length=100, description="what `under` names (reports call the "
                                                                    "parts DRAM, GlobalBuffer, NoC, CoreBuffer)")]


class CoreBufferSpec(Strict):
    """A memory in each core, between the global buffer (or the NoC) and the core's macros."""

    keeps: list[Literal["input", "output"]] = Field(min_length=1, description="the tensors it holds")
    size_bits: Bounded(1, 2**40)
    energy_per_bit_j: Joules
    bandwidth_bits_per_s: BitsPerSecond
    area_m2: SquareMetres


class NocSpec(Strict):
    """The network-on-chip between the global buffer and the cores (:mod:`cimco.noc`)."""

    topology: Literal["bus", "mesh", "htree"]
    hop_energy_per_bit_j: Joules = Field(description="one bit over one hop (router and link)")
    hop_latency_s: Seconds = Field(description="one hop's latency")
    link_bandwidth_bits_per_s: BitsPerSecond = Field(description="one link's bandwidth")
    area_m2: SquareMetres | None = None


class MemoryLevel(Strict):
    kind: Literal["memory"] = Field(description="memory | noc | fanout")
    name: Name
    under: Name | None = Field(None, description="the level above this one (default: the entry before)")
    keeps: list[Literal["input", "output", "weight"]] = Field(description="the tensors it holds")
    size_bits: Bounded(1, 2**40) | None = Field(None, description="capacity; none for the off-chip memory")
    energy_per_bit_j: Joules
    bandwidth_bits_per_s: BitsPerSecond
    area_m2: SquareMetres | None = None


class NocLevel(NocSpec):
    kind: Literal["noc"] = Field(description="memory | noc | fanout")
    name: Name
    under: Name | None = None


class FanoutLevel(Strict):
    kind: Literal["fanout"] = Field(description="memory | noc | fanout")
    name: Name
    under: Name | None = None
    count: Bounded(1, 2**16) = Field(description="instances of what is below, per instance above")


Level = Annotated[MemoryLevel | NocLevel | FanoutLevel, Discriminator("kind")]
_LEVELS = TypeAdapter(list[Level])


def _error(loc: tuple, message: str, value: Any) -> InitErrorDetails:
    """One error at ``loc``; ``message`` reads after "expected"."""
    return InitErrorDetails(type=PydanticCustomError("value_error", "{m}", {"m": message}), loc=loc, input=value)


def _again(e: ValidationError, prefix: tuple = ()) -> list[InitErrorDetails]:
    """``e``'s errors, to raise again (under ``prefix``) beside others."""
    return [InitErrorDetails(type=PydanticCustomError(x["type"], x["msg"].replace("{", "{{").replace("}", "}}"),
                                                      x.get("ctx")), loc=(*prefix, *x["loc"]), input=x.get("input"))
            for x in e.errors()]


def _raise(errors: list[InitErrorDetails]) -> None:
    if errors:
        raise ValidationError.from_exception_data("levels", errors)


def _chain(levels: list) -> list[int]:
    """The levels' indices top to bottom; raises for unknown or duplicate names, cycles and branches."""
    errors = []
    index: dict[str, int] = {}
    for i, x in enumerate(levels):
        if x.name in index:
            errors.append(_error(("levels", i, "name"), f"a name no other level has (levels[{index[x.name]}] "
                                                        f"is {x.name!r} too)", x.name))
        index.setdefault(x.name, i)
    parent: dict[int, int | None] = {}
    for i, x in enumerate(levels):
        if x.under is None:
            parent[i] = i - 1 if i else None
        elif x.under not in index:
            errors.append(_error(("levels", i, "under"), f"the name of another level ({', '.join(index)})", x.under))
        else:
            parent[i] = index[x.under]
    _raise(errors)
    for i in range(len(levels)):  # a cycle: following `under` from i comes back to i
        seen, j = [i], parent[i]
        while j is not None and j not in seen:
            seen.append(j)
            j = parent[j]
        if j == i:
            path = " under ".join(levels[k].name for k in [*seen, i])
            where = next(k for k in seen if levels[k].under is not None)
            _raise([_error(("levels", where, "under"), f"a level above this one, not a cycle ({path})",
                           levels[where].under)])
    children: dict[int | None, int] = {}
    for i in range(len(levels)):
        if parent[i] in children:
            above = "nothing" if parent[i] is None else repr(levels[parent[i]].name)
            errors.append(_error(("levels", i, "under" if levels[i].under else "name"),
                                 f"one level under {above} (levels form a chain; levels[{children[parent[i]]}] "
                                 f"is under it already)", levels[i].under or levels[i].name))
        children.setdefault(parent[i], i)
    _raise(errors)
    out, j = [], children.get(None)
    while j is not None:
        out.append(j)
        j = children.get(j)
    return out


# The chain's form, top to bottom: (what it is, the template key it expands to, optional).
FORM = (("the off-chip memory (keeps input, output and weight; no size_bits)", "dram", False),
        ("the on-chip buffer (keeps input and output, with size_bits and area_m2)", "global_buffer", False),
        ("a network-on-chip (optional)", "noc", True), ("the core fanout", "cores", False),
        ("a memory in each core (optional)", "core_buffer", True), ("the macro fanout", "macros_per_core", False))


def expanded(data: dict) -> dict:
    """``data`` (a system spec's mapping) with its ``levels`` turned into the template keys;
    unchanged without ``levels``. Raises a ValidationError naming each problem's dotted path."""
    if not isinstance(data, dict) or data.get("levels") is None:
        return data
    both = [k for k in TEMPLATE if k in data]
    _raise([_error((k,), "no template key beside `levels` (the levels list replaces dram, global_buffer, "
                         "cores, macros_per_core, noc and core_buffer)", data[k]) for k in both])
    try:
        levels = _LEVELS.validate_python(data["levels"])
    except ValidationError as e:
        _raise(_again(e, ("levels",)))
    errors = [_error(("levels", i, "keeps"), "at least one of input, output, weight (a memory that keeps "
                                             "nothing)", []) for i, x in enumerate(levels)
              if isinstance(x, MemoryLevel) and not x.keeps]
    try:
        order = _chain(levels)
    except ValidationError as e:
        _raise(errors + _again(e))
    _raise(errors)
    out = {k: v for k, v in data.items() if k != "levels"}
    out.update(_template([levels[i] for i in order], order))
    return out


def _template(chain: list, order: list[int]) -> dict:
    """The template keys of a well-formed chain; raises where the chain leaves :data:`FORM`."""
    form = "; ".join(what for what, _, _ in FORM)
    want = iter(FORM)
    out: dict[str, Any] = {}
    for pos, x in enumerate(chain):
        for what, key, optional in want:
            fits = _fits(key, x)
            if fits is True:
                out[key] = x.count if isinstance(x, FanoutLevel) else x.model_dump(
                    exclude={"kind", "name", "under", *(("keeps",) if key != "core_buffer" else ())},
                    exclude_none=True)
                break
            if optional and fits is False:  # try the next step
                continue
            _raise([_error(("levels", order[pos]), f"{what} here (levels, top to bottom: {form})" if fits is False
                           else fits, x.name)])
        else:
            _raise([_error(("levels", order[pos]), f"nothing below the macro fanout (the macro spec describes "
                                                   f"what is inside a macro), got {x.kind}", x.name)])
    missing = [what for what, key, optional in FORM if not optional and key not in out]
    if missing:
        _raise([_error(("levels",), f"levels with {'; '.join(missing)}", [x.name for x in chain])])
    return out


def _fits(key: str, x) -> bool | str:
    """Whether level ``x`` is :data:`FORM`'s step that expands to ``key``: True, False (another
    kind), or what is wrong."""
    if key in ("cores", "macros_per_core"):
        return isinstance(x, FanoutLevel)
    if key == "noc":
        return isinstance(x, NocLevel)
    if not isinstance(x, MemoryLevel):
        return False
    keeps = set(x.keeps)
    if key == "dram":
        return True if keeps == set(TENSORS) and x.size_bits is None else f"{FORM[0][0]} first"
    if "weight" in keeps:
        return "no memory of weights below the off-chip one (weights stay in the macros' cells)"
    if key == "global_buffer":
        return True if keeps == {"input", "output"} and x.size_bits and x.area_m2 else f"{FORM[1][0]} here"
    return True if x.size_bits and x.area_m2 else "a memory in each core with size_bits and area_m2"


def as_levels(system) -> list[dict]:
    """``system``'s levels, top to bottom, as a spec would list them (the default expansion)."""
    out = [{"kind": "memory", "name": "DRAM", "keeps": list(TENSORS), **system.dram.model_dump(mode="json")},
           {"kind": "memory", "name": "GlobalBuffer", "keeps": ["input", "output"],
            **system.global_buffer.model_dump(mode="json")}]
    if system.noc is not None:
        out.append({"kind": "noc", "name": "NoC", **system.noc.model_dump(mode="json", exclude_none=True)})
    out.append({"kind": "fanout", "name": "core", "count": system.cores})
    if system.core_buffer is not None:
        out.append({"kind": "memory", "name": "CoreBuffer", **system.core_buffer.model_dump(mode="json")})
    out.append({"kind": "fanout", "name": "macro", "count": system.macros_per_core})
    return out
