"""Tests for `cimco doctor`: the checks, the NeuroSim/CACTI rebuild, and its failure modes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cimco import doctor
from cimco.errors import DoctorError

_BROKEN = """#!/bin/sh
echo "$0: /lib/x86_64-linux-gnu/libc.so.6: version \\`GLIBC_2.38' not found" >&2
exit 1
"""


def _by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_run_checks_names_and_python_deps() -> None:
    checks = _by_name(doctor.run_checks())
    assert list(checks) == ["python", "accelforge", "hwcomponents", "NeuroSim", "CACTI"]
    for name in ("python", "accelforge", "hwcomponents"):
        assert checks[name].ok, checks[name]
    assert checks["accelforge"].detail.startswith("1.0.")
    assert all("\n" not in c.detail for c in checks.values())


def test_repair_fixes_installed_binaries_and_is_idempotent() -> None:
    """Real repair of this venv (rebuilds only if the wheel's binaries do not run here)."""
    doctor.repair(log=lambda _: None)
    checks = _by_name(doctor.run_checks())
    assert checks["NeuroSim"].ok, checks["NeuroSim"]
    assert checks["CACTI"].ok, checks["CACTI"]
    again = doctor.repair(log=lambda _: None)
    assert len(again) == 2 and all("nothing to do" in line for line in again)


def test_repair_rebuilds_into_a_package_copy(tmp_path: Path, monkeypatch) -> None:
    """Rebuild both tools from the wheels' sources into a copy whose binaries are broken."""
    for tool in doctor.TOOLS:
        real, fake = doctor._package_dir(tool.package), tmp_path / tool.package
        skip = shutil.ignore_patterns("obj_*")
        shutil.copytree(real / tool.source, fake / tool.source, ignore=skip)
        if tool.drop_in:
            shutil.copytree(real / tool.drop_in, fake / tool.drop_in)
        binary = fake / tool.binary
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text(_BROKEN)
        binary.chmod(0o755)
        assert "GLIBC_2.38" in doctor._binary_problem(tool, binary)
    monkeypatch.setattr(doctor, "_package_dir", lambda package: tmp_path / package)

    done = doctor.repair(log=lambda _: None)
    assert all("rebuilt" in line for line in done)
    for tool in doctor.TOOLS:
        assert doctor._binary_problem(tool) is None
        installed = tmp_path / tool.package / tool.binary
        assert [p.name for p in installed.parent.iterdir() if "cimco" in p.name] == []
    assert all("nothing to do" in line for line in doctor.repair(log=lambda _: None))


def test_missing_compiler_raises_doctor_error(monkeypatch) -> None:
    monkeypatch.setattr(doctor, "_binary_problem", lambda tool, binary=None: "broken")
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    with pytest.raises(DoctorError, match=r"g\+\+ and make not found.*apt-get install g\+\+ make"):
        doctor.repair(log=lambda _: None)


def test_make_failure_reports_the_tail_of_its_output(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "fakepkg" / "src"
    src.mkdir(parents=True)
    lines = "".join(f"\t@echo line{i}\n" for i in range(30))
    (src / "makefile").write_text(f"all:\n{lines}\t@exit 1\n")
    tool = doctor._Tool("Fake", "fakepkg", "bin/fake", "src", None, "fake", "Usage:")
    monkeypatch.setattr(doctor, "TOOLS", (tool,))
    monkeypatch.setattr(doctor, "_package_dir", lambda package: tmp_path / package)
    with pytest.raises(DoctorError) as info:
        doctor.repair(log=lambda _: None)
    message = str(info.value)
    assert "make -j2" in message and "line29" in message and "line5\n" not in message


def test_main_reports_failed_repair_without_traceback(monkeypatch, capsys) -> None:
    broken = [doctor.Check("CACTI", False, "needs GLIBC_2.38", repairable=True)]
    monkeypatch.setattr(doctor, "run_checks", lambda: broken)

    def fail() -> list[str]:
        raise DoctorError("g++ not found")

    monkeypatch.setattr(doctor, "_repair", fail)
    assert doctor.main(repair=False) == 1
    assert doctor.main(repair=True) == 1
    out = capsys.readouterr().out
    assert "✗ CACTI" in out and "repair failed: g++ not found" in out and "Traceback" not in out
