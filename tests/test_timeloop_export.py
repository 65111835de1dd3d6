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
    # (the buffer as two levels where the plan's input and output tiles start at different loops)
    assert names == ["DRAM", "GlobalBuffer", "GlobalBufferInner", "WordlineDriver", "ADC", "CellArray", "Compute"]
    inst = {n: i for n, i, _ in levels}
    # 8-bit weights take 8 one-bit columns: 256 / 8 = 32 outputs per macro; 16 word lines on at once
    assert inst == {"DRAM": 1, "GlobalBuffer": 1, "GlobalBufferInner": 1, "WordlineDriver": 32, "ADC": 32,
                    "CellArray": 32 * 32 * 16, "Compute": 32 * 32 * 16}
    attrs = {n: a for n, _, a in levels}
    assert attrs["CellArray"]["depth"] == 256 // 16  # row groups taking turns
    assert attrs["CellArray"]["meshX"] * 16 == inst["CellArray"]  # rows along Y
    assert attrs["GlobalBuffer"]["depth"] + attrs["GlobalBufferInner"]["depth"] == system.global_buffer.size_bits // 8
    assert [n for n, _, _ in _levels(_yaml(done[2].dir / "arch.yaml"))] == [
        "DRAM", "GlobalBuffer", "WordlineDriver", "ADC", "CellArray", "Compute"]  # the fc: one buffer level
    # bandwidth in words per Timeloop cycle (one activation: 2 macro cycles of 4.1 ns)
    assert attrs["DRAM"]["shared_bandwidth"] == pytest.approx(1e11 * 8.2e-9 / 8)
    ert = {t["name"].rsplit(".", 1)[1] for t in _yaml(done[0].dir / "ERT.yaml")["ERT"]["tables"]}
    assert ert == set(names)  # every level costed, no stray tables


def test_constraints_are_the_cim_dataflow(tmp_path: Path) -> None:
    _, _, done = _export(tmp_path)
    for ex in done:
        targets = _yaml(ex.dir / "constraints.yaml")["mapspace_constraints"]["targets"]
        keep = {t["target"]: t["keep"] for t in targets if t["type"] == "bypass"}
        buffers = [k for k in keep if k.startswith("GlobalBuffer")]
        assert keep["CellArray"] == ["Weights"] and sorted(sum((keep[b] for b in buffers), [])) == ["Inputs", "Outputs"]
        spatial = {t["target"]: t for t in targets if t["type"] == "spatial"}
        # no weight copies across cores/macros: output positions never split there
        assert {"N=1", "P=1", "Q=1"} <= set(spatial[buffers[-1]]["factors"].split())
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
    names = [n for n, _, _ in _levels(_yaml(sparse.dir / "arch.yaml")) if n != "GlobalBufferInner"]
    assert names == ["DRAM", "GlobalBuffer", "WordlineDriver", "ADC", "IndexMemory", "CellArray", "Compute"]
    ert = {t["name"]: {a["name"]: a["energy"] for a in t["actions"]}
           for t in _yaml(sparse.dir / "ERT.yaml")["ERT"]["tables"]}
    per_update = sp.occ.kept_blocks / (sp.occ.conversions / 2)  # one code read per kept block
    assert ert["mars_system.IndexMemory"]["random_update"] == tables.ert["IndexMemory"]["read"] * per_update * 1e12
    targets = _yaml(sparse.dir / "constraints.yaml")["mapspace_constraints"]["targets"]
    assert {t["target"] for t in targets if t["type"] == "spatial"} in ({"GlobalBuffer", "IndexMemory"},
                                                                        {"GlobalBufferInner", "IndexMemory"})
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


def _small_system():
    """The MARS-like system cut to 4 macros and a 16 KB global buffer (where the old export's
    three layouts missed AccelForge's mappings)."""
    system = load(ROOT / "arch_specs/mars_system.yaml")
    return system.model_copy(update={"cores": 1, "macros_per_core": 4, "global_buffer": system.global_buffer.model_copy(
        update={"size_bits": 16 * 8 * 1024})})


