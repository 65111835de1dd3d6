"""Hostile and absurd input: every case exits 2 with file and dotted path, never a traceback,
never a hang, and never echoes a whole input back (issue 10, one test per class)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_specs import MACRO, WORKLOAD

from cimco.cli import main

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = (ROOT / "arch_specs/mars_system.yaml").read_text()


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert all(len(line) < 400 for line in err.splitlines()), "a message echoes a whole input"
    return code, err


def _validate(tmp_path: Path, capsys, data: str | bytes, name: str = "spec.yaml") -> tuple[int, str]:
    f = tmp_path / name
    f.write_bytes(data.encode() if isinstance(data, str) else data)
    return _run(capsys, "specs", "validate", str(f))


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "kind: macro\n"


@pytest.mark.parametrize("data, words", [
    (ALIAS_BOMB, "expands to over"),  # 9^9 values from a ~500-byte file
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nested deeper"),
    ("a: &a [*a]\nkind: macro\n", "refers to its own anchor"),
    (b"kind: macro\nname: \xff\xfe\n", "not UTF-8"),
    (b"kind: macro\x00\n", "NUL"),
    (bytes(range(256)) * 4, "not UTF-8"),
    ("", "expected a mapping at top level"),
    ("- 1\n- 2\n", "expected a mapping at top level"),
    ("{[1, 2]: 3}\n", "found unhashable key"),
    ("1: 3\nkind: macro\n", "expected text keys"),
    ("kind: [a, b]\n", "kind: expected one of macro, system, workload"),
    ("kind: {a: 1}\n", "kind: expected one of"),
    (MACRO + "rows: 32\n", "rows: duplicate key"),
    ("kind: macro\n" + "".join(f"k{i}: 1\n" for i in range(300_000)), "refused: about 600,004 YAML values"),
    # a system of 100,000 unknown keys (2.4 MB) took ~4 s to parse and refuse: a spec's cap is lower
    ("kind: system\n" + "".join(f"unknown_{i}: {i}\n" for i in range(100_000)),
     "refused: about 200,004 YAML values (counted from its separators and lines); cimco reads at most 20,000 "
     "in a system spec"),
    ("kind: 'workload'\n" + "x: 1\n" * 100_001, "cimco reads at most 200,000 in a workload spec"),
])
def test_unparseable_or_hostile_yaml(tmp_path: Path, capsys, data, words) -> None:
    code, err = _validate(tmp_path, capsys, data)
    assert code == 2 and "spec.yaml" in err and words in err


@pytest.mark.parametrize("text", [
    *(p.read_text() for p in sorted(ROOT.glob("arch_specs/*.yaml")) + sorted(ROOT.glob("workloads/*.yaml"))),
    "a", "a: b", "{a: [1, 2, {b: c}], d: e}", "- - - a\n  - b\n- ? c\n  : d\n", "a: &x [1, 2]\nb: *x\n",
    "a: |\n  text: with, marks - inside\nb: >\n  folded\n", "[a, b, {c: d, e: [f]}]", "? [a, b]\n: c\n",
])
def test_nodes_bound_is_an_upper_bound(text: str) -> None:
    """The count that refuses a file before parsing never undercounts what PyYAML builds."""
    import yaml

    from cimco.spec.load import _Loader, _nodes_bound

    built = sum(isinstance(e, (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent))
                for e in yaml.parse(text, Loader=_Loader))
    assert 0 < built <= _nodes_bound(text)


def test_scalar_tags_are_pyyamls() -> None:
    """The loader's scalar tags, found once per distinct text, are those of PyYAML's resolver."""
    import yaml

    from cimco.spec.load import _Loader

    class Plain(yaml.SafeLoader):  # the same resolvers (YAML 1.2 floats added), PyYAML's resolve
        yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    words = ["yes", "No", "on", "OFF", "~", "null", "Null", "", "1e-15", "1.0e11", "0x1F", "0o17", "1_000", ".inf",
             "-.Inf", ".NaN", "2001-12-14", "true", "True", "FALSE", "a", "unknown_1", "16", "+7", "-0.5",
             "1:30", "0b101", "12e", "e12", "'16'", '"yes"', "1.", ".5"]
    text = "\n".join(f"k{i}: {w}" for i, w in enumerate(words)) + "\nl: [" + ", ".join(w for w in words if w) + "]\n"

    def tags(loader) -> list[str]:
        node = loader(text).get_single_node()
        return [v.tag for _, v in node.value[:-1]] + [v.tag for v in node.value[-1][1].value]

    assert tags(_Loader) == tags(Plain)
    assert yaml.load(text, Loader=_Loader) == yaml.load(text, Loader=Plain)


@pytest.mark.parametrize("edit, path, words", [
    (("rows: 64", "rows: " + "9" * 500), "rows", "expected at most 65536"),
    (("voltage_v: 0.9", "voltage_v: .inf"), "voltage_v", "finite"),
    (("voltage_v: 0.9", "voltage_v: .nan"), "voltage_v", "finite"),
    (("voltage_v: 0.9", "voltage_v: 12"), "voltage_v", "at most 5"),
    (("tech_node_m: 28.0e-9", "tech_node_m: 65"), "tech_node_m", "in metres (28 nm is 28e-9)"),
    (("cycle_s: 1.0e-8", "cycle_s: 10"), "cycle_s", "in seconds"),
    (("adc_bits: 4", "adc_bits: 1000000"), "adc_bits", "at most 16"),
    (("energy: {model: components}", "energy: {model: components, adc_scale: {value: -1, source: x}}"),
     "energy.adc_scale.value", "at least 0.001"),
    (("energy: {model: components}", "energy: {model: table}"), "energy.wordline_drive_j", "missing"),
    (("energy: {model: components}", "energy: {model: magic}"), "energy", "'table', 'components'"),
    (("cols: 64", "cols: [64]"), "cols", "expected an integer"),
    (("cols: 64", "cols: true"), "cols", "expected an integer"),
    (("adcs: 16", "adsc: 16"), "adsc", "did you mean 'adcs'"),
])
def test_bad_macro_values(tmp_path: Path, capsys, edit, path, words) -> None:
    code, err = _validate(tmp_path, capsys, MACRO.replace(*edit))
    assert code == 2
    assert f"spec.yaml: {path}" in err and words in err
    for internal in ("constrained-int", "tuple[", "function-", "union_tag", "pydantic"):
        assert internal not in err


def test_table_energies_negative_or_infinite(tmp_path: Path, capsys) -> None:
    table = ("energy: {model: table, wordline_drive_j: {value: -1.0e-15, source: a}, "
             "cell_mac_j: {value: .inf, source: a}, adc_convert_j: {value: 2.0, source: a}, "
             "shift_add_j: {value: 1.0e-15, source: a}, weight_write_j: {value: 1.0e-15, source: a}}")
    code, err = _validate(tmp_path, capsys, MACRO.replace("energy: {model: components}", table))
    assert code == 2 and "3 problems" in err
    assert "energy.wordline_drive_j.value: expected at least 0" in err
    assert "energy.cell_mac_j.value: expected a finite number" in err
    assert "energy.adc_convert_j.value: expected at most 1e-09, got 2.0; adc_convert_j is in joules" in err


def test_long_values_are_not_echoed_whole(tmp_path: Path, capsys) -> None:
    code, err = _validate(tmp_path, capsys, MACRO.replace("cols: 64", "cols: " + "x" * 100_000))
    assert code == 2 and "cols: expected an integer" in err and "..." in err


def test_nul_in_path(capsys) -> None:
    code, err = _run(capsys, "specs", "validate", "bad\0name.yaml")
    assert code == 2 and "cannot read spec file" in err


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "DIR", "FIFO", "missing.yaml"])
def test_macro_reference_to_non_regular_file(tmp_path: Path, capsys, target) -> None:
    if target == "DIR":
        target = str(tmp_path)
    elif target == "FIFO":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)  # opened without blocking: must not hang
    sysf = tmp_path / "sys.yaml"
    sysf.write_text(SYSTEM.replace("macro: mars_macro_28nm.yaml", f"macro: {target}"))
    code, err = _run(capsys, "specs", "validate", str(sysf))
    assert code == 2
    assert f"sys.yaml: macro: macro file '{target}'" in err and "cannot read spec file" in err


def test_bad_macro_file_named_with_system_key(tmp_path: Path, capsys) -> None:
    (tmp_path / "m.yaml").write_text(MACRO.replace("tech_node_m: 28.0e-9", "tech_node_m: 65"))
    sysf = tmp_path / "sys.yaml"
    sysf.write_text(SYSTEM.replace("macro: mars_macro_28nm.yaml", "macro: m.yaml"))
    code, err = _run(capsys, "specs", "validate", str(sysf))
    assert code == 2
    assert f"{tmp_path / 'm.yaml'}: tech_node_m: expected at most 1e-06, got 65" in err
    # validated together, the macro file's problem is listed once (it was listed through the system too)
    code, err = _run(capsys, "specs", "validate", str(sysf), str(tmp_path / "m.yaml"))
    assert code == 2 and err.count("tech_node_m: expected at most 1e-06, got 65") == 1


def test_a_system_key_is_the_system_files_problem(tmp_path: Path, capsys) -> None:
    """A misspelt system key that starts like `macro` (`macros_per_cor`) was reported "(in
    macro file ...)"."""
    (tmp_path / "m.yaml").write_text(MACRO)
    sysf = tmp_path / "sys.yaml"
    sysf.write_text(SYSTEM.replace("macro: mars_macro_28nm.yaml", "macro: m.yaml")
                    .replace("macros_per_core:", "macros_per_cor:"))
    code, err = _run(capsys, "specs", "validate", str(sysf))
    assert code == 2
    assert "sys.yaml: macros_per_cor: unknown key; did you mean 'macros_per_core'?" in err
    assert "macro file" not in err and "m.yaml" not in err


