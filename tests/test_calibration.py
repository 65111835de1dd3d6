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


def _point(spec: str, i: int, w: int) -> float:
    m = load(ROOT / f"arch_specs/{spec}.yaml")
    return macro_point(m, Bits(input=i, weight=w, output=m.output_bits.max)).tops_per_w


def test_si_calibration_point_reproduced() -> None:
    # Si JSSC 2021 abstract: 68.4 TOPS/W, the 4b x 4b end of 11.5-68.4 (fitted)
    assert _point("si_jssc_2021", 4, 4) == pytest.approx(68.4, rel=0.01)


@pytest.mark.xfail(strict=True, reason="known gap: the model predicts 17.1 TOPS/W at 8b x 8b (+49%), paper "
                   "11.5; 2x input slices x 2x weight columns give 4x the energy per MAC, the paper "
                   "5.95x: its readout costs more per conversion at 8b (README, Validation)")
def test_si_predicts_8b() -> None:
    # Si JSSC 2021 abstract: 11.5 TOPS/W at 8b x 8b (not used to fit)
    assert _point("si_jssc_2021", 8, 8) == pytest.approx(11.5, rel=0.15)


def test_mars_macro_calibrated_at_si_4b() -> None:
    # mars_macro_28nm (after Si's macro, with its own assumed structure) is fitted at Si JSSC
    # 2021's 68.4 TOPS/W, 4b x 4b; at 8b it must stay inside Si's published 11.5-68.4 range.
    effs = [_point("mars_macro_28nm", b, b) for b in (4, 8)]
    assert effs[0] == pytest.approx(68.4, rel=0.01)
    assert 11.5 <= effs[1] < effs[0]


@pytest.mark.xfail(strict=True, reason="known gap: the MARS-like macro predicts 33.0 TOPS/W at 8b (+187%), "
                   "Si's 11.5: its assumed analog weight combining converts once per input slice, so 8b "
                   "costs only 2.07x the energy per MAC of 4b; Si's bitwise readout (si_jssc_2021.yaml) "
                   "gives 4x, the paper 5.95x (README, Validation)")
def test_mars_macro_predicts_si_8b() -> None:
    assert _point("mars_macro_28nm", 8, 8) == pytest.approx(11.5, rel=0.15)


def test_wu_calibration_point_reproduced() -> None:
    # Wu ISSCC 2022 / JSSC abstract: 115.6 TOPS/W, the 4b x 4b end of 22.02-115.6 (fitted)
    assert _point("wu_isscc_2022", 4, 4) == pytest.approx(115.6, rel=0.01)


@pytest.mark.xfail(strict=True, reason="known gap: the model predicts 53.7 TOPS/W at 8b x 8b, paper 37.01 "
                   "(ISSCC, +45%) / 39.31 (JSSC, +37%); its energy per MAC grows 2.15x from 4b to 8b "
                   "(two input slices), the paper's 3.1x (README, Validation)")
def test_wu_predicts_8b() -> None:
    # Wu ISSCC 2022 title: 37.01 TOPS/W at 8b x 8b (not used to fit)
    assert _point("wu_isscc_2022", 8, 8) == pytest.approx(37.01, rel=0.15)


def test_colonnade_calibration_point_reproduced() -> None:
    # Colonnade JSSC 2021: 117.3 TOPS/W at 1b x 1b, 0.6 V (fitted)
    assert _point("colonnade_jssc_2021", 1, 1) == pytest.approx(117.3, rel=0.01)


def test_colonnade_predicts_16b() -> None:
    # Colonnade JSSC 2021: 2.06 TOPS/W at 16b x 16b, 0.6 V (not used to fit): 16 input cycles,
    # 5 weights of 16+7 columns per row instead of 16 of 1+7
    assert _point("colonnade_jssc_2021", 16, 16) == pytest.approx(2.06, rel=0.15)


def test_colonnade_predicts_8b() -> None:
    # Colonnade JSSC 2021 Fig. 16a, 0.6 V: 292.0 fJ/MAC at 8b x 8b = 6.85 TOPS/W (as digitised in
    # AccelForge's notebook; not used to fit)
    assert _point("colonnade_jssc_2021", 8, 8) == pytest.approx(6.85, rel=0.15)


def test_chih_calibration_point_reproduced() -> None:
    # Chih ISSCC 2021 title: 89 TOPS/W (taken as 4b x 4b, assumed) (fitted); no second point
    assert _point("chih_isscc_2021", 4, 4) == pytest.approx(89.0, rel=0.01)


def test_rdcim_calibration_point_reproduced() -> None:
    # Yi et al., RDCIM, IEEE TCAS-I 2024 (doi 10.1109/TCSI.2024.3350664) abstract: 66.3 TOPS/W at
    # 4b (fitted)
    assert _point("rdcim_tcasi_2024", 4, 4) == pytest.approx(66.3, rel=0.01)


def test_rdcim_predicts_8b() -> None:
    # The same abstract: 16.6 TOPS/W at 8b (not used to fit). A digital adder-tree macro's
    # energy per MAC grows as input bits (cycles) x weight bits (columns, one tree each): 4x
    assert _point("rdcim_tcasi_2024", 8, 8) == pytest.approx(16.6, rel=0.15)


def test_mars_system_frame_rate_on_cifar(tmp_path) -> None:
    """MARS (Sie et al., TCAD 2022): > 700 FPS on CIFAR-10 with its compressed networks.

    ResNet-18 (CIFAR shapes) compressed MARS-style: 4-bit, row-block pruning at 50% on all
    but the first and last layer, on the MARS-like system (one real mapping per layer shape).
    """
    import json

    import yaml

    from cimco.cli import main
    from cimco.sparse.patterns import mars_style

    w = mars_style(yaml.safe_load((ROOT / "workloads/resnet18_cifar.yaml").read_text()))
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(w))
    assert main(["map", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                 str(tmp_path / "w.yaml"), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    totals = json.loads((tmp_path / "o/report.json").read_text())["totals"]
    assert totals["fps"] > 700
