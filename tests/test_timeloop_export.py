"""Timeloop v0.4 export: one problem per layer whose dimensions multiply to the layer's MACs."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import pytest
import yaml

from cimco.cli import main
from cimco.spec import load

ROOT = Path(__file__).resolve().parent.parent


def test_export_resnet18(tmp_path: Path) -> None:
    assert main(["export", "--workload", str(ROOT / "workloads/resnet18_imagenet.yaml"),
                 "--out", str(tmp_path)]) == 0
    w = load(ROOT / "workloads/resnet18_imagenet.yaml")
    files = sorted((tmp_path / "timeloop").glob("[0-9]*.yaml"))
    assert len(files) == len(w.layers)
    for f, layer in zip(files, w.layers):
        p = yaml.safe_load(f.read_text())["problem"]
        dims = p["shape"]["dimensions"]
        assert math.prod(p["instance"][d] for d in dims) == layer.macs
    stem = yaml.safe_load(files[0].read_text())["problem"]["instance"]
    assert (stem["R"], stem["P"], stem["Wstride"]) == (7, 112, 2)


def test_grouped_conv_gets_g_dimension(tmp_path: Path) -> None:
    from cimco.spec.workload import Layer
    from cimco.timeloop import problem

    dw = Layer(name="dw", type="conv", in_channels=32, out_channels=32, input_hw=(8, 8), kernel=3,
               padding=1, groups=32)
    p = problem(dw)["problem"]
    assert p["shape"]["dimensions"][0] == "G" and p["instance"]["G"] == 32
    assert math.prod(p["instance"][d] for d in p["shape"]["dimensions"]) == dw.macs


def test_repeat_and_asymmetric_padding_survive(tmp_path: Path) -> None:
    """v0.4 has neither: P, Q are the padded output size and index.yaml keeps the repeat."""
    from cimco.spec.workload import WorkloadSpec
    from cimco.timeloop import export

    w = WorkloadSpec.model_validate({"name": "w", "source": "test", "layers": [
        {"name": "pad", "type": "conv", "in_channels": 3, "out_channels": 4, "input_hw": [6, 5], "kernel": 3,
         "padding": [0, 3, 1, 2]},
        {"name": "scores#2", "type": "linear", "in_channels": 8, "out_channels": 5, "tokens": 5, "repeat": 3}]})
    files = export(w, tmp_path)
    assert [f.name for f in files] == ["000_pad.yaml", "001_scores_2.yaml"]
    pad = yaml.safe_load(files[0].read_text())["problem"]["instance"]
    assert (pad["P"], pad["Q"]) == (6 + 0 + 3 - 3 + 1, 5 + 1 + 2 - 3 + 1)
    assert "padding top 0 bottom 3 left 1 right 2" in files[0].read_text()
    index = yaml.safe_load((tmp_path / "index.yaml").read_text())
    assert index["layers"] == [{"file": "000_pad.yaml", "layer": "pad", "repeat": 1, "macs": 7 * 6 * 4 * 27},
                               {"file": "001_scores_2.yaml", "layer": "scores#2", "repeat": 3, "macs": 5 * 8 * 5}]
    assert "runs 3 times per inference" in files[1].read_text()


# --- full export (cimco timeloop export): arch, constraints, mapper, ERT/ART per layer ---

FIXTURES = ROOT / "tests/fixtures/timeloop"
LAYERS = [
    {"name": "conv", "type": "conv", "in_channels": 64, "out_channels": 64, "input_hw": [14, 14], "kernel": 3,
     "padding": 1},
    {"name": "dw", "type": "conv", "in_channels": 32, "out_channels": 32, "input_hw": [8, 8], "kernel": 3,
     "padding": 1, "groups": 32},
    {"name": "fc", "type": "linear", "in_channels": 512, "out_channels": 10},
]


def _skeleton(node, path: str = "", out: set | None = None) -> set[tuple[str, str]]:
    """(path, key or value type) pairs of a YAML tree; list items share a path and nested
    subtrees collapse to one, so trees of the same form but different depth compare equal."""
    out = set() if out is None else out
    if isinstance(node, dict):
        for k, v in node.items():
            out.add((path, k))
            _skeleton(v, f"{path}.{k}", out)
    elif isinstance(node, list):
        for v in node:
            _skeleton(v, f"{path}[]", out)
    else:
        number = isinstance(node, int | float) and not isinstance(node, bool)
        out.add((path, "number" if number else type(node).__name__))
    return {(re.sub(r"(\.subtree\[\])+", ".subtree[]", p), k) for p, k in out}


@functools.cache
def _tables():
    """cimco's component tables for the MARS-like system at 8 bits (the models are slow to build)."""
    from cimco.spec.workload import WorkloadSpec
    from cimco.tables import component_tables

    system = load(ROOT / "arch_specs/mars_system.yaml")
    return component_tables(system, WorkloadSpec.model_validate({"name": "w", "source": "test",
                                                                 "layers": LAYERS[:1]}))


