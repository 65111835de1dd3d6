"""Shared pydantic base and the helpers that turn validation failures into Problems."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from cimco.errors import Problem


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def dotted(loc: tuple) -> str:
    """``("layers", 3, "stride")`` -> ``layers[3].stride``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def problems_from(err: ValidationError, file: str, prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error, naming the dotted path, expected and got."""
    out = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = dotted(loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        kind = e["type"]
        if kind == "missing":
            msg = "required field is missing"
        elif kind == "extra_forbidden":
            msg = "unknown key (check the spelling; see the bundled specs for the schema)"
        else:
            msg = f"{e['msg']} (got {e.get('input')!r})"
        out.append(Problem(file, path, msg))
    return out
