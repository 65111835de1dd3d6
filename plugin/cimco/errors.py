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
    """AccelForge could not map a layer onto the architecture."""


class DoctorError(CimcoError):
    """The environment cannot be checked or repaired."""
