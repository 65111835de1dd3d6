"""`cimco doctor`: check the environment and repair the NeuroSim/CACTI binaries.

The hwcomponents-neurosim and hwcomponents-cacti wheels ship prebuilt executables linked
against a newer glibc (2.38) than some systems have (Debian 12: 2.36); there they fail to
load and every energy estimate that needs them fails. Both wheels also ship their C++
sources, so :func:`repair` rebuilds the executables locally and swaps them in atomically.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cimco.errors import DoctorError


@dataclass
class Check:
    """Outcome of one environment check."""

    name: str
    ok: bool
    detail: str
    repairable: bool = False


@dataclass(frozen=True)
class _Tool:
    """Where one wheel keeps its executable and the sources to rebuild it."""

    name: str
    package: str
    binary: str  # path inside the package that the package executes
    source: str  # C++ source dir inside the package (copied, never built in place)
    drop_in: str | None  # dir laid over the sources before building (NeuroSim only)
    built: str  # executable produced by `make`, relative to the build dir
    usage: str  # text the executable prints when run without arguments


NEUROSIM = _Tool(
    name="NeuroSim",
    package="hwcomponents_neurosim",
    binary="NeuroSim/main",
    source="DNN_NeuroSim_V1.3/Inference_pytorch/NeuroSIM",
    drop_in="drop_in",
    built="main",
    usage="Usage:",
)
CACTI = _Tool(
    name="CACTI",
    package="hwcomponents_cacti",
    binary="cacti/cacti",
    source="cacti",
    drop_in=None,
    built="cacti",
    usage="how to use CACTI",
)
TOOLS = (NEUROSIM, CACTI)
_REPAIR_HINT = "run `cimco doctor --repair`"


def _package_dir(package: str) -> Path:
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DoctorError(f"package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _binary_problem(tool: _Tool, binary: Path | None = None) -> str | None:
    """Run the executable without arguments (it only prints its usage); None if it works.

    A loader failure (missing glibc/libstdc++ symbol versions) shows up here in milliseconds,
    without touching the packages' result caches.
    """
    path = binary or _package_dir(tool.package) / tool.binary
    if not path.is_file():
        return f"{path} is missing"
    try:
        proc = subprocess.run(
            [str(path)], cwd=path.parent, capture_output=True, text=True, timeout=30
        )
    except OSError as e:
        return f"cannot execute {path}: {e.strerror}"
    except subprocess.TimeoutExpired:
        return f"{path} did not exit within 30 s"
    output = proc.stdout + proc.stderr
    if tool.usage in output:
        return None
    needed = sorted(set(re.findall(r"`(GLIBC(?:XX)?_[\d.]+)' not found", output)))
    if needed:
        have = platform.libc_ver()[1] or "unknown"
        return f"needs {', '.join(needed)} (system glibc {have})"
    lines = output.strip().splitlines()
    return lines[-1] if lines else f"exited with code {proc.returncode} and no output"


def _model_value(tool: _Tool) -> float:
    """One tiny estimate through the package's own model, as the project will call it."""
    # hwcomponents_neurosim leaves NeuroSim's stdout/stderr pipes unclosed; silence that
    # ResourceWarning so `-W error` runs do not fail on it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        if tool is NEUROSIM:
            from hwcomponents_neurosim import Adder

            return float(Adder(tech_node=32e-9, cycle_period=1e-9, n_bits=8).add().energy)
        from hwcomponents_cacti import SRAM

        # hwcomponents_cacti 1.0.40 needs `size` even when `depth` is given.
        return float(SRAM(tech_node=32e-9, width=64, size=64 * 64).read().energy)


def _check_tool(tool: _Tool) -> Check:
    """The executable loads, and the package's model returns a positive energy."""
    try:
        problem = _binary_problem(tool)
        if problem is not None:
            return Check(tool.name, False, f"{problem}; {_REPAIR_HINT}", repairable=True)
        energy = _model_value(tool)
    except Exception as e:  # a check reports, it never raises
        return Check(tool.name, False, _one_line(e))
    if not energy > 0:
        return Check(tool.name, False, f"model returned a non-positive energy {energy!r}")
    return Check(tool.name, True, f"runs; sample estimate {energy:.3g} J")


