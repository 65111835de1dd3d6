"""The ``timeloop`` backend: map each distinct layer with classic Timeloop's ``timeloop-mapper``.

The dense layer's inputs (:func:`cimco.timeloop.bundle.layer_files`) are written into
``OUT/timeloop/<layer>/``, where the mapper runs and leaves its own outputs. The result comes
from ``timeloop-mapper.stats.txt``, the text Timeloop documents as its mapper output: the
summary (``Cycles``, ``Computes``, energy per compute by level) and, per storage level and
data space, the scalar reads, fills and updates (:mod:`cimco.timeloop.stats`). Those counts
are turned back into cimco's actions, the inverse of :func:`cimco.timeloop.arch.energy_table`
(each Timeloop action stands for a fixed number of cimco actions), so the pipeline's
sparsity and execution steps and the report work on them as on AccelForge's; the report's
energies are cimco's ERT times these counts, and Timeloop's own total is kept as the
layer's ``engine_energy_j``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cimco.backends import LayerResult, by_action
from cimco.errors import LimitError, MappingError, Problem, SpecError
from cimco.geometry import MacroGeometry
from cimco.io import scratch_dir, write_atomic
from cimco.parts import CELL_ARRAY, COMPUTE, CORE_BUFFER, DRAM, GLOBAL_BUFFER, NOC, READOUT_PARTS, WORDLINE_DRIVER
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer, WorkloadSpec
from cimco.tables import Tables
from cimco.timeloop.arch import LayerPlan, readout_level
from cimco.timeloop.bundle import FILES, layer_files
from cimco.timeloop.layout import CORE_INNER, DIMS, INNER_BUFFER, word_bits
from cimco.timeloop.stats import parse_level_cycles, parse_levels

BINARY = "timeloop-mapper"
STATS = f"{BINARY}.stats.txt"
MAP = f"{BINARY}.map.txt"
ENV = "CIMCO_TIMELOOP_BIN"
TENSORS = {"Weights": "W", "Inputs": "I", "Outputs": "O"}
# the memories' Timeloop levels -> cimco's parts (a memory's two levels are one part)
PARTS = {DRAM: DRAM, GLOBAL_BUFFER: GLOBAL_BUFFER, INNER_BUFFER: GLOBAL_BUFFER, CORE_BUFFER: CORE_BUFFER,
         CORE_INNER: CORE_BUFFER}


@dataclass(frozen=True)
class Stats:
    """What cimco reads from the summary of one ``timeloop-mapper.stats.txt``."""

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
    """The timeloop-mapper to run: ``given``, else ``$CIMCO_TIMELOOP_BIN``, else the one on
    PATH; SpecError (exit 2) if there is none."""
    given = given or os.environ.get(ENV) or None
    path = shutil.which(given or BINARY)
    if path is None:
        where = f"{given!r} is not an executable" if given else f"{BINARY} is not on PATH and {ENV} is not set"
        raise SpecError([Problem("cimco map", "--backend timeloop", f"{where}. Install classic Timeloop "
                                 f"(github.com/NVlabs/timeloop, v3.0.x builds without ISL) and put {BINARY} on "
                                 f"PATH, set {ENV} or pass --timeloop-bin, or use --backend accelforge (the "
                                 f"default). `cimco timeloop export` writes the same inputs without running anything")])
    return path


def run_layer(binary: str, d: Path, timeout_s: float | None) -> tuple[str, str]:
    """Run the mapper in ``d``; its stats text and mapping (MappingError / LimitError on failure)."""
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
    return stats.read_text(), (d / MAP).read_text() if (d / MAP).exists() else ""


@functools.cache
def _tables(system_json: str, bits_json: str) -> Tables:
    """cimco's component tables for a system (per process: a worker builds them once)."""
    from cimco.tables import component_tables

    system, bits = SystemSpec.model_validate_json(system_json), Bits.model_validate_json(bits_json)
    probe = WorkloadSpec(name="probe", source="cimco", bits=bits,
                         layers=[Layer(name="probe", type="linear", in_channels=1, out_channels=1)])
    return component_tables(system, probe)


