"""LRMP end to end for one workload: options, the four designs side by side, files.

Designs: ``baseline`` (uniform max precision, no replication), ``replication`` (max
precision, replication chosen), ``precision`` (no replication, precision chosen),
``joint`` (both). Precision-choosing designs respect the accuracy budget; all respect the
macro budget. Gains are baseline / design.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cimco.codesign.lrmp import Choice, Option, solve
from cimco.codesign.spatial import layer_options, proxy_loss, received, too_large
from cimco.errors import Problem, SpecError
from cimco.io import write_atomic
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec


@dataclass
class Result:
    workload: str
    budget: int
    accuracy_budget: float
    designs: dict[str, Choice]
    layers: list[str]
    costs: str = "spatial"  # where stage times and energies come from: "spatial" or the mapping backend's name
    loss: str = ""  # what the accuracy budget sums, in which unit

    def gain(self, name: str) -> tuple[float, float]:
        """(latency gain, throughput gain) of a design over the baseline."""
        b, d = self.designs["baseline"], self.designs[name]
        return b.latency_s / d.latency_s, b.bottleneck_s / d.bottleneck_s


class Sensitivity(dict[str, dict[int, float]]):
    """Losses by layer and bits, read from ``file``; ``lines`` holds the CSV line on which
    each layer is first named, so that a layer the workload lacks can be pointed at."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.lines: dict[str, int] = {}


def read_sensitivity(path: str | Path) -> Sensitivity:
    """CSV with columns layer,bits,loss (e.g. accuracy drop when only that layer is quantized)."""
    from cimco.spec._base import clip
    from cimco.spec.load import read_regular

    file = clip(str(path))
    out = Sensitivity(file)
    try:
        text = read_regular(path, 16 * 2**20, "sensitivity CSV").decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([Problem(file, "", "not UTF-8 text: expected a CSV with columns layer,bits,loss")]) from None
    reader = csv.DictReader(io.StringIO(text))
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as e:  # a quote or newline the CSV grammar does not allow
            raise SpecError([Problem(file, f"line {reader.line_num + 1}", f"not CSV: {clip(str(e), 100)}")]) from None
        try:
            bits, loss = int(row["bits"]), float(row["loss"])
            if not (1 <= bits <= 32 and math.isfinite(loss) and loss >= 0):
                raise ValueError(f"bits in 1..32 and a finite loss >= 0, got {clip(str(row), 100)}")
            out.setdefault(row["layer"], {})[bits] = loss
            out.lines.setdefault(row["layer"], reader.line_num)
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError([Problem(file, f"line {reader.line_num}", f"expected layer,bits,loss: "
                                     f"{clip(str(e))}")]) from None
    if not out:
        raise SpecError([Problem(file, "", "no rows: expected a CSV with columns layer,bits,loss and one row "
                                           "per layer and precision")])
    return out


def unknown_layers(sensitivity: dict[str, dict[int, float]], workload: WorkloadSpec) -> list[Problem]:
    """A Problem per layer of ``sensitivity`` that ``workload`` does not have (its losses would
    be silently ignored: a misspelt or stale name), with the closest real layer name."""
    import difflib

    from cimco.spec._base import MAX_PROBLEMS, more, short

    names = [layer.name for layer in workload.layers]
    known = set(names)
    file = getattr(sensitivity, "file", "sensitivity")
    lines: dict[str, int] = getattr(sensitivity, "lines", {})
    unknown = [name for name in sensitivity if name not in known]
    out = []
    for name in unknown[:MAX_PROBLEMS]:  # a difflib search each: only for those listed
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.0)  # the closest, however far
        out.append(Problem(file, f"line {lines[name]}" if name in lines else "",
                           f"layer {short(name)} is not in workload {workload.name!r}"
                           + (f"; the closest layer name is {near[0]!r}" if near else "")))
    if len(unknown) > MAX_PROBLEMS:
        out.append(more(file, len(unknown) - MAX_PROBLEMS))
    return out


def check(workload: WorkloadSpec, workload_file: str, sensitivity: dict | None) -> None:
    """Refuse what the spatial model cannot lay out: layers too large for it (named in
    ``workload_file``) and sensitivity rows for layers the workload does not have."""
    problems = too_large(workload, workload_file)
    if sensitivity:
        problems += unknown_layers(sensitivity, workload)
    if problems:
        raise SpecError(problems)


def run(system: SystemSpec, workload: WorkloadSpec, ert: dict | Callable[[], dict], budget_factor: float = 2.0,
        objective: str = "throughput", sensitivity: dict[str, dict[int, float]] | None = None,
        masks: dict | None = None, max_replication: int = 64, budget: int | None = None,
        min_throughput: float | None = None, workload_file: str = "workload", backend=None,
        progress: bool = False) -> Result:
    """The four designs for ``workload``; a SpecError (:func:`check`) before any is laid out.

    ``ert`` may be a function giving the component energies (the component tables): it is
    called only once every design is known to fit the macro and accuracy budgets (macros,
    times and losses do not depend on it), so an infeasible budget is refused first.
    With a mapping ``backend`` (``--costs mapper``) each option's stage time and energy come from
    that backend's mapping of the layer on its macros (:func:`cimco.codesign.spatial.mapped_costs`),
    after the same budget check."""
    from tqdm import tqdm

    check(workload, workload_file, sensitivity)

    def options(energies: dict, mapper=None) -> list[list[Option]]:
        layers = tqdm(workload.layers, desc="mapping options", unit="layer", disable=not progress or mapper is None,
                      dynamic_ncols=True)
        return [layer_options(system, layer, energies, bits, (masks or {}).get(layer.name), max_replication,
                              (sensitivity or {}).get(layer.name), mapper, workload.layer_bits(layer).output,
                              received(workload, layer))
                for layer in layers]

    m = system.macro
    bits = list(range(m.weight_bits.min, m.weight_bits.max + 1))
    if callable(ert) or backend is not None:  # every design's budgets first, without energies
        _designs(workload, options({}), m.weight_bits, budget_factor, budget, sensitivity,
                 "latency" if objective == "energy" else objective, None)
    if backend is not None:
        ert = {}  # the mapper's energies are its own
    elif callable(ert):
        ert = ert()
    res = _designs(workload, options(ert, backend), m.weight_bits, budget_factor, budget, sensitivity, objective,
                   min_throughput)
    return res if backend is None else dataclasses.replace(res, costs=backend.name)


