"""Read YAML spec files and validate them in two phases, collecting every problem.

Phase one checks shape and types (pydantic); phase two checks values that relate several
fields (``wordlines_on <= rows``, layer shapes, bits against the macro). Nothing stops at
the first problem: a :class:`SpecError` lists all of them with file and dotted path.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cimco.errors import Problem, SpecError
from cimco.spec._base import capped, clip, problems_from, short
from cimco.spec.macro import MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec

KINDS = {"macro": MacroSpec, "system": SystemSpec, "workload": WorkloadSpec}

MAX_SPEC_BYTES = 4 * 2**20  # the largest bundled spec is ~30 kB
# values (YAML nodes) read, after alias expansion: parsing takes ~8 us a value, so a file at a cap
# is refused in about 2 s at most; a file declaring another kind than a workload takes the lower one
MAX_YAML_NODES = 200_000  # a workload: a bundled one has ~19 per layer (10,000 layers: 190,000)
MAX_SPEC_NODES = 20_000  # a macro, system or sweep (the largest bundled spec has 172)
MAX_YAML_DEPTH = 32  # the specs nest 4 levels
MAX_INT_CHARS = 4000  # an integer literal longer is refused before int() (which refuses over 4300 digits)


def read_regular(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``. Directories, devices, FIFOs and
    sockets are refused before any read (a FIFO is opened without blocking), so a path
    pointing at /dev/zero or a pipe cannot hang or exhaust memory."""
    file = clip(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        reason = e.strerror if isinstance(e, OSError) else str(e)
        raise SpecError([Problem(file, "", f"cannot read {what}: {reason}")]) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
            raise SpecError([Problem(file, "", f"cannot read {what}: {kind}")])
        if st.st_size > max_bytes:
            raise SpecError([Problem(file, "", f"{what} is {st.st_size:,} bytes; cimco reads at most "
                                     f"{max_bytes:,}")])
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(st.st_size + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew while being read
        raise SpecError([Problem(file, "", f"{what} is over {max_bytes:,} bytes")])
    return data


def _node_problems(root: yaml.Node, file: str, limit: int = MAX_YAML_NODES) -> list[Problem]:
    """Bound the document before building it: expanded size (alias bombs), depth, integer
    literals (Python's int() refuses over 4300 digits), and duplicate keys (PyYAML keeps the
    last silently)."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    problems: list[Problem] = []

    def walk(node: yaml.Node, depth: int, where: str) -> int:
        if depth > MAX_YAML_DEPTH:
            raise _Bound(f"nested deeper than {MAX_YAML_DEPTH} levels at {where or 'top level'}")
        if id(node) in size:
            return size[id(node)]
        if id(node) in open_:
            raise _Bound(f"an alias refers to its own anchor at {where or 'top level'} (recursive data)")
        open_.add(id(node))
        n = 1
        if node.tag == INT_TAG and len(node.value) > MAX_INT_CHARS:
            problems.append(Problem(file, clip(where), f"an integer of {len(node.value):,} characters (line "
                                    f"{node.start_mark.line + 1}); cimco reads at most {MAX_INT_CHARS}"))
        if isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                n += walk(child, depth + 1, f"{where}[{i}]")
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                key = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                sub = f"{where}.{key}" if where else key
                if isinstance(k, yaml.ScalarNode) and key != "<<":
                    if key in seen:
                        problems.append(Problem(file, clip(sub), f"duplicate key {short(key)} (line "
                                                f"{k.start_mark.line + 1}); YAML would keep only the last"))
                    seen.add(key)
                n += walk(k, depth + 1, sub) + walk(v, depth + 1, sub)
        open_.discard(id(node))
        size[id(node)] = n
        if n > limit:
            raise _Bound(f"expands to over {limit:,} values (YAML aliases?)")
        return n

    try:
        walk(root, 0, "")
    except _Bound as e:
        return [Problem(file, "", f"refused: the document {e}")]
    return problems


class _Bound(Exception):
    pass


INT_TAG = "tag:yaml.org,2002:int"


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, on libyaml when present (it parses several times faster, and a
    multi-megabyte spec is refused in seconds), reading ``1e-15`` and ``1.0e11`` as numbers as
    YAML 1.2 does (YAML 1.1 wants a dot and a signed exponent, else they are text). Numbers
    are strict in the specs, so a quoted "16" stays text and is refused, while these stay
    numbers.

    A plain scalar's tag depends on its text alone (no path resolvers are added), so it is
    found once per distinct text, and at once for a text no implicit resolver starts with
    (PyYAML's resolver, called for each of libyaml's nodes, was half of a large file's parse)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._tags: dict[str, str] = {}

    def resolve(self, kind, value, implicit):
        if kind is not yaml.ScalarNode or not implicit[0]:
            return super().resolve(kind, value, implicit)
        tag = self._tags.get(value)
        if tag is None:
            if value and value[0] not in self.yaml_implicit_resolvers and None not in self.yaml_implicit_resolvers:
                tag = self.DEFAULT_SCALAR_TAG
            else:
                tag = super().resolve(kind, value, implicit)
            self._tags[value] = tag
        return tag


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def _unprintable(text: str, file: str) -> Problem | None:
    """The first character YAML does not allow (a control character), with its line and column.
    PyYAML's reader checks the same, but says neither line nor column (libyaml: a byte offset)."""
    found = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if found is None:
        return None
    pos = found.start()
    line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    return Problem(file, "", f"control character {ord(text[pos]):#04x} at line {line}, column {column}: not "
                             f"allowed in YAML (a spec must be a YAML text file)")


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# every YAML node but the top one and its first key follows one of these (a key a line start
# or a flow separator, a value its colon, an item its dash or bracket): their count bounds the nodes
_NODE_MARKS = ":,-[{?\n"


def _bracket_depth(text: str) -> int:
    """Deepest nesting of flow brackets, counted on the raw text (quotes ignored: an upper
    bound, used only to refuse absurd depths before parsing)."""
    depth = deepest = 0
    for ch in text.encode("utf-8").translate(None, _NOT_BRACKETS):
        if ch in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(depth - 1, 0)
    return deepest


def _nodes_bound(text: str) -> int:
    """An upper bound on the nodes PyYAML would build, from the raw text (at C speed: building
    them costs ~8 us each, so a file over its cap is refused before)."""
    return 2 + sum(text.count(mark) for mark in _NODE_MARKS)


def _declared_kind(text: str) -> str | None:
    """The ``kind:`` a file declares on a top-level line (a spec kind, else None), read from
    the raw text to choose its size cap before parsing."""
    found = _KIND.search(text)
    return found.group(1) if found and found.group(1) in (*KINDS, "sweep") else None


_KIND = re.compile(r"^kind:[ \t]*[\"']?(\w+)", re.M)


def parse_yaml(data: bytes, file: str) -> Any:
    """Parse one YAML document safely: UTF-8 only, bounded size, depth and aliases."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError([Problem(file, "", f"not UTF-8 text (byte {e.start}): a spec must be a YAML "
                                 f"text file")]) from None
    if "\x00" in text:
        raise SpecError([Problem(file, "", "contains NUL bytes: a spec must be a YAML text file")])
    if _bracket_depth(text) > 4 * MAX_YAML_DEPTH:  # PyYAML would take seconds to find out
        raise SpecError([Problem(file, "", f"refused: nested deeper than {MAX_YAML_DEPTH} levels")])
    bound, kind = _nodes_bound(text), _declared_kind(text)
    limit = MAX_YAML_NODES if kind in (None, "workload") else MAX_SPEC_NODES
    if bound > limit:
        what = f"a {kind} spec" if kind else "a spec"
        raise SpecError([Problem(file, "", f"refused: about {bound:,} YAML values (counted from its separators "
                                 f"and lines); cimco reads at most {limit:,} in {what}")])
    unprintable = _unprintable(text, file)
    if unprintable:
        raise SpecError([unprintable])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problems = _node_problems(node, file, limit)
        if problems:
            raise SpecError(capped(problems))
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError([Problem(file, "", f"YAML syntax error{where}: {clip(problem)}")]) from None
    except RecursionError:
        raise SpecError([Problem(file, "", f"refused: nested deeper than {MAX_YAML_DEPTH} levels")]) from None
    except (ValueError, OverflowError):  # a value the constructors cannot build, e.g. a date 2001-13-45
        raise SpecError([Problem(file, "", "a value cannot be read as YAML data")]) from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> dict[str, Any]:
    """One YAML mapping from a regular file; every failure becomes a SpecError."""
    file = clip(str(path))
    data = parse_yaml(read_regular(path, MAX_SPEC_BYTES, "spec file"), file)
    if not isinstance(data, dict):
        raise SpecError([Problem(file, "", f"expected a mapping at top level, got {type(data).__name__}")])
    if not all(isinstance(k, str) for k in data):
        bad = [short(k) for k in data if not isinstance(k, str)]
        raise SpecError([Problem(file, "", f"expected text keys, got {', '.join(bad[:5])}")])
    return data


def not_a_spec(data: dict[str, Any], kind: str, file: str) -> Problem | None:
    """A Problem when ``data`` (a mapping read where a ``kind`` spec belongs) is no cimco spec:
    no ``kind:`` key and most of its keys unknown, e.g. a path pointing at /etc/passwd or a
    config file. Only its first key, shortened, is quoted: listing every line as an unknown
    key would echo a file the user may not mean to show."""
    if "kind" in data:
        return None
    fields = KINDS[kind].model_fields
    unknown = sum(k not in fields for k in data)
    if 2 * unknown <= len(data):
        return None
    return Problem(file, "", f"not a cimco {kind} spec: no `kind:` key, and {unknown:,} of its {len(data):,} "
                             f"top-level keys are not {kind} keys (the first is {short(next(iter(data)), 40)})")


def _inline_macro(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A system's ``macro:`` may name a macro YAML beside it; read it in. A bad macro file
    is reported with both the system file's key and the macro file."""
    ref = data.get("macro")
    if not isinstance(ref, str):
        return data
    file = clip(str(path.parent / ref))
    try:
        macro = read_yaml(path.parent / ref)
        wrong = macro.get("kind", "macro")
        if wrong != "macro":
            raise SpecError([Problem(file, "", f"expected a macro spec, got kind {short(wrong, 40)}")])
        problem = not_a_spec(macro, "macro", file)
        if problem:
            raise SpecError([problem])
    except SpecError as e:
        raise SpecError([Problem(clip(str(path)), "macro", f"macro file {clip(repr(ref))}: "
                                 f"{p.path + ': ' if p.path else ''}{p.message}") for p in e.problems]) from None
    return {**data, "macro": macro}


def load(path: str | Path, kind: str | None = None) -> MacroSpec | SystemSpec | WorkloadSpec:
    """Load and fully validate one spec file; its ``kind:`` key picks the model."""
    path = Path(path)
    file = clip(str(path))
    data = read_yaml(path)
    k = data.get("kind", kind)
    if not isinstance(k, str) or k not in KINDS:
        raise SpecError([Problem(file, "kind", f"expected one of {', '.join(KINDS)}, got {short(k)}")])
    if kind is not None and k != kind:
        raise SpecError([Problem(file, "kind", f"expected {kind!r}, got {k!r}")])
    problem = not_a_spec(data, k, file)
    if problem:
        raise SpecError([problem])
    macro_file = data.get("macro") if k == "system" and isinstance(data.get("macro"), str) else None
    if macro_file:
        data = _inline_macro(data, path)
    try:
        spec = KINDS[k].model_validate(data)
        problems = capped(spec.macro.check(file, "macro") if isinstance(spec, SystemSpec) else spec.check(file))
    except ValidationError as e:
        problems = problems_from(e, file, data, KINDS[k])  # capped too
    if macro_file:  # a macro problem is the macro file's, as validating that file reports it
        where = clip(str(path.parent / macro_file))
        problems = [Problem(where, p.path.removeprefix("macro").removeprefix("."), p.message)
                    if p.path == "macro" or p.path.startswith("macro.") else p for p in problems]
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
