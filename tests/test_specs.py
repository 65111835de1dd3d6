"""Bundled specs validate; bad input gives exit code 2 and names every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimco.cli import main
from cimco.spec import load

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = sorted((ROOT / "arch_specs").glob("*.yaml")) + sorted((ROOT / "workloads").glob("*.yaml"))


def test_every_bundled_spec_validates(capsys) -> None:
    assert len(BUNDLED) >= 8
    assert main(["specs", "validate", *map(str, BUNDLED)]) == 0
    assert capsys.readouterr().out.count("ok  ") == len(BUNDLED)


MACRO = """\
kind: macro
name: m
citation: test
rows: 64
cols: 64
wordlines_on: 16
input_bits: {min: 1, max: 8}
weight_bits: {min: 1, max: 8}
output_bits: {min: 1, max: 8}
adc_bits: 4
adcs: 16
tech_node_m: 28.0e-9
voltage_v: 0.9
reference_voltage_v: 0.9
cycle_s: 1.0e-8
energy: {model: components}
"""


def _validate(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    f = tmp_path / "spec.yaml"
    f.write_text(text)
    code = main(["specs", "validate", str(f)])
    return code, capsys.readouterr().err


def test_good_macro_is_ok(tmp_path: Path, capsys) -> None:
    assert _validate(tmp_path, MACRO, capsys)[0] == 0


@pytest.mark.parametrize("edit, path, words", [
    (lambda t: t.replace("rows: 64\n", ""), "rows", "required field is missing"),
    (lambda t: t.replace("cols: 64", "cols: many"), "cols", "expected an integer"),
    (lambda t: t + "colour: blue\n", "colour", "unknown key"),
    (lambda t: t.replace("wordlines_on: 16", "wordlines_on: 128"), "wordlines_on", "at most rows=64"),
    (lambda t: t.replace("rows: 64", "rows: [64"), "", "YAML syntax error at line"),
])
def test_bad_macro(tmp_path: Path, capsys, edit, path, words) -> None:
    code, err = _validate(tmp_path, edit(MACRO), capsys)
    assert code == 2
    assert "spec.yaml" in err and words in err
    assert f": {path}:" in err or not path
    assert "Traceback" not in err


def test_every_problem_is_listed_at_once(tmp_path: Path, capsys) -> None:
    text = MACRO.replace("rows: 64\n", "").replace("cols: 64", "cols: x") + "extra: 1\n"
    code, err = _validate(tmp_path, text, capsys)
    assert code == 2
    assert "3 problems" in err
    for p in ("rows:", "cols:", "extra:"):
        assert p in err


WORKLOAD = """\
kind: workload
name: w
source: test
layers:
  - {name: a, type: conv, in_channels: 16, out_channels: 32, input_hw: [8, 8], kernel: 3, padding: 1}
  - {name: b, type: linear, in_channels: 32, out_channels: 10}
