"""Reports scale linearly with the layer count: a 10,000-layer report writes every file, the
HTML stays small and its plots and tables are bounded by a constant, not by the layer count.

No mapping: the report is synthetic, shaped like ``cimco map``'s report.json."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cimco.report.html import MAX_LAYERS_PLOTTED, MAX_LAYERS_SHOWN
from cimco.report.write import write_all
from cimco.tables import Tables

pytestmark = pytest.mark.unit

COMPS = ["WordlineDriver", "GlobalBuffer", "DRAM", "ShiftAdd", "ADC", "CellArray", "Compute"]


def synthetic_report(n: int) -> dict:
    """A report with ``n`` layers and the keys a real one has (resnet20 on mars_system)."""
    layers = []
    for i in range(n):
        by = {c: ((i * 7919) % 97 + 1) * (k + 1) * 1e-10 for k, c in enumerate(COMPS)}
        lat = {c: ((i * 31) % 13 + k + 1) * 1e-7 for k, c in enumerate(COMPS)}
        layers.append({
            "name": f"layer{i}", "dense_macs": 1000 + i, "executed_macs": 900 + i,
            "energy_j": sum(by.values()), "engine_energy_j": 2 * sum(by.values()),
            "latency_s": max(lat.values()), "latency_by_component_s": lat,
            "bits": {"input": 8, "weight": 8, "output": 8},
            "weight_density": 1.0, "block_density": 1.0, "input_density": 1.0, "sparsity": None,
            "energy_by_component": by, "action_counts": {f"{c}.read": float(i) for c in COMPS},
            "mapping": "[W,O,I in DRAM] [I,O in GlobalBuffer]",
            "mapping_loops": [{"node": "storage", "component": "DRAM", "tensors": ["W", "O", "I"]}],
            "column_split": False, "memory_budget_bits": {}, "input_on_chip": 0.0, "output_on_chip": True,
            "cached": False})
    by_total = {c: sum(x["energy_by_component"][c] for x in layers) for c in COMPS}
    energy = sum(by_total.values())
    latency = sum(x["latency_s"] for x in layers)
    macs = sum(x["dense_macs"] for x in layers)
    return {
        "cimco_version": "0.1.0", "backend": "accelforge", "engine": {"accelforge": "1", "hwcomponents": "1"},
        "system": "mars_system", "workload": f"synthetic{n}",
        "totals": {"energy_j": energy, "latency_s": latency, "dense_macs": macs, "executed_macs": macs,
                   "tops_per_w": 2 * macs / energy / 1e12, "tops_per_w_executed": 2 * macs / energy / 1e12,
                   "tops_per_w_on_chip": 3.0, "tops": 2 * macs / latency / 1e12, "fps": 1 / latency,
                   "tops_per_w_macro": 30.0, "mode": "sequential", "weights": "reload", "batch": 1,
                   "macros_needed": 53, "weight_load_j": 0, "column_split_layers": 0, "area_m2": 4.5e-6},
        "layers": layers, "energy_by_component": by_total}


TABLES = Tables(ert={"ADC": {"read": 1e-12}, "DRAM": {"read": 2e-11}},
                art={"ADC": 1e-7, "GlobalBuffer": 6e-7, "CellArray": 2e-7},
                instances={"ADC": 32, "GlobalBuffer": 1, "CellArray": 32 * 256 * 64})


def _write(n: int, out: Path) -> str:
    out.mkdir()
    names = {p.name for p in write_all(synthetic_report(n), TABLES, out)}
    assert names == {"report.json", "layers.csv", "report.md", "energy_by_component.png", "ERT.yaml", "ART.yaml",
                     "report.html"}
    assert all((out / f).stat().st_size > 0 for f in names)
    return (out / "report.html").read_text()


def _shape(page: str) -> tuple[int, int, int]:
    """What grows with per-layer output: table rows, SVG path/text elements."""
    return page.count("<tr>"), page.count("<path"), page.count("<text")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10,000-layer report directory (written once: ~10 s)."""
    out = tmp_path_factory.mktemp("report") / "big"
    _write(10_000, out)
    return out


def test_10000_layers_write_a_small_aggregated_report(big: Path) -> None:
    page = (big / "report.html").read_text()
    assert len(page.encode()) < 2 * 2**20
    assert "other (" in page and "layers.csv" in page and "report.json" in page
    note = f"10,000 layers: the plots show the top {MAX_LAYERS_PLOTTED} and the tables show the top {MAX_LAYERS_SHOWN}"
    assert note in page
    with open(big / "layers.csv", newline="") as f:
        assert sum(1 for _ in csv.reader(f)) == 10_001
    md = (big / "report.md").read_text()
    assert "| other (9,800 layers) |" in md and "layers.csv" in md
    assert md.count("\n| ") < MAX_LAYERS_SHOWN + 20  # table rows: the top layers, other, TOTAL, components


def test_page_size_does_not_grow_with_layers(tmp_path: Path, big: Path) -> None:
    small, large = _write(1_000, tmp_path / "1k"), (big / "report.html").read_text()
    assert _shape(small)[0] == _shape(large)[0] <= MAX_LAYERS_SHOWN + 30  # rows: top layers, other, totals
    assert all(b <= s + 20 for s, b in zip(_shape(small), _shape(large)))  # only the axes' ticks may differ
    assert abs(len(large) - len(small)) < 0.05 * len(small)


def test_few_layers_are_all_shown(tmp_path: Path) -> None:
    page = _write(20, tmp_path / "few")
    assert "other (" not in page and all(f">layer{i}<" in page for i in range(20))


def test_figures_drawn_before_from_the_same_data_are_reused(tmp_path: Path, monkeypatch) -> None:
    """A rerun with the same numbers writes the same files without drawing (most of a cached
    run's time); a changed number is drawn anew, not served stale."""
    import matplotlib.figure

    import cimco.report.html as html_mod

    cache = tmp_path / "cache"
    first = {p.name: p.read_bytes() for p in write_all(synthetic_report(12), TABLES, tmp_path / "a", cache)}
    assert len(list((cache / "figures").iterdir())) == 5  # the PNG and four SVGs

    def refuse(*a, **k):
        raise AssertionError("drew a figure it had")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", refuse)
    again = {p.name: p.read_bytes() for p in write_all(synthetic_report(12), TABLES, tmp_path / "b", cache)}
    assert again == first

    monkeypatch.undo()
    changed = synthetic_report(12)
    changed["layers"][3]["latency_s"] *= 2
    page = html_mod.render(changed, TABLES.art, cache)
    assert page != first["report.html"].decode()
    assert page == html_mod.render(changed, TABLES.art)  # the page drawn without a cache
    assert len(list((cache / "figures").iterdir())) > 5
