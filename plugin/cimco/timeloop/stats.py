"""Per-level scalar access counts from classic Timeloop's ``timeloop-mapper.stats.txt``.

Timeloop's summary (the end of the file) gives only energy per compute by level; the counts
that say *why* a level costs what it does (how often each data space is read, filled and
updated there) are in the per-level sections at the top, one ``=== <level> ===`` block per
level under ``Buffer and Arithmetic Levels``, each with one block per kept data space. Those
blocks print per-instance counts; :func:`parse_levels` turns them into totals over the whole
level so they can be compared with the workload's own counts (MACs, tensor sizes) and with
cimco's action counts.

Which count multiplies which (read from Timeloop v3.0.3, ``src/model/buffer.cpp``,
``BufferLevel::Print``, which ``operator<<(std::ostream&, const BufferLevel&)`` calls):

- ``Scalar reads / updates / fills (per-instance)`` print ``stats.reads / updates / fills``;
- ``Utilized instances (max)`` prints ``int(stats.utilized_instances)``, the instances of the
  level that hold a tile of that data space (``ComputeScalarAccesses`` sets it to the tile's
  replication factor);
- Timeloop's own totals multiply exactly these two: ``BufferLevel::Accesses`` is
  ``utilized_instances * (reads + updates + fills)`` (summed over data spaces it is the
  ``Total scalar accesses`` line of ``Operational Intensity Stats``, ``src/model/topology.cpp``),
  and ``Energy (total)`` is the per-instance energy times ``utilized_instances``.

So a total here is the per-instance counter times that data space's ``Utilized instances (max)``,
not times the level's ``Instances`` from its SPECS (the hardware's count, used or not), and not
times ``Utilized clusters`` (that multiplies the per-cluster ``Address generations``, which,
like ``Temporal reductions``, is not returned). Timeloop keeps ``utilized_instances`` as an
average over a mapping's tiles and prints it truncated to an integer; for perfectly factorized
mappings (all cimco exports so far) the two agree, otherwise a total here can be slightly below
Timeloop's own.

Only the dense print format is read (no ``sparse_optimizations`` in the inputs); the sparse
format (``Actual scalar reads``, ``Utilized instances (average)``) raises ValueError.
"""

from __future__ import annotations

import re

__all__ = ["parse_levels", "parse_level_cycles"]

_LEVELS_HEADER = "Buffer and Arithmetic Levels"
# Headers that end the per-level part; the Operational Intensity part repeats "=== <level> ===".
_AFTER_LEVELS = re.compile(r"^(Networks|Operational Intensity Stats|Summary Stats)\s*$", re.M)
_LEVEL = re.compile(r"^=== (.+?) ===\s*$", re.M)
_SPACE = re.compile(r"^ {4}(\w+):\s*$")  # a data-space block header inside STATS, e.g. "    Weights:"
_FIELD = re.compile(r"^\s+(.+?)\s*:\s*(.*?)\s*$")

_INSTANCES = "Utilized instances (max)"
_COUNTERS = {
    "read": "Scalar reads (per-instance)",
    "fill": "Scalar fills (per-instance)",
    "update": "Scalar updates (per-instance)",
}


def _level_sections(text: str) -> list[tuple[str, list[str]]]:
    """(level name, lines of its STATS part) for every level, innermost (Level 0) first."""
    start = text.find(_LEVELS_HEADER)
    if start < 0:
        raise ValueError(f"not a Timeloop stats file: no {_LEVELS_HEADER!r} section")
    body = text[start:]
    end = _AFTER_LEVELS.search(body)
    if end is None:
        raise ValueError("not a complete Timeloop stats file: the level sections never end (truncated?)")
    body = body[: end.start()]
    heads = list(_LEVEL.finditer(body))
    if not heads:
        raise ValueError("not a Timeloop stats file: no '=== <level> ===' sections")
    sections = []
    for i, head in enumerate(heads):
        chunk = body[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(body)]
        lines = chunk.splitlines()
        stats_at = next((j for j, line in enumerate(lines) if line.strip() == "STATS"), None)
        sections.append((head.group(1), [] if stats_at is None else lines[stats_at + 1 :]))
    return sections


def _number(level: str, space: str, key: str, value: str) -> float:
    try:
        return float(value.split()[0])
    except (ValueError, IndexError):
        raise ValueError(f"{level}/{space}: {key!r} is {value!r}, not a number") from None


def parse_levels(text: str) -> dict[str, dict[str, dict[str, float]]]:
    """Total scalar reads, fills and updates, over all utilized instances, per storage level
    and kept data space: ``{"DRAM": {"Weights": {"read": 9216.0, "fill": 0.0, "update": 0.0}, ...}, ...}``.

    Each total is the block's ``Scalar <action>s (per-instance)`` times its ``Utilized instances
    (max)`` (why that count, see the module docstring). Levels are keyed by their name in the
    architecture; a storage level that keeps no data space maps to ``{}``; the arithmetic level
    (no data-space blocks) is left out. ValueError if ``text`` is not a dense Timeloop stats
    file or a data-space block lacks one of those counters."""
    levels: dict[str, dict[str, dict[str, float]]] = {}
    for name, lines in _level_sections(text):
        spaces: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for line in lines:
            head = _SPACE.match(line)
            if head:
                current = spaces.setdefault(head.group(1), {})
                continue
            field = _FIELD.match(line)
            if field and current is not None:
                current[field.group(1)] = field.group(2)
        if not spaces:
            if any(line.strip().startswith("Computes") for line in lines):
                continue  # the arithmetic level
            levels[name] = {}
            continue
        levels[name] = {}
        for space, fields in spaces.items():
            if "Actual scalar reads (per-instance)" in fields:
                raise ValueError(f"{name}/{space}: sparse-format Timeloop stats are not supported")
            missing = [k for k in (_INSTANCES, *_COUNTERS.values()) if k not in fields]
            if missing:
                raise ValueError(f"{name}/{space}: Timeloop stats block lacks {', '.join(map(repr, missing))}")
            instances = _number(name, space, _INSTANCES, fields[_INSTANCES])
            levels[name][space] = {
                action: _number(name, space, key, fields[key]) * instances for action, key in _COUNTERS.items()
            }
    if not levels:
        raise ValueError("not a Timeloop stats file: no storage level sections")
    return levels


def parse_level_cycles(text: str) -> dict[str, float]:
    """Each level's ``Cycles`` from its STATS (the arithmetic level's too); the summary's
    ``Cycles`` is their maximum plus the networks' fill and drain latency (``src/model/topology.cpp``).
    ValueError as for :func:`parse_levels`."""
    cycles: dict[str, float] = {}
    for name, lines in _level_sections(text):
        for line in lines:
            field = _FIELD.match(line)
            if field and field.group(1) == "Cycles":
                cycles[name] = _number(name, "-", "Cycles", field.group(2))
                break
    return cycles