"""


def test_layer_that_does_not_fit(tmp_path: Path, capsys) -> None:
    bad = WORKLOAD.replace("kernel: 3, padding: 1", "kernel: 11, padding: 0").replace(
        "in_channels: 16, out_channels: 32", "in_channels: 16, out_channels: 32, groups: 3")
    code, err = _validate(tmp_path, bad, capsys)
    assert code == 2
    assert "layers[0].kernel" in err and "does not fit" in err
    assert "layers[0].in_channels" in err and "layers[0].out_channels" in err


def test_bits_above_macro_support(tmp_path: Path, capsys, root: Path) -> None:
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD.replace("layers:", "bits: {input: 8, weight: 8, output: 8}\nlayers:").replace(
        "type: linear,", "type: linear, bits: {input: 8, weight: 16, output: 8},"))
    code = main(["map", "--system", str(root / "arch_specs/mars_system.yaml"), "--workload", str(w),
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "layers[1].bits.weight" in err and "4..8" in err and "got 16" in err
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path: Path, capsys) -> None:
    assert main(["specs", "validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read spec file" in capsys.readouterr().err


def test_system_references_macro_file(root: Path) -> None:
    s = load(root / "arch_specs/mars_system.yaml")
    assert s.macro.name == "mars_macro_28nm" and s.n_macros == 32


def test_specs_init_writes_templates_that_validate(tmp_path: Path, capsys, monkeypatch) -> None:
    """Issue 21: a newcomer's starting point: each template validates as written, the system
    with the macro template beside it, and no existing file is overwritten."""
    monkeypatch.chdir(tmp_path)
    for kind in ("macro", "system", "workload"):
        assert main(["specs", "init", kind]) == 0
    assert main(["specs", "validate", "my_macro.yaml", "my_system.yaml", "my_workload.yaml"]) == 0
    assert capsys.readouterr().out.count("ok  ") == 3
    before = (tmp_path / "my_macro.yaml").read_text()
    assert main(["specs", "init", "macro"]) == 2
    assert "my_macro.yaml exists: not overwritten" in capsys.readouterr().err
    assert (tmp_path / "my_macro.yaml").read_text() == before
    assert main(["specs", "init", "workload", "--out", str(tmp_path / "w2.yaml")]) == 0
    assert load(tmp_path / "w2.yaml").name == "my_net"
    # the system's optional vector unit and NoC, uncommented (their prose lines left), validate too
    text = (tmp_path / "my_system.yaml").read_text()
    lines = [line[2:] if line.startswith(("# vector_unit:", "# noc:", "#   ")) else line for line in text.splitlines()]
    (tmp_path / "v.yaml").write_text("\n".join(lines))
    system = load(tmp_path / "v.yaml")
    assert system.vector_unit.ops_per_s == 3.2e10 and system.noc.topology == "mesh"


def test_schema_covers_the_workload() -> None:
    from cimco.spec.schema import markdown
    from cimco.spec.workload import Layer, WorkloadSpec

    text = markdown()
    assert "## Workload (`kind: workload`)" in text
    for name in WorkloadSpec.model_fields:
        assert f"| `{name}` |" in text.split("## Workload")[1]
    for name in Layer.model_fields:
        assert f"| `layers.{name}` |" in text


@pytest.mark.parametrize("edit, words", [
    (("input_bits: {min: 4, max: 8}", "input_bits: 8"), "input_bits: expected a mapping such as "
                                                        "`input_bits: {min: 8, max: 8}`, got 8"),
    (("energy:\n  model: components", "energy:\n  model: components\n  adc_scale: 0.5"),
     "energy.adc_scale: expected a mapping such as `adc_scale: {value: 0.5, source: \"paper, measurement or "
     "assumed\"}`, got 0.5"),
])
def test_a_scalar_where_a_mapping_belongs_shows_the_form(tmp_path: Path, capsys, edit, words) -> None:
    from cimco.spec.templates import MACRO as TEMPLATE

    assert edit[0] in TEMPLATE
    code, err = _validate(tmp_path, TEMPLATE.replace(*edit), capsys)
    assert code == 2 and words in err


def test_specs_list_works_outside_the_repository(tmp_path: Path, capsys, monkeypatch) -> None:
    """Issue 21: the bundled specs ship with the package (package data), and the repository's
    arch_specs/ and workloads/ are links to them."""
    import tomllib

    from cimco.spec import BUNDLED as PACKAGED

    monkeypatch.chdir(tmp_path)  # no arch_specs/ here
    assert main(["specs", "list"]) == 0
    out = capsys.readouterr().out
    assert "system    mars_system" in out and "workload  resnet20_cifar" in out
    assert len(out.splitlines()) == len(BUNDLED)
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cimco"]
    packaged = {p for g in globs for p in PACKAGED.parent.glob(g)}
    assert {p.resolve() for p in BUNDLED} <= packaged
    assert (ROOT / "arch_specs").resolve() == PACKAGED / "arch_specs"
