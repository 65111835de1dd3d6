"""Test levels. Every test has one, from its module (the table below) unless it carries its own
marker, so that ``pytest -m unit`` (seconds, no engine), ``-m engine`` (real AccelForge on
single layers) and ``-m e2e`` (whole networks, the CLI, faults) each run alone:

- ``unit``: cimco's own code, no AccelForge call (enforced: the adapter's entry points raise
  inside a unit test);
- ``engine``: real AccelForge/hwcomponents on single layers or the component tables;
- ``e2e``: whole workloads through the CLI or the Python API, kills, sweeps, fuzzing.

``slow`` is orthogonal (whole networks, sandboxed fuzz, kill tests); the default run keeps it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEVELS = ("unit", "engine", "e2e")
MODULE_LEVEL = {
    "test_sparse_occupancy": "unit", "test_compress": "unit", "test_export_exact": "unit",
    "test_torch_export": "unit", "test_specs": "unit", "test_doctor": "unit", "test_html": "unit",
    "test_workloads": "unit", "test_timeloop_stats": "unit", "test_hardening_specs": "unit",
    "test_report_scaling": "unit", "test_checks": "unit", "test_levels": "unit",
    "test_calibration": "engine", "test_macro_families": "engine", "test_upstream": "engine",
    "test_map_fuzz": "engine", "test_sparse_map": "engine", "test_lrmp": "engine", "test_execution": "engine",
    "test_timeloop_export": "engine", "test_cim_backend": "engine", "test_vector": "engine",
    "test_sequence": "engine", "test_placement": "engine",
    "test_api": "e2e", "test_faults": "e2e", "test_map_e2e": "e2e", "test_sweep": "e2e",
    "test_timeloop_runner": "e2e", "test_fuzz": "e2e", "test_bad_input": "e2e", "test_docs": "e2e",
    "test_backends": "e2e", "test_hardening_cli": "e2e",
}


def pytest_configure(config: pytest.Config) -> None:
    for level in LEVELS:
        config.addinivalue_line("markers", f"{level}: test level (see tests/conftest.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(level) for level in LEVELS):
            module = item.module.__name__.rpartition(".")[2]
            if module not in MODULE_LEVEL:
                raise pytest.UsageError(f"{module}: no test level; add it to MODULE_LEVEL in tests/conftest.py")
            item.add_marker(MODULE_LEVEL[module])


_SECONDS = dict.fromkeys(LEVELS, 0.0)
_LEVEL_OF: dict[str, str] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        _LEVEL_OF[item.nodeid] = next(level for level in LEVELS if item.get_closest_marker(level))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in _LEVEL_OF:  # setup (module fixtures), call and teardown
        _SECONDS[_LEVEL_OF[report.nodeid]] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    n = {level: sum(v == level for v in _LEVEL_OF.values()) for level in LEVELS}
    terminalreporter.write_line("time by level: " + ", ".join(f"{level} {n[level]} tests {_SECONDS[level]:.0f} s"
                                                              for level in LEVELS))


@pytest.fixture(autouse=True)
def _unit_tests_leave_the_engine_alone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args, **kwargs):
        raise AssertionError("a unit test called AccelForge: mark it engine or e2e")

    from cimco import _af

    for name in ("map_layer", "component_costs", "make_spec"):
        monkeypatch.setattr(_af, name, refuse)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
