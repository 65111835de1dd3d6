"""One exception tree for cimco.

User mistakes raise :class:`SpecError`, which carries *every* problem found (file, dotted
path, what was expected, what was found), so a user fixes a spec in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass


class CimcoError(Exception):
    """Base of every error cimco raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a user's input."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class SpecError(CimcoError):
    """A spec, workload or option given by the user is invalid; lists every problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found:"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


class ExportError(CimcoError):
    """A model cannot be exported to a workload (a user error: exit code 2)."""


class MappingError(CimcoError):
    """AccelForge could not map a layer onto the architecture.

    ``full`` components left no candidate mapping (each too small for the layer's tiles);
    ``layer`` names the workload layer, once known. An empty ``full`` means the cause is
    not a capacity the spec sets: an internal error."""

    def __init__(self, message: str, full: tuple[str, ...] = (), layer: str | None = None):
        super().__init__(message)
        self.full, self.layer = full, layer

    def __reduce__(self):  # raised in worker processes: keep the fields across pickling
        return type(self), (str(self), self.full, self.layer)


class LimitError(CimcoError):
    """Mapping one layer went past its time or memory limit (a user error: exit code 2)."""

    def __init__(self, message: str, layer: str | None = None):
        super().__init__(message)
        self.layer = layer

    def __reduce__(self):
        return type(self), (str(self), self.layer)


class DoctorError(CimcoError):
    """The environment cannot be checked or repaired."""
