"""Shared pydantic base and the helpers that turn validation failures into Problems.

Messages speak the spec's language: dotted paths into the user's file (never pydantic's
union tags such as ``constrained-int``), "expected ..., got ..." with the value shortened,
a unit hint for physical quantities, and the closest valid key for a misspelt one.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cimco.errors import Problem


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable and finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def Number(**bounds: float) -> Any:  # noqa: N802 (reads as a type)
    """A finite float within ``bounds`` (pydantic's ``ge``, ``gt``, ``le``, ``lt``). Strict: an
    integer is a number (1 for 1.0), but ``true`` or ``"16"`` is not, where lax pydantic would
    read ``voltage_v: true`` as 1.0 V and a quoted "16" as 16."""
    return Annotated[float, Field(strict=True, **bounds)]


BitsPerSecond = Number(ge=1e3, le=1e16)  # 1 kb/s .. 10 Pb/s


def Bounded(lo: int = 1, hi: int = 2**20) -> Any:  # noqa: N802 (reads as a type)
    """An integer in ``lo..hi``: far beyond any real macro or layer, but small enough that
    the models and the mapper never see absurd sizes."""
    return Annotated[int, Field(ge=lo, le=hi, strict=True)]


# Unit hints by the field name's suffix (longest first): shown when a value is out of range.
UNIT_HINTS = (
    ("_bits_per_s", "in bits per second (12.8 GB/s is 1.024e11)"),
    ("macs_per_s", "in multiply-accumulates per second (256 a cycle at 1 GHz is 2.56e11)"),
    ("_m2", "in square metres (0.5 mm^2 is 0.5e-6)"),
    ("_j", "in joules (1 pJ is 1e-12)"),
    ("_m", "in metres (28 nm is 28e-9)"),
    ("_v", "in volts"),
    ("_s", "in seconds (4 ns is 4e-9)"),
)

MAX_ECHO = 60  # characters of a user's value quoted back in a message
MAX_PROBLEMS = 20  # problems listed for one file; the rest are counted (100,000 bad keys stay fast to report)


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (file names, upstream messages)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr(value)``, cut to ``limit`` characters so a message never echoes a whole input."""
    return clip(repr(value), limit)


def capped(problems: list[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
    """The first ``limit`` problems and one line counting the rest, so that a file with
    100,000 bad keys is refused as quickly, and as readably, as one with three."""
    if len(problems) <= limit:
        return problems
    return problems[:limit] + [more(problems[limit].file, len(problems) - limit)]


def more(file: str, n: int) -> Problem:
    """The line standing for ``n`` problems not listed."""
    return Problem(file, "", f"and {n:,} more problem{'s' if n != 1 else ''} not listed (fix the ones above first)")


def dotted(loc: tuple) -> str:
    """``("layers", 3, "stride")`` -> ``layers[3].stride``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _real_loc(loc: tuple, data: Any) -> tuple:
    """Drop the parts of pydantic's ``loc`` that are not in the user's data (union member
    tags like ``int``, ``tuple[int, int]``, ``constrained-int``, a discriminator's value)."""
    out, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        out.append(part)
    return tuple(out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The spec models an annotation may hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out = []
    if typing.get_origin(annotation) is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            out += _models_in(arg)
    return out


def _keys_at(model: type[BaseModel], loc: tuple) -> set[str]:
    """Valid keys of the mapping at ``loc`` (below ``model``), for spelling suggestions."""
    models = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        models = [m for cls in models if part in cls.model_fields
                  for m in _models_in(cls.model_fields[part].annotation)]
    return {k for cls in models for k in cls.model_fields}


def _hint(loc: tuple) -> str:
    """The unit of the innermost named quantity on the path (``area_m2.ADC.value`` is in m^2)."""
    for name in reversed([p for p in loc if isinstance(p, str) and p != "value"]):
        for suffix, hint in UNIT_HINTS:
            if name.endswith(suffix):
                return f"; {name} is {hint}"
    return ""


_WANTED = {  # pydantic error type -> what the user should write, in the spec's words
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "text",
    "tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "less_than_equal": "at most {le}", "greater_than_equal": "at least {ge}",
    "greater_than": "above {gt}", "less_than": "below {lt}",
    "too_long": "a list of at most {max_length} values", "too_short": "a list of at least {min_length} values",
    "string_too_long": "text of at most {max_length} characters",
    "string_too_short": "text of at least {min_length} character(s)",
    "union_tag_invalid": "{discriminator} to be one of {expected_tags}",
}


_NUMBER_ERRORS = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing"}


def _got(value: Any) -> str:
    """A found value in the spec's words: a boolean or a string where a number belongs is
    named as such (``true`` is not 1, ``"16"`` is not 16)."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({short(value)})"
    return short(value)


def _expected(e: dict) -> str:
    form = _WANTED.get(e["type"])
    if form is None:
        return e["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return form.format(**{k: v for k, v in (e.get("ctx") or {}).items()})


def problems_from(err: ValidationError, file: str, data: Any, model: type[BaseModel],
                  prefix: str = "", limit: int = MAX_PROBLEMS) -> list[Problem]:
    """One Problem per bad field of ``data`` (validated as ``model``): the dotted path, what
    was expected and what was found. Union members' errors at one path are merged. At most
    ``limit`` fields are described (closest-key suggestions cost a difflib search each); the
    rest are counted in one line."""
    by_path: dict[tuple, list[dict]] = {}
    for e in err.errors():
        by_path.setdefault(_real_loc(e["loc"], data), []).append(e)
    out: list[Problem] = []
    for n, (loc, errs) in enumerate(by_path.items()):
        if len(out) >= limit:
            return out + [more(file, len(by_path) - n)]
        out += _problems_at(loc, errs, file, model, prefix)
    return out


def _problems_at(loc: tuple, errs: list[dict], file: str, model: type[BaseModel], prefix: str) -> list[Problem]:
    """The Problems of one path of the user's data, from pydantic's errors there."""
    path = dotted(loc)
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    kinds = {e["type"] for e in errs}
    if "missing" in kinds:
        missing = sorted({str(e["loc"][-1]) for e in errs if e["type"] == "missing"})
        return [Problem(file, f"{path}.{key}" if path else key, "required field is missing") for key in missing]
    if "extra_forbidden" in kinds:
        # pydantic puts the unknown key itself last in loc; _real_loc kept it
        key = str(loc[-1]) if loc else ""
        valid = sorted(_keys_at(model, loc[:-1]))
        if key in valid:  # a key of another kind of entry in a list of several kinds (a level's `kind`)
            return [Problem(file, path, "not a key of this kind of entry")]
        near = difflib.get_close_matches(key, valid, n=1)
        return [Problem(file, path, "unknown key" + (f"; did you mean {near[0]!r}?" if near else
                                                     f" (valid here: {', '.join(valid)})"))]
    wanted = " or ".join(dict.fromkeys(_expected(e) for e in errs))
    found = errs[0].get("input")
    got = _got(found) if kinds & _NUMBER_ERRORS else short(found)
    if "model_type" in kinds and not isinstance(found, dict | list):  # a scalar where a mapping belongs
        wanted += _form(_keys_at(model, loc), found, loc)
    return [Problem(file, path, f"expected {wanted}, got {got}" + _hint(loc))]


def _form(keys: set[str], found: Any, loc: tuple) -> str:
    """The mapping's expected form, with the scalar given in its place where it fits."""
    v = found if isinstance(found, int | float) and not isinstance(found, bool) else "..."
    name = f"{loc[-1]}: " if loc and isinstance(loc[-1], str) else ""
    if keys == {"value", "source"}:
        return f" such as `{name}{{value: {v}, source: \"paper, measurement or assumed\"}}`"
    if {"min", "max"} <= keys:
        return f" such as `{name}{{min: {v}, max: {v}}}`"
    return f" with keys {', '.join(sorted(keys))}" if keys else ""
