"""Non-MAC work (issue 22 item 2, issue 23 item 2): the elements of activations, adds, pooling,
softmax and norms that ``cimco export`` records, hand-counted, and their cost on a system's
vector unit, checked against the operation counts of :data:`cimco.vector.OPS`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cimco.spec.workload import WorkloadSpec
from cimco.torch.export import NO_MACRO_WORK, VECTOR_OPS, export
from cimco.vector import OPS, operations

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = str(ROOT / "arch_specs/mars_system.yaml")
VECTOR = {"energy_per_op_j": {"value": 0.5e-12, "source": "test"}, "ops_per_s": 1e9,
          "area_m2": {"value": 0.02e-6, "source": "test"}}


def _ops(model: nn.Module, shape: tuple[int, ...]) -> dict[str, dict]:
    ex = export(model, torch.randn(shape), "t", masks=False)
    return {x["name"]: x.get("ops", {}) for x in ex.workload["layers"]}


def test_vector_ops_are_ops_that_do_no_macro_work() -> None:
    assert set(VECTOR_OPS) <= NO_MACRO_WORK
    assert set(VECTOR_OPS.values()) == set(OPS) - {"requantize"}  # every layer's outputs, not an op


def test_cnn_ops_counted_by_hand() -> None:
    """conv (8 ch, 8x8) -> ReLU (512 elements written) -> max pool 2 (512 read) -> linear ->
    softmax (10); each layer's outputs requantized (512, 10); the input's own normalization
    (before any layer) is not counted."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 10), nn.Softmax(-1))
    wrapped = nn.Sequential(nn.Tanh(), model)
    conv, linear = {"elementwise": 512, "pool": 512, "requantize": 512}, {"softmax": 10, "requantize": 10}
    assert _ops(model, (1, 3, 8, 8)) == {"0": conv, "4": linear}
    assert _ops(wrapped, (1, 3, 8, 8)) == {"1.0": conv, "1.4": linear}


