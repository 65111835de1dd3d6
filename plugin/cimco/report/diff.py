"""``cimco diff A B``: two report directories compared, totals, energy by component and
layer by layer, as text (the terminal, ``diff.md``) and a page (``diff.html``).

Both report.json files are checked like user input first (:func:`cimco.cli.read_report`).
Every figure is one of the two reports' numbers or their ratio; the components that explain
the energy difference are those whose energies differ most, in joules."""

from __future__ import annotations

import html
from pathlib import Path

# the totals compared: (key, label, scale to the unit shown, unit)
TOTALS = (("energy_j", "energy", 1e6, "uJ"), ("latency_s", "latency", 1e6, "us"),
          ("tops_per_w", "TOPS/W", 1.0, ""), ("tops_per_w_on_chip", "TOPS/W on chip", 1.0, ""),
          ("tops", "TOPS", 1.0, ""), ("fps", "FPS", 1.0, ""), ("area_m2", "area", 1e6, "mm^2"),
          ("dense_macs", "dense MACs", 1.0, ""), ("executed_macs", "executed MACs", 1.0, ""),
          ("macros_needed", "macros needed", 1.0, ""))
MAX_ROWS = 200  # layers listed (the largest energy differences first); the rest counted


def _ratio(a: float, b: float) -> str:
    if a == b:
        return "1"
    return f"{b / a:.4g}x" if a else "new"


def _num(v: float, scale: float) -> str:
    v *= scale
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def tables(a: dict, b: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The comparison as (title, header, rows) tables: totals, energy by component (largest
    difference first) and layers (matched by name; largest energy difference first)."""
    ta, tb = a["totals"], b["totals"]
    totals = [[label + (f" ({unit})" if unit else ""), _num(ta[k], s), _num(tb[k], s), _ratio(ta[k], tb[k])]
              for k, label, s, unit in TOTALS if k in ta and k in tb]
    totals += [[k, str(ta.get(k)), str(tb.get(k)), "" if ta.get(k) == tb.get(k) else "differs"]
               for k in ("mode", "weights", "batch")]
    ea, eb = a["energy_by_component"], b["energy_by_component"]
    parts = sorted(set(ea) | set(eb), key=lambda p: -abs(eb.get(p, 0.0) - ea.get(p, 0.0)))
    diff = tb["energy_j"] - ta["energy_j"]
    components = []
    for p in parts:
        d = eb.get(p, 0.0) - ea.get(p, 0.0)
        components.append([p, _num(ea.get(p, 0.0), 1e6), _num(eb.get(p, 0.0), 1e6), _num(d, 1e6),
                           f"{d / diff:.1%}" if diff and d else ""])
    la = {x["name"]: x for x in a["layers"]}
    lb = {x["name"]: x for x in b["layers"]}
    names = sorted(set(la) | set(lb),
                   key=lambda n: -abs(lb.get(n, {}).get("energy_j", 0.0) - la.get(n, {}).get("energy_j", 0.0)))
    layers = []
    for n in names[:MAX_ROWS]:
        x, y = la.get(n), lb.get(n)
        if x is None or y is None:
            layers.append([n, *(["only in B"] if x is None else ["only in A"]), "", "", "", "", ""])
            continue
        layers.append([n, _num(x["energy_j"], 1e6), _num(y["energy_j"], 1e6), _ratio(x["energy_j"], y["energy_j"]),
                       _num(x["latency_s"], 1e6), _num(y["latency_s"], 1e6), _ratio(x["latency_s"], y["latency_s"])])
    if len(names) > MAX_ROWS:
        layers.append([f"({len(names) - MAX_ROWS:,} more layers, smaller differences)", "", "", "", "", "", ""])
    return [("Totals", ["", "A", "B", "B/A"], totals),
            ("Energy by component (uJ), largest difference first",
             ["component", "A", "B", "B - A", "share of the difference"], components),
            ("Layers, largest energy difference first",
             ["layer", "energy A (uJ)", "energy B (uJ)", "B/A", "latency A (us)", "latency B (us)", "B/A"], layers)]


def heading(a: dict, b: dict, da: str, db: str) -> list[str]:
    return [f"A: {da} ({a['workload']} on {a['system']}, backend {a.get('backend', '?')})",
            f"B: {db} ({b['workload']} on {b['system']}, backend {b.get('backend', '?')})"]


def markdown(a: dict, b: dict, da: str, db: str) -> str:
    lines = ["# cimco diff", "", *(f"- {h}" for h in heading(a, b, da, db))]
    for title, head, rows in tables(a, b):
        lines += ["", f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def page(a: dict, b: dict, da: str, db: str) -> str:
    from cimco.report import html as h

    body = ["<h1>cimco diff</h1>", "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in heading(a, b, da, db))
            + "</ul>"]
    for title, head, rows in tables(a, b):
        body += [f"<h2>{html.escape(title)}</h2>", h.table(head, rows)]
    return h.page("cimco diff", body)


def write(a: dict, b: dict, da: str, db: str, out: Path) -> list[Path]:
    from cimco.io import write_atomic

    files = {"diff.md": markdown(a, b, da, db), "diff.html": page(a, b, da, db)}
    for name, text in files.items():
        write_atomic(out / name, text)
    return [out / n for n in files]
