"""Spec reading hardened after an outside fuzz run (issue 19): control characters and huge
integer literals, booleans and strings where numbers belong, energies and areas below any
physical value, refusals that stay linear in the size of the input, paths that point at
files that are no spec, and sensitivity CSVs naming layers the workload lacks.

Every refusal is exit code 2 with the file and dotted path, and never a traceback. Tests are
``unit`` (the CLI stops before any engine call) except the one running ``cimco lrmp`` to its
check of the sensitivity CSV, which needs the component tables (``e2e``)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from test_specs import MACRO, WORKLOAD

from cimco.cli import main
from cimco.errors import SpecError
from cimco.spec import load
from cimco.spec._base import MAX_PROBLEMS

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = (ROOT / "arch_specs/mars_system.yaml").read_text()
TABLE = ("energy: {model: table, wordline_drive_j: {value: 1.0e-15, source: a}, cell_mac_j: {value: CELL, source: a}, "
         "adc_convert_j: {value: 0, source: a}, shift_add_j: {value: 1e-15, source: a}, "
         "weight_write_j: {value: 1e-15, source: a}}")


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error:" not in err  # no upstream exception text
    return code, err


def _validate(tmp_path: Path, capsys, text: str, name: str = "spec.yaml") -> tuple[int, str]:
    (tmp_path / name).write_text(text)
    return _run(capsys, "specs", "validate", str(tmp_path / name))


def _system(tmp_path: Path, macro: str) -> Path:
    """The bundled MARS system with its ``macro:`` pointing at ``macro``."""
    f = tmp_path / "system.yaml"
    f.write_text(SYSTEM.replace("macro: mars_macro_28nm.yaml", f"macro: {macro}"))
    return f


# 1. characters YAML refuses, and integer literals Python refuses to read


@pytest.mark.parametrize("text, words", [
    (MACRO.replace("name: m", "name: m\x14x"), "control character 0x14 at line 2, column 8"),
    (MACRO + "ab\x08c: 1\n", "control character 0x08 at line 17, column 3"),
    (MACRO.replace("rows: 64", "rows: " + "9" * 5000), "rows: an integer of 5,000 characters (line 4)"),
    (MACRO.replace("rows: 64", "rows: -" + "1" * 4400), "rows: an integer of 4,401 characters"),
    (MACRO + "built: 2001-13-45\n", "a value cannot be read as YAML data"),
])
@pytest.mark.unit
def test_unreadable_yaml_is_a_spec_error(tmp_path: Path, capsys, text: str, words: str) -> None:
    code, err = _validate(tmp_path, capsys, text)
    assert code == 2 and "spec.yaml: " in err and words in err
    assert "ReaderError" not in err and "4300" not in err


# 2. booleans and strings are never numbers


@pytest.mark.parametrize("old, new, path, got", [
    ("voltage_v: 0.9", "voltage_v: true", "voltage_v", "a boolean (true)"),
    ("reference_voltage_v: 0.9", "reference_voltage_v: true", "reference_voltage_v", "a boolean (true)"),
    ("cycle_s: 1.0e-8", "cycle_s: '1.0e-8'", "cycle_s", "a string ('1.0e-8')"),
    ("tech_node_m: 28.0e-9", "tech_node_m: false", "tech_node_m", "a boolean (false)"),
])
@pytest.mark.unit
def test_macro_number_is_not_a_boolean_or_string(tmp_path: Path, capsys, old, new, path, got) -> None:
    code, err = _validate(tmp_path, capsys, MACRO.replace(old, new))
    assert code == 2 and f"spec.yaml: {path}: expected a number, got {got}" in err


@pytest.mark.parametrize("old, new, path", [
    ("rows: 64", "rows: '16'", "rows"),
    ("adcs: 16", "adcs: true", "adcs"),
])
@pytest.mark.unit
def test_integer_is_not_a_boolean_or_string(tmp_path: Path, capsys, old, new, path) -> None:
    code, err = _validate(tmp_path, capsys, MACRO.replace(old, new))
    assert code == 2 and f"spec.yaml: {path}: expected an integer, got a " in err


@pytest.mark.unit
def test_integer_and_exponent_forms_are_numbers(tmp_path: Path, capsys) -> None:
    """1 is 1.0; 1e-8 and 1.0e11 are numbers even though YAML 1.1 would read them as text."""
    text = MACRO.replace("voltage_v: 0.9", "voltage_v: 1").replace("cycle_s: 1.0e-8", "cycle_s: 1e-8")
    assert _validate(tmp_path, capsys, text)[0] == 0
    assert load(tmp_path / "spec.yaml").cycle_s == 1e-8


def _mars(text: str = SYSTEM) -> str:
    """The MARS system with its macro named by absolute path (it is written elsewhere)."""
    return text.replace("macro: mars_macro_28nm.yaml", f"macro: {ROOT / 'arch_specs/mars_macro_28nm.yaml'}")


@pytest.mark.parametrize("text, path", [
    (lambda: _replace_value(_mars(), "dram:", "energy_per_bit_j", "true"), "dram.energy_per_bit_j.value"),
    (lambda: _mars().replace("1.0e11", "'1.0e11'"), "dram.bandwidth_bits_per_s"),
    (lambda: _replace_value(_mars(), "index_memory:", "area_m2", "'1e-9'"), "index_memory.area_m2.value"),
])
@pytest.mark.unit
def test_system_number_is_not_a_boolean_or_string(tmp_path: Path, capsys, text, path) -> None:
    code, err = _validate(tmp_path, capsys, text())
    assert code == 2 and f"spec.yaml: {path}: expected a number, got a " in err


def _replace_value(text: str, section: str, key: str, value: str) -> str:
    """``text`` with the value of ``key``'s ``{value: ...}`` in ``section`` replaced by ``value``."""
    head, _, tail = text.partition(section)
    at = tail.index(key)
    start = tail.index("value:", at) + len("value:")
    end = min(i for i in (tail.find(",", start), tail.find("}", start), tail.find("\n", start)) if i >= 0)
    return head + section + tail[:start] + " " + value + tail[end:]