def _export(tmp_path: Path, layers=LAYERS):
    from cimco.sparse.masks import resolve
    from cimco.spec.workload import WorkloadSpec
    from cimco.timeloop.bundle import export_system

    system = load(ROOT / "arch_specs/mars_system.yaml")
    w = WorkloadSpec.model_validate({"name": "w", "source": "test", "layers": layers})
    tables = _tables()
    masks = resolve(system, w, tmp_path / "w.yaml")  # seeded patterns: no file read
    return system, tables, export_system(system, w, tables, tmp_path, masks)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_full_export_follows_documented_format(tmp_path: Path) -> None:
    """Every key and value type in the exported files occurs in the fixtures written from
    Timeloop's and Accelergy's documentation (tests/fixtures/timeloop)."""
    _, _, done = _export(tmp_path)
    assert [d.dir.name for d in done] == ["000_conv", "001_dw", "002_fc"]
    for ex in done:
        for name in ("arch.yaml", "constraints.yaml", "mapper.yaml", "ERT.yaml", "ART.yaml", "problem.yaml"):
            got, doc = _skeleton(_yaml(ex.dir / name)), _skeleton(_yaml(FIXTURES / name))
            extra = got - doc
            if name == "problem.yaml":  # grouped convs add G; instance values are the layer's
                extra = {(p, k) for p, k in extra if k != "G" and not p.startswith(".problem.instance")}
            assert not extra, f"{ex.dir.name}/{name}: not in the documented format: {sorted(extra)}"
    index = _yaml(tmp_path / "index.yaml")
    assert [x["repeat"] for x in index["layers"]] == [1, 1, 1]
    assert index["layers"][0]["cycle_s"] == 2 * 4.1e-9  # MARS 8b inputs: two 4-bit slices per activation


def test_imperfect_export_follows_documented_format(tmp_path: Path) -> None:
    """ResNet-18 ImageNet conv1 (147 reduction rows) selects the ruby mapspace."""
    stem = {"name": "stem", "type": "conv", "in_channels": 3, "out_channels": 64, "input_hw": [224, 224],
            "kernel": 7, "stride": 2, "padding": 3}
    _, _, (ex,) = _export(tmp_path, [stem])
    got = _yaml(ex.dir / "constraints.yaml")
    assert got["mapspace_constraints"]["template"] == "ruby"
    assert not _skeleton(got) - _skeleton(_yaml(FIXTURES / "constraints.yaml"))


def _levels(tree: dict) -> list[tuple[str, int, dict]]:
    """(level name, instances, attributes) from the outside in, as Timeloop reads the tree."""
    out, n, node = [], 1, tree["architecture"]
    while "subtree" in node:
        node = node["subtree"][0]
        m = re.search(r"\[0\.\.(\d+)\]$", node["name"])
        n *= int(m.group(1)) + 1 if m else 1
        out += [(x["name"], n, x["attributes"]) for x in node.get("local", [])]
    return out


