"""Layer shapes nobody wrote the mapping code for, through the real AccelForge mapper.

Hypothesis draws small conv and linear layers (groups, strides, dilations, rectangular and
asymmetric kernels and padding, odd sizes) and maps each on the MARS-like system. Each must
map without an internal error (a shape the spec admits but the array cannot take is a
MappingError naming the cause, never another exception), count exactly the layer's MACs,
move every weight from DRAM at least once, and cost exactly its counts times the ERT.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from drawn import layers
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir

from cimco.backends.accelforge import AccelForge
from cimco.errors import MappingError
from cimco.spec import load
from cimco.spec.workload import Bits, Layer, WorkloadSpec
from cimco.tables import component_tables

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = load(ROOT / "arch_specs/mars_system.yaml")
BITS = Bits(input=8, weight=8, output=8)
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "cimco-hypothesis")


@pytest.mark.slow
@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],  # no shrinking: each example maps for seconds
          suppress_health_check=[HealthCheck.too_slow])
@given(layer=layers())
def test_any_small_layer_maps_exactly(layer: Layer, tmp_path_factory) -> None:
    try:
        r = AccelForge().map_layer(SYSTEM, layer, BITS, scratch=tmp_path_factory.mktemp("m"))
    except MappingError as e:  # allowed only with a cause the spec sets
        assert e.full, f"{layer}: {e}"
        return
    assert r.computes == layer.macs
    weights = layer.out_channels * layer.reduction
    dram_w = sum(v for (c, t, a), v in r.tensor_actions.items() if c == "DRAM" and t == "W" and a == "read")
    assert dram_w >= weights * BITS.weight * (1 - 1e-9)  # AccelForge sums floats
    ert = component_tables(SYSTEM, WorkloadSpec(name="w", source="t", bits=BITS, layers=[layer])).ert
    # actions without an ERT entry cost nothing, as in the report (cimco.report.build_report)
    total = sum(ert.get(c, {}).get(a, 0.0) * k for (c, a), k in r.actions.items())
    assert total == pytest.approx(r.energy_j, rel=1e-9)


def test_strided_one_by_one_reads_only_the_inputs_it_uses(tmp_path: Path) -> None:
    """ResNet-50's layer2.0.downsample.0: a 1x1 conv at stride 2 reads every other input row
    and column. Indexed ``p*2``, its inputs would span a (2P-1) x (2Q-1) box (256 x 55 x 55
    words, beyond the 262,144-word global buffer), and AccelForge read them twice; indexed
    at stride 1 on the 256 x 28 x 28 inputs it reads, each crosses DRAM once."""
    layer = Layer(name="ds", type="conv", in_channels=256, out_channels=512, input_hw=(56, 56), kernel=1, stride=2)
    r = AccelForge().map_layer(SYSTEM, layer, BITS, scratch=tmp_path)
    assert r.computes == layer.macs == 512 * 256 * 28 * 28
    dram_i = sum(v for (c, t, a), v in r.tensor_actions.items() if c == "DRAM" and t == "I" and a == "read")
    assert dram_i == pytest.approx(256 * 28 * 28 * BITS.input, rel=1e-9)