@pytest.mark.parametrize("edit, path", [
    ("input_density: true", "layers[1].input_density"),
    ("input_density: '0.5'", "layers[1].input_density"),
    ("sparsity: {pattern: unstructured, density: true}", "layers[1].sparsity.density"),
])
@pytest.mark.unit
def test_workload_number_is_not_a_boolean_or_string(tmp_path: Path, capsys, edit, path) -> None:
    code, err = _validate(tmp_path, capsys, WORKLOAD.replace("out_channels: 10}", f"out_channels: 10, {edit}}}"))
    assert code == 2 and f"spec.yaml: {path}: expected a number, got a " in err


# 3. energies below the Landauer limit, areas below 1 nm^2


@pytest.mark.unit
def test_landauer_constant() -> None:
    from cimco.spec.macro import LANDAUER_J

    assert LANDAUER_J == pytest.approx(2.87e-21, rel=1e-3)


@pytest.mark.parametrize("cell", ["1e-320", "1.0e-22", "2.0e-21"])
@pytest.mark.unit
def test_energy_below_landauer_is_refused(tmp_path: Path, capsys, cell: str) -> None:
    text = MACRO.replace("energy: {model: components}", TABLE.replace("CELL", cell))
    code, err = _validate(tmp_path, capsys, text)
    assert code == 2 and "spec.yaml: energy.cell_mac_j.value: expected 0 or at least 2.87e-21 J" in err
    assert "Landauer" in err


@pytest.mark.unit
def test_zero_and_landauer_energy_are_accepted(tmp_path: Path, capsys) -> None:
    text = MACRO.replace("energy: {model: components}", TABLE.replace("CELL", "2.9e-21"))
    assert _validate(tmp_path, capsys, text)[0] == 0  # adc_convert_j is 0


@pytest.mark.parametrize("section, key, path", [
    ("dram:", "energy_per_bit_j", "dram.energy_per_bit_j.value"),
    ("global_buffer:", "energy_per_bit_j", "global_buffer.energy_per_bit_j.value"),
    ("global_buffer:", "area_m2", "global_buffer.area_m2.value"),
])
@pytest.mark.unit
def test_system_underflow_is_refused(tmp_path: Path, capsys, section, key, path) -> None:
    code, err = _validate(tmp_path, capsys, _replace_value(_mars(), section, key, "1.0e-320"))
    assert code == 2 and f"spec.yaml: {path}: expected " in err and "got 1e-320" in err


@pytest.mark.parametrize("area", ["area_m2: {value: 1e-320, source: a}", "area_m2: {ADC: {value: 1e-320, source: a}}"])
@pytest.mark.unit
def test_macro_area_underflow_is_refused(tmp_path: Path, capsys, area: str) -> None:
    code, err = _validate(tmp_path, capsys, MACRO + area + "\n")
    assert code == 2 and "expected at least 1e-18, got 1e-320" in err and "square metres" in err


@pytest.mark.unit
def test_factor_has_a_floor(tmp_path: Path, capsys) -> None:
    """A calibration factor cannot underflow either (1 / factor stays finite)."""
    text = MACRO.replace("{model: components}", "{model: components, array_scale: {value: 1e-320, source: a}}")
    code, err = _validate(tmp_path, capsys, text)
    assert code == 2 and "energy.array_scale.value: expected at least 0.001" in err


# 4. refusals linear in the input: problems capped, suggestions only for those listed


