"""cimco: SRAM compute-in-memory accelerators and CIM-compressed DNNs on AccelForge.

Importing cimco is cheap and has no side effects: the public names below load their
modules on first use, and AccelForge, hwcomponents and torch are imported only by the
functions that need them.

    >>> import cimco
    >>> system, workload = cimco.load_pair("arch_specs/mars_system.yaml",
    ...                                     "workloads/resnet20_cifar.yaml")
    >>> report = cimco.map(system, workload)  # or cimco.run(...) for the pipeline itself
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "load": "cimco.spec",
    "load_pair": "cimco.spec",
    "run": "cimco.pipeline",  # the one pipeline -> Result(report, tables, mapped)
    "Execution": "cimco.execution",
    "component_tables": "cimco.tables",
    "CimcoError": "cimco.errors",
    "SpecError": "cimco.errors",
    "map": "cimco.api",  # -> Report (.totals, .layers DataFrame, HTML)
    "sweep": "cimco.api",  # -> DataFrame
    "Report": "cimco.api",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cimco' has no attribute {name!r}")
