"""The only module that touches AccelForge (and hwcomponents through it).

Pinned to accelforge==1.0.467; ``tests/test_upstream.py`` checks each behaviour relied on
here, so an upgrade that changes one fails loudly. What we rely on:

- ``make_pmappings`` / ``join_pmappings`` / ``evaluate_mapping`` are the three stages of
  ``Spec.map_workload_to_arch``. We call them directly because that wrapper renders
  ``mapping.svg`` into the current directory and needs graphviz ``dot`` to do so.
- Result columns are named ``<einsum><SEP><kind><SEP><component>...`` and the
  ``Mappings.energy/actions/latency`` accessors aggregate them.
- ``set_n_parallel_jobs(1)``: on 2 cores the default process pool is 2-3x slower.
- Upstream deprecation noise (pandas 3.1's ``inplace`` deprecation inside AccelForge,
  hwcomponents' use of ``Logger.warn``) is silenced around upstream calls only.
- The mapper can size a tile smaller than the model does: it charges a tensor's memory from
  where the tensor is reserved, the model from where it is stored, and the two differ when a
  loop sits between them (MobileNetV2's depthwise ``features.2.conv.3``: the mapper's input
  rows for one output row, the model's for all of them). The model then rejects the
  mapping for that memory's capacity, naming both numbers; :func:`map_layer` maps again
  with that memory's budget cut by the overshoot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import re
import warnings
from copy import deepcopy
from importlib.metadata import version

from cimco.backends import LayerResult
from cimco.errors import MappingError
from cimco.parts import COMPUTE
from cimco.spec.workload import Layer

PINNED = {"accelforge": "1.0.467", "hwcomponents": "1.0.114"}


def versions() -> dict[str, str]:
    """The installed versions of the pinned packages (in every cache key)."""
    return dict(_installed())


@functools.cache  # package metadata lookups take milliseconds; a sweep asks per point
def _installed() -> tuple[tuple[str, str], ...]:
    return tuple((name, version(name)) for name in PINNED)


def einsum_of(layer: Layer) -> dict:
    """One layer as an AccelForge Einsum (rank variables p,q outputs; c,r,s reduction).

    Bits are not part of it: :func:`make_spec` sets them per tensor on the workload.
    """
    if layer.type == "linear":
        g = layer.groups
        ranks = {"g": g, "t": layer.tokens, "m": layer.out_channels // g, "c": layer.in_channels // g}
        gi = ["g"] if g > 1 else []
        out, inp, wgt = gi + ["t", "m"], gi + ["t", "c"], gi + ["c", "m"]
        expr = f"O[{', '.join(out)}] = I[{', '.join(inp)}] * W[{', '.join(wgt)}]"
        ranks = {k: v for k, v in ranks.items() if v > 1 or k != "g"}
    else:
        (p, q), (r, s) = layer.output_hw(), layer.kernel_hw
        (sh, sw), (dh, dw) = layer.read_stride_hw, layer.dilation_hw
        g = layer.groups
        ranks = {"g": g, "m": layer.out_channels // g, "c": layer.in_channels // g,
                 "p": p, "q": q, "r": r, "s": s}
        h = f"p*{sh}" + (f" + r*{dh}" if r > 1 else "")
        w = f"q*{sw}" + (f" + s*{dw}" if s > 1 else "")
        gi = ["g"] if g > 1 else []
        expr = (f"O[{', '.join(gi + ['m', 'p', 'q'])}] = "
                f"I[{', '.join(gi + ['c'])}, H: {h}, W: {w}] * "
                f"W[{', '.join(gi + ['m', 'c'] + (['r'] if r > 1 else []) + (['s'] if s > 1 else []))}]")
        ranks = {k: v for k, v in ranks.items() if v > 1 or k in ("m", "c", "p", "q")}
    return {
        "name": "layer",
        "einsum": expr,
        "iteration_space_shape": [f"0 <= {k} < {v}" for k, v in ranks.items()],
        "renames": {"output": "O", "input": "I", "weight": "W"},
    }


def _arch(nodes: list[dict]):
    from accelforge import arch as A

    kinds = {"Memory": A.Memory, "Toll": A.Toll, "Container": A.Container, "Compute": A.Compute}
    built = []
    for n in nodes:
        n = dict(n)
        cls = kinds[n.pop("kind")]
        if cls is not A.Container:
            n.setdefault("leak_power", 0)
        built.append(cls(**n))
    return A.Arch(nodes=built)


def make_spec(nodes: list[dict], einsum: dict | None, bits=None):
    """An AccelForge Spec with cimco's component models registered explicitly."""
    import accelforge as af

    from cimco.models import MODELS

    per_tensor = {"I": bits.input, "W": bits.weight, "O": bits.output} if bits else {"All": 8}
    workload = af.Workload(einsums=[deepcopy(einsum)] if einsum else [], rank_sizes={},
                           bits_per_value=per_tensor)
    spec = af.Spec(arch=_arch(nodes), workload=workload)
    spec.config.add_component_models(list(MODELS))
    # every component class is cimco's (or AccelForge's Dummy): no search of the installed
    # hwcomponents models (same tables, 2-5x faster component costs)
    spec.config.use_installed_component_models = False
    spec.mapper.explore_imperfect_spatial_loops = True
    spec.mapper.explore_loop_orders = False
    spec.mapper.metrics = af.Metrics.ENERGY_DELAY_PRODUCT
    return spec


