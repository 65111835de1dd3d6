"""LRMP: the MILP optimum equals brute force; infeasible budgets say what would fit."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from cimco.cli import main
from cimco.codesign.lrmp import Option, brute_force, solve
from cimco.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent


def _instance(seed: int) -> list[list[Option]]:
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(int(rng.integers(2, 5))):
        opts = []
        tiles = int(rng.integers(1, 6))
        work = float(rng.uniform(1, 100))
        for b in (4, 6, 8):
            for r in (1, 2, 4):
                opts.append(Option(bits=b, replication=r, macros=r * tiles * b // 4,
                                   time_s=work * b / r * float(rng.uniform(0.9, 1.1)),
                                   energy_j=work * b * float(rng.uniform(0.5, 1.5)),
                                   loss=float(rng.uniform(0, 1)) * 4.0 ** (-b / 2)))
        layers.append(opts)
    return layers


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("objective", ["throughput", "latency", "energy"])
def test_milp_equals_brute_force(seed: int, objective: str) -> None:
    options = _instance(seed)
    least = sum(min(o.macros for o in opts) for opts in options)
    budget = int(least * (1.3 + (seed % 5) * 0.4))
    acc = sum(min(o.loss for o in opts) for opts in options) * (1.5 + seed % 3)
    ref = brute_force(options, budget, acc, objective)
    if ref is None:
        with pytest.raises(SpecError):
            solve(options, budget, acc, objective)
        return
    got = solve(options, budget, acc, objective)
    key = {"throughput": "bottleneck_s", "latency": "latency_s", "energy": "energy_j"}[objective]
    assert getattr(got, key) == pytest.approx(getattr(ref, key), rel=1e-9)
    assert got.macros <= budget and got.loss <= acc + 1e-9
    if objective == "throughput":  # ties broken by latency
        ties = [c for c in [brute_force([[o for o in opts if o.time_s <= ref.bottleneck_s * (1 + 1e-9)]
                                         for opts in options], budget, acc, "latency")] if c]
        assert got.latency_s == pytest.approx(ties[0].latency_s, rel=1e-9)


def test_infeasible_budget_names_the_minimum() -> None:
    options = _instance(7)
    need = solve(options, 10**9, math.inf, "macros").macros  # the smallest budget that fits
    with pytest.raises(SpecError, match=f"minimal feasible budget is {need} macros"):
        solve(options, need - 1)
    assert solve(options, need).macros <= need


def test_cli_lrmp_resnet20(tmp_path: Path, capsys) -> None:
    code = main(["lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                 str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "| joint |" in out
    assert {p.name for p in tmp_path.iterdir()} == {"lrmp.md", "lrmp_layers.csv", "lrmp_stages.png"}
    # what its figures are (issue 21): the energy the macros' only, the accuracy budget's unit
    assert "| macro energy (uJ) |" in out and "the macros' compute and index codes only" in out
    assert re.search(r"accuracy budget [0-9.]+ \(the summed loss of uniform 6-bit weights: a proxy, "
                     r"quantization-noise power summed over the weights \(weights x 4\^-bits, assumed\)\)", out)


def test_cli_lrmp_infeasible_exit_2(tmp_path: Path, capsys) -> None:
    code = main(["lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                 str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path), "--budget", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "minimal feasible budget is" in err and "Traceback" not in err


@pytest.mark.parametrize("bits", [8, 4])
def test_stage_time_agrees_with_accelforge_on_own_macros(bits: int) -> None:
    """The spatial stage-time model against AccelForge mapping each conv layer alone on
    exactly the macros the model gives it (within 10%)."""
    import numpy as np

    from cimco.backends.accelforge import AccelForge
    from cimco.codesign.spatial import layer_options
    from cimco.geometry import MacroGeometry
    from cimco.mapping import map_workload
    from cimco.sparse.occupancy import occupancy
    from cimco.spec import load
    from cimco.spec.workload import Bits, Layer, WorkloadSpec
    from cimco.tables import component_tables

    system = load(ROOT / "arch_specs/mars_system.yaml")
    b = Bits(input=bits, weight=bits, output=8)
    for layer in (Layer(name="a", type="conv", in_channels=64, out_channels=64, input_hw=(32, 32),
                        kernel=3, padding=1),
                  Layer(name="b", type="conv", in_channels=16, out_channels=32, input_hw=(16, 16),
                        kernel=3, padding=1, stride=2),
                  Layer(name="d", type="conv", in_channels=128, out_channels=256, input_hw=(8, 8),
                        kernel=3, padding=1)):
        geo = MacroGeometry.of(system.macro, bits, bits, 1)
        tiles = len(occupancy(np.ones((1, layer.out_channels, layer.reduction), bool), geo).tile_loads)
        own = system.model_copy(update={"cores": 1, "macros_per_core": tiles})
        w = WorkloadSpec(name="x", source="test", bits=b, layers=[layer])
        run = map_workload(own, w, AccelForge(), None, progress=False)[0]
        mapped = max(v for c, v in run.latency_by_component.items()
                     if c in ("WordlineDriver", "ADC", "ShiftAdd", "CellArray"))
        ert = component_tables(own, w).ert
        model = next(o for o in layer_options(own, layer, ert, [bits]) if o.replication == 1)
        assert model.macros == tiles
        assert model.time_s == pytest.approx(mapped, rel=0.10), layer.name


def test_energy_objective_respects_the_throughput_floor() -> None:
    options = _instance(3)
    floor = 1 / max(min(o.time_s for o in opts) for opts in options)  # the fastest feasible pace
    got = solve(options, 10**6, objective="energy", min_throughput=floor)
    assert got.bottleneck_s <= 1 / floor
    fast_enough = [[o for o in opts if o.time_s <= 1 / floor] for opts in options]
    assert got.energy_j == pytest.approx(brute_force(fast_enough, 10**6, objective="energy").energy_j)


def test_cli_energy_objective_needs_a_floor(tmp_path: Path, capsys) -> None:
    argv = ["lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
            str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path), "--objective", "energy"]
    assert main(argv) == 2 and "--min-throughput" in capsys.readouterr().err
    assert main([*argv, "--min-throughput", "10000"]) == 0


@pytest.mark.parametrize("bits", [8, 4])
def test_mapper_costs_agree_with_the_spatial_model(bits: int) -> None:
    """``--costs mapper``: each option's stage time and energy from the cimco backend's mapping
    of the layer on its own macros, against the spatial model (time within 10%, as the model is
    held to AccelForge above; energy within 5%), dense and with a pruned mask; replication
    divides the positions exactly."""
    from cimco.backends.cim import Cim
    from cimco.codesign.spatial import layer_options
    from cimco.spec import load
    from cimco.spec.workload import Bits, Layer, WorkloadSpec
    from cimco.tables import component_tables

    system = load(ROOT / "arch_specs/mars_system.yaml")
    rng = np.random.default_rng(0)
    for layer in (Layer(name="a", type="conv", in_channels=64, out_channels=64, input_hw=(32, 32), kernel=3, padding=1),
                  Layer(name="b", type="conv", in_channels=16, out_channels=32, input_hw=(16, 16), kernel=3,
                        padding=1, stride=2)):
        ert = component_tables(system, WorkloadSpec(name="x", source="t", bits=Bits(input=bits, weight=bits),
                                                    layers=[layer])).ert
        for mask in (None, rng.random((layer.out_channels, layer.in_channels, 3, 3)) < 0.5):
            spatial = layer_options(system, layer, ert, [bits], mask, max_replication=8)
            mapped = layer_options(system, layer, ert, [bits], mask, max_replication=8, backend=Cim())
            assert [(o.bits, o.replication, o.macros) for o in mapped] == \
                [(o.bits, o.replication, o.macros) for o in spatial]
            one = mapped[0]
            for s, m in zip(spatial, mapped):
                assert m.time_s == pytest.approx(s.time_s, rel=0.10), (layer.name, m, s)
                assert m.energy_j == pytest.approx(s.energy_j, rel=0.05), (layer.name, m, s)
                positions = layer.positions
                assert m.time_s == pytest.approx(one.time_s * math.ceil(positions / m.replication) / positions)
                assert m.energy_j == one.energy_j


def test_cli_lrmp_costs_mapper(tmp_path: Path, capsys) -> None:
    code = main(["lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                 str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path), "--costs", "mapper",
                 "--backend", "cimco", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "the cimco backend's mapping of each layer on its macros" in out
    budget = int(out.split("macro budget ")[1].split(";")[0])
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| ") and "x |" in line]
    assert len(rows) == 4 and all(int(r[2]) <= budget for r in rows)
