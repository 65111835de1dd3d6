"""Read YAML spec files and validate them in two phases, collecting every problem.

Phase one checks shape and types (pydantic); phase two checks values that relate several
fields (``wordlines_on <= rows``, layer shapes, bits against the macro). Nothing stops at
the first problem: a :class:`SpecError` lists all of them with file and dotted path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cimco.errors import Problem, SpecError
from cimco.spec._base import problems_from
from cimco.spec.macro import MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec

KINDS = {"macro": MacroSpec, "system": SystemSpec, "workload": WorkloadSpec}


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML mapping; syntax errors and missing files become SpecErrors."""
    file = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError([Problem(file, "", f"cannot read file: {e.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        msg = f"YAML syntax error{' at ' + where if where else ''}: {getattr(e, 'problem', e)}"
        raise SpecError([Problem(file, "", msg)]) from None
    if not isinstance(data, dict):
        raise SpecError([Problem(file, "", f"expected a mapping at top level, got {type(data).__name__}")])
    return data


def _inline_macro(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A system's ``macro:`` may name a macro YAML beside it; read it in."""
    ref = data.get("macro")
    if isinstance(ref, str):
        data = {**data, "macro": read_yaml(path.parent / ref)}
    return data


def load(path: str | Path, kind: str | None = None) -> MacroSpec | SystemSpec | WorkloadSpec:
    """Load and fully validate one spec file; its ``kind:`` key picks the model."""
    path = Path(path)
    file = str(path)
    data = read_yaml(path)
    k = data.get("kind", kind)
    if k not in KINDS:
        raise SpecError([Problem(file, "kind", f"expected one of {sorted(KINDS)}, got {k!r}")])
    if kind is not None and k != kind:
        raise SpecError([Problem(file, "kind", f"expected {kind!r}, got {k!r}")])
    problems: list[Problem] = []
    if k == "system":
        data = _inline_macro(data, path)
    try:
        spec = KINDS[k].model_validate(data)
    except ValidationError as e:
        raise SpecError(problems_from(e, file)) from None
    if isinstance(spec, SystemSpec):
        problems += spec.macro.check(file, "macro")
    else:
        problems += spec.check(file)
    if problems:
        raise SpecError(problems)
    return spec


def check_fit(system: SystemSpec, workload: WorkloadSpec, file: str) -> list[Problem]:
    """Problems running ``workload`` on ``system`` (bits the macro does not support)."""
    m = system.macro
    out = []
    for i, layer in enumerate(workload.layers):
        bits = workload.layer_bits(layer)
        for t in ("input", "weight", "output"):
            b, r = getattr(bits, t), getattr(m, f"{t}_bits")
            if not r.min <= b <= r.max:
                where = f"layers[{i}].bits.{t}" if layer.bits else f"bits.{t}"
                out.append(Problem(file, where, f"layer {layer.name!r}: macro {m.name!r} supports "
                                                f"{t} bits {r.min}..{r.max}, got {b}"))
    return out


def load_pair(system_path: str | Path, workload_path: str | Path) -> tuple[SystemSpec, WorkloadSpec]:
    """Load a system and a workload and check they fit; raise every problem at once."""
    problems: list[Problem] = []
    specs = []
    for p, k in ((system_path, "system"), (workload_path, "workload")):
        try:
            specs.append(load(p, k))
        except SpecError as e:
            problems += e.problems
    if problems:
        raise SpecError(problems)
    system, workload = specs
    problems = check_fit(system, workload, str(workload_path))
    if problems:
        raise SpecError(problems)
    return system, workload