@contextlib.contextmanager
def _upstream():
    """Silence upstream Deprecation/Future warnings (not ours to fix) around a call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _one_job() -> None:
    from accelforge.util import set_n_parallel_jobs

    set_n_parallel_jobs(1)


def _map_and_evaluate(spec, what: str, require_all: bool):
    """AccelForge's FFM mapper on ``spec`` (make + join pmappings), then the best mapping
    evaluated in full. Returns (results, evaluated spec). A failure is a MappingError whose
    ``full`` names the memories that left no candidate (each too small)."""
    from accelforge._accelerated_imports import pd
    from accelforge.mapper.FFM.main import join_pmappings, make_pmappings
    from accelforge.model.main import evaluate_mapping
    from accelforge.util import _fillna_and__numeric_cast

    try:
        pm = make_pmappings(spec, print_progress=False)
        res = join_pmappings(pm, require_all_einsums=require_all, print_progress=False,
                             metrics=spec.mapper.metrics)
    except (MemoryError, OSError):  # the machine's (memory, a full disk), not the mapping's
        raise
    except Exception as e:  # AccelForge raises many types; keep its first line
        text = str(e)
        # "... no pmappings ..." lists keep rates per cause; a memory at 0 pruned everything
        full = tuple(sorted(set(re.findall(r"usage<SEP>memory<SEP>(\w+): 0\.00e\+00", text))))
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise MappingError(f"AccelForge could not map {what}: {first[:300]}", full) from e
    if len(res.data) == 0:
        raise MappingError(f"AccelForge found no valid mapping for {what}")
    local = deepcopy(spec)
    local.model.metrics = local.mapper.info_metrics
    local.mapping = res.data.iloc[0]["Total<SEP>mapping"](_for_model=True)
    evaluated = evaluate_mapping(local, flattened_arches=res.flattened_arches,
                                 evaluated_specs=res.evaluated_specs)
    res.data = _fillna_and__numeric_cast(pd.concat([evaluated.data]), 0)
    return res, local


# "The mapping uses 3053760.00000000 bits of GlobalBuffer but its size is only 2097152 bits."
_OVER_CAPACITY = re.compile(r"uses ([0-9.e+]+) bits of (\w+) but its size is only ([0-9.e+]+) bits")
BUDGET_TRIES = 8


def _budgeted(nodes: list[dict], budget: dict[str, float]) -> list[dict]:
    return [{**n, "size": budget[n["name"]]} if n["name"] in budget else n for n in nodes]


def map_layer(nodes: list[dict], einsum: dict, bits) -> LayerResult:
    """Map one Einsum with AccelForge's FFM mapper and evaluate the best mapping. When the
    model rejects it for a memory's capacity, map again with that memory's budget scaled by
    size / use, by at most half (at most ``BUDGET_TRIES`` mappings): the mapping kept fits
    the real memory, and ``budget_bits`` records the budget it was found within."""
    from accelforge.model.main import InvalidMappingError

    _one_job()
    what = repr(einsum["einsum"])
    budget: dict[str, float] = {}
    for _ in range(BUDGET_TRIES):
        try:
            return dataclasses.replace(_map_once(_budgeted(nodes, budget), einsum, bits), budget_bits=dict(budget))
        except InvalidMappingError as e:
            over = _OVER_CAPACITY.search(str(e))
            if over is None:
                raise
            used, name, size = float(over[1]), over[2], float(over[3])
            budget[name] = math.floor(size * max(0.5, size / used))
        except MappingError as e:
            if not budget:
                raise
            # the cut budget left no mapping: not the spec's memory being too small
            raise MappingError(f"AccelForge's model rejected the mapper's mappings of {what} for memory "
                               f"capacity, and within {budget} bits it found none") from e
    raise MappingError(f"AccelForge's model rejected the mapper's best mapping of {what} {BUDGET_TRIES} "
                       f"times for memory capacity (last budget {budget} bits)")


def _map_once(nodes: list[dict], einsum: dict, bits) -> LayerResult:
    with _upstream():
        spec = make_spec(nodes, einsum, bits)
        res, local = _map_and_evaluate(spec, repr(einsum["einsum"]), require_all=False)
        return _result(res, local.mapping)


def _result(res, mapping) -> LayerResult:
    """AccelForge's evaluation of one mapping in cimco's vocabulary."""
    per_tensor = res.actions(per_component=True, per_tensor=True)
    return LayerResult(
        energy_j=float(res.energy()),
        latency_s=float(res.latency()),
        computes=float(res.n_computes()),
        energy={k: float(v) for k, v in res.energy(per_component=True, per_action=True).items()},
        actions={k: float(v) for k, v in res.actions(per_component=True).items()},
        tensor_actions={(str(c), str(t), str(a)): float(v) for (c, t, a), v in per_tensor.items()
                        if t in ("I", "W", "O")},
        latency_by_component={k: float(v) for k, v in res.latency(per_component=True).items()},
        mapping=mapping.compact_str(),
        loops=_loops(mapping),
    )


def _mapping(plan: list[dict]):
    """An AccelForge Mapping from plain nodes (:func:`cimco.backends.cim.mapping_nodes`)."""
    from accelforge.frontend.mapping import Compute, Spatial, Storage, Temporal, Toll
    from accelforge.frontend.spec import Mapping

    built = []
    for n in plan:
        kind = n["node"]
        if kind == "storage":
            built.append(Storage(tensors=list(n["tensors"]), component=n["component"]))
        elif kind == "toll":
            built.append(Toll(tensors=list(n["tensors"]), component=n["component"]))
        elif kind == "temporal":
            built.append(Temporal(rank_variable=n["rank"], tile_shape=n["tile"]))
        elif kind == "spatial":
            built.append(Spatial(rank_variable=n["rank"], tile_shape=n["tile"], name=n["name"],
                                 component=n["component"]))
        else:
            built.append(Compute(einsum="O", component=n["component"]))
    return Mapping(nodes=built)


@dataclasses.dataclass
class Evaluated:
    """AccelForge's evaluation of one mapping: its energy and latency, and the full result
    (built on demand: most candidates only need the two numbers)."""

    energy_j: float
    latency_s: float
    _res: object

    def result(self) -> LayerResult:
        with _upstream():
            return _result(self._res, self._res.data.iloc[0]["Total<SEP>mapping"](_for_model=True))


class Evaluator:
    """AccelForge's model for one Einsum on one architecture: the component costs computed
    once (``ert``: {component: {action: J}}), then any number of mappings evaluated."""

    def __init__(self, nodes: list[dict], einsum: dict, bits):
        with _upstream():
            self._spec = make_spec(nodes, einsum, bits)
            self._spec.model.metrics = self._spec.mapper.info_metrics
            self._evaluated = self._spec.calculate_component_costs(einsum_name="O", area=False)
            self._flat = {("O", COMPUTE): self._evaluated._get_flattened_architecture(compute_node=COMPUTE)}
        self.ert = _ert(self._evaluated)

    def evaluate(self, plans: list[list[dict]]) -> list[Evaluated | None]:
        """Each mapping (:func:`cimco.backends.cim.mapping_nodes`) evaluated; None for one the
        model rejects (a tile over a memory's capacity)."""
        from accelforge.model.main import InvalidMappingError, evaluate_mapping

        out: list[Evaluated | None] = []
        with _upstream():
            for plan in plans:
                self._spec.mapping = _mapping(plan)  # evaluate_mapping copies what it changes
                try:
                    res = evaluate_mapping(self._spec, flattened_arches=self._flat,
                                           evaluated_specs={"O": self._evaluated})
                except InvalidMappingError:
                    out.append(None)
                    continue
                out.append(Evaluated(float(res.energy()), float(res.latency()), res))
        return out


_NODE_KINDS = {"Storage": "storage", "Toll": "toll", "Spatial": "spatial", "Temporal": "temporal", "Compute": "compute"}


def _loops(mapping) -> list[dict]:
    """A mapping's nodes top to bottom as plain data (reservations left out): where tensors
    are kept, and each loop's rank variable and iterations (spatial loops with their fanout)."""
    out = []
    for n in mapping.nodes:
        kind = _NODE_KINDS.get(type(n).__name__)
        if kind is None:
            continue
        d: dict = {"node": kind}
        if kind in ("spatial", "temporal"):
            d["rank"] = str(n.rank_variable)
            d["bound"] = int(n.tile_pattern.calculated_n_iterations)
        if kind != "temporal":
            d["component"] = str(n.component) if kind != "spatial" else str(n.name)
        if kind in ("storage", "toll"):
            d["tensors"] = [str(x) for x in n.tensors]
        out.append(d)
    return out


def component_costs(nodes: list[dict], einsum: dict | None, bits=None) -> tuple[dict, dict]:
    """Energy per action (ERT) and area (ART) of every component, from the models.

    Returns ``({component: {action: J}}, {component: {"area_m2": per-instance, "instances": n}})``.
    """
    with _upstream():
        ev = make_spec(nodes, einsum, bits).calculate_component_costs()
    ert = _ert(ev)
    art: dict[str, dict[str, float]] = {}
    for name, area in ev.arch.per_component_total_area.items():
        art[str(name)] = {"total_area_m2": float(area)}
    return ert, art


def _ert(evaluated) -> dict[str, dict[str, float]]:
    """{component: {action: J}} of an evaluated spec."""
    ert: dict[str, dict[str, float]] = {}
    for node in evaluated.arch.nodes:
        actions = getattr(node, "actions", None)
        if actions is not None:
            ert[str(node.name)] = {str(a.name): float(a.energy) for a in actions if a.energy is not None}
    return ert


def scratch_cwd(root=None):
    """Context manager: run AccelForge inside a private scratch dir under ``root`` (default:
    the system temp dir) that is removed afterwards.

    ``Spec.map_workload_to_arch`` writes ``mapping.svg`` into the working directory and
    ``accelforge.util.parallel._memmap_read`` leaves ``tmp*.pkl`` files in the system temp
    dir; both land here instead, so a run leaves nothing outside its output directory. The
    dir is named after this process (:func:`cimco.io.scratch_dir`), so if the process is
    killed the next run removes it.
    """
    import tempfile

    from cimco.io import scratch_dir

    @contextlib.contextmanager
    def _cm():
        old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
        with scratch_dir(root) as d:
            os.chdir(d)
            tempfile.tempdir = str(d)
            try:
                yield str(d)
            finally:
                tempfile.tempdir = old_tmp
                os.chdir(old_cwd)

    return _cm()
