"""Write a report's files into one directory, each atomically: JSON, CSV, Markdown, PNG,
and Accelergy-format ERT/ART.

layers.csv and report.json hold every layer; the tables, report.md and the plots of a network
of many layers show its top layers by energy and one "other" entry
(see cimco.report.html), so every file is written in time linear in the layer count."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cimco.io import write_atomic
from cimco.parts import DRAM
from cimco.report.html import aggregation_note, energy_data, figure, levels_line, stacked, tabulated
from cimco.report.html import render as render_html
from cimco.tables import Tables, art_yaml, ert_yaml

UTILIZATION = ("macros_used", "rows_used", "columns_used", "spatial_utilization", "temporal_utilization")


def _csv(report: dict) -> str:
    comps = list(report["energy_by_component"])
    pairs = [(b["level"], b["tensor"]) for b in report.get("breakdown", [])]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "dense_macs", "executed_macs", "energy_j", "latency_s", "input_bits",
                "weight_bits", "output_bits", "weight_density", "block_density", "input_density", *UTILIZATION]
               + [f"energy_j.{c}" for c in comps] + [f"energy_j.{level}.{t}" for level, t in pairs])
    for x in report["layers"]:
        b = x["bits"]
        by_pair = {(e["level"], e["tensor"]): e["energy_j"] for e in x.get("breakdown", [])}
        w.writerow([x["name"], x["dense_macs"], x["executed_macs"], repr(x["energy_j"]),
                    repr(x["latency_s"]), b["input"], b["weight"], b["output"],
                    x["weight_density"], x["block_density"], x["input_density"],
                    *("" if x.get(k) is None else x[k] for k in UTILIZATION)]
                   + [repr(x["energy_by_component"].get(c, 0.0)) for c in comps]
                   + [repr(by_pair.get(p, 0.0)) for p in pairs])
    return buf.getvalue()


def summary_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-layer table (shared by the terminal and Markdown): every layer,
    or the top ones by energy and an "other" row (cimco.report.html.MAX_LAYERS_SHOWN)."""
    head = ["layer", "MACs", "energy (uJ)", "latency (us)", "bits i/w/o", "TOPS/W"]
    rows = []
    for x in tabulated(report["layers"]):
        b = x["bits"]
        rows.append([x["name"], f"{x['dense_macs']:,}", f"{x['energy_j'] * 1e6:.3f}",
                     f"{x['latency_s'] * 1e6:.2f}", f"{b['input']}/{b['weight']}/{b['output']}" if b else "",
                     f"{2 * x['dense_macs'] / x['energy_j'] / 1e12:.2f}"])
    t = report["totals"]
    rows.append(["TOTAL", f"{t['dense_macs']:,}", f"{t['energy_j'] * 1e6:.3f}",
                 f"{t['latency_s'] * 1e6:.2f}", "", f"{t['tops_per_w']:.2f}"])
    return head, rows


def totals_line(report: dict) -> str:
    """The totals in two lines, naming up to 5 layers mapped within a reduced memory budget."""
    t = report["totals"]
    budgets = [x for x in report["layers"] if x.get("memory_budget_bits")]
    return (f"energy {t['energy_j'] * 1e6:.2f} uJ | latency {t['latency_s'] * 1e3:.3f} ms | "
            f"{t['tops_per_w']:.2f} TOPS/W ({t['tops_per_w_on_chip']:.2f} on chip, without DRAM) | "
            f"{t['tops']:.3f} TOPS | {t['fps']:.1f} FPS | "
            f"area {t['area_m2'] * 1e6:.3f} mm^2\n"
            f"{t['mode']}, weights {t['weights']}"
            + (f" (one-time load {t['weight_load_j'] * 1e6:.2f} uJ, not in the energy)" if t["weights"] == "resident"
               else f", batch {t['batch']}")
            + f" | DRAM {report['energy_by_component'].get(DRAM, 0.0) / t['energy_j']:.1%} of the energy"
            + (f" | non-MAC work {t['vector_share']:.1%} (vector unit)" if t.get("vector_share") else "")
            + (f" | {t['energy_per_token_j'] * 1e6:.3f} uJ per token ({t['tokens']} tokens)"
               if t.get("tokens", 1) > 1 else "")
            + (f" | {t['column_split_layers']} layer(s) mapped with columns splitting a reduction (fallback)"
               if t["column_split_layers"] else "")
            + "".join(f" | {x['name']}: mapped within {', '.join(f'{k} {v:.0f} b' for k, v in b.items())} "
                      "(AccelForge's mapper undersized a tile)"
                      for x in budgets[:5] if (b := x["memory_budget_bits"]))
            + (f" | {len(budgets) - 5} more such layers (see report.json)" if len(budgets) > 5 else ""))


