"""``cimco map --backend timeloop``: map each layer with classic Timeloop's ``timeloop-mapper``.

The workload is exported (:mod:`cimco.timeloop.bundle`) into ``OUT/timeloop``; the mapper runs
once per distinct layer (same files but for comments) inside that layer's directory, where it
leaves its own outputs. Results come from ``timeloop-mapper.stats.txt``, the text summary
Timeloop documents as its mapper output: ``Cycles``, ``Computes`` and energy per compute of
each level (fJ). They fill the same ``report.json`` schema as the AccelForge backend:
latency = cycles x ``cycle_s``, energy by Timeloop level (the ADC level includes the
shift-add; ``Total`` minus the levels is Timeloop's own networks and adders).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cimco.errors import LimitError, MappingError, Problem, SpecError
from cimco.report import Tables, efficiency
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec
from cimco.timeloop.bundle import FILES, Exported, export_system

BINARY = "timeloop-mapper"
STATS = f"{BINARY}.stats.txt"
MAP = f"{BINARY}.map.txt"


@dataclass(frozen=True)
class Stats:
    """What cimco reads from one ``timeloop-mapper.stats.txt``."""

    cycles: int
    computes: int
    fj_per_compute: dict[str, float]  # by level (and network), without "Total"
    total_fj_per_compute: float

    @property
    def energy_j(self) -> float:
        return self.total_fj_per_compute * self.computes * 1e-15

    def energy_by_component_j(self) -> dict[str, float]:
        """Energy by level; whatever Timeloop adds beyond its levels (networks) as ``TimeloopOther``."""
        by = {k: v * self.computes * 1e-15 for k, v in self.fj_per_compute.items()}
        levels = {k: v for k, v in by.items() if "<==>" not in k}
        rest = self.energy_j - sum(levels.values())
        return {**levels, "TimeloopOther": max(rest, 0.0)}


def parse_stats(text: str) -> Stats:
    """The summary at the end of ``timeloop-mapper.stats.txt``; ValueError if it is not there."""
    _, sep, summary = text.rpartition("Summary Stats")
    cycles = re.search(r"^Cycles: (\d+)", summary, re.M)
    computes = re.search(r"^Computes = (\d+)", summary, re.M)
    table = re.search(r"^fJ/Compute\n((?:[ \t]+.+\n?)+)", summary, re.M)
    if not (sep and cycles and computes and table):
        raise ValueError("no Timeloop summary (Cycles, Computes, fJ/Compute) found")
    per = {}
    for line in table.group(1).splitlines():
        name, _, value = line.strip().rpartition("=")
        per[name.strip()] = float(value)
    total = per.pop("Total")
    return Stats(int(cycles.group(1)), int(computes.group(1)), per, total)


def find_binary(given: str | None) -> str:
    """The timeloop-mapper to run: ``given`` or the one on PATH; SpecError (exit 2) if none."""
    path = shutil.which(given or BINARY)
    if path is None:
        where = f"--timeloop-bin {given!r} is not an executable" if given else f"{BINARY} is not on PATH"
        raise SpecError([Problem("cimco map", "--backend timeloop", f"{where}. Install classic Timeloop "
                                 f"(github.com/NVlabs/timeloop, v3.0.x builds without ISL) and put {BINARY} on "
                                 f"PATH or pass --timeloop-bin, or use --backend accelforge (the default). "
                                 f"`cimco timeloop export` writes the same inputs without running anything")])
    return path


def _content_key(d: Path) -> str:
    """Hash of a layer directory's inputs without comments (layer names live in comments)."""
    h = hashlib.sha256()
    for name in FILES:
        text = (d / name).read_text()
        h.update("\n".join(x for x in text.splitlines() if not x.startswith("#")).encode())
    return h.hexdigest()


def run_layer(binary: str, d: Path, timeout_s: float | None) -> tuple[Stats, str]:
    """Run the mapper in ``d``; its stats and mapping (MappingError / LimitError on failure)."""
    stats = d / STATS
    stats.unlink(missing_ok=True)  # never read a previous run's result
    try:
        proc = subprocess.run([binary, *FILES], cwd=d, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LimitError(f"timeloop-mapper took longer than {timeout_s:g} s in {d}") from None
    if proc.returncode != 0 or not stats.exists():
        tail = (proc.stderr.strip() or proc.stdout.strip())[-800:]
        raise MappingError(f"timeloop-mapper failed in {d} (exit {proc.returncode}): {tail}")
    try:
        parsed = parse_stats(stats.read_text())
    except ValueError as e:
        raise MappingError(f"{stats}: {e}") from None
    mapping = (d / MAP).read_text() if (d / MAP).exists() else ""
    return parsed, mapping


def _layer_entry(ex: Exported, workload: WorkloadSpec, stats: Stats, mapping: str) -> dict:
    layer, n = ex.layer, ex.layer.repeat
    by_comp = {c: e * n for c, e in stats.energy_by_component_j().items()}
    return {
        "name": layer.name,
        "dense_macs": layer.macs * n,
        "executed_macs": (ex.compressed or layer).macs * n,
        "energy_j": stats.energy_j * n,
        "latency_s": stats.cycles * ex.cycle_s * n,
        "cycles": stats.cycles,
        "bits": workload.layer_bits(layer).model_dump(),
        "weight_density": ex.weight_density,
        "block_density": ex.block_density,
        "input_density": layer.input_density,
        "energy_by_component": by_comp,
        "mapping": mapping,
    }


def build_report(system: SystemSpec, workload: WorkloadSpec, layers: list[dict], tables: Tables,
                 binary: str) -> dict:
    from cimco import __version__

    by_comp: dict[str, float] = {}
    for x in layers:
        for c, e in x["energy_by_component"].items():
            by_comp[c] = by_comp.get(c, 0.0) + e
    return {
        "cimco_version": __version__,
        "engine": {"timeloop-mapper": binary},
        "system": system.name,
        "workload": workload.name,
        "totals": {
            **efficiency(layers, by_comp, 1.0 / sum(x["latency_s"] for x in layers)),
            # Timeloop runs each layer on its own: one after another, weights loaded every run
            "mode": "sequential",
            "weights": "reload",
            "batch": 1,
            "column_split_layers": 0,
            "area_m2": sum(tables.art.values()),
        },
        "layers": layers,
        "energy_by_component": by_comp,
    }


def map_with_timeloop(system: SystemSpec, workload: WorkloadSpec, tables: Tables, out: Path,
                      masks: dict[str, np.ndarray] | None, binary: str, timeout_s: float | None = None,
                      progress: bool = True) -> dict:
    """Export, run timeloop-mapper per distinct layer, and return the report (not yet written)."""
    exported = export_system(system, workload, tables, out / "timeloop", masks)
    results: dict[str, tuple[Stats, str]] = {}
    layers = []
    for ex in exported:
        key = _content_key(ex.dir)
        if key not in results:
            if progress:
                print(f"timeloop-mapper: {ex.layer.name} ({ex.dir})", flush=True)
            try:
                results[key] = run_layer(binary, ex.dir, timeout_s)
            except (MappingError, LimitError) as e:
                e.layer = ex.layer.name
                raise
        layers.append(_layer_entry(ex, workload, *results[key]))
    return build_report(system, workload, layers, tables, binary)