def _designs(workload: WorkloadSpec, opts: list[list[Option]], weight_bits, budget_factor: float,
             budget: int | None, sensitivity: dict | None, objective: str,
             min_throughput: float | None) -> Result:
    """The baseline (the most weight bits, no replication) and the three designs chosen from ``opts``."""
    top = weight_bits.max

    def only(pred) -> list[list[Option]]:
        return [[o for o in os_ if pred(o)] for os_ in opts]

    base = Choice(tuple(next(o for o in os_ if o.bits == top and o.replication == 1) for os_ in opts))
    budget = budget if budget is not None else math.ceil(budget_factor * base.macros)
    # accuracy budget: what uniform (top - 2)-bit precision would lose
    ref_bits = max(weight_bits.min, top - 2)
    acc = sum(((sensitivity or {}).get(layer.name) or {}).get(ref_bits, proxy_loss(layer, ref_bits))
              for layer in workload.layers)
    designs = {
        "baseline": base,
        "replication": solve(only(lambda o: o.bits == top), budget, objective=objective,
                             min_throughput=min_throughput),
        "precision": solve(only(lambda o: o.replication == 1), budget, acc, objective=objective,
                           min_throughput=min_throughput),
        "joint": solve(opts, budget, acc, objective=objective, min_throughput=min_throughput),
    }
    loss = (f"the summed loss of uniform {ref_bits}-bit weights: "
            + ("the --sensitivity CSV's losses, in its unit" if sensitivity else
               "a proxy, quantization-noise power summed over the weights (weights x 4^-bits, assumed)"))
    return Result(workload.name, budget, acc, designs, [layer.name for layer in workload.layers], loss=loss)


def write(result: Result, out: Path) -> None:
    moved = any(o.transfer_s for ch in result.designs.values() for o in ch.options)
    lines = [f"# LRMP: {result.workload}", "",
             f"macro budget {result.budget}; accuracy budget {result.accuracy_budget:.4g} ({result.loss})", "",
             "stage times and energies: " + ("the spatial model" if result.costs == "spatial" else
                                             f"the {result.costs} backend's mapping of each layer on its macros")
             + (" (the macros' compute and index codes, and each stage's inputs over the NoC from the stage "
                "before: buffers and DRAM are not counted)" if moved else
                " (the macros' compute and index codes only: buffers, DRAM and the transfers between stages "
                "are not counted; give the system a NoC to count them)"), "",
             "| design | macros | bottleneck (us) | latency (us) | macro energy (uJ) | latency gain "
             "| throughput gain |",
             "|---|---|---|---|---|---|---|"]
    for name, ch in result.designs.items():
        lg, tg = result.gain(name)
        lines.append(f"| {name} | {ch.macros} | {ch.bottleneck_s * 1e6:.2f} | {ch.latency_s * 1e6:.2f} | "
                     f"{ch.energy_j * 1e6:.3f} | {lg:.2f}x | {tg:.2f}x |")
    j, b = result.designs["joint"], result.designs["baseline"]
    lines += ["", "| layer | bits | replication | macros | stage (us) | its inputs' transfer (us) "
                  "| baseline stage (us) |", "|---|---|---|---|---|---|---|"]
    rows = []
    for name, o, ob in zip(result.layers, j.options, b.options):
        lines.append(f"| {name} | {o.bits} | {o.replication} | {o.macros} | {o.time_s * 1e6:.2f} | "
                     f"{o.transfer_s * 1e6:.2f} | {ob.time_s * 1e6:.2f} |")
        rows.append([name, o.bits, o.replication, o.macros, o.time_s, o.transfer_s, ob.time_s])
    write_atomic(out / "lrmp.md", "\n".join(lines) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["layer", "bits", "replication", "macros", "stage_s", "transfer_s", "baseline_stage_s"])
    w.writerows(rows)
    write_atomic(out / "lrmp_layers.csv", buf.getvalue())
    write_atomic(out / "lrmp_stages.png", _png(result))


def _png(result: Result) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(result.layers) + 2), 4))
    x = range(len(result.layers))
    for name in ("baseline", "joint"):
        ax.plot(x, [o.time_s * 1e6 for o in result.designs[name].options], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_ylabel("stage time (us)")
    ax.set_xticks(list(x), result.layers, rotation=80, fontsize=6)
    ax.set_title(f"{result.workload}: pipeline stage times before/after LRMP")
    ax.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