def _markdown(report: dict, tables: Tables | None = None) -> str:
    head, rows = summary_rows(report)
    lines = [f"# {report['workload']} on {report['system']}", "", totals_line(report), ""]
    if line := levels_line(report.get("levels")):
        lines += [line, ""]
    if report.get("warnings"):
        lines += ["## Warnings", "", *(f"- {w}" for w in report["warnings"]), ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if note := aggregation_note(len(report["layers"])):
        lines += ["", note]
    lines += ["", "## Energy by component", "", "| component | energy (uJ) | share |", "|---|---|---|"]
    total = report["totals"]["energy_j"]
    for c, e in sorted(report["energy_by_component"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {c} | {e * 1e6:.3f} | {e / total:.1%} |")
    if report.get("breakdown"):
        lines += ["", "## By level and tensor", "", "Reads and writes are bits at a memory, the part's own actions "
                  "at a macro part (cell operations, word-line drives, readouts).", "",
                  "| level | tensor | reads | writes | energy (uJ) | share |", "|---|---|---|---|---|---|"]
        for b in sorted(report["breakdown"], key=lambda b: -b["energy_j"]):
            lines.append(f"| {b['level']} | {b['tensor']} | {b['reads']:,.0f} | {b['writes']:,.0f} | "
                         f"{b['energy_j'] * 1e6:.3f} | {b['energy_j'] / total:.1%} |")
    if "tops_per_w_macro" in report["totals"]:
        lines += ["", f"Macro-only efficiency (macro compute actions, no weight writes, buffers or DRAM): "
                      f"{report['totals']['tops_per_w_macro']:.2f} TOPS/W"]
    if tables is not None:
        area = sum(tables.art.values())
        lines += ["", "## Area by component (all instances)", "", "| component | area (mm^2) | share |",
                  "|---|---|---|"]
        by_area = sorted(tables.art.items(), key=lambda kv: -kv[1])
        lines += [f"| {c} | {a * 1e6:.4f} | {a / area:.1%} |" for c, a in by_area if area > 0]
    lines += ["", f"cimco {report['cimco_version']}; engine "
              + ", ".join(f"{k} {v}" for k, v in report["engine"].items()), ""]
    return "\n".join(lines)


def energy_png(d: dict) -> bytes:
    """energy_by_component.png: the energy by component of each plotted layer (:func:`energy_data`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(d["names"]) + 2), 4.5))
    stacked(ax, d)
    ax.set_title(d["title"])
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def _art_head(tables: Tables) -> str:
    total = sum(tables.art.values()) * 1e6
    return ("# area per instance in um^2 (Accelergy's convention), from cimco's component models\n"
            f"# instances: {', '.join(f'{p} {n:,}' for p, n in tables.instances.items())}\n"
            f"# all instances: {total:.4g} mm^2 (report.json: totals.area_m2)\n")


def write_all(report: dict, tables: Tables, out: Path, cache: Path | None = None) -> list[Path]:
    """Write the report's seven files into ``out``; their paths. Figures drawn before from the
    same data are taken from ``cache`` (:func:`cimco.report.html.figure`; None: all drawn)."""
    files = {
        "report.json": json.dumps(report, indent=2, allow_nan=False),  # first: refuses what JSON cannot hold
        "layers.csv": _csv(report),
        "report.md": _markdown(report, tables),
        "energy_by_component.png": figure(energy_png, {
            **energy_data(report), "title": f"{report['workload']} on {report['system']}: energy by component"},
            cache),
        "ERT.yaml": ert_yaml(tables.ert, report["system"]),
        "ART.yaml": _art_head(tables) + art_yaml(tables.art_per_instance(), report["system"]),
        "report.html": render_html(report, tables.art, cache),
    }
    paths = []
    for name, data in files.items():
        write_atomic(out / name, data)
        paths.append(out / name)
    return paths
