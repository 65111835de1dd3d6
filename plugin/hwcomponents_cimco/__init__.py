"""Entry point that lets ``hwc --list`` find cimco's component models.

hwcomponents discovers models in top-level modules named ``hwcomponents_*``; this module
only re-exports them. cimco itself registers them explicitly on each AccelForge spec.
"""

from cimco.models import (
    CimcoAdc,
    CimcoAdderTree,
    CimcoCellArray,
    CimcoDigitalCell,
    CimcoIndexMemory,
    CimcoShiftAdd,
    CimcoTable,
    CimcoWordlineDriver,
)

__all__ = ["CimcoAdc", "CimcoAdderTree", "CimcoCellArray", "CimcoDigitalCell", "CimcoIndexMemory", "CimcoShiftAdd",
           "CimcoTable", "CimcoWordlineDriver"]