class _Res(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.ln = nn.LayerNorm(4)

    def forward(self, x):
        y = torch.relu(self.a(x))
        z = self.b(y) + y  # the add: 4x6x6, attributed to b (the newest)
        return nn.functional.gelu(self.ln(z.permute(0, 2, 3, 1)))


def test_residual_add_norm_and_gelu_go_to_the_newest_layer() -> None:
    n = 4 * 6 * 6
    assert _ops(_Res(), (1, 4, 6, 6)) == {"a": {"elementwise": n, "requantize": n},
                                          "b": {"elementwise": n, "layer_norm": n, "activation": n, "requantize": n}}


def test_attention_softmax_counted_by_hand_dense_and_causal() -> None:
    """SDPA, 2 heads, 5 queries x 5 keys: softmax over 2 x 25 scores; causal: 2 x 15 kept."""
    class Att(nn.Module):
        def __init__(self, causal: bool) -> None:
            super().__init__()
            self.causal = causal

        def forward(self, x):
            q = x.view(1, 5, 2, 4).transpose(1, 2)
            return nn.functional.scaled_dot_product_attention(q, q, q, is_causal=self.causal)

    for causal, kept in ((False, 25), (True, 15)):
        ops = _ops(Att(causal), (1, 5, 8))
        assert sum(o.get("softmax", 0) for o in ops.values()) == 2 * kept
        assert all("softmax" not in o or ".scores" in name for name, o in ops.items())
        # the scores' and the weighted values' outputs requantized: 2 heads x (kept + 5 x 4), a
        # causal attention's value blocks' partial sums added first
        assert sum(o.get("requantize", 0) for o in ops.values()) == 2 * (kept + 5 * 4)


@pytest.mark.parametrize(("module", "per_hidden"), [
    (nn.LSTM(6, 5, num_layers=2, bidirectional=True), {"activation": 5, "elementwise": 8}),
    (nn.GRU(6, 5), {"activation": 3, "elementwise": 8}),
    (nn.RNN(6, 5, nonlinearity="relu"), {"elementwise": 2}),
    (nn.RNNCell(6, 5), {"activation": 1, "elementwise": 1}),
])
def test_recurrent_step_ops_counted_by_hand(module: nn.Module, per_hidden: dict) -> None:
    """Per hidden unit and step (STEP_OPS), on each layer and direction's hidden-state gates:
    7 steps of batch 1 (a cell: one step of batch 3)."""
    cell = isinstance(module, nn.RNNCellBase)

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = module

        def forward(self, x):
            return self.m(x.squeeze(0) if cell else x.transpose(0, 1))[0]

    ops = _ops(Wrap(), (1, 3, 6) if cell else (1, 7, 6))
    steps_batch = 3 if cell else 7
    hh = {name: o for name, o in ops.items() if ".weight_hh" in name}
    layers = getattr(module, "num_layers", 1) * (2 if getattr(module, "bidirectional", False) else 1)
    step = {k: v * 5 * steps_batch for k, v in per_hidden.items()}
    assert len(hh) == layers and all({k: v for k, v in o.items() if k != "requantize"} == step for o in hh.values())
    assert not any(set(o) - {"requantize"} for name, o in ops.items() if name not in hh)


def _system(vector: bool):
    from cimco.spec import load
    from cimco.spec.system import SystemSpec

    base = load(SYSTEM)
    return SystemSpec.model_validate({**base.model_dump(mode="json"), **({"vector_unit": VECTOR} if vector else {})})


def _workload(with_ops: bool) -> WorkloadSpec:
    ops = {"elementwise": 4096, "softmax": 512} if with_ops else {}
    return WorkloadSpec.model_validate({"name": "w", "source": "test", "layers": [
        {"name": "a", "type": "conv", "in_channels": 16, "out_channels": 16, "input_hw": [8, 8], "kernel": 3,
         "padding": 1, "ops": ops},
        {"name": "b", "type": "linear", "in_channels": 64, "out_channels": 32, "tokens": 16, "repeat": 2,
         "ops": {"layer_norm": 1024} if with_ops else {}}]})


def test_vector_unit_prices_ops_by_hand_and_nothing_else_changes() -> None:
    """Each layer's ops: basic operations x energy per op, at ops_per_s overlapping the layer;
    everything else is the report without ops; without a vector unit the ops are unpriced and
    a warning names them."""
    import cimco

    plain = cimco.map(_system(True), _workload(False), backend="cimco").data
    priced = cimco.map(_system(True), _workload(True), backend="cimco").data
    unpriced = cimco.map(_system(False), _workload(True), backend="cimco").data
    a_ops, b_ops = 4096 + 8 * 512, 7 * 1024
    assert operations({"elementwise": 4096, "softmax": 512}) == a_ops
    layers = {x["name"]: x for x in priced["layers"]}
    for name, n in (("a", a_ops), ("b", b_ops)):
        assert layers[name]["energy_by_component"]["VectorUnit"] == pytest.approx(n * 0.5e-12)
        assert layers[name]["latency_by_component_s"]["VectorUnit"] == pytest.approx(n / 1e9)
        assert layers[name]["action_counts"]["VectorUnit.read"] == pytest.approx(n)
        assert layers[name]["latency_s"] == pytest.approx(max(layers[name]["latency_by_component_s"].values()))
    t, p = priced["totals"], plain["totals"]
    vec = (a_ops + b_ops) * 0.5e-12
    assert t["energy_j"] == pytest.approx(p["energy_j"] + vec)
    assert t["vector_share"] == pytest.approx(vec / t["energy_j"])
    assert t["vector_ops"] == {"elementwise": 4096, "layer_norm": 1024, "softmax": 512}
    assert t["area_m2"] == pytest.approx(p["area_m2"])  # the same system: the unit's area in both
    assert unpriced["totals"]["energy_j"] < t["energy_j"] and unpriced["totals"]["vector_share"] == 0
    warning = [w for w in unpriced["warnings"] if "vector_unit" in w]
    assert warning and "softmax 512" in warning[0] and not [w for w in priced["warnings"] if "vector_unit" in w]


def test_bad_ops_and_vector_unit_exit_2(tmp_path: Path, capsys) -> None:
    import yaml

    from cimco.cli import main

    system = yaml.safe_load((ROOT / "arch_specs/mars_system.yaml").read_text())
    system["macro"] = str(ROOT / "arch_specs/mars_macro_28nm.yaml")
    system["vector_unit"] = {**VECTOR, "ops_per_s": 0}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(system))
    w = _workload(True).model_dump(mode="json")
    w["layers"][0]["ops"] = {"sqrt": 3}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(w))
    code = main(["map", "--system", str(tmp_path / "s.yaml"), "--workload", str(tmp_path / "w.yaml"),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "vector_unit.ops_per_s" in err and "layers[0].ops" in err