def test_arch_is_the_multi_macro_hierarchy(tmp_path: Path) -> None:
    system, _, done = _export(tmp_path)
    levels = _levels(_yaml(done[0].dir / "arch.yaml"))
    names = [n for n, _, _ in levels]
    assert names == ["DRAM", "GlobalBuffer", "WordlineDriver", "ADC", "CellArray", "Compute"]
    inst = {n: i for n, i, _ in levels}
    # 8-bit weights take 8 one-bit columns: 256 / 8 = 32 outputs per macro; 16 word lines on at once
    assert inst == {"DRAM": 1, "GlobalBuffer": 1, "WordlineDriver": 32, "ADC": 32, "CellArray": 32 * 32 * 16,
                    "Compute": 32 * 32 * 16}
    attrs = {n: a for n, _, a in levels}
    assert attrs["CellArray"]["depth"] == 256 // 16  # row groups taking turns
    assert attrs["CellArray"]["meshX"] * 16 == inst["CellArray"]  # rows along Y
    assert attrs["GlobalBuffer"]["depth"] == system.global_buffer.size_bits // 8
    # bandwidth in words per Timeloop cycle (one activation: 2 macro cycles of 4.1 ns)
    assert attrs["DRAM"]["shared_bandwidth"] == pytest.approx(1e11 * 8.2e-9 / 8)
    ert = {t["name"].rsplit(".", 1)[1] for t in _yaml(done[0].dir / "ERT.yaml")["ERT"]["tables"]}
    assert ert == set(names)  # every level costed, no stray tables


def test_constraints_are_the_cim_dataflow(tmp_path: Path) -> None:
    _, _, done = _export(tmp_path)
    for ex in done:
        targets = _yaml(ex.dir / "constraints.yaml")["mapspace_constraints"]["targets"]
        keep = {t["target"]: t["keep"] for t in targets if t["type"] == "bypass"}
        assert keep["CellArray"] == ["Weights"] and keep["GlobalBuffer"] == ["Inputs", "Outputs"]
        spatial = {t["target"]: t for t in targets if t["type"] == "spatial"}
        # no weight copies across cores/macros: output positions never split there
        assert spatial["GlobalBuffer"]["factors"] == "N=1 P=1 Q=1"
        cols = spatial["ADC"]
        assert cols["permutation"][: cols["split"]] == "M"  # outputs along columns
        assert {"N=1", "P=1", "Q=1"} <= set(cols["factors"].split())
    dw = _yaml(done[1].dir / "constraints.yaml")["mapspace_constraints"]["targets"]
    assert "G=1" in next(t for t in dw if t["type"] == "spatial" and t["target"] == "ADC")["factors"]


def test_ert_round_trips_to_cimco_component_tables(tmp_path: Path) -> None:
    """Parsed back (pJ -> J), each Timeloop action costs exactly cimco's actions it stands for
    (MARS macro, 8-bit layer: 2 input slices, 8 weight columns, 2 readouts per output; a cell
    fill, one weight, is 8 weight bits written)."""
    _, tables, done = _export(tmp_path)
    ert = {t["name"]: {a["name"]: a["energy"] for a in t["actions"]}
           for t in _yaml(done[0].dir / "ERT.yaml")["ERT"]["tables"]}
    e = tables.ert
    assert ert["mars_system.DRAM"] == {"read": e["DRAM"]["read"] * 8 * 1e12, "write": e["DRAM"]["write"] * 8 * 1e12}
    assert ert["mars_system.GlobalBuffer"]["read"] == e["GlobalBuffer"]["read"] * 8 * 1e12
    assert ert["mars_system.WordlineDriver"] == {"read": 0.0, "write": e["WordlineDriver"]["read"] * 2 * 1e12}
    assert ert["mars_system.ADC"] == {"read": 0.0, "random_fill": 0.0,
                                      "random_update": (e["ADC"]["read"] + e["ShiftAdd"]["read"]) * 2 * 1e12}
    assert ert["mars_system.CellArray"] == {"read": e["CellArray"]["read"] * 16 * 1e12,
                                            "write": e["CellArray"]["write"] * 8 * 1e12}
    assert ert["mars_system.Compute"] == {"compute": e["Compute"]["compute"] * 1e12}
    art = {t["name"]: t["area"] for t in _yaml(done[0].dir / "ART.yaml")["ART"]["tables"]}
    assert art["mars_system.ADC"] == pytest.approx((tables.art["ADC"] + tables.art["ShiftAdd"]) / 32 * 1e12)


