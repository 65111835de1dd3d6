"""torch side of cimco: model zoo (shapes only) and export to workloads.

Importing ``cimco.torch`` imports torch; nothing else in cimco does.
"""

from cimco.torch.export import Exported, export

__all__ = ["Exported", "export"]
