"""LRMP: choose each layer's precision and replication jointly (Nallathambi et al.,
Frontiers in AI 2024) on a spatial, layer-pipelined CIM accelerator, as an exact MILP.

Spatial mode: every layer owns its macros. At weight precision ``b`` a layer needs
``tiles(b)`` macros (its kept blocks laid out as in :mod:`cimco.sparse.occupancy`);
replicated ``r`` times it needs ``r * tiles(b)`` and its ``positions`` output positions
are split over the copies. Its stage time is
``ceil(positions / r) * busy(b) * input_slices(b) * adc_cycles(b) * cycle_s``: the busiest
macro's activations per input vector, once per input slice, each taking as many cycles as
its column group's conversions need of the macro's ADCs. Its energy
per inference is the exact occupancy counts times the component models' energy per
action (ERT); replication does not change it.

The MILP (``scipy.optimize.milp``, HiGHS) picks one (bits, replication) option per layer:
binary ``x[l, o]``, ``sum_o x[l, o] = 1``; macros ``sum macros[l, o] x[l, o] <= budget``;
accuracy ``sum loss[l, b] x[l, o] <= accuracy_budget`` (per-layer precision
sensitivities); and one objective: ``throughput`` (minimize the bottleneck stage ``T``
with ``t[l, o] x[l, o] <= T``), ``latency`` (minimize the sum of stage times) or
``energy`` (minimize energy with every stage at most ``1 / min_throughput``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from cimco.errors import Problem, SpecError

OBJECTIVES = ("throughput", "latency", "energy")


@dataclass(frozen=True)
class Option:
    bits: int
    replication: int
    macros: int
    time_s: float  # the stage's time: its compute, or its inputs' transfer where that is longer
    energy_j: float
    loss: float
    transfer_s: float = 0.0  # its inputs' transfer over the NoC, from the stage before (cimco.noc)
    transfer_j: float = 0.0


@dataclass(frozen=True)
class Choice:
    """The option chosen for every layer, and what it adds up to."""

    options: tuple[Option, ...]

    @property
    def macros(self) -> int:
        return sum(o.macros for o in self.options)

    @property
    def bottleneck_s(self) -> float:
        return max(o.time_s for o in self.options)

    @property
    def latency_s(self) -> float:
        return sum(o.time_s for o in self.options)

    @property
    def energy_j(self) -> float:
        return sum(o.energy_j for o in self.options)

    @property
    def loss(self) -> float:
        return sum(o.loss for o in self.options)


def _infeasible(options: list[list[Option]], budget: int, accuracy_budget: float) -> SpecError:
    """Name the smallest macro budget that satisfies the accuracy budget."""
    try:
        need = _solve(options, 10**12, accuracy_budget, "macros", None).macros
        msg = (f"no choice fits {budget} macros within accuracy budget {accuracy_budget:g}; "
               f"the minimal feasible budget is {need} macros")
    except SpecError:
        least = sum(min(o.loss for o in opts) for opts in options)
        msg = (f"accuracy budget {accuracy_budget:g} is below the least total loss {least:g} "
               f"of any precision choice")
    return SpecError([Problem("lrmp", "budget", msg)])


def solve(options: list[list[Option]], budget: int, accuracy_budget: float = math.inf,
          objective: str = "throughput", min_throughput: float | None = None) -> Choice:
    """Exact optimum over one option per layer (HiGHS MILP).

    ``throughput`` is lexicographic: the smallest bottleneck, then among those the smallest
    latency (so stages off the critical path are not slowed for nothing).
    """
    best = _solve(options, budget, accuracy_budget, objective, min_throughput)
    if objective != "throughput":
        return best
    t = best.bottleneck_s * (1 + 1e-9)
    fast = [[o for o in opts if o.time_s <= t] for opts in options]
    return _solve(fast, budget, accuracy_budget, "latency", None)


def _solve(options: list[list[Option]], budget: int, accuracy_budget: float,
           objective: str, min_throughput: float | None) -> Choice:
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix

    if objective not in OBJECTIVES + ("macros",):
        raise SpecError([Problem("lrmp", "objective", f"expected one of {OBJECTIVES}, got {objective!r}")])
    sizes = [len(o) for o in options]
    n = sum(sizes)
    flat = [o for opts in options for o in opts]
    use_t = objective == "throughput"
    nv = n + (1 if use_t else 0)
    c = np.zeros(nv)
    if use_t:
        c[n] = 1.0
    elif objective == "latency":
        c[:n] = [o.time_s for o in flat]
    elif objective == "energy":
        c[:n] = [o.energy_j for o in flat]
    else:  # macros: smallest budget meeting the accuracy budget
        c[:n] = [o.macros for o in flat]
    lo, hi = [], []
    a = lil_matrix((len(options) + 2 + (len(options) if use_t else 0), nv))
    r = 0
    start = 0
    for k in sizes:  # one option per layer
        a[r, start:start + k] = 1
        lo.append(1)
        hi.append(1)
        r, start = r + 1, start + k
    a[r, :n] = [o.macros for o in flat]
    lo.append(0)
    hi.append(budget)
    r += 1
    a[r, :n] = [o.loss for o in flat]
    lo.append(-np.inf)
    hi.append(accuracy_budget if math.isfinite(accuracy_budget) else 1e300)
    r += 1
    if use_t:  # every stage time <= T
        start = 0
        for k in sizes:
            a[r, start:start + k] = [o.time_s for o in flat[start:start + k]]
            a[r, n] = -1
            lo.append(-np.inf)
            hi.append(0)
            r, start = r + 1, start + k
    integrality = np.ones(nv)
    ub = np.ones(nv)
    if use_t:
        integrality[n] = 0
        ub[n] = np.inf
    if objective == "energy" and min_throughput:
        too_slow = np.array([o.time_s > 1 / min_throughput for o in flat] + [False] * (nv - n))
        ub[too_slow] = 0
    res = milp(c, constraints=LinearConstraint(a.tocsr(), lo, hi), integrality=integrality,
               bounds=Bounds(np.zeros(nv), ub), options={"time_limit": 60})
    if res.x is None:
        if objective == "macros":
            raise SpecError([Problem("lrmp", "accuracy_budget", "infeasible")])
        raise _infeasible(options, budget, accuracy_budget)
    chosen, start = [], 0
    for k in sizes:
        chosen.append(flat[start + int(np.argmax(res.x[start:start + k]))])
        start += k
    return Choice(tuple(chosen))


def brute_force(options: list[list[Option]], budget: int, accuracy_budget: float = math.inf,
                objective: str = "throughput") -> Choice | None:
    """Reference: try every combination (small instances only)."""
    best, best_key = None, None
    for combo in itertools.product(*options):
        ch = Choice(tuple(combo))
        if ch.macros > budget or ch.loss > accuracy_budget + 1e-12:
            continue
        key = {"throughput": ch.bottleneck_s, "latency": ch.latency_s, "energy": ch.energy_j}[objective]
        if best_key is None or key < best_key - 1e-15:
            best, best_key = ch, key
    return best
