"""Weight placement and replication (issue 22 item 3): layers' weights packed into shared macros
as their mappings spread them, and copies of a layer's weights in the free space (sequential
mode), checked against hand-packed macros and against the same run without copies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from cimco.placement import Piece, Placement
from cimco.sparse.patterns import mars_style
from cimco.spec import load
from cimco.spec.workload import WorkloadSpec

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = ROOT / "arch_specs/mars_system.yaml"


def test_pieces_share_macros_by_row_block_and_column() -> None:
    """Macros of 2 row blocks x 8 columns. a: 2 pieces of 1 x 6; b: 2 of 1 x 2 fill a's row
    blocks beside it; c (2 x 8) needs empty macros; d (1 x 6) one more; a third one of c does
    not fit in 4 macros, and leaves nothing behind."""
    p = Placement(limit=4, row_blocks=2, cols=8)
    assert p.put(Piece("a", 2, 1, 6)) and p.put(Piece("b", 2, 1, 2))
    assert p.used == 2 and p.free == [[0, 8], [0, 8]]
    assert p.put(Piece("c", 1, 2, 8)) and p.used == 3
    assert p.put(Piece("d", 1, 1, 6)) and p.held[0] == {"a": (1, 6), "b": (1, 2), "d": (1, 6)}
    before = ([list(f) for f in p.free], [dict(h) for h in p.held])
    assert not p.put(Piece("e", 2, 2, 8))  # needs two empty macros: one is left
    assert ([list(f) for f in p.free], [dict(h) for h in p.held]) == before
    assert not p.put(Piece("f", 1, 3, 1))  # taller than a macro


def test_a_layer_never_has_two_pieces_in_one_macro() -> None:
    p = Placement(limit=3, row_blocks=4, cols=8)
    assert p.put(Piece("a", 3, 1, 1)) and p.macros_of("a") == 3
    assert not p.put(Piece("a", 1, 1, 1))  # a copy needs a fourth macro


def _mars_resnet20() -> WorkloadSpec:
    return WorkloadSpec.model_validate(mars_style(yaml.safe_load((ROOT / "workloads/resnet20_cifar.yaml").read_text())))


@pytest.fixture(scope="module")
def r20():
    import cimco

    system, w = load(SYSTEM), _mars_resnet20()
    runs = {rep: cimco.map(system, w, replicate=rep).data for rep in (True, False)}
    runs["reload"] = cimco.map(system, w, weights="reload", replicate=False).data
    return system, runs


def test_mars_style_resnet20_stays_resident(r20) -> None:
    """0.55 Mb of weights in 2 Mb of macros: packed, they fit the 32 macros (the spatial model's
    whole macros per layer needed 36), so nothing is reloaded and DRAM is a small share."""
    system, runs = r20
    for r in (runs[True], runs[False]):
        t = r["totals"]
        assert t["weights"] == "resident" and t["macros_needed"] <= system.n_macros
        assert r["energy_by_component"]["DRAM"] / t["energy_j"] < 0.20
        held = r["totals"]["placement"]
        assert len(held) == system.n_macros
        m = system.macro
        for macro in held:  # no macro holds more than its cells
            assert sum(v["row_blocks"] * v["columns"] for v in macro.values()) <= m.rows // m.wordlines_on * m.cols
        for x in r["layers"]:  # each layer in as many macros as its mapping spreads over, times its copies
            assert sum(x["name"] in macro for macro in held) == x["macros_used"]


def test_replication_copies_layer1_and_changes_only_what_it_should(r20) -> None:
    """With copies, ResNet-20's layer1 convs use more than their mapping's 9 macros; the energy
    per inference is unchanged, the one-time load writes each copy's cells, and a copied layer's
    macro parts take ceil(P / r) / P of their time. Without, every layer is its mapping."""
    system, runs = r20
    on, off = ({x["name"]: x for x in runs[k]["layers"]} for k in (True, False))
    assert all(x["replication"] == 1 for x in off.values())
    assert off["layer1.0.conv1"]["macros_used"] == 9 and on["layer1.0.conv1"]["macros_used"] > 9
    assert runs[True]["totals"]["energy_j"] == pytest.approx(runs[False]["totals"]["energy_j"], rel=1e-12)
    assert runs[True]["totals"]["latency_s"] < runs[False]["totals"]["latency_s"]
    from cimco.geometry import MacroGeometry

    macro_parts = {"WordlineDriver", "CellArray", "ADC", "AdderTree", "ShiftAdd"}
    g = MacroGeometry.of(system.macro, 4, 4)
    layers = {x.name: x for x in _mars_resnet20().layers}
    extra = 0.0
    for name, x in on.items():
        r, p = x["replication"], x["latency_s"]
        positions = 32 * 32 if name.startswith(("conv1", "layer1")) else 16 * 16 if name.startswith("layer2") else \
            8 * 8 if name.startswith("layer3") else 1
        # the cells' time: reads (MACs x input and weight slices) and the weights' writes (bits),
        # timed alike (the mapping's dense counts); copies split the reads, and write at once
        reads = layers[name].macs * g.input_slices * g.weight_slices
        writes = layers[name].out_channels * layers[name].reduction * 4
        f = math.ceil(positions / r) / positions
        for c, v in x["latency_by_component_s"].items():
            scale = (f + (1 - f) * writes / (reads + writes) if c == "CellArray" else f if c in macro_parts else 1.0)
            assert v == pytest.approx(off[name]["latency_by_component_s"][c] * scale, rel=1e-12), (name, c)
        assert p == pytest.approx(max(x["latency_by_component_s"].values()))
        # a copy writes the layer's cells once more (counted per inference when reloaded at batch 1)
        extra += (r - 1) * {x["name"]: x for x in runs["reload"]["layers"]}[name]["action_counts"]["CellArray.write"]
    assert sum(x["replication"] > 1 for x in on.values()) >= 7 and extra > 0
    from cimco.tables import component_tables

    write = component_tables(system, _mars_resnet20()).ert["CellArray"]["write"]
    assert runs[True]["totals"]["weight_load_j"] - runs[False]["totals"]["weight_load_j"] == pytest.approx(
        extra * write, rel=1e-9)


def test_no_placement_when_weights_are_reloaded(r20) -> None:
    reload = r20[1]["reload"]
    assert reload["totals"]["placement"] is None and all(x["replication"] == 1 for x in reload["layers"])


@pytest.mark.parametrize("batch", [1, 4])
def test_copies_of_reloaded_weights_lower_the_energy_delay_product(batch: int) -> None:
    """Dense 8-bit ResNet-20 reloads its weights: copies cost their cell writes once a load,
    a 1/batch share per inference (counted exactly), and lower the energy-delay product."""
    import cimco
    from cimco.tables import component_tables

    system, w = load(SYSTEM), load(ROOT / "workloads/resnet20_cifar.yaml")
    on, off = (cimco.map(system, w, weights="reload", batch=batch, replicate=rep).data for rep in (True, False))
    layers = {x["name"]: x for x in off["layers"]}
    copies = {x["name"]: x["replication"] for x in on["layers"] if x["replication"] > 1}
    assert copies and on["totals"]["placement"] is None
    write = component_tables(system, w).ert["CellArray"]["write"]
    full = {n: layers[n]["action_counts"]["CellArray.write"] * batch for n in copies}  # one load's writes
    extra = sum((r - 1) * full[n] / batch * write for n, r in copies.items())
    assert on["totals"]["energy_j"] - off["totals"]["energy_j"] == pytest.approx(extra, rel=1e-6)
    edp = [r["totals"]["energy_j"] * r["totals"]["latency_s"] for r in (on, off)]
    assert edp[0] < edp[1]
    for n, r in copies.items():
        x = {y["name"]: y for y in on["layers"]}[n]
        assert x["macros_used"] == r * layers[n]["macros_used"] <= system.n_macros


def test_drawn_packings_keep_every_invariant() -> None:
    """Random pieces (hypothesis) into random macros: no row block over its columns, the cells
    held equal to the cells taken, a layer at most once a macro and in as many macros as its
    placed pieces, a refused piece leaving everything as it was, and never refused while enough
    empty macros remain for a piece that fits one."""
    import tempfile

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "cimco-hypothesis")
    piece = st.builds(Piece, st.sampled_from("abcdef"), st.integers(1, 5), st.integers(0, 6), st.integers(1, 20))

    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(limit=st.integers(1, 8), rows=st.integers(1, 5), cols=st.integers(1, 16),
           pieces=st.lists(piece, max_size=12))
    def check(limit: int, rows: int, cols: int, pieces: list[Piece]) -> None:
        p = Placement(limit, rows, cols)
        placed: dict[str, int] = {}
        for x in pieces:
            before = ([list(f) for f in p.free], [dict(h) for h in p.held])
            fresh = limit - p.used >= x.macros and x.row_blocks <= rows and x.columns <= cols
            if p.put(x):
                placed[x.layer] = placed.get(x.layer, 0) + x.macros
            else:
                assert ([list(f) for f in p.free], [dict(h) for h in p.held]) == before
                assert not fresh
            assert p.used <= limit and all(0 <= c <= cols for f in p.free for c in f)
            for f, h in zip(p.free, p.held):
                assert rows * cols - sum(f) == sum(k * c for k, c in h.values())
            assert all(p.macros_of(name) == n for name, n in placed.items())

    check()
