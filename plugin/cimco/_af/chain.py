"""AccelForge's fused multi-Einsum mapping: a cross-check of cimco's activation-residency model
(tests/test_upstream.py), not a production path. Part of the adapter (:mod:`cimco._af`).

AccelForge fuses when a tensor bypasses the outermost memory (its mapper tutorial: "Fusion
happens when tensors bypass the outermost Memory object"); its own arches give the
outermost memory ``keep: ~Intermediates, may_keep: All`` for that. cimco's default DRAM
keeps All, so a chain needs ``arch.build_nodes(..., fuse=True)``. A tensor shared by two
Einsums must have one rank-name list and one bit width in every Einsum that touches it.
"""

from __future__ import annotations

import dataclasses
from copy import deepcopy

from cimco._af import _arch, _map_and_evaluate, _one_job, _upstream
from cimco.parts import DRAM
from cimco.spec.workload import Layer

# One-letter rank variables of :func:`einsum_of`, which the arch's ``loop_bounds`` name.
_RANK_LETTERS = "gtmcpqrs"


def chain_einsums(layers: list[Layer]) -> list[dict]:
    """Layers as a chain of AccelForge Einsums ``L1, L2, ...``: layer k reads ``T{k-1}``
    and weights ``W{k}`` and writes ``T{k}`` (``T0`` is the network input).

    Each Einsum is :func:`einsum_of` of its layer with tensor rank names shared along the
    chain (activations ``[G,] C, H, W`` for conv, ``[G,] T, C`` for linear, so layer k's
    output channels index the same rank as layer k+1's input channels) and its own rank
    variables ``m1, p1, ...`` (AccelForge requires a rank variable shared by two Einsums
    to have one bound). Renames map :func:`einsum_of`'s one-letter names to them (absent
    ones to the empty set) so the arch's ``loop_bounds`` can name ``p``, ``q``...
    A conv input is indexed ``p*s + r*d`` (no padding offset) at the layer's own stride, even
    for a strided 1x1 conv, which :func:`einsum_of` reads at stride 1: here its input rank is
    its producer's whole output. A consumer reads that output plus a border of ``kernel - 1``
    rows/columns that nobody writes, as a lone layer reads its padded input.
    """
    out = []
    for k, layer in enumerate(layers, 1):
        src, dst, wgt = f"T{k - 1}", f"T{k}", f"W{k}"

        def v(name: str, k: int = k) -> str:
            return f"{name}{k}"

        g = layer.groups
        gi = {"G": v("g")} if g > 1 else {}
        if layer.type == "linear":
            ranks = {"g": g, "t": layer.tokens, "m": layer.out_channels // g, "c": layer.in_channels // g}
            ranks = {n: s for n, s in ranks.items() if s > 1 or n != "g"}
            accesses = [
                {"name": src, "projection": {**gi, "T": v("t"), "C": v("c")}},
                {"name": wgt, "projection": {**gi, "C": v("c"), "M": v("m")}},
                {"name": dst, "projection": {**gi, "T": v("t"), "C": v("m")}, "output": True},
            ]
        else:
            (p, q), (r, s) = layer.output_hw(), layer.kernel_hw
            (sh, sw), (dh, dw) = layer.stride_hw, layer.dilation_hw
            ranks = {"g": g, "m": layer.out_channels // g, "c": layer.in_channels // g,
                     "p": p, "q": q, "r": r, "s": s}
            ranks = {n: s for n, s in ranks.items() if s > 1 or n in ("m", "c", "p", "q")}
            h = f"{v('p')}*{sh}" + (f" + {v('r')}*{dh}" if r > 1 else "")
            w = f"{v('q')}*{sw}" + (f" + {v('s')}*{dw}" if s > 1 else "")
            kernel = ({"R": v("r")} if r > 1 else {}) | ({"S": v("s")} if s > 1 else {})
            accesses = [
                {"name": src, "projection": {**gi, "C": v("c"), "H": h, "W": w}},
                {"name": wgt, "projection": {**gi, "M": v("m"), "C": v("c"), **kernel}},
                {"name": dst, "projection": {**gi, "C": v("m"), "H": v("p"), "W": v("q")}, "output": True},
            ]
        empty = f"{v('m')} - {v('m')}"
        out.append({
            "name": f"L{k}",
            "tensor_accesses": accesses,
            "iteration_space_shape": [f"0 <= {v(n)} < {s}" for n, s in ranks.items()],
            "renames": {"input": src, "weight": wgt, "output": dst,
                        **{n: v(n) if n in ranks else empty for n in _RANK_LETTERS}},
        })
    return out


def _set_literals_as_unions(nodes: list[dict]) -> list[dict]:
    """A copy of ``nodes`` whose ``loop_bounds`` expressions ``{a, b}`` read ``a | b``.

    AccelForge cannot evaluate a ``{a, b}`` set expression (a Python set of its sets is
    unhashable); it keeps the text and its mapper then matches each CHARACTER of it against
    rank-variable names, which constrains one-letter rank variables only. A chain's rank
    variables are ``p1``...; ``a | b`` evaluates through :func:`chain_einsums`' renames.
    """
    nodes = deepcopy(nodes)
    for n in nodes:
        for dim in n.get("spatial", []):
            for c in dim.get("loop_bounds", []):
                e = c["expression"].strip()
                if e.startswith("{") and e.endswith("}"):
                    c["expression"] = " | ".join(x.strip() for x in e[1:-1].split(","))
    return nodes


def _chain_bits(einsums: list[dict], bits) -> dict[str, int]:
    """One bit width per tensor: weights ``bits.weight``, the chain's first input(s)
    ``bits.input``, every Einsum output ``bits.output`` (an intermediate is written at the
    producer's output width and read at the same width)."""
    produced = {a["name"] for e in einsums for a in e["tensor_accesses"] if a.get("output")}
    weights = {e["renames"]["weight"] for e in einsums}
    consumed = {a["name"] for e in einsums for a in e["tensor_accesses"] if not a.get("output")}
    if produced & consumed and bits.input != bits.output:
        raise ValueError(f"a tensor shared by two chained Einsums has one bit width; got input "
                         f"{bits.input} b and output {bits.output} b")
    return {a["name"]: bits.weight if a["name"] in weights else bits.output if a["name"] in produced
            else bits.input for e in einsums for a in e["tensor_accesses"]}


@dataclasses.dataclass
class ChainResult:
    """One AccelForge mapping of a multi-Einsum chain (plain numbers, picklable)."""

    energy_j: float
    latency_s: float
    computes: float
    dram_bits: dict[tuple[str, str], float]  # (tensor, "read"|"write") -> bits moved to/from DRAM
    actions: dict[tuple[str, str, str], float]  # (component, tensor, action) -> count
    energy: dict[tuple[str, str], float]  # (component, action) -> J
    latency_by_einsum: dict[str, float]
    intermediates: list[str]  # tensors both written and read inside the chain
    on_chip: dict[str, bool]  # intermediate -> no DRAM traffic at all
    mapping: str  # the joined mapping; Einsums after a fork are ``Split[... | ...]``
    mapping_time_s: float  # wall-clock seconds to map and evaluate
    mapping_cpu_s: float  # this process's CPU seconds for the same (1 job)


def _mapping_str(node) -> str:
    """``compact_str`` of a joined multi-Einsum mapping, whose Split nodes print only
    their class name: each branch in ``[... | ...]``."""
    from accelforge.frontend.mapping.mapping import Split

    kids = getattr(node, "nodes", None)
    if kids is None:
        return node.compact_str()
    if isinstance(node, Split):
        return f"{type(node).__name__}[{' | '.join(_mapping_str(k) for k in kids)}]"
    return " ".join(_mapping_str(k) for k in kids)


def map_chain(nodes: list[dict], einsums: list[dict], bits, max_fused_loops: float | None = None) -> ChainResult:
    """Map a chain of Einsums (e.g. :func:`chain_einsums`) as ONE AccelForge workload with
    its FFM mapper (``require_all_einsums=True``) and evaluate the best joined mapping.

    ``nodes`` should come from ``arch.build_nodes(system, bits, fuse=True)``: with the
    default DRAM (keeps All) every intermediate goes through DRAM and nothing fuses.
    ``max_fused_loops`` caps the loops shared by fused Einsums (AccelForge's default: no
    cap); 0 allows only untiled fusion (a whole intermediate in the GlobalBuffer), which
    maps faster. DRAM counts one action per bit (``bits_per_action: 1``), so its action
    counts are bits.
    """
    import time

    import accelforge as af

    from cimco.models import MODELS

    per_tensor_bits = _chain_bits(einsums, bits)
    einsums = deepcopy(einsums)
    for e in einsums:
        for a in e["tensor_accesses"]:
            a["bits_per_value"] = per_tensor_bits[a["name"]]
    produced = {a["name"] for e in einsums for a in e["tensor_accesses"] if a.get("output")}
    intermediates = sorted(t for t in produced if any(
        a["name"] == t and not a.get("output") for e in einsums for a in e["tensor_accesses"]))
    names = " -> ".join(e["name"] for e in einsums)

    _one_job()
    with _upstream():
        spec = af.Spec(arch=_arch(_set_literals_as_unions(nodes)),
                       workload=af.Workload(einsums=einsums, rank_sizes={}))
        spec.config.add_component_models(list(MODELS))
        spec.mapper.explore_imperfect_spatial_loops = True
        spec.mapper.explore_loop_orders = False
        spec.mapper.metrics = af.Metrics.ENERGY_DELAY_PRODUCT
        if max_fused_loops is not None:
            spec.mapper.max_fused_loops = max_fused_loops
        start, start_cpu = time.perf_counter(), time.process_time()
        res, local = _map_and_evaluate(spec, f"the chain {names}", require_all=True)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        actions = {k: float(v) for k, v in res.actions(per_component=True, per_tensor=True).items()}
        energy = {k: float(v) for k, v in res.energy(per_component=True, per_action=True).items()}
        latency = {k: float(v) for k, v in res.latency(per_einsum=True).items()}
        result = ChainResult(
            energy_j=float(res.energy()),
            latency_s=float(res.latency()),
            computes=float(res.n_computes()),
            dram_bits={(t, a): n for (c, t, a), n in actions.items() if c == DRAM},
            actions=actions,
            energy=energy,
            latency_by_einsum=latency,
            intermediates=intermediates,
            on_chip={},
            mapping=_mapping_str(local.mapping),
            mapping_time_s=elapsed,
            mapping_cpu_s=cpu,
        )
    result.on_chip = {t: not any(n for (tt, _), n in result.dram_bits.items() if tt == t)
                      for t in intermediates}
    return result