def _check_import(module: str) -> Check:
    """Import a dependency and report its installed version."""
    try:
        mod = importlib.import_module(module)
        from importlib.metadata import version

        ver = getattr(mod, "__version__", None) or version(module)
    except Exception as e:
        return Check(module, False, _one_line(e))
    return Check(module, True, f"{ver} ({Path(mod.__file__ or '?').parent})")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def run_checks() -> list[Check]:
    """Every check, in order; each catches its own failure."""
    py = sys.version_info
    checks = [Check("python", py >= (3, 12), f"{py.major}.{py.minor}.{py.micro} (need >= 3.12)")]
    checks += [_check_import("accelforge"), _check_import("hwcomponents")]
    checks += [_check_tool(tool) for tool in TOOLS]
    return checks


def _build(tool: _Tool, log: Callable[[str], object]) -> None:
    """Rebuild one executable in a temp dir and atomically replace the installed one."""
    pkg = _package_dir(tool.package)
    dest = pkg / tool.binary
    with tempfile.TemporaryDirectory(prefix=f"cimco-{tool.name.lower()}-") as tmp:
        build = Path(tmp) / "src"
        # Skip stale objects/executables from the wheel: they are the ones built for the
        # newer glibc, and with their newer mtimes make would just relink (or reuse) them.
        ignore = shutil.ignore_patterns("obj_*", "*.o", ".depend", tool.built)
        shutil.copytree(pkg / tool.source, build, ignore=ignore)
        if tool.drop_in:
            for f in sorted((pkg / tool.drop_in).iterdir()):
                shutil.copy(f, build / f.name)
        log(f"{tool.name}: building in {build} (make -j2)")
        start = time.monotonic()
        proc = subprocess.run(
            ["make", "-j2"], cwd=build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-20:])
            raise DoctorError(f"{tool.name}: `make -j2` failed in {build}:\n{tail}")
        built = build / tool.built
        problem = _binary_problem(tool, built)
        if problem is not None:
            raise DoctorError(f"{tool.name}: the rebuilt executable does not run: {problem}")
        tmp_dest = dest.with_name(f".{dest.name}.cimco-{os.getpid()}")
        try:
            shutil.copy2(built, tmp_dest)
            os.chmod(tmp_dest, 0o755)
            os.replace(tmp_dest, dest)
        finally:
            tmp_dest.unlink(missing_ok=True)
        log(f"{tool.name}: rebuilt in {time.monotonic() - start:.1f} s, installed {dest}")


def repair(log: Callable[[str], object] = print) -> list[str]:
    """Rebuild every executable that does not run; returns what was done, one line each."""
    done: list[str] = []
    for tool in TOOLS:
        problem = _binary_problem(tool)
        if problem is None:
            msg = f"{tool.name}: executable already runs; nothing to do"
        else:
            log(f"{tool.name}: {problem}")
            missing = [exe for exe in ("g++", "make") if shutil.which(exe) is None]
            if missing:
                raise DoctorError(
                    f"cannot rebuild {tool.name}: {' and '.join(missing)} not found on PATH; "
                    "install them (Debian/Ubuntu: `apt-get install g++ make`) and retry"
                )
            try:
                _build(tool, log)
            except OSError as e:  # e.g. read-only site-packages
                raise DoctorError(f"cannot rebuild {tool.name}: {e}") from e
            msg = f"{tool.name}: rebuilt from the wheel's sources"
        log(msg)
        done.append(msg)
    return done


_repair = repair  # main()'s `repair` parameter shadows the function


def _print_table(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'✓' if c.ok else '✗'} {c.name:<{width}}  {c.detail}")


def main(repair: bool) -> int:
    """Print the checks; with `repair`, rebuild what is broken and check again. 0 = all OK."""
    checks = run_checks()
    _print_table(checks)
    if repair:
        print()
        try:
            _repair()
        except DoctorError as e:
            print(f"✗ repair failed: {e}")
            return 1
        if not all(c.ok for c in checks):
            print()
            checks = run_checks()
            _print_table(checks)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main(repair="--repair" in sys.argv[1:]))