def test_sparse_layer_exports_compressed_dense_equivalent(tmp_path: Path) -> None:
    from cimco.geometry import MacroGeometry
    from cimco.sparse.masks import resolve
    from cimco.sparse.transform import plan
    from cimco.spec.workload import WorkloadSpec

    pruned = {**LAYERS[0], "name": "pruned", "sparsity": {"pattern": "row_block", "density": 0.5, "seed": 0}}
    system, tables, done = _export(tmp_path, [LAYERS[0], pruned])
    dense, sparse = done
    assert dense.compressed is None and sparse.compressed is not None
    w = WorkloadSpec.model_validate({"name": "w", "source": "test", "layers": [pruned]})
    sp = plan(w.layers[0], resolve(system, w, tmp_path / "w.yaml")["pruned"],
              MacroGeometry.of_system(system, w.bits))
    inst = _yaml(sparse.dir / "problem.yaml")["problem"]["instance"]
    assert inst["M"] == sp.occ.kept_outputs
    # rows executed per kept output, in whole input channels of the 3x3 kernel
    assert inst["C"] == round(sp.occ.executed_macs / sp.occ.kept_outputs / 9) < 64
    assert "compressed dense equivalent" in (sparse.dir / "problem.yaml").read_text()
    names = [n for n, _, _ in _levels(_yaml(sparse.dir / "arch.yaml"))]
    assert names == ["DRAM", "GlobalBuffer", "WordlineDriver", "ADC", "IndexMemory", "CellArray", "Compute"]
    ert = {t["name"]: {a["name"]: a["energy"] for a in t["actions"]}
           for t in _yaml(sparse.dir / "ERT.yaml")["ERT"]["tables"]}
    per_update = sp.occ.kept_blocks / (sp.occ.conversions / 2)  # one code read per kept block
    assert ert["mars_system.IndexMemory"]["random_update"] == tables.ert["IndexMemory"]["read"] * per_update * 1e12
    targets = _yaml(sparse.dir / "constraints.yaml")["mapspace_constraints"]["targets"]
    assert {t["target"] for t in targets if t["type"] == "spatial"} == {"GlobalBuffer", "IndexMemory"}
    index = _yaml(tmp_path / "index.yaml")["layers"]
    assert [x["compressed"] for x in index] == [False, True]


def test_cli_timeloop_export(tmp_path: Path, capsys) -> None:
    assert main(["timeloop", "export", "--system", str(ROOT / "arch_specs/mars_system.yaml"),
                 "--workload", str(ROOT / "workloads/resnet20_cifar.yaml"), "--out", str(tmp_path)]) == 0
    w = load(ROOT / "workloads/resnet20_cifar.yaml")
    dirs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(dirs) == len(w.layers)
    assert all((d / f).exists() for d in dirs for f in ("arch.yaml", "problem.yaml", "mapper.yaml",
                                                        "constraints.yaml", "ERT.yaml", "ART.yaml"))
    assert f"for {len(w.layers)} layers" in capsys.readouterr().out


def _layout(layer: dict):
    from cimco.spec.workload import Bits, Layer
    from cimco.timeloop import problem
    from cimco.timeloop.layout import layout

    system = load(ROOT / "arch_specs/mars_system.yaml")
    inst = problem(Layer.model_validate(layer))["problem"]["instance"]
    return system, layout(system, Bits(input=8, weight=8, output=8), inst)


