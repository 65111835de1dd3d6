"""Spec models (pydantic) and their YAML loading and validation."""

from cimco.spec.load import load, load_pair
from cimco.spec.macro import MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Layer, WorkloadSpec

__all__ = ["Layer", "MacroSpec", "SystemSpec", "WorkloadSpec", "load", "load_pair"]