@pytest.fixture
def close_matches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count difflib searches (one each is what made 100,000 unknown keys take 20 s)."""
    calls: list[str] = []
    real = difflib.get_close_matches

    def counting(word, *args, **kwargs):
        calls.append(word)
        return real(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    return calls


@pytest.mark.unit
def test_many_unknown_keys_are_capped(tmp_path: Path, capsys, close_matches: list[str]) -> None:
    n = 3000
    text = MACRO + "".join(f"key_{i:06d}: 1\n" for i in range(n))
    code, err = _validate(tmp_path, capsys, text)
    assert code == 2 and f"{MAX_PROBLEMS + 1} problems found" in err
    assert err.count(": unknown key") == MAX_PROBLEMS
    assert f"spec.yaml: and {n - MAX_PROBLEMS:,} more problems not listed" in err
    assert len(close_matches) <= MAX_PROBLEMS


@pytest.mark.unit
def test_many_duplicate_layer_names_are_capped(tmp_path: Path, capsys) -> None:
    n = 2000
    layer = "  - {name: same, type: linear, in_channels: 32, out_channels: 10}\n"
    code, err = _validate(tmp_path, capsys, "kind: workload\nname: w\nsource: t\nlayers:\n" + layer * n)
    assert code == 2 and err.count("duplicate layer name 'same' (first at layers[0])") == MAX_PROBLEMS
    assert "layers[1].name" in err and f"and {n - 1 - MAX_PROBLEMS:,} more problems not listed" in err


@pytest.mark.unit
def test_many_duplicate_keys_are_capped(tmp_path: Path, capsys) -> None:
    code, err = _validate(tmp_path, capsys, MACRO + "rows: 64\n" * 500)
    assert code == 2 and err.count("rows: duplicate key") == MAX_PROBLEMS and "and 480 more" in err


# 5. a path where a spec belongs that points at some other file


SECRETS = "".join(f"user_{i}: secret_password_{i}\n" for i in range(50))


@pytest.mark.unit
def test_macro_path_to_a_config_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "secrets.txt").write_text(SECRETS)
    code, err = _run(capsys, "specs", "validate", str(_system(tmp_path, "secrets.txt")))
    assert code == 2 and "system.yaml: macro: macro file 'secrets.txt': not a cimco macro spec" in err
    assert "secret_password" not in err and "user_1" not in err and len(err) < 600


@pytest.mark.unit
def test_workload_path_to_a_config_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "secrets.txt").write_text(SECRETS)
    code, err = _run(capsys, "map", "--system", str(ROOT / "arch_specs/mars_system.yaml"),
                     "--workload", str(tmp_path / "secrets.txt"), "--out", str(tmp_path / "o"))
    assert code == 2 and "secrets.txt: not a cimco workload spec: no `kind:` key" in err
    assert "secret_password" not in err and "user_1" not in err and len(err) < 600


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="no /etc/passwd")
@pytest.mark.unit
def test_macro_path_to_etc_passwd(tmp_path: Path, capsys) -> None:
    code, err = _run(capsys, "specs", "validate", str(_system(tmp_path, "/etc/passwd")))
    assert code == 2 and "macro file '/etc/passwd'" in err and "root:" not in err


@pytest.mark.unit
def test_macro_path_to_a_workload(tmp_path: Path, capsys) -> None:
    (tmp_path / "w.yaml").write_text(WORKLOAD)
    code, err = _run(capsys, "specs", "validate", str(_system(tmp_path, "w.yaml")))
    assert code == 2 and "macro file 'w.yaml': expected a macro spec, got kind 'workload'" in err


@pytest.mark.unit
def test_a_spec_with_a_few_unknown_keys_still_lists_them(tmp_path: Path, capsys) -> None:
    code, err = _validate(tmp_path, capsys, "kind: workload\nname: w\nsource: t\nlayer: []\n")
    assert code == 2 and "layer: unknown key; did you mean 'layers'?" in err


# 6. sensitivity CSV naming layers the workload lacks


@pytest.mark.unit
def test_sensitivity_with_unknown_layer(tmp_path: Path) -> None:
    from cimco.codesign.run import read_sensitivity, unknown_layers

    (tmp_path / "w.yaml").write_text(WORKLOAD)
    (tmp_path / "s.csv").write_text("layer,bits,loss\na,4,0.1\nbb,4,0.2\nb,4,0.3\n")
    sens = read_sensitivity(tmp_path / "s.csv")
    problems = unknown_layers(sens, load(tmp_path / "w.yaml"))
    assert [str(p) for p in problems] == [f"{tmp_path / 's.csv'}: line 3: layer 'bb' is not in workload 'w'; "
                                          f"the closest layer name is 'b'"]


@pytest.mark.e2e
def test_lrmp_refuses_unknown_sensitivity_layer(tmp_path: Path, capsys) -> None:
    (tmp_path / "w.yaml").write_text(WORKLOAD)
    (tmp_path / "s.csv").write_text("layer,bits,loss\na,4,0.1\nconv_a,4,0.2\n")
    code, err = _run(capsys, "lrmp", "--system", str(ROOT / "arch_specs/mars_system.yaml"), "--workload",
                     str(tmp_path / "w.yaml"), "--out", str(tmp_path / "o"), "--sensitivity", str(tmp_path / "s.csv"))
    assert code == 2 and "s.csv: line 3: layer 'conv_a' is not in workload 'w'; the closest layer name is 'a'" in err


@pytest.mark.unit
def test_spec_error_is_raised_for_python_callers(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MACRO.replace("voltage_v: 0.9", "voltage_v: true"))
    with pytest.raises(SpecError, match="voltage_v: expected a number, got a boolean"):
        load(tmp_path / "m.yaml")