def test_oversize_spec_file(tmp_path: Path, capsys) -> None:
    code, err = _validate(tmp_path, capsys, MACRO + "#" * (5 * 2**20) + "\n")
    assert code == 2 and "cimco reads at most" in err


@pytest.mark.parametrize("edit, path, words", [
    (("kernel: 3, padding: 1", "kernel: 3, padding: 1, repeat: 0"), "layers[0].repeat", "at least 1"),
    (("in_channels: 16,", "in_channels: 1.0e+300,"), "layers[0].in_channels", "expected an integer"),
    (("input_hw: [8, 8]", "input_hw: [8, 8, 8]"), "layers[0].input_hw", "at most 2 values"),
    (("type: linear,", "type: linear, sparsity: {pattern: row_block, density: 0.5, seed: -1},"),
     "layers[1].sparsity.seed", "at least 0"),
    (("type: linear,", "type: linear, sparsity: {pattern: 'n:m', n: 2, m: 1000000},"),
     "layers[1].sparsity.m", "at most 1024"),
    (("type: linear,", "type: linear, sparsity: {pattern: 'n:m', n: 2, m: 64},"),
     "layers[1].sparsity.m", "expected m at most the layer's reduction"),
    (("type: linear,", "type: linear, sparsity: {pattern: row_block, density: .nan},"),
     "layers[1].sparsity.density", "finite"),
    (("type: linear,", "type: linear, input_density: .nan,"), "layers[1].input_density", "finite"),
])
def test_bad_workload_values(tmp_path: Path, capsys, edit, path, words) -> None:
    assert edit[0] in WORKLOAD
    code, err = _validate(tmp_path, capsys, WORKLOAD.replace(*edit))
    assert code == 2 and f"spec.yaml: {path}" in err and words in err


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _truncated_zip() -> bytes:
    return _npz(b=np.ones((10, 32), bool))[:60]


