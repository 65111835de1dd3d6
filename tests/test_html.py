"""report.html: self-contained, tolerant of new keys, and its plots really render (headless
Chromium screenshot, checked by pixel statistics)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from cimco.report.html import render

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from html_screenshot import chromium, screenshot  # noqa: E402

COMPS = ["DRAM", "GlobalBuffer", "ADC", "CellArray", "ShiftAdd"]


def fake_report(n: int = 12, **extra_totals) -> dict:
    """A report shaped like build_report's, with keys the page does not know about."""
    layers = []
    for i in range(n):
        by = {c: (i + 1) * (k + 1) * 1e-8 for k, c in enumerate(COMPS)}
        layers.append({
            "name": f"layer{i}", "dense_macs": 1000 * (i + 1), "executed_macs": 700 * (i + 1),
            "energy_j": sum(by.values()), "latency_s": (i % 4 + 1) * 1e-6,
            "latency_by_component_s": {"ADC": (i % 4 + 1) * 1e-6, "DRAM": 2.5e-6 if i % 3 == 0 else 1e-7,
                                       "CellArray": 0.5e-6},
            "bits": {"input": 8, "weight": 4, "output": 8}, "weight_density": 0.5, "block_density": 0.6,
            "input_density": 0.9, "macro_utilization": 0.1 * (i % 10), "energy_by_component": by,
            "mapping": "x" * 50, "cached": False, "dram_resident": True, "mode": "sequential"})
    by_total = {c: sum(x["energy_by_component"][c] for x in layers) for c in COMPS}
    return {"cimco_version": "0.1.0", "engine": {"accelforge": "1"}, "system": "sys<&>", "workload": "net",
            "totals": {"energy_j": sum(by_total.values()), "latency_s": 3e-5, "tops_per_w": 12.5,
                       "area_m2": 2e-6, "mode": "pipelined", **extra_totals},
            "layers": layers, "energy_by_component": by_total}


AREA = {"Macro": 1.2e-6, "GlobalBuffer": 0.6e-6, "IndexMemory": 0.04e-6, "DRAM": 0.0}


def test_page_is_self_contained_and_shows_every_total() -> None:
    page = render(fake_report(tops_per_w_macro=77.0, dram_bytes=123456), AREA)
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)  # nothing fetched from anywhere
    assert "<script src" not in page
    assert page.count("<svg") == 4  # energy, latency, ratios, area
    for key in ("tops_per_w_macro", "dram_bytes", "mode", "pipelined", "123,456"):
        assert key in page
    assert "sys&lt;&amp;&gt;" in page and "sys<&>" not in page  # names escaped
    # the per-layer table carries every layer, the busiest part and unknown numeric columns
    assert page.count("<tr>") >= 12 + 1
    assert "macro_utilization" in page and ">DRAM<" in page
    assert 'class="sortable"' in page and "addEventListener('click'" in page


def test_report_without_layers_or_area_still_renders() -> None:
    r = fake_report()
    r["layers"] = []
    page = render(r)
    assert "<svg" not in page and "energy (uJ)" in page
    # human units on the page (report.json keeps SI): 3e-5 s as 30 us, 2e-6 m^2 as 2 mm^2
    assert "<td data-v=\"30.0\">30</td>" in page.split("latency (us)")[1][:60]
    assert "<td data-v=\"2.0\">2</td>" in page.split("area (mm^2)")[1][:60]


def _saturated(img: np.ndarray) -> np.ndarray:
    """Pixels in colour (plots), not white, grey or black (text, borders)."""
    rgb = img[..., :3].astype(int)
    return (rgb.max(axis=2) - rgb.min(axis=2)) > 60


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (make setup installs it as root)")
def test_screenshot_shows_the_plots(tmp_path: Path) -> None:
    from PIL import Image

    full = tmp_path / "report.html"
    full.write_text(render(fake_report(), AREA))
    no_plots = tmp_path / "plain.html"
    no_plots.write_text(re.sub(r"<svg.*?</svg>", "", full.read_text(), flags=re.S))
    shots = {}
    for page in (full, no_plots):
        png = tmp_path / f"{page.stem}.png"
        screenshot(page, png, 1280, 2800)
        shots[page.stem] = np.asarray(Image.open(png).convert("RGB"))
    img = shots["report"]
    assert img.shape[:2] == (2800, 1280)
    colour = _saturated(img)
    assert colour.mean() > 0.02, colour.mean()
    # colour in each quarter of the page height that holds plots, and many distinct colours
    rows = colour.mean(axis=1)
    bands = [rows[i * 450:(i + 1) * 450].mean() for i in range(4)]
    assert sum(b > 0.01 for b in bands) >= 3, bands
    distinct = {tuple(p) for p in img[colour][::7]}
    assert len(distinct) >= 8, len(distinct)
    # the same page without its SVGs has next to no colour: the pixels above are the plots
    assert _saturated(shots["plain"]).mean() < 0.002
