"""cimco: SRAM compute-in-memory accelerators and CIM-compressed DNNs on AccelForge.

Importing cimco is cheap and has no side effects: AccelForge, hwcomponents and torch are
imported only by the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