def _renamed_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones((10, 32), bool))
    return buf.getvalue()


def _bad_member() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("b.npy", b"not an array")
    return buf.getvalue()


@pytest.mark.parametrize("content, words", [
    (b"", "cannot read mask file"),
    (_npz(), "has no array named 'b'"),
    (_truncated_zip(), "cannot read mask file"),
    (_renamed_npy(), "a single .npy array"),
    (_bad_member(), "cannot read mask file"),
    (b"PK\x03\x04" + b"\0" * 100, "cannot read mask file"),
    (_npz(b=np.array(["x"] * 320).reshape(10, 32)), "got dtype <U1"),
    (_npz(b=np.zeros((10, 32), dtype=[("a", "i4"), ("b", "f4")])), "got dtype"),
    (_npz(b=np.full((10, 32), np.nan)), "NaN"),
    (_npz(b=np.ones((32, 10), bool)), "does not match the weight shape (10, 32)"),
])
def test_bad_mask_files(tmp_path: Path, capsys, content: bytes, words: str) -> None:
    (tmp_path / "m.npz").write_bytes(content)
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD.replace("type: linear,", "type: linear, sparsity: {mask: m.npz},"))
    code, err = _run(capsys, "map", "--system", str(ROOT / "arch_specs/mars_system.yaml"),
                     "--workload", str(w), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2 and "w.yaml: layers[1].sparsity.mask: layer 'b'" in err and words in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_mask_path_to_device_is_refused(tmp_path: Path, capsys) -> None:
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD.replace("type: linear,", "type: linear, sparsity: {mask: /dev/zero},"))
    code, err = _run(capsys, "map", "--system", str(ROOT / "arch_specs/mars_system.yaml"),
                     "--workload", str(w), "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2 and "not a regular file" in err


def test_internal_error_is_one_paragraph(monkeypatch, capsys) -> None:
    import cimco.cli

    def boom(args):
        raise RuntimeError("x" * 10_000)

    monkeypatch.delenv("CIMCO_DEBUG", raising=False)
    monkeypatch.setattr(cimco.cli, "cmd_report", boom)
    code = main(["report", "anywhere"])
    err = capsys.readouterr().err
    assert code == 1 and "internal error (RuntimeError)" in err and "CIMCO_DEBUG=1" in err
    assert "Traceback" not in err and len(err) < 2200


def test_report_json_is_strict(tmp_path: Path) -> None:
    from cimco.report.write import write_all

    with pytest.raises(ValueError, match="JSON compliant"):
        write_all({"totals": {"energy_j": float("nan")}}, None, tmp_path)  # type: ignore[arg-type]
    assert not (tmp_path / "report.json").exists()
    json.dumps({"a": 1.0}, allow_nan=False)


def test_table_macro_that_costs_nothing(tmp_path: Path, capsys) -> None:
    zero = "{value: 0.0, source: a}"
    table = (f"energy: {{model: table, wordline_drive_j: {zero}, cell_mac_j: {zero}, adc_convert_j: {zero}, "
             f"shift_add_j: {zero}, weight_write_j: {zero}}}")
    code, err = _validate(tmp_path, capsys, MACRO.replace("energy: {model: components}", table))
    assert code == 2 and "spec.yaml: energy: every compute action costs 0 J" in err


@pytest.mark.parametrize("flags, words", [
    (["--budget-factor", "nan"], "--budget-factor: expected a finite number above 0"),
    (["--budget", "-3"], "--budget: expected a whole number"),
    (["--max-replication", "0"], "--max-replication: expected a whole number"),
    (["--objective", "energy", "--min-throughput", "-1"], "--min-throughput: expected a finite number"),
])
def test_lrmp_flags(tmp_path: Path, capsys, flags, words) -> None:
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD)
    with pytest.raises(SystemExit) as e:  # argparse: usage and the flag's problem, exit 2
        main(["lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload", str(w),
              "--out", str(tmp_path / "o"), *flags])
    assert e.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("flags, words", [
    (["--budget", "4"], "no choice fits 4 macros"),
    (["--budget", "1"], "the minimal feasible budget is"),
])
def test_lrmp_infeasible_budget_is_refused_before_the_component_tables(tmp_path: Path, capsys, monkeypatch,
                                                                      flags, words) -> None:
    """The budgets need no component energies, so an infeasible one is refused before their
    tables are computed."""
    import cimco.tables

    def refuse(*a, **k):
        raise AssertionError("computed the component tables first")

    monkeypatch.setattr(cimco.tables, "component_tables", refuse)
    code, err = _run(capsys, "lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                     str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path / "o"), *flags)
    assert code == 2 and "budget" in err and words in err


@pytest.mark.parametrize("csv, words", [
    ("/dev/zero", "not a regular file"),
    ("layer,bits,loss\na,4,nan\n", "finite loss"),
    ("layer,bits\na,4\n", "expected layer,bits,loss"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_lrmp_sensitivity_file(tmp_path: Path, capsys, csv, words) -> None:
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD)
    if csv != "/dev/zero":
        (tmp_path / "s.csv").write_bytes(csv.encode() if isinstance(csv, str) else csv)
        csv = str(tmp_path / "s.csv")
    code, err = _run(capsys, "lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                     str(w), "--out", str(tmp_path / "o"), "--sensitivity", csv)
    assert code == 2 and words in err


@pytest.mark.parametrize("content", ["garbage", '{"layers": [1]}', "{}", "[]"])
def test_report_of_a_damaged_report(tmp_path: Path, capsys, content: str) -> None:
    (tmp_path / "report.json").write_text(content)
    code, err = _run(capsys, "report", str(tmp_path))
    assert code == 2 and "not a cimco report" in err


SMALL = """\
kind: workload
name: small
source: test
layers:
  - {name: l1, type: conv, in_channels: 16, out_channels: 16, input_hw: [8, 8], kernel: 3, padding: 1}
"""


def test_buffer_too_small_for_any_mapping_names_the_field(tmp_path: Path, capsys) -> None:
    sysf = tmp_path / "sys.yaml"
    sysf.write_text(SYSTEM.replace("size_bits: 2097152", "size_bits: 8").replace(
        "macro: mars_macro_28nm.yaml", f"macro: {ROOT / 'arch_specs/mars_macro_28nm.yaml'}"))
    (tmp_path / "w.yaml").write_text(SMALL)
    code, err = _run(capsys, "map", "--system", str(sysf), "--workload", str(tmp_path / "w.yaml"),
                     "--out", str(tmp_path / "out"), "--quiet")
    assert code == 2
    assert "sys.yaml: global_buffer.size_bits: too small for any mapping of layer 'l1'" in err
    assert "<SEP>" not in err and "pmappings" not in err  # no upstream dump


def test_layer_past_the_time_limit_is_named(tmp_path: Path, capsys) -> None:
    huge = SMALL.replace("in_channels: 16, out_channels: 16, input_hw: [8, 8]",
                         "in_channels: 1048576, out_channels: 1048576, input_hw: [65536, 65536]")
    (tmp_path / "w.yaml").write_text(huge)
    code, err = _run(capsys, "map", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                     str(tmp_path / "w.yaml"), "--out", str(tmp_path / "out"), "--quiet", "--layer-timeout", "3")
    assert code == 2
    assert "w.yaml: layers[0]: layer 'l1' (conv 1048576->1048576 channels" in err
    assert "mapping took longer than 3 s; raise --layer-timeout" in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_worker_memory_cap_turns_a_blowup_into_memory_error() -> None:
    """The pool's initializer caps the address space: an allocation past it fails in Python
    (and the mapping reports it as a LimitError) instead of taking the machine down."""
    import subprocess
    import sys

    code = ("import os, numpy as np\n"
            "from cimco.workers import worker_init\n"
            "worker_init(os.getppid(), 3 * 2**30)\n"
            "try:\n    np.ones(2**32, dtype=np.uint8)\nexcept MemoryError:\n    print('capped')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "capped", out.stderr[-500:]


def _claims_huge_array() -> bytes:
    """A ~200-byte .npz whose member's header claims 2^44 bools (16 TiB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "|b1", "fortran_order": False,
                                                    "shape": (2**22, 2**22)})
        z.writestr("b.npy", b"\x93NUMPY\x01\x00" + head.getvalue()[8:])
    return buf.getvalue()


def _zip_bomb() -> bytes:
    """A few MB that unpack to 1 GiB: a (2^15, 2^15) bool array of zeros, compressed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("b.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|b1", "fortran_order": False,
                                                     "shape": (2**15, 2**15)})
            chunk = bytes(2**24)
            for _ in range(2**30 // 2**24):
                f.write(chunk)
    return buf.getvalue()


@pytest.mark.parametrize("make", [_claims_huge_array, _zip_bomb])
def test_mask_member_is_checked_before_it_is_read(tmp_path: Path, make) -> None:
    """The header is read first: a wrong shape is refused without unpacking (bounded memory)."""
    import resource

    from cimco.errors import SpecError
    from cimco.sparse.masks import resolve
    from cimco.spec import load_pair

    (tmp_path / "m.npz").write_bytes(make())
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD.replace("type: linear,", "type: linear, sparsity: {mask: m.npz},"))
    system, workload = load_pair(ROOT / "arch_specs/mars_system.yaml", w)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SpecError, match=r"does not match the weight shape \(10, 32\)"):
        resolve(system, workload, w)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB
