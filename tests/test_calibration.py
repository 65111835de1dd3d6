"""Published-chip macros: calibrated at one operating point, predicting the others.

Peak macro efficiency is measured through the real mapper (cimco.calibrate). Points and
their sources: ../shared/anchors/silicon_macros.yaml (copied here as literals with cites).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cimco.calibrate import macro_point
from cimco.spec import load
from cimco.spec.workload import Bits

ROOT = Path(__file__).resolve().parent.parent
JIA_BITS = Bits(input=1, weight=1, output=8)


def _jia(voltage: float, tops: float):
    m = load(ROOT / "arch_specs/jia_jssc_2020.yaml")
    # Operating point = supply and clock; the clock follows the measured throughput.
    m = m.model_copy(update={"voltage_v": voltage, "cycle_s": 2 * m.rows * m.cols / (tops * 1e12)})
    p = macro_point(m, JIA_BITS)
    return p, p.energy_by_component_j["ADC"] / p.conversions


def test_jia_calibration_point_reproduced() -> None:
    # Jia JSSC 2020 Table II / I at 0.85 V: 400 TOPS/W, ADC 1.79 pJ per conversion (fitted)
    p, adc = _jia(0.85, 0.874)
    assert p.tops_per_w == pytest.approx(400.0, rel=0.01)
    assert adc == pytest.approx(1.79e-12, rel=0.01)
    assert p.tops == pytest.approx(0.874, rel=0.05)


def test_jia_predicts_1v2() -> None:
    # Jia JSSC 2020 at 1.2 V: 192 TOPS/W, ADC 3.56 pJ per conversion (not used to fit)
    p, adc = _jia(1.2, 2.185)
    assert p.tops_per_w == pytest.approx(192.0, rel=0.10)
    assert adc == pytest.approx(3.56e-12, rel=0.10)


def _sinangil(voltage: float, gops: float):
    m = load(ROOT / "arch_specs/sinangil_jssc_2021.yaml")
    m = m.model_copy(update={"voltage_v": voltage, "cycle_s": 2 * m.rows * 16 / (gops * 1e9)})
    return macro_point(m, Bits(input=4, weight=4, output=4))


def test_sinangil_calibration_point_reproduced() -> None:
    # Sinangil JSSC 2021 at 0.8 V, average output: 351 TOPS/W, 372.4 GOPS (fitted)
    p = _sinangil(0.8, 372.4)
    assert p.tops_per_w == pytest.approx(351.0, rel=0.01)
    assert p.tops == pytest.approx(0.3724, rel=0.05)


@pytest.mark.xfail(strict=True, reason="known gap: V^2 energy law predicts 225 TOPS/W at 1.0 V, "
                   "paper measures 321; within 10% needs E ~ V^k with k < 0.87, against "
                   "k = 1.46-2.32 from the same paper's other 1.0 V numbers "
                   "(scripts/anchor_consistency.py)")
def test_sinangil_predicts_1v0() -> None:
    # Sinangil JSSC 2021 at 1.0 V, average output: 321 TOPS/W (not used to fit)
    assert _sinangil(1.0, 455.1).tops_per_w == pytest.approx(321.0, rel=0.10)


def test_mars_macro_within_si_2020_range() -> None:
    # Si ISSCC 2020 (the MARS group's 28 nm macro): 11.5-68.4 TOPS/W over 4b/8b precision.
    # The MARS-like macro is uncalibrated; check it lands in the published range.
    m = load(ROOT / "arch_specs/mars_macro_28nm.yaml")
    effs = [macro_point(m, Bits(input=b, weight=b, output=8)).tops_per_w for b in (4, 8)]
    assert 11.5 <= min(effs) and max(effs) <= 68.4
    assert effs[0] > effs[1]


def test_mars_system_frame_rate_on_cifar(tmp_path) -> None:
    """MARS (Sie et al., TCAD 2022): > 700 FPS on CIFAR-10 with its compressed networks.

    ResNet-18 (CIFAR shapes) compressed MARS-style: 4-bit, row-block pruning at 50% on all
    but the first and last layer, on the MARS-like system (one real mapping per layer shape).
    """
    import json

    import yaml

    from cimco.cli import main

    w = yaml.safe_load((ROOT / "workloads/resnet18_cifar.yaml").read_text())
    w["bits"] = {"input": 4, "weight": 4, "output": 8}
    for i, layer in enumerate(w["layers"]):
        layer.pop("bits", None)
        if 0 < i < len(w["layers"]) - 1:
            layer["sparsity"] = {"pattern": "row_block", "density": 0.5, "seed": i}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(w))
    assert main(["map", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                 str(tmp_path / "w.yaml"), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    totals = json.loads((tmp_path / "o/report.json").read_text())["totals"]
    assert totals["fps"] > 700