def _conv(c: int, m: int, hw: int, k: int = 3, **kw) -> dict:
    return {"name": "x", "type": "conv", "in_channels": c, "out_channels": m, "input_hw": [hw, hw], "kernel": k,
            "padding": k // 2, **kw}


SHAPES = [_conv(64, 64, 14), _conv(64, 64, 56), _conv(64, 128, 56, stride=2), _conv(256, 256, 14),
          _conv(3, 64, 224, 7, stride=2), {**_conv(32, 32, 112), "groups": 32}, _conv(64, 256, 56, 1),
          {"name": "fc", "type": "linear", "in_channels": 512, "out_channels": 1000}]


def _files(system, layer: dict) -> dict[str, dict]:
    from cimco.spec.workload import Bits, Layer, WorkloadSpec
    from cimco.timeloop.arch import LayerPlan
    from cimco.timeloop.bundle import layer_files
    from cimco.timeloop.runner import _tables

    bits = Bits(input=8, weight=8, output=8)
    x = Layer.model_validate(layer)
    w = WorkloadSpec(name="w", source="test", bits=bits, layers=[x])
    files = layer_files(system, w, x, _tables(system.model_dump_json(), bits.model_dump_json()), LayerPlan(bits))
    return {k: yaml.safe_load(v) for k, v in files.items()}


@pytest.mark.parametrize("name", ["mars", "4-macros-16KB", "cores"])
@pytest.mark.parametrize("layer", SHAPES, ids=lambda x: f"{x['name']}-{x['in_channels']}-{x.get('input_hw')}")
def test_constraints_fix_one_mapping_of_the_whole_layer(name: str, layer: dict) -> None:
    """Every dimension's factors over the levels and fanouts multiply to its size (an imperfect
    one's, left to ruby on the array and macros, to at least it); nothing is left to search but
    where a partial group goes; the buffer levels' words are the buffer's, a core buffer's too
    (the system with a memory in each core and a NoC: mars_system_cores)."""
    system = {"mars": lambda: load(ROOT / "arch_specs/mars_system.yaml"), "4-macros-16KB": _small_system,
              "cores": lambda: load(ROOT / "arch_specs/mars_system_cores.yaml")}[name]()
    f = _files(system, layer)
    ms = f["constraints.yaml"]["mapspace_constraints"]
    dims = f["problem.yaml"]["problem"]["instance"]
    product = {d: 1 for d in f["problem.yaml"]["problem"]["shape"]["dimensions"]}
    free: dict[str, int] = {}
    for t in ms["targets"]:
        if t["type"] == "bypass":
            continue
        given = dict(x.split("=") for x in t.get("factors", "").split())
        for d in product:
            if d in given:
                product[d] *= int(given[d])
            else:
                free[d] = free.get(d, 0) + 1
    ruby = ms.get("template") == "ruby"
    for d, n in product.items():
        if d in free and ruby:
            assert n <= dims[d], (d, n, dims[d])  # the free levels take the rest, partial group included
        else:
            assert d not in free and n == dims[d], (d, n, dims[d], free)
    levels = {x["name"]: x["attributes"] for x in _walk(f["arch.yaml"])}
    words = sum(levels[n]["depth"] for n in ("GlobalBuffer", "GlobalBufferInner") if n in levels)
    assert words == system.global_buffer.size_bits // 8
    if system.core_buffer is not None:
        words = sum(levels[n]["depth"] for n in ("CoreBuffer", "CoreBufferInner") if n in levels)
        assert words == system.core_buffer.size_bits // 8 and levels["CoreBuffer"]["meshX"] == system.cores


def test_the_noc_and_core_buffers_are_charged_where_timeloop_counts_them() -> None:
    """The NoC is no Timeloop level: the global buffer's reads (inputs and partial sums down to the
    cores) and updates (partial sums up) cost one crossing more than its fills (from DRAM), a cell's
    fill (a weight from DRAM) one crossing per weight bit; each core's buffer is a level below the
    global buffer, one per core, below the cores' fanout and above the macros'."""
    from cimco.spec.workload import Bits
    from cimco.timeloop.runner import _tables

    system = load(ROOT / "arch_specs/mars_system_cores.yaml")
    f = _files(system, _conv(64, 64, 32))
    e = _tables(system.model_dump_json(), Bits(input=8, weight=8, output=8).model_dump_json()).ert
    noc = e["NoC"]["read"]
    assert noc == pytest.approx(2 * 0.1e-12)  # two mean hops on the 2 x 2 mesh
    ert = {t["name"].rsplit(".", 1)[1]: {a["name"]: a["energy"] for a in t["actions"]}
           for t in f["ERT.yaml"]["ERT"]["tables"]}
    glb = e["GlobalBuffer"]
    assert ert["GlobalBuffer"] == pytest.approx({"read": (glb["read"] + noc) * 8e12, "random_fill": glb["write"] * 8e12,
                                                 "random_update": (glb["write"] + noc) * 8e12})
    assert ert["CellArray"]["write"] == pytest.approx((e["CellArray"]["write"] + noc) * 8e12)
    assert ert["CoreBuffer"] == pytest.approx({"read": e["CoreBuffer"]["read"] * 8e12,
                                               "write": e["CoreBuffer"]["write"] * 8e12})
    assert "NoC" not in ert
    tree = f["arch.yaml"]["architecture"]["subtree"][0]["subtree"][0]["subtree"][0]
    assert tree["name"] == "core[0..3]" and [x["name"] for x in tree["local"]][0] == "CoreBuffer"
    targets = f["constraints.yaml"]["mapspace_constraints"]["targets"]
    spatial = [t["target"] for t in targets if t["type"] == "spatial"]
    assert spatial[0].startswith("GlobalBuffer") and spatial[1].startswith("CoreBuffer")  # cores, then macros


# a 1x5 kernel dilated 2 over 19 channels a group: a row group of 95 rows reads a box of 19 x 9 inputs
DILATED = {"name": "x", "type": "conv", "in_channels": 57, "out_channels": 9, "input_hw": [19, 23], "kernel": [1, 5],
           "stride": [2, 3], "padding": [0, 1, 0, 0], "dilation": [1, 2], "groups": 3}


def test_the_word_line_drivers_hold_a_dilated_kernels_box() -> None:
    """Timeloop holds the box a row group's inputs span: on NeuroSim's 128-row subarrays the
    dilated kernel's box (171 inputs for 95 rows) is the drivers' depth, else Timeloop finds
    no mapping ("mapped tile size 171 exceeds buffer capacity 128")."""
    from cimco import _af
    from cimco.backends.cim import Shape
    from cimco.spec.workload import Bits, Layer
    from cimco.timeloop.layout import plan

    system = load(ROOT / "arch_specs/neurosim_system.yaml")
    layer = Layer.model_validate(DILATED)
    _, p = plan(system, layer, Bits(input=8, weight=8, output=8))
    box = Shape.of(layer, _af.einsum_of(layer)).input_tile(dict(p.array))
    assert box > system.macro.rows
    levels = {x["name"]: x["attributes"] for x in _walk(_files(system, DILATED)["arch.yaml"])}
    assert levels["WordlineDriver"]["depth"] == box
    levels = {x["name"]: x["attributes"] for x in _walk(_files(system, _conv(64, 64, 14))["arch.yaml"])}
    assert levels["WordlineDriver"]["depth"] == system.macro.rows


def _walk(tree: dict) -> list[dict]:
    out, node = [], tree["architecture"]
    while "subtree" in node:
        node = node["subtree"][0]
        out += node.get("local", [])
    return out


def test_the_exported_mapping_is_the_cimco_backends_best_expressible_plan() -> None:
    """On the small system ResNet-18's layer3.0.conv2 keeps a block of outputs and streams input
    slices past it (AccelForge's tiles start at different loops): two buffer levels, the outer
    keeping the outputs, the inner the input tile cimco's model holds, the rest of the words to
    the outer; the loops are the plan's, top down, at the levels holding their tiles."""
    from cimco import _af
    from cimco.backends import cim
    from cimco.spec.workload import Bits, Layer
    from cimco.tables import component_costs
    from cimco.timeloop.layout import DIMS, _levels, layout, plan

    system, bits = _small_system(), Bits(input=8, weight=8, output=8)
    layer = Layer.model_validate(_conv(256, 256, 14))
    shape, p = plan(system, layer, bits)
    best = cim.ranked(system, layer, _af.einsum_of(layer), bits, component_costs(system, bits)[0], whole=True,
                      accept=lambda sh, q: _levels(sh, q, False) is not None)
    assert p == best[0][1]
    lay = layout(system, layer, bits)
    assert [x.name for x in lay.levels] == ["DRAM", "GlobalBuffer", "GlobalBufferInner"]
    assert [x.keeps for x in lay.levels[1:]] == [("Outputs",), ("Inputs",)]
    assert [lp for x in lay.levels for lp in x.loops] == [(DIMS[k], n) for k, n in p.loops]
    nest, holders = cim._Nest(shape, p), cim._holders(shape, p)
    assert lay.inner_words == {"GlobalBufferInner": nest.size["I"][nest.held("I", holders)[0]]}
    f = _files(system, _conv(256, 256, 14))
    ert = {t["name"].rsplit(".", 1)[1]: t["actions"] for t in f["ERT.yaml"]["ERT"]["tables"]}
    assert ert["GlobalBufferInner"] == ert["GlobalBuffer"]  # one SRAM, its area counted once
    art = {t["name"].rsplit(".", 1)[1]: t["area"] for t in f["ART.yaml"]["ART"]["tables"]}
    assert art["GlobalBufferInner"] == 0 and art["GlobalBuffer"] > 0


def test_a_level_looping_twice_over_a_rank_is_left_out() -> None:
    from cimco import _af
    from cimco.backends import cim
    from cimco.spec.workload import Layer
    from cimco.timeloop.layout import _levels

    layer = Layer.model_validate(_conv(512, 512, 7))
    shape = cim.Shape.of(layer, _af.einsum_of(layer))
    twice = cim.Plan((("m", 32), ("c", 16)), (("m", 4),), (), (("m", 2), ("c", 32), ("m", 2), ("r", 3), ("s", 3),
                                                                ("p", 7), ("q", 7)), 7, 7)  # all at DRAM
    assert _levels(shape, twice, False) is None
    ok = cim.Plan(twice.array, twice.macro, twice.core, twice.loops, 1, 1)
    assert _levels(shape, ok, False) is not None


def test_a_partial_group_side_by_side_is_left_to_ruby() -> None:
    """ImageNet conv1's 147 rows as 7 (S) x 2 (R, the last group 1), all side by side: R free on
    the array (at most 2) and the macros, in Timeloop's ruby mapspace; the innermost buffer's
    factors free."""
    f = _files(load(ROOT / "arch_specs/mars_system.yaml"), _conv(3, 64, 224, 7, stride=2))
    ms = f["constraints.yaml"]["mapspace_constraints"]
    by = {(t["target"], t["type"]): t for t in ms["targets"]}
    assert ms["template"] == "ruby"
    array = by["ADC", "spatial"]
    assert "R=" not in array["factors"] and "S=7" in array["factors"] and array["remainders"] == 2
    inner = [x for x in _walk(f["arch.yaml"]) if x["name"].startswith("GlobalBuffer")][-1]["name"]
    assert "R=" not in by[inner, "spatial"]["factors"] and "factors" not in by[inner, "temporal"]


def test_a_partial_last_turn_is_not_exported() -> None:
    """On 4 macros and 16 KB the cimco backend's best plan for ResNet-18 layer2.0.conv1 takes 64
    input channels in 13 turns of 5, the last of 4; the export takes the best plan whose turns
    divide every rank they loop over."""
    from cimco import _af
    from cimco.backends import cim
    from cimco.spec.workload import Bits, Layer
    from cimco.tables import component_costs
    from cimco.timeloop.layout import plan

    def partial_turn(shape, p) -> bool:
        spread = {k: dict(p.array).get(k, 1) * dict(p.macro).get(k, 1) * dict(p.core).get(k, 1) for k in "gmcrs"}
        return any(shape.size(k) % spread[k] for k, _ in p.loops if k in spread)

    system, bits = _small_system(), Bits(input=8, weight=8, output=8)
    layer = Layer.model_validate(_conv(64, 128, 56, stride=2))
    shape = cim.Shape.of(layer, _af.einsum_of(layer))
    best = cim.ranked(system, layer, _af.einsum_of(layer), bits, component_costs(system, bits)[0])[0][1]
    assert partial_turn(shape, best)
    assert not partial_turn(*plan(system, layer, bits))
    assert "template" not in _files(system, _conv(64, 128, 56, stride=2))["constraints.yaml"]["mapspace_constraints"]


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
