"""`cimco sweep`: the spec (paths, validation), a 64-point ResNet-20 sweep killed half-way
and resumed without recomputing finished points, and identical tables from the local and
Dask executors."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pytest

from cimco import _af, backends, cache, sweeps
from cimco.cli import main
from cimco.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "arch_specs/mars_system.yaml"
SMALL = """\
kind: workload
name: small
source: test
layers:
  - {name: l1, type: linear, in_channels: 32, out_channels: 8}
  - {name: l2, type: linear, in_channels: 64, out_channels: 16}
  - {name: l1b, type: linear, in_channels: 32, out_channels: 8}
"""
# 64 points, two layer-mapping signatures (weight bits 4 and 8): sparsity and input
# density are applied after the mapping cache, so 62 points reuse the first two's mappings
R20 = f"""\
kind: sweep
name: r20
system: {SYSTEM}
workload: {ROOT / "workloads/resnet20_cifar.yaml"}
grid:
  workload.bits.weight: [4, 8]
  workload.sparsity: {{pattern: [row_block, kernel_group, crossbar, channel], density: [0.25, 0.5, 0.75, 1.0]}}
  workload.input_density: [0.5, 1.0]
"""
STATS = re.compile(r"sweep: (\d+) points \((\d+) distinct\): (\d+) done before, (\d+) computed, (\d+) layers mapped")


def _sweep(tmp: Path, body: str) -> Path:
    (tmp / "small.yaml").write_text(SMALL)
    p = tmp / "sweep.yaml"
    p.write_text(f"kind: sweep\nsystem: {SYSTEM}\nworkload: small.yaml\n{body}")
    return p


def _problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as e:
        sweeps.load(path)
    return [str(p) for p in e.value.problems]


def test_grid_and_points_expand_with_nested_overrides(tmp_path: Path) -> None:
    spec, points = sweeps.load(_sweep(tmp_path, """\
grid:
  workload.sparsity: {pattern: row_block, density: [0.25, 0.5]}
  system.macros_per_core: [4, 8]
points:
  - {macro.adc_bits: 6, workload.bits.weight: 4}