def to_result(system: SystemSpec, bits: Bits, text: str, mapping: str) -> LayerResult:
    """A Timeloop stats file of a dense layer as cimco's result: each level's counts turned
    into the cimco actions its Timeloop actions stand for (see :func:`cimco.timeloop.arch.energy_table`):
    DRAM's and the buffers' words x word bits; an input's fill of the word-line drivers x input
    slices; a readout update x readouts per output for every readout part; a cell read (one
    MAC) x input x weight slices, a cell fill (one weight) x weight bits; what crosses a NoC
    (the global buffer's reads and updates, the cells' fills). Each macro part's time is the
    cycles x ``cycle_s``, each memory's its bits over its bandwidth."""
    summary, levels, cycles = parse_stats(text), parse_levels(text), parse_level_cycles(text)
    g = MacroGeometry.of_system(system, bits)
    wb, both = word_bits(bits), g.input_slices * g.weight_slices
    readout = readout_level(system)
    readouts = [p for p in system.macro.parts if p in READOUT_PARTS]
    tensor: dict[tuple[str, str, str], float] = {}

    def add(part: str, space: str, action: str, n: float) -> None:
        if n:
            key = (part, TENSORS[space], action)
            tensor[key] = tensor.get(key, 0.0) + n

    noc = system.noc is not None
    for level, spaces in levels.items():
        for space, c in spaces.items():
            if level in PARTS:
                part = PARTS[level]
                add(part, space, "read", c["read"] * wb)
                add(part, space, "write", (c["fill"] + c["update"]) * wb)
                if noc and part == GLOBAL_BUFFER:  # down to the cores and up from them
                    add(NOC, space, "read", (c["read"] + c["update"]) * wb)
            elif level == WORDLINE_DRIVER:
                add(level, space, "read", c["fill"] * g.input_slices)
            elif level == readout:
                for part in readouts:
                    add(part, space, "read", c["update"] * g.conversions_per_output)
            elif level == CELL_ARRAY:
                add(level, space, "read", c["read"] * both)
                add(level, space, "write", c["fill"] * bits.weight)
                if noc:  # a weight from DRAM crosses the NoC
                    add(NOC, space, "read", c["fill"] * bits.weight)
    actions = {(COMPUTE, "compute"): float(summary.computes), **by_action(tensor)}
    moved = {}  # bits by part
    for (part, _, _), n in tensor.items():
        moved[part] = moved.get(part, 0.0) + n
    # the macro's parts take Timeloop's cycles; a memory (and the NoC) its bits over its bandwidth
    # (a core buffer's: each core's), as the other backends time them: Timeloop's cycles of a
    # memory level are the layer's, throttled or not. A memory's two levels are one SRAM.
    latency = {level: n * g.cycle_s for level, n in cycles.items() if level not in PARTS}
    latency.update({p: latency[readout] for p in readouts if readout in latency})
    latency[COMPUTE] = 0.0  # (its time is the cells')
    energy = summary.energy_by_component_j()
    for level, part in PARTS.items():
        if level != part and level in energy:
            energy[part] = energy.get(part, 0.0) + energy.pop(level)
    for part, spec, copies in ((DRAM, system.dram, 1), (GLOBAL_BUFFER, system.global_buffer, 1),
                               (CORE_BUFFER, system.core_buffer, system.cores), (NOC, system.noc, 1)):
        if spec is not None:
            bandwidth = spec.link_bandwidth_bits_per_s if part == NOC else spec.bandwidth_bits_per_s
            latency[part] = moved.get(part, 0.0) / copies / bandwidth
    if noc:  # the NoC's share of what the buffer and the cells were charged (arch.energy_table)
        per_bit = _tables(system.model_dump_json(), bits.model_dump_json()).ert[NOC]["read"]
        weights_j = tensor.get((NOC, "W", "read"), 0.0) * per_bit
        energy[NOC] = moved.get(NOC, 0.0) * per_bit
        energy[CELL_ARRAY] -= weights_j
        energy[GLOBAL_BUFFER] -= energy[NOC] - weights_j
    return LayerResult(
        energy_j=summary.energy_j,
        latency_s=max(summary.cycles * g.cycle_s, *latency.values()),
        computes=float(summary.computes),
        energy={(level, "all"): e for level, e in energy.items()},
        actions=actions,
        tensor_actions=tensor,
        latency_by_component=latency,
        mapping=mapping,
        loops=loops_of(mapping, system),
    )


