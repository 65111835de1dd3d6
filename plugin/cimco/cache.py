"""The on-disk cache of layer mappings and component tables.

An entry's key is a SHA-256 of everything that can change it: the system spec, the layer's
Einsum and bits, the backend and its engine's versions, cimco's version and the source of
every module of the installed ``cimco`` package (a new module cannot escape invalidation).
A changed input gets a new key, so an entry is never served stale. An entry that cannot be
read back (truncated, garbage, a directory, wrong or ill-typed fields, a negative or
non-finite number) is a miss: a one-line warning, a remap, and the entry overwritten.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from cimco.backends import LayerResult
from cimco.io import write_atomic


@functools.cache
def code_hash() -> str:
    """SHA-256 over the source of every module of the ``cimco`` package (path and text)."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def key(system, einsum: dict, bits, engine: dict[str, str]) -> str:
    """The cache key of one layer mapping (or, with a table's einsum, of component tables)."""
    from cimco import __version__

    payload = {
        "system": system.model_dump(mode="json"),
        "einsum": einsum,
        "bits": bits.model_dump(),
        "versions": {"cimco": __version__, **engine},
        "code": code_hash(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def result_to_json(r: LayerResult) -> str:
    d = {f.name: getattr(r, f.name) for f in fields(r)}  # plain values: no deep copy (asdict's) needed
    for k in ("energy", "actions", "tensor_actions"):
        d[k] = {"|".join(key): v for key, v in d[k].items()}
    return json.dumps(d, allow_nan=False)


def _count(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _table(x: object, pairs: bool) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) and (not pairs or "|" in k) and _count(v)
                                       for k, v in x.items())


def _loops(x: object) -> bool:
    return isinstance(x, list) and all(isinstance(d, dict) and isinstance(d.get("node"), str) for d in x)


CHECKS: dict[str, Callable[[object], bool]] = {
    "energy_j": _count, "latency_s": _count, "computes": _count,
    "energy": lambda x: _table(x, True), "actions": lambda x: _table(x, True),
    "tensor_actions": lambda x: _table(x, True), "latency_by_component": lambda x: _table(x, False),
    "mapping": lambda x: isinstance(x, str), "loops": _loops, "column_split": lambda x: isinstance(x, bool),
    "budget_bits": lambda x: _table(x, False),
}


def result_from_json(text: str) -> LayerResult:
    """Read back what :func:`result_to_json` wrote; ValueError if it is anything else."""
    d = json.loads(text)
    if not isinstance(d, dict):
        raise ValueError(f"expected an object, got {type(d).__name__}")
    names = [f.name for f in fields(LayerResult)]
    bad = [k for k in names if k not in d or not CHECKS[k](d[k])] + [k for k in d if k not in names]
    if bad:
        raise ValueError(f"missing, unexpected, ill-typed or out-of-range fields: {', '.join(bad)}")
    for k in ("energy", "actions", "tensor_actions"):
        d[k] = {tuple(key.split("|")): v for key, v in d[k].items()}
    return LayerResult(**d)


def read[T](path: Path, parse: Callable[[str], T]) -> T | None:
    """``parse`` of the cache entry at ``path``; None (after a one-line warning on stderr) if
    it cannot be read or parsed: a corrupt entry is a miss, not a failure of every rerun.
    ``parse`` raises ValueError, TypeError or KeyError on anything it was not written as."""
    try:
        return parse(path.read_text())
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as e:  # a directory, JSON, UTF-8, fields
        print(f"cimco: warning: cache entry {path} is corrupt ({type(e).__name__}: {str(e)[:200]}); remapping",
              file=sys.stderr)
        return None


def write(path: Path, text: str) -> None:
    """Write (or overwrite) a cache entry atomically, even one that was made a directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    write_atomic(path, text)
