"""Warnings for valid but likely mistaken inputs (issue 21): each found where it should be, and
none on the bundled specs that do not have it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimco.checks import (
    adc_too_narrow,
    chain_mismatches,
    implausible_cycle,
    implausible_efficiency,
    uncalibrated,
    warnings_of,
)
from cimco.spec import load
from cimco.spec.macro import MacroSpec
from cimco.spec.workload import WorkloadSpec

ROOT = Path(__file__).resolve().parent.parent
MARS = load(ROOT / "arch_specs/mars_macro_28nm.yaml")


def _macro(**changes) -> MacroSpec:
    data = MARS.model_dump(mode="json")
    for k, v in changes.items():
        *head, last = k.split(".")
        d = data
        for h in head:
            d = d[h]
        d[last] = v
    return MacroSpec.model_validate(data)


def test_an_uncalibrated_macro_is_named() -> None:
    one = {"value": 1.0, "source": "uncalibrated"}
    assert uncalibrated(MARS) is None  # fitted to Si's 8b point
    w = uncalibrated(_macro(**{"energy.adc_scale": one, "energy.array_scale": one}))
    assert "is uncalibrated (energy.array_scale and energy.adc_scale are 1)" in w
    assert uncalibrated(_macro(**{"energy.adc_scale": one})) is None  # one factor fitted


@pytest.mark.parametrize("wordlines, adc_bits, need", [(64, 5, 7), (64, 7, None), (16, 4, 5), (16, 5, None)])
def test_an_adc_narrower_than_a_column_sum(wordlines: int, adc_bits: int, need) -> None:
    """Hand counts (issue 21: 64 one-bit products into a 5-bit ADC were accepted without a word):
    64 one-bit products sum to at most 64, 7 bits; 16 to 16, 5 bits."""
    m = _macro(wordlines_on=wordlines, bit_serial_input=True, bits_per_cell=1, adc_bits=adc_bits)
    w = adc_too_narrow(m)
    assert (w is None) == (need is None)
    if need:
        assert f"its {adc_bits}-bit ADC cannot resolve a column sum of {wordlines} word lines" in w
        assert f"up to {wordlines:,}, {need} bits" in w
    assert adc_too_narrow(MARS) is None  # 16 rows, 5 bits: clips 4-bit slices' sums by design, not a mistake


def test_a_cycle_time_outside_the_published_macros() -> None:
    assert implausible_cycle(MARS) is None
    assert "cycle_s 0.001 s is outside" in implausible_cycle(_macro(cycle_s=1e-3))
    assert implausible_cycle(_macro(cycle_s=1e-10)) is not None


def test_an_efficiency_outside_the_measured_macros() -> None:
    assert implausible_efficiency(32.5) is None and implausible_efficiency(None) is None
    assert "5.2 TOPS/W (report.json tops_per_w_macro), is outside the 11.5-610.5 TOPS/W" in implausible_efficiency(5.2)
    assert implausible_efficiency(2000.0) is not None


def _w(*layers: dict) -> WorkloadSpec:
    return WorkloadSpec.model_validate({"name": "w", "source": "t", "layers": list(layers)})


def test_chained_layers_whose_channels_do_not_match() -> None:
    conv = {"type": "conv", "input_hw": [8, 8], "kernel": 3, "padding": 1}
    bad = _w({"name": "a", "in_channels": 3, "out_channels": 16, **conv},
             {"name": "b", "in_channels": 32, "out_channels": 32, **conv})
    assert chain_mismatches(bad) == ["layer 'b' takes 32 input channels, but 'a' gives 16: check the chain "
                                     "(each layer is mapped as written)"]
    good = _w({"name": "a", "in_channels": 3, "out_channels": 16, **conv},
              {"name": "b", "in_channels": 16, "out_channels": 16, **conv},
              {"name": "cat", "in_channels": 32, "out_channels": 8, "inputs": ["a", "b"], **conv},
              {"name": "fc", "type": "linear", "in_channels": 8 * 8 * 8, "out_channels": 10})  # flattened
    assert chain_mismatches(good) == []


def test_bundled_specs_warn_only_as_they_should() -> None:
    """No chain warning on the bundled workloads; the bundled system's macro is calibrated."""
    for f in sorted(ROOT.glob("workloads/*.yaml")):
        assert chain_mismatches(load(f)) == [], f
    system = load(ROOT / "arch_specs/mars_system.yaml")
    assert [w for w in warnings_of(system, load(ROOT / "workloads/resnet20_cifar.yaml"))
            if "uncalibrated" in w or "cycle_s" in w] == []
