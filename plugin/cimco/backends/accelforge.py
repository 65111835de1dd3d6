"""The ``accelforge`` backend: AccelForge's FFM mapper over its whole mapspace, the best
mapping evaluated by its model with cimco's component models (:mod:`cimco._af`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cimco import _af, arch
from cimco.backends import LayerResult
from cimco.errors import MappingError
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer
from cimco.workers import deadline


@dataclasses.dataclass(frozen=True)
class AccelForge:
    name: str = "accelforge"
    in_process: bool = False

    def versions(self) -> dict[str, str]:
        return _af.versions()

    def check(self, system: SystemSpec, flags: dict[str, object]) -> list[str]:
        return []  # every execution option works on its results

    def map_layer(self, system: SystemSpec, layer: Layer, bits: Bits, scratch: Path | None = None,
                  timeout_s: float | None = None) -> LayerResult:
        """One mapping in a private dir under ``scratch`` (default: the system temp dir),
        removed afterwards. A layer AccelForge cannot map under the column rule (columns
        split only output channels) is mapped without it and flagged ``column_split``."""
        einsum = _af.einsum_of(layer)
        with deadline(timeout_s), _af.scratch_cwd(scratch):
            try:
                return _af.map_layer(arch.build_nodes(system, bits), einsum, bits)
            except MappingError as e:
                if e.full:  # a memory too small: lifting the column rule would not help
                    raise
            r = _af.map_layer(arch.build_nodes(system, bits, column_split=True), einsum, bits)
            return dataclasses.replace(r, column_split=True)