def _conv(c: int, m: int, hw: int, k: int = 3, **kw) -> dict:
    return {"name": "x", "type": "conv", "in_channels": c, "out_channels": m, "input_hw": [hw, hw], "kernel": k,
            "padding": k // 2, **kw}


def test_layout_fills_the_array_and_bounds_dram_loops() -> None:
    """32 outputs along the columns, the 16 word lines on filled with the reduction; DRAM loops
    by what fits in the 256 KB (262144-word) global buffer."""
    _, lay = _layout(_conv(64, 64, 14))  # 64x16x16 + 64x14x14 words fit
    assert (lay.at_dram, lay.array, lay.macros) == ("none", {"M": 32, "C": 16, "R": 1, "S": 1}, {})
    # 64x58x58 + 64x56x56 words do not; all outputs and a quarter of the input channels do: 4 C
    # steps at DRAM, 4 passes over 18 macros. Output positions at DRAM would take 3 passes of 24
    # macros but read the inputs 3 times and the partial sums 5 times: DRAM-bound, slower
    assert _layout(_conv(64, 64, 56))[1].at_dram == "weights"
    # ResNet-18 ImageNet conv1: 802816 output words alone overflow; 3x7x7 = 147 rows fill the
    # 16 word lines best as 7 (S) x 2 (R, last group 1): 3 x 4 row groups spread over macros
    _, lay = _layout(_conv(3, 64, 224, 7, stride=2))
    assert (lay.at_dram, lay.array, lay.macros) == ("positions", {"M": 32, "C": 1, "R": 2, "S": 7}, {"R": 4})
    # 512->1000 fc is DRAM-bound: 1000 = 40 x 25 whole column groups lose nothing
    _, lay = _layout({"name": "fc", "type": "linear", "in_channels": 512, "out_channels": 1000})
    assert (lay.array["M"], lay.macros) == (25, {})
    # compute-bound with 1000 outputs: 32 groups of 32 outputs, the last of 8
    _, lay = _layout({"name": "fc", "type": "linear", "in_channels": 512, "out_channels": 1000, "tokens": 512})
    assert (lay.array["M"], lay.macros) == (32, {"M": 32})


def test_layout_keeps_weights_resident_when_they_fit_the_macros() -> None:
    """Where all the row and column groups fit the 32 macros at once, output positions go to
    DRAM: weight steps there would leave macros idle (ResNet-50 layer1.0.conv3 took 16 passes
    over 2 macros, 5.0x AccelForge's latency; MobileNetV2's first depthwise conv 4 passes)."""
    _, lay = _layout(_conv(64, 256, 56, 1))  # 4 x 8 groups; 64x56x56 + 256x56x56 words overflow
    assert (lay.at_dram, lay.array) == ("positions", {"M": 32, "C": 16, "R": 1, "S": 1})
    # depthwise: one 3x3 kernel per group, the groups spread over the macros
    _, lay = _layout({**_conv(32, 32, 112), "groups": 32})
    assert (lay.at_dram, lay.array, lay.macros) == ("positions", {"M": 1, "C": 1, "R": 3, "S": 3}, {})
    # 256->128 at 56x56: 64 groups, 2 passes. Weight steps at DRAM would need a 1/8 input and a
    # 1/4 output block, 32 passes over 2 macros; positions read the inputs twice, DRAM-bound
    assert _layout(_conv(256, 128, 56, 1))[1].at_dram == "positions"



def test_layout_spreads_depthwise_groups_over_all_macros() -> None:
    """144 depthwise groups at 56x56 (MobileNetV2 features.3.conv.3): whole factors give 24
    macros 6 steps (1.21x AccelForge's latency); 32 a step with a last one of 16 take 5
    (Timeloop's ruby mapspace), the 5 steps at DRAM (a fifth of inputs and outputs fits)."""
    from cimco.timeloop.arch import constraints

    system, lay = _layout({**_conv(144, 144, 56), "groups": 144})
    assert (lay.at_dram, lay.steps, lay.group_steps) == ("weights", {"G": 5, "M": 1, "C": 1}, 5)
    ms = constraints(system, ["G", "C", "M", "R", "S", "N", "P", "Q"], False, lay)["mapspace_constraints"]
    by = {(t["target"], t["type"]): t for t in ms["targets"]}
    assert ms["template"] == "ruby"
    macros = by["GlobalBuffer", "spatial"]
    assert (macros["factors"], macros["remainders"]) == ("N=1 P=1 Q=1", 32)  # G free, up to 32 a step
    assert by["DRAM", "temporal"]["factors"] == "G=5 C=1 M=1 R=1 S=1 N=1 P=1 Q=1"
    # at stride 2 (28x28 outputs) the layer is DRAM-bound either way: whole factors
    assert _layout({**_conv(144, 144, 56, stride=2), "groups": 144})[1].group_steps == 1
    # 192 = 6 x 32: whole factors fill the macros
    assert _layout({**_conv(192, 192, 28), "groups": 192})[1].group_steps == 1


def test_dram_cycles_of_the_two_loop_orders() -> None:
    from cimco.timeloop.layout import Sizes, _cycles

    # 4 x 4 groups on 8 macros, 100 output positions, 1 activation per DRAM word; input, output
    # and weight words 1000, 1000, 16; a 1500-word global buffer
    groups, sizes = {"G": 1, "M": 4, "C": 4, "R": 1, "S": 1}, Sizes(1000, 1000, 16, 1500, 1.0)
    # positions: 2 passes at least; best traffic with 2 turns of M (inputs read twice):
    # 16 + 2 x 1000 + 1000 words (2 turns of C: partial sums written twice, read once: 4016)
    assert _cycles(groups, 8, 100, sizes, False) == (3016, {})
    # weights: 2 turns of C at DRAM leave a 1000 + 500-word block, partial sums stay on chip
    assert _cycles(groups, 8, 100, sizes, True) == (2016, {"G": 1, "M": 1, "C": 2})
    # a 1100-word buffer needs M halved at DRAM too (inputs read twice); 400 words fit no block
    assert _cycles(groups, 8, 100, Sizes(1000, 1000, 16, 1100, 1.0), True) == (3016, {"G": 1, "M": 2, "C": 2})
    assert _cycles(groups, 8, 100, Sizes(1000, 1000, 16, 400, 1.0), True) == (math.inf, {})
    # 500 input words held whole across 4 M steps are read once (2 M x 2 C steps: twice)
    assert _cycles(groups, 8, 100, Sizes(500, 2000, 16, 1100, 1.0), True) == (2516, {"G": 1, "M": 4, "C": 1})


def test_constraints_fix_the_layout() -> None:
    from cimco.timeloop.arch import constraints

    dims = ["C", "M", "R", "S", "N", "P", "Q"]
    system, lay = _layout(_conv(3, 64, 224, 7, stride=2))
    ms = constraints(system, dims, False, lay)["mapspace_constraints"]
    assert ms["template"] == "ruby"  # imperfect factors
    by = {(t["target"], t["type"]): t for t in ms["targets"]}
    array = by["ADC", "spatial"]
    # R is left free on the array (Timeloop picks 2 with a last group of 1), fixed on the macros
    assert array["factors"] == "C=1 M=32 S=7 N=1 P=1 Q=1" and array["remainders"] == 2
    assert by["GlobalBuffer", "spatial"]["factors"] == "R=4 N=1 P=1 Q=1"
    # output positions at DRAM: no weight loops at the global buffer (cells written once)
    assert by["GlobalBuffer", "temporal"]["factors"] == "C=1 M=1 R=1 S=1 Q=1"
    assert by["DRAM", "temporal"] == {"target": "DRAM", "type": "temporal", "permutation": "NPQCRSM",
                                      "factors": "R=1"}
    for level in ("WordlineDriver", "ADC", "CellArray"):  # nothing iterates inside a macro
        assert by[level, "temporal"]["factors"] == "C=1 M=1 R=1 S=1 N=1 P=1 Q=1"
    for layer, factors in ((_conv(64, 64, 14), "C=1 M=1 R=1 S=1 N=1 P=1 Q=1"),
                           (_conv(64, 64, 56), "C=4 M=1 R=1 S=1 N=1 P=1 Q=1")):
        system, lay = _layout(layer)
        ms = constraints(system, dims, False, lay)["mapspace_constraints"]
        assert "template" not in ms
        dram = next(t for t in ms["targets"] if t["target"] == "DRAM" and t["type"] == "temporal")
        assert dram == {"target": "DRAM", "type": "temporal", "permutation": "CRSMNPQ", "factors": factors}


def test_strided_pointwise_conv_is_written_at_stride_1() -> None:
    """Timeloop counts the box a strided 1x1 conv's reads span; the export reads what it uses."""
    from cimco.spec.workload import Layer
    from cimco.timeloop import problem

    ds = Layer(name="ds", type="conv", in_channels=128, out_channels=256, input_hw=(16, 16), kernel=1, stride=2)
    inst = problem(ds)["problem"]["instance"]
    assert (inst["P"], inst["Q"], inst["Wstride"], inst["Hstride"]) == (8, 8, 1, 1)
    conv = Layer(name="c", type="conv", in_channels=3, out_channels=8, input_hw=(16, 16), kernel=(3, 1), stride=2)
    inst = problem(conv)["problem"]["instance"]
    assert (inst["Wstride"], inst["Hstride"]) == (2, 1)  # only the kernel's 1-wide side
