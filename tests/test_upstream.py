"""Every upstream behaviour cimco relies on, so an AccelForge/hwcomponents upgrade that
changes one fails here first."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from cimco import _af

ROOT = Path(__file__).resolve().parent.parent


def test_pinned_versions_are_installed() -> None:
    for name, pinned in _af.PINNED.items():
        assert version(name) == pinned


def test_stage_functions_exist() -> None:
    from accelforge.mapper.FFM.main import join_pmappings, make_pmappings
    from accelforge.model.main import evaluate_mapping
    from accelforge.util import _fillna_and__numeric_cast, set_n_parallel_jobs

    assert all(map(callable, (join_pmappings, make_pmappings, evaluate_mapping,
                              _fillna_and__numeric_cast, set_n_parallel_jobs)))


def test_accelforge_wrapper_still_writes_mapping_svg() -> None:
    """Why _af calls the mapper stages itself: the wrapper writes mapping.svg into cwd."""
    import inspect

    from accelforge.mapper.FFM import main

    assert 'open("mapping.svg", "w")' in inspect.getsource(main.map_workload_to_arch)


def test_hwcomponents_lists_cimco_models() -> None:
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "hwc"), "--list"],
                         capture_output=True, text=True, timeout=300)
    for name in ("CimcoAdc", "CimcoCellArray", "CimcoWordlineDriver", "CimcoShiftAdd"):
        assert name in out.stdout


def test_hwcomponents_passes_attributes_by_init_name() -> None:
    from cimco.models import CimcoShiftAdd

    m = CimcoShiftAdd(tech_node=28e-9, voltage=0.9, reference_voltage=0.9, width_bits=16, adcs=4,
                      cycle_s=1e-8)
    assert m.read().energy > 0 and m.area > 0


@pytest.fixture(scope="module")
def small_map():
    """One small layer mapped by the real mapper (a few seconds)."""
    from cimco import arch
    from cimco.spec import load
    from cimco.spec.workload import Bits, Layer

    system = load(ROOT / "arch_specs/mars_system.yaml")
    bits = Bits(input=8, weight=8, output=8)
    layer = Layer(name="l", type="conv", in_channels=16, out_channels=32, input_hw=(8, 8),
                  kernel=3, padding=1)
    nodes = arch.build_nodes(system, bits)
    einsum = _af.einsum_of(layer)
    with _af.scratch_cwd():
        r = _af.map_layer(nodes, einsum, bits)
        ert, _ = _af.component_costs(nodes, einsum, bits)
    return layer, r, ert


def test_action_counts_follow_the_cim_dataflow(small_map) -> None:
    """AccelForge counts what the arch docstring says: one compute per MAC, one ADC
    conversion per output, row group and conversion slice."""
    layer, r, _ = small_map
    assert r.computes == layer.macs
    row_groups = -(-layer.reduction // 16)  # MARS macro: 16 word lines on at once
    outputs = 8 * 8 * 32
    assert r.actions[("ADC", "read")] == outputs * row_groups * 2  # 8b input in 4b slices


def test_energy_is_ert_times_counts(small_map) -> None:
    _, r, ert = small_map
    total = sum(ert.get(c, {}).get(a, 0.0) * n for (c, a), n in r.actions.items())
    assert total == pytest.approx(r.energy_j, rel=1e-5)  # AccelForge sums in float32


def test_import_cimco_is_light() -> None:
    """No AccelForge, hwcomponents or torch at import time; public names resolve lazily."""
    code = ("import sys, cimco; heavy = [m for m in ('accelforge', 'hwcomponents', 'torch') "
            "if m in sys.modules]; assert not heavy, heavy; assert callable(cimco.map_workload)")
    subprocess.run([sys.executable, "-c", code], check=True)
