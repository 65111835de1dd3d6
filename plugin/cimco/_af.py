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
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from copy import deepcopy
from dataclasses import dataclass
from importlib.metadata import version

from cimco.errors import MappingError
from cimco.spec.workload import Layer

PINNED = {"accelforge": "1.0.467", "hwcomponents": "1.0.114"}


def versions() -> dict[str, str]:
    return {name: version(name) for name in PINNED}


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
        (sh, sw), (dh, dw) = layer.stride_hw, layer.dilation_hw
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
    spec.mapper.explore_imperfect_spatial_loops = True
    spec.mapper.explore_loop_orders = False
    spec.mapper.metrics = af.Metrics.ENERGY_DELAY_PRODUCT
    return spec


@dataclass
class MapResult:
    """What cimco keeps from one AccelForge mapping (plain numbers, picklable)."""

    energy_j: float
    latency_s: float
    computes: float
    energy: dict[tuple[str, str], float]  # (component, action) -> J
    actions: dict[tuple[str, str], float]  # (component, action) -> count
    weight_actions: dict[tuple[str, str], float]  # the part of ``actions`` moving weights
    latency_by_component: dict[str, float]
    mapping: str


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


def map_layer(nodes: list[dict], einsum: dict, bits) -> MapResult:
    """Map one Einsum with AccelForge's FFM mapper and evaluate the best mapping."""
    from accelforge._accelerated_imports import pd
    from accelforge.mapper.FFM.main import join_pmappings, make_pmappings
    from accelforge.model.main import evaluate_mapping
    from accelforge.util import _fillna_and__numeric_cast

    _one_job()
    with _upstream():
        spec = make_spec(nodes, einsum, bits)
        try:
            pm = make_pmappings(spec, print_progress=False)
            res = join_pmappings(pm, require_all_einsums=False, print_progress=False,
                                 metrics=spec.mapper.metrics)
        except MemoryError:
            raise
        except Exception as e:  # AccelForge raises many types; keep its first line
            text = str(e)
            # "... no pmappings ..." lists keep rates per cause; a memory at 0 pruned everything
            full = tuple(sorted(set(re.findall(r"usage<SEP>memory<SEP>(\w+): 0\.00e\+00", text))))
            first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
            raise MappingError(f"AccelForge could not map {einsum['einsum']!r}: {first[:300]}", full) from e
        if len(res.data) == 0:
            raise MappingError(f"AccelForge found no valid mapping for {einsum['einsum']!r}")
        local = deepcopy(spec)
        local.model.metrics = local.mapper.info_metrics
        local.mapping = res.data.iloc[0]["Total<SEP>mapping"](_for_model=True)
        evaluated = evaluate_mapping(local, flattened_arches=res.flattened_arches,
                                     evaluated_specs=res.evaluated_specs)
        res.data = _fillna_and__numeric_cast(pd.concat([evaluated.data]), 0)
        energy = {k: float(v) for k, v in res.energy(per_component=True, per_action=True).items()}
        actions = {k: float(v) for k, v in res.actions(per_component=True).items()}
        per_tensor = res.actions(per_component=True, per_tensor=True)
        weight_actions = {(c, a): float(v) for (c, t, a), v in per_tensor.items() if t == "W"}
    return MapResult(
        energy_j=float(res.energy()),
        latency_s=float(res.latency()),
        computes=float(res.n_computes()),
        energy=energy,
        actions=actions,
        weight_actions=weight_actions,
        latency_by_component={k: float(v) for k, v in res.latency(per_component=True).items()},
        mapping=local.mapping.compact_str(),
    )


def component_costs(nodes: list[dict], einsum: dict | None, bits=None) -> tuple[dict, dict]:
    """Energy per action (ERT) and area (ART) of every component, from the models.

    Returns ``({component: {action: J}}, {component: {"area_m2": per-instance, "instances": n}})``.
    """
    with _upstream():
        ev = make_spec(nodes, einsum, bits).calculate_component_costs()
    ert: dict[str, dict[str, float]] = {}
    art: dict[str, dict[str, float]] = {}
    for node in ev.arch.nodes:
        actions = getattr(node, "actions", None)
        if actions is None:
            continue
        ert[str(node.name)] = {str(a.name): float(a.energy) for a in actions if a.energy is not None}
    for name, area in ev.arch.per_component_total_area.items():
        art[str(name)] = {"total_area_m2": float(area)}
    return ert, art


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
