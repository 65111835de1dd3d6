"""Spec models (pydantic) and their YAML loading and validation."""

from pathlib import Path

from cimco.spec.load import load, load_pair
from cimco.spec.macro import MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Layer, WorkloadSpec

# the bundled specs, installed with the package (the repository's arch_specs/ and workloads/ link here)
BUNDLED = Path(__file__).resolve().parent.parent / "bundled"

__all__ = ["BUNDLED", "Layer", "MacroSpec", "SystemSpec", "WorkloadSpec", "load", "load_pair"]