_LEVEL = re.compile(r"^(\w+) \[ (.*?) \]")
_LOOP = re.compile(r"^\|\s*for (\w+) in \[(\d+):(\d+)\)( \(Spatial-([XY])\))?")
RANKS = {d: k for k, d in DIMS.items()}  # Timeloop dimension -> cimco rank


def loops_of(map_text: str, system: SystemSpec) -> list[dict]:
    """``timeloop-mapper.map.txt`` as cimco's mapping data (:class:`cimco.backends.LayerResult`),
    in cimco's names: each level with the tensors it keeps, then its loops over cimco's ranks
    (Timeloop's placeholder loops of one iteration left out), a spatial loop named after the
    fanout below its level, as the other backends name it: ``core`` below the global buffer
    where the cores have buffers of their own (else ``macro``: the cores x macros), ``macro``
    below a core buffer, ``column`` (X) and ``row`` (Y) below the macro's last level."""
    below = {GLOBAL_BUFFER: "core" if system.core_buffer else "macro", CORE_BUFFER: "macro"}
    below |= {INNER_BUFFER: below[GLOBAL_BUFFER], CORE_INNER: "macro"}
    out: list[dict] = []
    level = ""
    for line in map_text.splitlines():
        if m := _LEVEL.match(line):
            level = m[1]
            kept = [TENSORS[s.split(":")[0]] for s in m[2].split() if s.split(":")[0] in TENSORS]
            out.append({"node": "storage", "component": level, "tensors": kept})
        elif (m := _LOOP.match(line.strip())) and int(m[3]) - int(m[2]) > 1:
            loop = {"node": "spatial" if m[4] else "temporal", "rank": RANKS.get(m[1], m[1]),
                    "bound": int(m[3]) - int(m[2])}
            if m[4]:
                loop["component"] = below.get(level) or ("column" if m[5] == "X" else "row")
            out.append(loop)
    return out


def _binary_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Timeloop:
    """``binary`` is the timeloop-mapper; ``out`` the directory the layers' files go to
    (None: a scratch dir, removed after each layer)."""

    binary: str
    out: Path | None = None
    name: str = "timeloop"
    in_process: bool = False

    @classmethod
    def find(cls, given: str | None, out: Path | None) -> Timeloop:
        return cls(find_binary(given), out)

    def versions(self) -> dict[str, str]:
        return {"timeloop-mapper": self.binary, "timeloop-mapper-sha256": _binary_hash(self.binary)}

    def check(self, system: SystemSpec, flags: dict[str, object]) -> list[str]:
        from cimco.timeloop.arch import unsupported

        return unsupported(system)  # its per-tensor counts go through the same sparsity and execution steps

    def map_layer(self, system: SystemSpec, layer: Layer, bits: Bits, scratch: Path | None = None,
                  timeout_s: float | None = None) -> LayerResult:
        tables = _tables(system.model_dump_json(), bits.model_dump_json())
        dense = layer.model_copy(update={"sparsity": None, "input_density": 1.0})  # applied by the pipeline
        workload = WorkloadSpec(name=layer.name, source="cimco", bits=bits, layers=[dense])
        files = layer_files(system, workload, dense, tables, LayerPlan(bits))
        name = re.sub(r"[^A-Za-z0-9._-]", "_", layer.name)
        if name != layer.name:  # two names may clean to one: keep their directories apart
            name += "-" + hashlib.sha256(layer.name.encode()).hexdigest()[:8]
        if self.out is None:
            with scratch_dir(scratch) as d:
                return self._run(system, bits, files, d, timeout_s)
        return self._run(system, bits, files, self.out / name, timeout_s)

    def _run(self, system: SystemSpec, bits: Bits, files: dict[str, str], d: Path,
             timeout_s: float | None) -> LayerResult:
        for f, text in files.items():
            write_atomic(d / f, text)
        text, mapping = run_layer(self.binary, d, timeout_s)
        try:
            return to_result(system, bits, text, mapping)
        except ValueError as e:
            raise MappingError(f"{d / STATS}: {e}") from None
