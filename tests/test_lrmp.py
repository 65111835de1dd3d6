"""LRMP: the MILP optimum equals brute force; infeasible budgets say what would fit."""

from __future__ import annotations

import math
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


def test_infeasible_budget_names_the_minimum() -> None:
    options = _instance(7)
    need = solve(options, 10**9, math.inf, "macros").macros
    with pytest.raises(SpecError, match=f"minimal feasible budget is {need} macros"):
        solve(options, need - 1)
    assert solve(options, need).macros <= need


def test_cli_lrmp_resnet20(tmp_path: Path, capsys) -> None:
    code = main(["lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                 str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "| joint |" in out
    assert {p.name for p in tmp_path.iterdir()} == {"lrmp.md", "lrmp_layers.csv", "lrmp_stages.png"}


def test_cli_lrmp_infeasible_exit_2(tmp_path: Path, capsys) -> None:
    code = main(["lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                 str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path), "--budget", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "minimal feasible budget is" in err and "Traceback" not in err
