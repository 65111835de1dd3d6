"""Sparse layers through `cimco map` with the real mapper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cimco.backends.accelforge import AccelForge
from cimco.cli import main
from cimco.mapping import map_workload
from cimco.sparse import transform
from cimco.sparse.masks import resolve
from cimco.spec import load, load_pair

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "arch_specs/mars_system.yaml"
MACRO_PARTS = ("WordlineDriver", "CellArray", "ADC", "ShiftAdd", "IndexMemory")
CONV = "type: conv, in_channels: 64, out_channels: 64, input_hw: [56, 56], kernel: 3, padding: 1"


def _workload(tmp_path: Path, layers: list[str], name: str = "w.yaml") -> Path:
    text = "kind: workload\nname: t\nsource: test\nlayers:\n" + "".join(f"  - {{{x}}}\n" for x in layers)
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.fixture(scope="module")
def resnet_conv(tmp_path_factory):
    """ResNet-18 layer1 3x3 conv (64->64, 56x56): dense, 50% row_block, 50% unstructured, 100%."""
    d = tmp_path_factory.mktemp("sparse")
    w = _workload(d, [f"name: dense, {CONV}",
                      f"name: row_block, {CONV}, sparsity: {{pattern: row_block, density: 0.5}}",
                      f"name: unstructured, {CONV}, sparsity: {{pattern: unstructured, density: 0.5}}",
                      f"name: full, {CONV}, sparsity: {{pattern: row_block, density: 1.0}}",
                      f"name: gated, {CONV}, input_density: 0.5"])
    system, workload = load_pair(SYSTEM, w)
    runs = transform.apply(system, map_workload(system, workload, AccelForge(), None, progress=False, jobs=2,
                                                masks=resolve(system, workload, w)))
    return {r.layer.name: r for r in runs}


def _macro_energy(run, ert) -> float:
    return sum(ert.get(c, {}).get(a, 0.0) * n for (c, a), n in run.actions.items() if c in MACRO_PARTS)


def _macro_latency(run) -> float:
    return max(v for c, v in run.latency_by_component.items() if c in MACRO_PARTS)


@pytest.fixture(scope="module")
def ert():
    from cimco.tables import component_tables

    system = load(SYSTEM)
    w = load(ROOT / "workloads/resnet20_cifar.yaml")
    return component_tables(system, w).ert


def test_density_one_is_exactly_dense(resnet_conv) -> None:
    d, f = resnet_conv["dense"], resnet_conv["full"]
    assert f.actions == d.actions and f.latency_s == d.latency_s
    assert f.sparse.occ.block_density == 1.0 and not f.sparse.compressed


def test_row_block_half_cuts_macro_energy_and_latency(resnet_conv, ert) -> None:
    d, rb = resnet_conv["dense"], resnet_conv["row_block"]
    assert rb.sparse.occ.block_density == pytest.approx(0.5, abs=0.01)
    assert _macro_energy(rb, ert) <= 0.6 * _macro_energy(d, ert)
    assert _macro_latency(rb) <= 0.6 * _macro_latency(d)
    assert rb.actions[("IndexMemory", "read")] == rb.sparse.occ.kept_blocks * 56 * 56


def test_unstructured_half_buys_no_latency(resnet_conv) -> None:
    d, un = resnet_conv["dense"], resnet_conv["unstructured"]
    assert un.sparse.occ.weight_density == pytest.approx(0.5, abs=0.01)
    assert un.sparse.occ.block_density > 0.99  # the reason: every block keeps a non-zero
    assert _macro_latency(un) >= 0.95 * _macro_latency(d)


def test_input_zero_gating(resnet_conv) -> None:
    d, g = resnet_conv["dense"], resnet_conv["gated"]
    for key in (("WordlineDriver", "read"), ("CellArray", "read")):
        assert g.actions[key] == pytest.approx(0.5 * d.actions[key])
    assert g.actions[("ADC", "read")] == d.actions[("ADC", "read")]
    assert g.latency_s == d.latency_s


def test_real_mask_from_npz_matches_generated(tmp_path: Path) -> None:
    from cimco.geometry import MacroGeometry
    from cimco.sparse.patterns import generate

    system = load(SYSTEM)
    w = _workload(tmp_path, [f"name: a, {CONV}, sparsity: {{mask: masks.npz}}"])
    layer = load(w).layers[0]
    geo = MacroGeometry.of(system.macro, 8, 8, system.n_macros)
    mask = generate(layer, geo, "kernel_group", 0.3, 5)
    np.savez(tmp_path / "masks.npz", a=mask.astype(np.float32) * np.random.default_rng(0).random(mask.shape))
    got = resolve(system, load(w), w)["a"]
    assert np.array_equal(got, mask)


@pytest.mark.parametrize("layer, words", [
    (f"name: a, {CONV}, sparsity: {{mask: nope.npz}}", ["layer 'a'", "cannot read mask file"]),
    (f"name: a, {CONV}, sparsity: {{mask: bad.npz}}", ["layer 'a'", "does not match the weight shape (64, 64, 3, 3)"]),
    (f"name: a, {CONV}, sparsity: {{pattern: row_block, density: 1.5}}", ["layers[0].sparsity.density", "1.5"]),
    (f"name: a, {CONV}, sparsity: {{pattern: diagonal, density: 0.5}}", ["layers[0].sparsity.pattern", "diagonal"]),
    (f"name: a, {CONV}, sparsity: {{pattern: 'n:m', n: 4, m: 2}}", ["layer 'a'", "n <= m, got 4:2"]),
])
def test_bad_sparsity_input(tmp_path: Path, capsys, layer: str, words: list[str]) -> None:
    np.savez(tmp_path / "bad.npz", a=np.ones((64, 32, 3, 3)))
    w = _workload(tmp_path, [layer])
    code = main(["map", "--system", str(SYSTEM), "--workload", str(w), "--out", str(tmp_path / "o"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    for x in words:
        assert x in err
    assert "Traceback" not in err