"""))
    assert len(points) == 5
    assert points[0].params == {"workload.sparsity.pattern": "row_block", "workload.sparsity.density": 0.25,
                                "system.macros_per_core": 4}
    p = points[3]
    assert p.system.macros_per_core == 8
    assert all(x.sparsity.pattern == "row_block" and x.sparsity.density == 0.5 for x in p.workload.layers)
    assert points[4].system.macro.adc_bits == 6 and points[4].workload.bits.weight == 4
    assert points[4].workload.layers[0].sparsity is None
    assert len({q.hash for q in points}) == 5
    # sparsity does not change the layer mappings; the system does
    assert points[0].signature == points[2].signature != points[1].signature


def test_unknown_paths_are_refused_with_the_closest_key(tmp_path: Path) -> None:
    probs = _problems(_sweep(tmp_path, "grid:\n  macro.adc_bit: [4]\n  system.macro_per_core: [2]\n"
                                       "  workload.sparsity.densty: [0.5]\n  chip.x: [1]\n"))
    text = "\n".join(probs)
    assert "macro.adc_bit: unknown key 'adc_bit' under macro; did you mean 'adc_bits'?" in text
    assert "did you mean 'macros_per_core'?" in text
    assert "did you mean 'density'?" in text
    assert "chip.x: expected a path starting with system., macro. or workload." in text
    assert len(probs) == 4


def test_bad_values_name_the_sweep_file_point_and_dotted_path(tmp_path: Path) -> None:
    path = _sweep(tmp_path, "grid:\n  macro.adc_bits: [5, 17, 0]\n  workload.bits.weight: [2, 8]\n")
    text = "\n".join(_problems(path))
    assert f"{path}: point 2 (macro.adc_bits=17, workload.bits.weight=2): system.macro.adc_bits: " \
           "expected at most 16, got 17" in text
    assert "macro.adc_bits: expected at least 1, got 0" in text
    assert "bits.weight: layer 'l1': macro 'mars_macro_28nm' supports weight bits 4..8, got 2" in text


def test_missing_base_file_is_a_user_error(tmp_path: Path) -> None:
    path = _sweep(tmp_path, "points:\n  - {workload: nothere.yaml}\n")
    assert any("nothere.yaml" in p and "cannot read" in p for p in _problems(path))


# --- real runs ------------------------------------------------------------------------


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _mappings(cache: Path) -> set[str]:
    return {p.name for p in cache.glob("*.json")}


def _cmd(spec: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cimco.cli", "sweep", str(spec), "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def r20(tmp_path_factory) -> dict:
    """The 64-point ResNet-20 sweep: SIGKILLed (whole process group) once 16 points are
    done, then rerun to the end."""
    d = tmp_path_factory.mktemp("r20")
    spec, out = d / "r20.yaml", d / "out"
    spec.write_text(R20)
    log = out / sweeps.RESULTS
    env = {**os.environ, "HOME": str(d)}
    with open(d / "err.txt", "w") as err:
        proc = subprocess.Popen(_cmd(spec, out, "--jobs", "2"), env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        end = time.monotonic() + 1200
        while _lines(log) < 16:
            assert proc.poll() is None and time.monotonic() < end, (d / "err.txt").read_text()
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = {json.loads(x)["hash"]: x for x in log.read_text().splitlines()}
    mapped_before = _mappings(out / "cache")
    rerun = subprocess.run(_cmd(spec, out, "--jobs", "2"), env=env, capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr
    return {"dir": d, "spec": spec, "out": out, "killed": killed, "mapped_before": mapped_before,
            "stats": [int(x) for x in STATS.search(rerun.stdout).groups()]}


@pytest.mark.slow
def test_killed_sweep_resumes_without_recomputing(r20: dict) -> None:
    points, distinct, before, computed, mapped = r20["stats"]
    k = len(r20["killed"])
    assert 16 <= k < 64  # killed half-way
    assert (points, distinct, before, computed) == (64, 64, k, 64 - k)
    lines = (r20["out"] / sweeps.RESULTS).read_text().splitlines()
    assert len(lines) == 64 and len({json.loads(x)["hash"] for x in lines}) == 64  # no point twice
    assert lines[:k] == list(r20["killed"].values())  # finished lines kept as they were
    # no layer mapped twice: this run mapped exactly the layers the killed one had not
    after = _mappings(r20["out"] / "cache")
    assert mapped == len(after - r20["mapped_before"])
    _, points = sweeps.load(r20["spec"])
    backend = backends.get(backends.DEFAULT)
    engine = {"backend": backend.name, **backend.versions()}
    keys = {f"{cache.key(p.system, _af.einsum_of(x), p.workload.layer_bits(x), engine)}.json"
            for p in points for x in p.workload.layers}
    assert len(keys) == 2 * 7 and keys <= after  # ResNet-20: 7 distinct layer shapes, two weight precisions
    df = pd.read_parquet(r20["out"] / "results.parquet")
    assert len(df) == 64 and list(df["point"]) == list(range(64))
    assert df.equals(pd.read_csv(r20["out"] / "results.csv"))
    assert (r20["out"] / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (r20["out"] / "sweep.html").read_text()
    # sparsity pays: at weight bits 8, row-block 25% beats dense in energy
    e = df.set_index(["workload.bits.weight", "workload.sparsity.pattern", "workload.sparsity.density",
                      "workload.input_density"])["energy_j"]
    assert e[8, "row_block", 0.25, 1.0] < e[8, "row_block", 1.0, 1.0]
    # rerunning a finished sweep computes nothing
    again = subprocess.run(_cmd(r20["spec"], r20["out"]), capture_output=True, text=True, timeout=600)
    assert [int(x) for x in STATS.search(again.stdout).groups()] == [64, 64, 64, 0, 0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from distributed import LocalCluster

    d = tmp_path_factory.mktemp("dask")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, local_directory=str(d)) as c:
        yield c


@pytest.mark.slow
def test_resumed_sweep_equals_an_uninterrupted_dask_run(r20: dict, cluster, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(r20["out"] / "cache", out / "cache")  # the mappings: the points are all new
    df = sweeps.run(r20["spec"], out, "dask", cluster.scheduler_address, progress=False)[0]
    pd.testing.assert_frame_equal(df, pd.read_parquet(r20["out"] / "results.parquet"), check_exact=True)


def test_local_and_dask_executors_give_identical_tables(cluster, tmp_path: Path) -> None:
    spec = _sweep(tmp_path, "grid:\n  workload.sparsity: {pattern: [row_block, kernel_group], density: [0.75, 1.0]}\n"
                            "  workload.input_density: [0.5, 1.0]\n")
    local, st = sweeps.run(spec, tmp_path / "local", "local", jobs=2, progress=False)
    dask, st2 = sweeps.run(spec, tmp_path / "dask", "dask", cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(local, dask, check_exact=True)
    assert (st.computed, st.mapper_calls) == (st2.computed, st2.mapper_calls) == (8, 2)  # l1b is l1
    for name in ("results.parquet", "results.csv"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
    # the workers wrote only into OUT: cache, scratch and matplotlib's files under OUT/cache
    assert {p.name for p in (tmp_path / "dask").iterdir()} == {
        "cache", "points", "results.jsonl", "results.parquet", "results.csv", "pareto.png", "sweep.html"}
    # each point's report (issue 21), linked from sweep.html, read by `cimco report` and `cimco diff`
    points = sorted((tmp_path / "local" / "points").iterdir())
    assert [p.name for p in points] == sorted(local["hash"]) and all((p / "report.json").exists() for p in points)
    page = (tmp_path / "local" / "sweep.html").read_text()
    assert all(f'<a href="points/{h}/report.json">' in page for h in local["hash"])
    report = json.loads((points[0] / "report.json").read_text())
    row = local[local["hash"] == points[0].name].iloc[0]
    assert report["totals"]["energy_j"] == row["energy_j"]
    assert main(["diff", str(points[0]), str(points[1])]) == 0


def test_an_architecture_sweep_on_the_cimco_backend(tmp_path: Path) -> None:
    """Points that each need their own mappings, mapped by the cimco backend through the
    one pipeline; a point's identity includes the backend, so the same sweep on another
    backend into the same OUT computes its points again."""
    spec = _sweep(tmp_path, "grid:\n  system.cores: [2, 4]\n  macro.adc_bits: [5, 6]\n")
    df, st = sweeps.run(spec, tmp_path / "out", "local", jobs=1, progress=False, backend="cimco")
    assert (st.computed, st.mapper_calls) == (4, 8)  # 2 distinct layers a point
    assert (df["energy_j"] > 0).all() and df["energy_j"].nunique() > 1
    _, again = sweeps.run(spec, tmp_path / "out", "local", jobs=1, progress=False, backend="cimco")
    assert (again.done_before, again.computed) == (4, 0)
    _, other = sweeps.run(spec, tmp_path / "out", "local", jobs=1, progress=False, backend="accelforge")
    assert (other.done_before, other.computed) == (0, 4)


# --- read back like user input (issue 19) ---------------------------------------------

@pytest.mark.unit
def test_a_million_points_are_counted_not_expanded(tmp_path: Path) -> None:
    grid = {f"k{i}": list(range(10)) for i in range(6)}
    spec = sweeps.SweepSpec(system="s", workload="w", grid=grid)
    assert sweeps.count(spec) == 10**6
    points = sweeps.expand(spec)
    assert isinstance(points, types.GeneratorType) and next(points) == dict.fromkeys(grid, 0)
    body = "grid:\n" + "".join(f"  system.global_buffer.size_bits: [{', '.join(str(2**20 + j) for j in range(10))}]\n"
                               if i == 0 else f"  macro.adc_bits_{i}: [{', '.join(map(str, range(10)))}]\n"
                               for i in range(6))
    with pytest.raises(SpecError) as e:
        sweeps.load(_sweep(tmp_path, body))
    (p,) = e.value.problems
    assert p.path == "grid" and "1,000,000 points, above the limit of 10,000 (--max-points)" in p.message
    with pytest.raises(SpecError, match="1,000,000 points, above the limit of 999,999"):
        sweeps.load(_sweep(tmp_path, body), max_points=999_999)


def _finished(tmp_path: Path) -> tuple[Path, dict]:
    """A one-point sweep run to completion (real mapping, one small layer)."""
    spec = _sweep(tmp_path, "grid:\n  workload.input_density: [1.0]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet", "--jobs", "1"]) == 0
    (line,) = (tmp_path / "out" / sweeps.RESULTS).read_text().splitlines()
    return spec, json.loads(line)


BAD_LINES = {
    "missing totals": lambda rec: {k: v for k, v in rec.items() if k != "totals"},
    "negative energy": lambda rec: {**rec, "totals": {**rec["totals"], "energy_j": -123.0}},
    "NaN latency": lambda rec: {**rec, "totals": {**rec["totals"], "latency_s": "NaN"}},
    "string hash": lambda rec: {**rec, "hash": 7},
}


@pytest.mark.e2e
def test_bad_results_lines_are_named_by_file_and_line(tmp_path: Path, capsys) -> None:
    spec, rec = _finished(tmp_path)
    log = tmp_path / "out" / sweeps.RESULTS
    lines = [json.dumps(rec)] + [json.dumps(f(rec)).replace('"NaN"', "NaN") for f in BAD_LINES.values()]
    log.write_text("\n".join(lines) + "\n" + "[" * 100_000 + "\n")
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "KeyError" not in err
    for n, why in [(2, "totals: expected a mapping"), (3, "totals.energy_j: expected a finite number >= 0, got -123"),
                   (4, "totals.latency_s: expected a finite number >= 0, got nan"), (5, "hash: expected a string"),
                   (6, "not JSON (RecursionError)")]:
        assert f"{log}: line {n}: {why}" in err
    assert not (tmp_path / "out" / "results.csv").read_text().count("-123")  # the tables were not rewritten


@pytest.mark.e2e
def test_a_point_too_small_for_a_layer_names_its_field(tmp_path: Path, capsys) -> None:
    """`cimco map` names global_buffer.size_bits when no mapping fits; a sweep point does too."""
    spec = _sweep(tmp_path, "grid:\n  system.global_buffer.size_bits: [8]\n")  # one 8-bit input and output need 16
    (tmp_path / "small.yaml").write_text(SMALL.replace("in_channels: 32, out_channels: 8",
                                                       "in_channels: 512, out_channels: 512, tokens: 64", 1))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--quiet", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "point 0 (system.global_buffer.size_bits=8): system: global_buffer.size_bits: too small for any " \
           "mapping of layer 'l1'" in err
    assert "pmappings" not in err and "Traceback" not in err


@pytest.mark.unit
def test_pareto_front_over_chosen_objectives() -> None:
    """Hand-made points: the front over energy and latency, and over energy and area."""
    import pandas as pd

    df = pd.DataFrame({"point": [0, 1, 2, 3], "macro.adc_bits": [5, 6, 5, 6], "system.cores": [2, 2, 2, 2],
                       "system_name": ["s"] * 4, "energy_j": [4.0, 2.0, 3.0, 2.0], "latency_s": [1.0, 3.0, 2.0, 4.0],
                       "area_m2": [9.0, 1.0, 5.0, 0.5]})
    assert sweeps.pareto(df) == [0, 2, 1]  # by latency; point 3 has 1's energy and more latency
    assert sweeps.pareto(df, ("energy_j", "area_m2")) == [3]  # least energy (tied) and least area
    assert sweeps.pareto(df, ("latency_s", "area_m2")) == [3, 1, 2, 0]
    assert sweeps._params(df) == ["macro.adc_bits"]  # cores does not vary


@pytest.mark.unit
@pytest.mark.parametrize("value", ["energy_j", "energy_j,energy_j", "energy_j,power", "a,b,c"])
def test_bad_objectives_are_refused(tmp_path: Path, capsys, value: str) -> None:
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--objectives", value])
    assert e.value.code == 2 and "--objectives: expected two different of energy_j, latency_s, area_m2" in \
        capsys.readouterr().err


@pytest.mark.e2e
def test_report_of_a_sweep_directory(tmp_path: Path, capsys) -> None:
    """Issue 21: `cimco report` takes a sweep's directory: its Pareto front with what varies;
    an edited results.csv is checked like user input, naming the file and line."""
    spec = _sweep(tmp_path, "grid:\n  system.cores: [2, 4]\n  macro.adc_bits: [5, 6]\n")
    df, _ = sweeps.run(spec, tmp_path / "out", "local", jobs=1, progress=False)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "sweep " in out and "4 points; the energy-latency Pareto front" in out
    assert "system.cores" in out and "macro.adc_bits" in out
    assert len(out.strip().splitlines()) == 3 + len(sweeps.pareto(df))
    table = (tmp_path / "out" / "results.csv").read_text().splitlines()
    head = table[0].split(",")
    row = table[2].split(",")
    row[head.index("energy_j")] = "-1"
    (tmp_path / "out" / "results.csv").write_text("\n".join([table[0], table[1], ",".join(row), *table[3:]]) + "\n")
    assert main(["report", str(tmp_path / "out")]) == 2
    assert "results.csv: line 3: energy_j: expected a finite number >= 0, got '-1'" in capsys.readouterr().err
