"""cimco.timeloop.stats on real ``timeloop-mapper`` outputs (Timeloop v3.0.3, no ISL) for two
ResNet-20 layers exported by ``cimco timeloop export`` on mars_system: each fixture folder holds
the six inputs and the mapper's stats and map files, so the numbers below can be re-derived."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from cimco.timeloop.stats import parse_level_cycles, parse_levels

REAL = Path(__file__).resolve().parent / "fixtures" / "timeloop" / "real"
CONV = REAL / "008_layer2.0.conv2"  # 3x3, C=M=32, 16x16 outputs
FC = REAL / "019_fc"  # dense: C=64, M=10
LAYERS = [CONV, FC]
SPACES = {"Weights", "Inputs", "Outputs"}


def _text(d: Path) -> str:
    return (d / "timeloop-mapper.stats.txt").read_text()


def _instance(d: Path) -> dict[str, int]:
    return yaml.safe_load((d / "problem.yaml").read_text())["problem"]["instance"]


def _macs(d: Path) -> int:
    i = _instance(d)
    return math.prod(i[k] for k in "CMRSNPQ") * i.get("G", 1)


def _weights(d: Path) -> int:
    i = _instance(d)
    return math.prod(i[k] for k in "CMRS") * i.get("G", 1)


def _outputs(d: Path) -> int:
    i = _instance(d)
    return math.prod(i[k] for k in "NMPQ") * i.get("G", 1)


def _summary(text: str, key: str) -> float:
    m = re.search(rf"^{re.escape(key)}\s*[:=]\s*(\S+)", text, re.M)
    assert m, key
    return float(m.group(1))


def _kept(d: Path) -> dict[str, set[str]]:
    """Data spaces each level keeps, from the layer's own constraints.yaml."""
    targets = yaml.safe_load((d / "constraints.yaml").read_text())["mapspace_constraints"]["targets"]
    return {t["target"]: set(t["keep"]) for t in targets if t["type"] == "bypass"}


@pytest.mark.parametrize("d", LAYERS, ids=lambda d: d.name)
def test_levels_and_spaces_follow_the_bypass_constraints(d: Path) -> None:
    levels = parse_levels(_text(d))
    kept = _kept(d)
    assert set(levels) == set(kept)  # storage levels only: Compute is left out
    for level, spaces in levels.items():
        assert set(spaces) == kept[level], level
        for counts in spaces.values():
            assert set(counts) == {"read", "fill", "update"}


@pytest.mark.parametrize("d", LAYERS, ids=lambda d: d.name)
def test_every_mac_reads_one_weight_cell(d: Path) -> None:
    text = _text(d)
    cells = parse_levels(text)["CellArray"]["Weights"]
    assert _summary(text, "Computes") == _macs(d)
    assert cells["read"] == _macs(d)
    assert cells["update"] == 0


@pytest.mark.parametrize("d", LAYERS, ids=lambda d: d.name)
def test_dram_reads_each_weight_and_updates_each_output_once(d: Path) -> None:
    dram = parse_levels(_text(d))["DRAM"]
    assert dram["Weights"] == {"read": _weights(d), "fill": 0, "update": 0}
    assert dram["Outputs"]["update"] == _outputs(d)
    # weights are loaded into the cells once: one fill per weight over all utilized cells
    assert parse_levels(_text(d))["CellArray"]["Weights"]["fill"] == _weights(d)


@pytest.mark.parametrize("d", LAYERS, ids=lambda d: d.name)
def test_totals_match_timeloops_own_total_scalar_accesses(d: Path) -> None:
    """Timeloop's Operational Intensity section prints BufferLevel::Accesses() per level, i.e.
    utilized instances x (reads + fills + updates) summed over data spaces: the same product."""
    text = _text(d)
    intensity = text.split("Operational Intensity")[1]
    printed = dict(re.findall(r"^=== (\S+) ===\n\s+Total scalar accesses\s*:\s*(\d+)", intensity, re.M))
    levels = parse_levels(text)
    assert set(printed) == {name for name, spaces in levels.items() if spaces}
    for name, n in printed.items():
        assert sum(sum(c.values()) for c in levels[name].values()) == int(n), name


def test_conv_hand_checked_numbers() -> None:
    """From the stats file: the ADC block (Outputs) has 18 utilized instances (the 3x3x2 spatial
    S, R, C split at the global buffer, see the map) with 8192 updates each; the word-line
    drivers (Inputs) 18 x 4096 fills and reads; the global buffer (1 instance) reads inputs
    73728 times (16x16 positions x 3x3x2 spatial x 16 inputs each) and is filled with the
    padded 32x18x18 = 10368 inputs once."""
    levels = parse_levels(_text(CONV))
    assert levels["ADC"]["Outputs"] == {"read": 0, "fill": 0, "update": 18 * 8192}
    assert levels["WordlineDriver"]["Inputs"] == {"read": 18 * 4096, "fill": 18 * 4096, "update": 0}
    assert levels["GlobalBuffer"]["Inputs"] == {"read": 73728, "fill": 32 * 18 * 18, "update": 0}
    assert levels["DRAM"]["Inputs"]["read"] == 32 * 18 * 18
    assert parse_level_cycles(_text(CONV)) == {
        "Compute": 256, "CellArray": 256, "ADC": 256, "WordlineDriver": 256, "GlobalBuffer": 256, "DRAM": 271
    }
    assert _summary(_text(CONV), "Cycles") == 271


def test_fc_hand_checked_numbers() -> None:
    """The dense layer: C=64 split 4 ways over the global buffer's spatial fanout, so 4 ADCs and
    4 word-line drivers are used; each word-line driver gets 16 inputs, each ADC 10 outputs."""
    levels = parse_levels(_text(FC))
    assert levels["WordlineDriver"]["Inputs"] == {"read": 64, "fill": 64, "update": 0}
    assert levels["ADC"]["Outputs"] == {"read": 0, "fill": 0, "update": 40}
    assert levels["GlobalBuffer"] == {
        "Inputs": {"read": 64, "fill": 64, "update": 0},
        "Outputs": {"read": 0, "fill": 0, "update": 10},
    }
    assert parse_level_cycles(_text(FC))["DRAM"] == 7 == _summary(_text(FC), "Cycles")


def test_multiplies_by_utilized_not_hardware_instances() -> None:
    """CellArray has 16384 instances in SPECS but only 640 hold a weight of the dense layer."""
    text = _text(FC)
    assert "Instances                   : 16384 (1024*16)" in text
    assert "Utilized instances (max)                 : 640" in text
    assert parse_levels(text)["CellArray"]["Weights"]["read"] == 640


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello\nworld\n",
        (REAL.parent / "timeloop-mapper.stats.txt").read_text(),  # summary only, no level sections
        _text(FC).split("Networks")[0][:2000],  # truncated inside the levels
    ],
    ids=["empty", "junk", "summary-only", "truncated"],
)
def test_not_a_stats_file(text: str) -> None:
    with pytest.raises(ValueError, match="Timeloop stats"):
        parse_levels(text)


def test_missing_counter_is_an_error() -> None:
    text = _text(FC).replace("Scalar fills (per-instance)", "Scalar fillz (per-instance)", 1)
    with pytest.raises(ValueError, match="lacks 'Scalar fills"):
        parse_levels(text)


def test_sparse_format_is_refused() -> None:
    text = _text(FC).replace("Scalar reads (per-instance)", "Actual scalar reads (per-instance)", 1)
    with pytest.raises(ValueError, match="sparse"):
        parse_levels(text)
