"""A self-contained HTML report: summary, sortable per-layer table and plots as inline SVG.

No network and no scripts from elsewhere: the plots are matplotlib SVG written into the page
and the table sorts with a few lines of inline JavaScript. Keys the page does not know (new
totals or per-layer numbers) are shown generically, so the report grows with report.json.

A network of more than MAX_LAYERS_PLOTTED (plots) or MAX_LAYERS_SHOWN (tables) layers is
summarised: its top layers by energy and one "other" entry summing the rest, so the page's size
and the time to draw it stay bounded (layers.csv and report.json keep every layer).
"""

from __future__ import annotations

import hashlib
import heapq
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

# Layers tabulated and plotted one by one. Beyond these, the top ones by energy plus one "other" entry:
# one row or bar per layer makes a 10,000-layer page tens of MB and minutes of matplotlib, and a
# plot of more than ~50 bars is unreadable at page width (and matplotlib's time goes with the bars).
MAX_LAYERS_SHOWN = 200
MAX_LAYERS_PLOTTED = 50

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#eef;cursor:pointer;position:sticky;top:0}
td:first-child,th:first-child{text-align:left}
.plots svg{max-width:100%;height:auto}
"""

_SORT = """
document.querySelectorAll('table.sortable th').forEach(function(th, i){
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0], asc = th.dataset.asc !== '1';
    var rows = Array.from(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[i].dataset.v ?? a.cells[i].textContent, y = b.cells[i].dataset.v ?? b.cells[i].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    th.dataset.asc = asc ? '1' : '0';
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def fmt(x: object) -> str:
    """A number as people read it (4 significant digits, thousands separators)."""
    if x is None:
        return ""
    if isinstance(x, bool) or not _num(x):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.4g}"


# report.json keeps SI units (J, s, m^2, TOPS); the page shows them as people read them
UNITS = (("_j", "uJ", 1e6), ("_s", "us", 1e6), ("_m2", "mm^2", 1e6))


def label(key: str) -> tuple[str, float]:
    """(label, scale) of a report field as the page shows it: J as uJ, s as us, m^2 as mm^2,
    TOPS as GOPS; other fields as they are."""
    if key == "tops":
        return "GOPS", 1e3
    for suffix, unit, scale in UNITS:
        if key.endswith(suffix):
            return f"{key.removesuffix(suffix)} ({unit})", scale
    return key, 1.0


def human(key: str, value: object) -> tuple[str, object]:
    """(label, value) of a report field in the units the page shows (:func:`label`)."""
    name, scale = label(key)
    if scale != 1.0 and _num(value) and not isinstance(value, bool):
        return name, value * scale
    return key, value


def _energy(layer: dict) -> float:
    e = layer.get("energy_j")
    return e if _num(e) else 0.0


def _finite(v: object) -> float:
    """``v`` as a float to add up, 0 if it is not a number or too large for one (a damaged report.json)."""
    return float(v) if _num(v) and abs(v) < 1e308 else 0.0


def _sum_layers(rest: list[dict], mean: bool = False) -> dict:
    """One layer-shaped entry summing ``rest`` (or, with ``mean``, averaging it: a plot's bar on the
    same scale as the layers beside it): MACs, energy, latency and their per-component splits."""
    f = 1 / len(rest) if mean else 1
    out: dict = {"name": f"other ({len(rest):,} layers{', mean' if mean else ''})", "bits": {}}
    for k in ("dense_macs", "executed_macs", "energy_j", "latency_s"):
        out[k] = sum(_finite(x.get(k)) for x in rest) * f
    for k in ("energy_by_component", "latency_by_component_s"):
        acc: dict[str, float] = {}
        for x in rest:
            by = x.get(k)
            for c, v in (by.items() if isinstance(by, dict) else ()):
                acc[c] = acc.get(c, 0.0) + _finite(v)
        out[k] = {c: v * f for c, v in acc.items()}
    return out


def top_layers(layers: list[dict], n: int = MAX_LAYERS_SHOWN, mean: bool = False) -> tuple[list[dict], dict | None]:
    """The ``n`` layers with the most energy, in workload order, and one entry summing (or
    averaging) the others (None when every layer fits). O(layers x log n)."""
    if len(layers) <= n:
        return layers, None
    keep = set(heapq.nlargest(n, range(len(layers)), key=lambda i: _energy(layers[i])))
    shown = [x for i, x in enumerate(layers) if i in keep]
    return shown, _sum_layers([x for i, x in enumerate(layers) if i not in keep], mean)


def tabulated(layers: list[dict], n: int = MAX_LAYERS_SHOWN) -> list[dict]:
    """The entries a per-layer table shows: every layer, or the top ``n`` plus "other" (their sum)."""
    return _with_other(*top_layers(layers, n))


def plot_bars(layers: list[dict]) -> list[dict]:
    """The bars of a per-layer plot: every layer, or the top MAX_LAYERS_PLOTTED plus "other" (their
    mean: their sum would dwarf the layers shown)."""
    return _with_other(*top_layers(layers, MAX_LAYERS_PLOTTED, mean=True))


def _with_other(shown: list[dict], other: dict | None) -> list[dict]:
    """The shown layers, then the "other" entry if there is one."""
    return shown + [other] if other else shown


def aggregation_note(n_layers: int) -> str:
    """What a summarised report leaves out and where to find it ("" when nothing is left out)."""
    parts = [f"the {what} show the top {n}" for what, n in (("plots", MAX_LAYERS_PLOTTED),
                                                             ("tables", MAX_LAYERS_SHOWN)) if n_layers > n]
    if not parts:
        return ""
    return (f"{n_layers:,} layers: {' and '.join(parts)} by energy (in workload order), with one entry for "
            "the others (their mean in plots, their sum in tables); layers.csv and report.json have every layer.")


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    # text as text (smaller, selectable); no date and stable ids: the same report, the same page
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cimco"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue and DOCTYPE


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(draw: Callable[[dict], str | bytes], data: dict, cache: Path | None) -> str | bytes:
    """``draw(data)``: a figure drawn from plain ``data`` only, so a figure drawn before from
    the same data (by the same code and matplotlib) is taken from ``cache`` instead of drawn
    again (None: always drawn). Drawing is most of a cached run's time."""
    if cache is None:
        return draw(data)
    from importlib.metadata import version

    from cimco.cache import code_hash
    from cimco.io import write_atomic

    key = hashlib.sha256(json.dumps([draw.__name__, data, code_hash(), version("matplotlib")],
                                    sort_keys=True).encode()).hexdigest()
    path = cache / "figures" / key
    if path.exists():
        kept = path.read_bytes()
        return kept[1:] if kept[:1] == b"b" else kept[1:].decode()
    out = draw(data)
    write_atomic(path, b"b" + out if isinstance(out, bytes) else b"s" + out.encode())
    return out


def _layer_fig(n: int):
    return _plt().subplots(figsize=(max(7.0, 0.35 * n + 2), 3.6))


def energy_data(report: dict) -> dict:
    """Per plotted layer (:func:`plot_bars`), its energy by component in uJ, largest component first."""
    layers = plot_bars(report["layers"])
    by = report.get("energy_by_component", {})
    comps = [c for c, e in sorted(by.items(), key=lambda kv: -kv[1]) if e > 0]
    return {"names": [x["name"] for x in layers], "comps": comps,
            "uj": [[x.get("energy_by_component", {}).get(c, 0.0) * 1e6 for x in layers] for c in comps]}


def stacked(ax, d: dict) -> None:
    """:func:`energy_data` as stacked bars on ``ax``."""
    bottom = [0.0] * len(d["names"])
    for c, vals in zip(d["comps"], d["uj"]):
        ax.bar(d["names"], vals, bottom=bottom, label=c)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("energy (uJ)")
    ax.tick_params(axis="x", labelrotation=75, labelsize=7)


def energy_svg(d: dict) -> str:
    fig, ax = _layer_fig(len(d["names"]))
    stacked(ax, d)
    ax.set_title("energy by component per layer")
    ax.legend(fontsize=7, ncols=2, loc="upper right")
    fig.tight_layout()
    return _svg(fig)


def busiest(layer: dict) -> str:
    """The component that takes longest in a layer (it sets the layer's latency)."""
    by = layer.get("latency_by_component_s") or {}
    return max(by, key=by.get) if by else ""


def latency_svg(d: dict) -> str:
    names, parts = d["names"], d["parts"]
    colours = {p: f"C{i}" for i, p in enumerate(dict.fromkeys(parts))}
    fig, ax = _layer_fig(len(names))
    ax.bar(names, d["us"], color=[colours[p] for p in parts])
    for p, c in colours.items():
        ax.bar([names[0]], [0], color=c, label=p or "?")  # legend entries only
    ax.set_ylabel("latency (us)")
    ax.set_title("latency per layer, coloured by its busiest part")
    ax.tick_params(axis="x", labelrotation=75, labelsize=7)
    ax.legend(fontsize=7, title="busiest part", title_fontsize=7, loc="upper right")
    fig.tight_layout()
    return _svg(fig)


def _ratios(layers: list[dict]) -> dict[str, list[float]]:
    """Per-layer fractions to plot: the densities and utilizations the report carries (the
    spatial one: the share of the system's cells at work in an activation; the temporal one:
    the cell arrays' busy time over the layer's)."""
    keys = [k for k in layers[0] if k.endswith("density") or "utilization" in k]
    return {k: [x[k] for x in layers] for k in keys if all(_num(x.get(k)) for x in layers)}


# each series its own marker and dash, drawn from the widest marker down: equal values (three
# densities at 1.0) show as nested markers, not one line hiding the others
STYLES = [("o", "-", 9), ("s", "--", 7), ("^", ":", 5.5), ("D", "-.", 4), ("v", (0, (5, 1)), 3), ("x", "-", 3)]


def ratios_svg(d: dict) -> str:
    fig, ax = _layer_fig(len(d["names"]))
    for i, (k, v) in enumerate(d["series"].items()):
        marker, dash, size = STYLES[i % len(STYLES)]
        ax.plot(d["names"], v, marker=marker, markersize=size, linestyle=dash, linewidth=1, label=k,
                color=f"C{i}", markerfacecolor="none" if i % 2 == 0 else f"C{i}", alpha=0.9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction")
    ax.set_title("utilization and densities per layer" + (" (top layers by energy)" if d["top"] else ""))
    ax.tick_params(axis="x", labelrotation=75, labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: it hides no point
    fig.tight_layout()
    return _svg(fig)


MAX_MACROS_DRAWN = 256
PLACEMENT_COLOURS = 12  # layers with a colour of their own; the rest share one


def placement_data(report: dict) -> dict | None:
    """Each macro's share of cells held by each layer (``totals.placement``), the layers with the
    most cells named, the others summed; None without a placement (weights reloaded, pipelined)."""
    macros = (report.get("totals") or {}).get("placement")
    if not isinstance(macros, list) or not macros:
        return None
    macros = macros[:MAX_MACROS_DRAWN]
    total: dict[str, float] = {}
    for held in macros:
        for name, v in held.items():
            total[name] = total.get(name, 0.0) + _finite(v.get("share"))
    named = sorted(total, key=lambda k: (-total[k], k))[:PLACEMENT_COLOURS]
    rest = [sum(_finite(v.get("share")) for k, v in held.items() if k not in named) for held in macros]
    return {"names": named + (["other layers"] if any(rest) else []),
            "shares": [[_finite(held.get(k, {}).get("share")) for held in macros] for k in named]
            + ([rest] if any(rest) else []), "shown": len(macros), "all": len(report["totals"]["placement"])}


def placement_svg(d: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.18 * d["shown"] + 2), 3.6))
    x = list(range(d["shown"]))
    bottom = [0.0] * d["shown"]
    colours = list(plt.get_cmap("tab20").colors[:PLACEMENT_COLOURS]) + ["0.6"]  # "other layers": grey
    for name, vals, colour in zip(d["names"], d["shares"], colours):
        ax.bar(x, vals, bottom=bottom, label=name, width=0.85, color=colour)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylim(0, 1)
    ax.set_xlabel("macro" + (f" (first {d['shown']} of {d['all']})" if d["shown"] < d["all"] else ""))
    ax.set_ylabel("share of its cells")
    ax.set_title("resident weights: which layer lives in which macro")
    ax.legend(fontsize=6, ncols=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _svg(fig)


def roofline_data(report: dict, layers: list[dict]) -> dict | None:
    """Per layer: ops per byte of DRAM and of global-buffer traffic, and ops/s attained (2 ops
    per dense MAC over the layer's time); the system's ceilings (report.json ``ceilings``)."""
    c = report.get("ceilings")
    if not isinstance(c, dict) or not all(_num(c.get(k)) for k in ("peak_ops_per_s", "dram_bits_per_s",
                                                                      "buffer_bits_per_s")):
        return None
    points = []
    for x in layers:
        counts, ops = x.get("action_counts") or {}, 2 * x["dense_macs"]
        moved = {level: sum(counts.get(f"{level}.{a}", 0.0) for a in ("read", "write")) / 8
                 for level in ("DRAM", "GlobalBuffer")}
        if x["latency_s"] > 0 and all(v > 0 for v in moved.values()):
            points.append([x["name"], ops / moved["DRAM"], ops / moved["GlobalBuffer"], ops / x["latency_s"]])
    return {"points": points, "peak": c["peak_ops_per_s"], "dram": c["dram_bits_per_s"] / 8,
            "buffer": c["buffer_bits_per_s"] / 8} if points else None


def roofline_svg(d: dict) -> str:
    import numpy as np

    fig, ax = _plt().subplots(figsize=(7.0, 4.2))
    _, dram_x, buffer_x, attained = zip(*d["points"])
    xs = np.geomspace(min(min(dram_x), min(buffer_x)) / 2, max(max(dram_x), max(buffer_x)) * 2, 50)
    ax.plot(xs, np.minimum(d["peak"], d["dram"] * xs) / 1e9, color="C0", label="DRAM roof")
    ax.plot(xs, np.minimum(d["peak"], d["buffer"] * xs) / 1e9, color="C1", linestyle="--", label="buffer roof")
    ax.axhline(d["peak"] / 1e9, color="0.4", linewidth=0.8, linestyle=":", label="macros' peak")
    ax.scatter(dram_x, np.array(attained) / 1e9, marker="o", s=18, color="C0", label="layer: ops per DRAM byte")
    ax.scatter(buffer_x, np.array(attained) / 1e9, marker="^", s=18, facecolors="none", edgecolors="C1",
               label="layer: ops per buffer byte")
    ax.set_xscale("log")
    ax.set_yscale("log")
    low = min(min(attained), d["dram"] * xs[0], d["buffer"] * xs[0], d["peak"])
    ax.set_ylim(low / 2e9, d["peak"] * 2 / 1e9)  # never a flat range (every point at the peak)
    ax.set_xlabel("arithmetic intensity (ops per byte moved)")
    ax.set_ylabel("attained GOPS")
    ax.set_title("roofline: each layer against the system's ceilings")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _svg(fig)


def area_svg(d: dict) -> str:
    items = d["mm2"]
    fig, ax = _plt().subplots(figsize=(7.0, 0.3 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="C2")
    ax.set_xlabel("area (mm^2)")
    ax.set_title("area by part")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return _svg(fig)


class Link(NamedTuple):
    """A table cell linking ``href`` (relative to the page) as ``text``."""

    href: str
    text: str


def table(head: list[str], rows: list[list[object]], sortable: bool = True) -> str:
    """An HTML table; numeric cells carry their exact value in ``data-v`` for sorting."""
    def cell(x: object) -> str:
        if isinstance(x, Link):
            return f'<td><a href="{html.escape(x.href)}">{html.escape(x.text)}</a></td>'
        v = f' data-v="{x!r}"' if _num(x) else ""
        return f"<td{v}>{html.escape(fmt(x))}</td>"

    out = [f'<table class="{"sortable" if sortable else ""}"><thead><tr>'
           + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(cell(x) for x in r) + "</tr>" for r in rows]
    return "\n".join(out + ["</tbody></table>"])


_FIRST = ["name", "dense_macs", "executed_macs", "energy_j", "latency_s"]


def _layer_table(layers: list[dict]) -> str:
    extra = [k for k in layers[0] if k not in _FIRST and all(_num(x.get(k)) for x in layers)]
    keys = _FIRST + extra
    head = [label(k)[0] for k in _FIRST] + ["bits i/w/o", "busiest part"] + [label(k)[0] for k in extra]
    rows = []
    for x in tabulated(layers):
        b = x.get("bits") or {}
        bits = f"{b.get('input')}/{b.get('weight')}/{b.get('output')}" if b else ""
        cells = [human(k, x.get(k, ""))[1] for k in keys]
        rows.append(cells[:len(_FIRST)] + [bits, busiest(x)] + cells[len(_FIRST):])
    return table(head, rows)


def page(title: str, body: list[str]) -> str:
    """A whole page around ``body`` (HTML fragments), with the style and table sorting."""
    return "\n".join([f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
                      f"<style>{_STYLE}</style></head><body>", *body, f"<script>{_SORT}</script></body></html>", ""])


def levels_line(levels) -> str:
    """The hierarchy in one line: DRAM -> GlobalBuffer (2,097,152 b) -> NoC (mesh, 2 hops) -> core x4 -> ...
    (empty for anything else: an edited report.json)."""
    def one(x: dict) -> str:
        if x.get("kind") == "fanout":
            return f"{x.get('name')} x{x.get('count')}"
        if x.get("kind") == "noc":
            n = x.get("hops")
            return f"NoC ({x.get('topology')}, {f'{n:g}' if isinstance(n, int | float) else n} hops)"
        size = x.get("size_bits")
        return str(x.get("name")) + (f" ({size:,} b)" if isinstance(size, int) else "")

    if not isinstance(levels, list) or not all(isinstance(x, dict) for x in levels):
        return ""
    return "levels: " + " -> ".join(one(x) for x in levels)


def fragment(report: dict, area_m2: dict[str, float] | None = None, cache: Path | None = None) -> str:
    """The report's body: summary, plots and per-layer table (also a notebook's HTML);
    figures drawn before from the same data are taken from ``cache`` (see :func:`figure`)."""
    t = report.get("totals", {})
    engine = ", ".join(f"{k} {v}" for k, v in (report.get("engine") or {}).items())
    parts = [f"<h1>{html.escape(str(report.get('workload')))} on {html.escape(str(report.get('system')))}</h1>",
             f"<p>cimco {html.escape(str(report.get('cimco_version')))}; engine {html.escape(engine)}</p>",
             *([f"<p>{html.escape(line)}</p>"] if (line := levels_line(report.get("levels"))) else []),
             *([f"<h2>Warnings</h2><ul>{''.join(f'<li>{html.escape(str(w))}</li>' for w in report['warnings'])}"
                "</ul>"] if report.get("warnings") else []),
             "<h2>Summary</h2>",
             table(["total", "value"], [list(human(k, v)) for k, v in t.items() if _num(v) or isinstance(v, str)],
                   False)]
    if isinstance(report.get("breakdown"), list) and report["breakdown"]:
        parts += ["<h2>By level and tensor</h2><p>Reads and writes: bits at a memory, the part's own actions at a "
                  "macro part (cell operations, word-line drives, readouts).</p>",
                  table(["level", "tensor", "reads", "writes", "energy (uJ)"],
                        [[b.get("level"), b.get("tensor"), b.get("reads"), b.get("writes"),
                          human("energy_j", b.get("energy_j"))[1]] for b in report["breakdown"]])]
    layers = report.get("layers") or []
    area = area_m2 or report.get("area_by_part_m2") or {}
    if note := aggregation_note(len(layers)):
        parts.append(f"<p><b>{html.escape(note)}</b></p>")
    parts.append('<div class="plots">')
    if layers:
        bars = plot_bars(layers)
        parts += ["<h2>Energy</h2>", figure(energy_svg, energy_data(report), cache),
                  "<h2>Latency</h2>", figure(latency_svg, {"names": [x["name"] for x in bars],
                                                           "us": [x["latency_s"] * 1e6 for x in bars],
                                                           "parts": [busiest(x) for x in bars]}, cache)]
        top = top_layers(layers, MAX_LAYERS_PLOTTED)[0]  # fractions do not add up: no "other" point
        if series := _ratios(top):
            parts += ["<h2>Utilization and densities</h2>",
                      figure(ratios_svg, {"names": [x["name"] for x in top], "series": series,
                                          "top": len(top) < len(layers)}, cache)]
        if roof := roofline_data(report, top):
            parts += ["<h2>Roofline</h2>", figure(roofline_svg, roof, cache)]
    if placed := placement_data(report):
        parts += ["<h2>Weight placement</h2><p>Resident weights packed as the layers' mappings spread them; a "
                  "layer's copies (<code>replication</code>) are in other macros.</p>",
                  figure(placement_svg, placed, cache)]
    if area and all(_num(v) for v in area.values()):
        mm2 = sorted(((k, v * 1e6) for k, v in area.items() if v > 0), key=lambda kv: kv[1])
        parts += ["<h2>Area by part</h2>", figure(area_svg, {"mm2": mm2}, cache)]
    parts.append("</div>")
    if layers:
        parts += [f"<h2>Layers</h2><p>Click a column to sort. {html.escape(note)}</p>", _layer_table(layers)]
    return "\n".join(parts)


def render(report: dict, area_m2: dict[str, float] | None = None, cache: Path | None = None) -> str:
    """The report as one self-contained HTML page (``cache``: see :func:`figure`)."""
    return page(f"cimco: {report.get('workload')} on {report.get('system')}", [fragment(report, area_m2, cache)])
