"""A report as one self-contained HTML page (what ``cnnstat report`` writes).

The page holds the header line and totals, a time-share chart (per layer, largest first),
the memory held while the net runs (liveness convention, parameters as a band beneath, the
peak marked and named), with a device the batch plan (images/s and memory over batch, the
budget as a line, the largest batch that fits marked), the per-layer table (sortable by any
column) and the warnings.

Self-contained: nothing is fetched — no external script, stylesheet, font or image; the
charts are inline SVG from :mod:`analyzer.charts`, and the only script is a few lines of
plain JavaScript that sort the table. Every figure is a field of ``cnnstat MODEL --format
json`` (of ``cnnstat plan --format json`` in the plan section): cells carry the exact value
in ``data-v`` and show the CLI table's rounding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from analyzer import __version__
from analyzer.analysis import Report
from analyzer.charts import Bar, Series, hbar_chart, line_chart, stacked_area_chart
from analyzer.layers.memory import DTYPE_BYTES, live_data_bytes
from analyzer.render import CONVENTION, count, nbytes, to_dict
from analyzer.termtable import short_names

TIME_BARS = 24  # layers drawn one by one in the time-share chart; the rest share a bar


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _shape(dims: Sequence[Sequence[int]]) -> str:
    return " ".join("×".join(str(d) for d in s) or "scalar" for s in dims)


def _ms(x: float) -> str:
    return f"{x:.3f}"


def _fig(label: str, value: Any, text: str, exact: str = "") -> str:
    """One total: a label, the rounded text, the exact value in data-v (and as a tooltip)."""
    title = f' title="{_e(exact)}"' if exact else ""
    return (f'<div class="fig"><span class="k">{_e(label)}</span>'
            f'<span class="v" data-v="{_e(json.dumps(value))}"{title}>{_e(text)}</span></div>')


# ---------------------------------------------------------------------------------------
# Sections.


def _header(d: Mapping[str, Any]) -> str:
    m = d["model"]
    ins = ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in d["inputs"].items())
    dev = f" · device <b>{_e(d['device'])}</b>" if d["device"] else ""
    return (f'<header><h1>{_e(m["name"])}</h1>'
            f'<p class="sub">{_e(m["format"])} · <code>{_e(m["path"])}</code></p>'
            f'<p class="meta">inputs: {_e(ins or "none")} · batch {_e(d["batch"])} · '
            f'{_e(d["dtype"])}{dev}</p></header>')


def _totals(d: Mapping[str, Any]) -> str:
    t, mem = d["totals"], d["totals"]["memory"]
    figs = [_fig("MACs", t["macs"], count(t["macs"]), f"{t['macs']:,}"),
            _fig("FLOPs", t["flops"], count(t["flops"]), f"{t['flops']:,}"),
            _fig("params", t["params"], count(t["params"]), f"{t['params']:,} learnable"),
            _fig("param statistics", t["param_stats"], count(t["param_stats"]),
                 f"{t['param_stats']:,} stored, not learnable"),
            _fig("params memory", mem["params_bytes"], nbytes(mem["params_bytes"]),
                 f"{mem['params_bytes']:,} B"),
            _fig("data (Caffe: every top)", mem["data_bytes"], nbytes(mem["data_bytes"]),
                 f"{mem['data_bytes']:,} B"),
            _fig("data peak (liveness)", mem["data_peak_bytes"],
                 nbytes(mem["data_peak_bytes"]), f"{mem['data_peak_bytes']:,} B"),
            _fig("workspace (per conv, summed)", mem["workspace_bytes"],
                 nbytes(mem["workspace_bytes"]), f"{mem['workspace_bytes']:,} B"),
            _fig("workspace (shared)", mem["workspace_shared_bytes"],
                 nbytes(mem["workspace_shared_bytes"]), f"{mem['workspace_shared_bytes']:,} B")]
    runtime = mem.get("runtime_peak_bytes")
    if runtime is not None:
        figs.append(_fig("runtime memory (onnxruntime)", runtime, nbytes(runtime),
                         f"{runtime:,} B: predicted resident growth to load and run once"))
    if t["time_ms"] is not None:
        figs.insert(0, _fig("time (ms)", t["time_ms"], _ms(t["time_ms"]),
                            f"predicted forward time on {d['device']}"))
    return f'<section id="totals"><h2>Totals</h2><div class="figs">{"".join(figs)}</div></section>'


def _time_chart(d: Mapping[str, Any]) -> str:
    layers = d["layers"]
    timed = d["totals"]["time_ms"] is not None
    key = "time_ms" if timed else "macs"
    total = (sum(x[key] or 0 for x in layers)) or 1
    ranked = sorted((x for x in layers if x[key]), key=lambda x: -x[key])

    def text(v: float) -> str:
        return f"{_ms(v)} ms · {v / total:.1%}" if timed else f"{count(v)} · {v / total:.1%}"

    short = dict(zip((x["name"] for x in layers), short_names([x["name"] for x in layers])))
    bars = [Bar(short[x["name"]], x[key], text(x[key]),
                f"{x['name']} ({x['type']}): {text(x[key])}") for x in ranked[:TIME_BARS]]
    rest = ranked[TIME_BARS:]
    if rest:
        v = sum(x[key] for x in rest)
        bars.append(Bar(f"the other {len(rest)} layers", v, text(v),
                        f"{len(rest)} layers, each below the ones above", text_only=True))
    if timed:
        head = "Where the time goes"
        note = (f"Predicted forward time per layer on {_e(d['device'])}, largest first; the "
                "share is of the layers' sum (the total adds a per-layer overhead).")
    else:
        head = "Where the MACs go"
        note = "No device given (<code>--device</code>): MACs per layer, largest first."
    if not bars:
        return f'<section id="time-share"><h2>{head}</h2><p>No layer does any work.</p></section>'
    by_type: dict[str, list[float]] = {}
    for x in ranked:
        by_type.setdefault(x["type"], []).append(x[key])
    kinds = sorted(by_type.items(), key=lambda kv: -sum(kv[1]))
    type_bars = [Bar(f"{t} ({len(vs)})", sum(vs), text(sum(vs)),
                     f"{len(vs)} {t} layer(s): {text(sum(vs))}") for t, vs in kinds]
    return (f'<section id="time-share"><h2>{head}</h2><p class="note">{note}</p>'
            f'<h3>Per layer</h3>{hbar_chart(bars, title=head + ", per layer")}'
            f'<h3>Per layer type (layer count)</h3>'
            f'{hbar_chart(type_bars, title=head + ", per layer type")}</section>')


def _memory_chart(report: Report, d: Mapping[str, Any]) -> str:
    layers = d["layers"]
    live = live_data_bytes(report.net.layers, [r.out_shapes for r in report.layers],
                           DTYPE_BYTES[report.dtype])
    mem = d["totals"]["memory"]
    params, peak = mem["params_bytes"], mem["data_peak_bytes"]
    at = live.index(peak) if live and peak in live else None
    peak_name = short_names([x["name"] for x in layers])[at] if at is not None else "?"
    chart = stacked_area_chart(
        [f"{i + 1}. {x['name']} ({x['type']})" for i, x in enumerate(layers)], params, live,
        mark=at, mark_text=f"peak: {nbytes(peak)} of data at '{peak_name}'", fmt=nbytes,
        base_label=f"params {nbytes(params)}", area_label="data alive",
        width=1150, title="Memory while the net runs")
    return ('<section id="memory"><h2>Memory while the net runs</h2>'
            '<p class="note">Bytes of data alive while each layer runs (its inputs, its outputs '
            'and every blob a later layer still reads: a runtime that frees a blob after its '
            'last reader; in-place layers and Splits share storage), on top of the parameters '
            f'(grey band, {_e(nbytes(params))}). Peak {_e(nbytes(peak))} at layer '
            f'<b>{_e(peak_name)}</b>. Caffe keeps every top instead: '
            f'{_e(nbytes(mem["data_bytes"]))}. Workspace (im2col, '
            f'{_e(nbytes(mem["workspace_shared_bytes"]))} shared) is not drawn.</p>'
            f'{chart}</section>')


def _plan_section(plan: Mapping[str, Any] | None, note: str | None) -> str:
    if plan is None:
        return (f'<section id="plan"><h2>Batch plan</h2><p class="note">{_e(note)}</p>'
                '</section>') if note else ""
    rows = plan["rows"]
    budget, best, top = plan["memory_budget_bytes"], plan["best_batch"], plan["max_batch"]
    fits_to = next((r["batch"] for r in rows if r["fits"] is False), None)
    xs = [r["batch"] for r in rows]
    speed = line_chart(Series(xs, [r["images_per_s"] or 0.0 for r in rows], "#3f6fb0",
                              fits_to), fmt=lambda v: f"{v:,.1f}", vline=top,
                       vline_text=f"max batch {top:,}" if top else "",
                       title="images per second over batch", y_title="images/s")
    memory = line_chart(Series(xs, [r["memory_bytes"] for r in rows], "#c27c1a", fits_to),
                        fmt=nbytes, y_bytes=True, hline=budget,
                        hline_text=f"budget {nbytes(budget)}" if budget else "", vline=top,
                        vline_text=f"max batch {top:,}" if top else "",
                        title="memory over batch", y_title=f"memory ({plan['convention']})")
    head = ["batch", "time ms", "ms/image", "images/s", "memory", "fits"]
    body = []
    for r in rows:
        marks = [t for t, b in (("max batch", top), ("best images/s", best)) if b == r["batch"]]
        cells = [(r["batch"], f"{r['batch']:,}"),
                 (r["time_ms"], "" if r["time_ms"] is None else _ms(r["time_ms"])),
                 (r["ms_per_image"], "" if r["ms_per_image"] is None else _ms(r["ms_per_image"])),
                 (r["images_per_s"], "" if r["images_per_s"] is None
                  else f"{r['images_per_s']:.1f}"),
                 (r["memory_bytes"], nbytes(r["memory_bytes"]))]
        tds = "".join(f'<td class="num" data-v="{_e(json.dumps(v))}">{_e(t)}</td>'
                      for v, t in cells)
        fits = {None: "", True: "yes", False: "no"}[r["fits"]]
        cls = ' class="nofit"' if r["fits"] is False else ""
        body.append(f'<tr{cls}>{tds}<td>{fits}</td><td>{_e(", ".join(marks))}</td></tr>')
    where = plan["budget_origin"] or ""
    budget_text = ("no memory budget" if budget is None else
                   f"budget {nbytes(budget)} ({where}"
                   + (f": {plan['budget_note']}" if plan["budget_note"] else "") + ")")
    summary = (f"Largest batch that fits: <b>{top:,}</b> "
               f"({_e(nbytes(plan['max_batch_memory_bytes']))}). " if top else "")
    if best:
        summary += f"Most images/s among the rows: batch <b>{best:,}</b>. "
    return ('<section id="plan"><h2>Batch plan</h2>'
            f'<p class="note">{_e(budget_text)}; memory under the {_e(plan["convention"])} '
            f'convention = {_e(nbytes(plan["memory_fixed_bytes"]))} fixed + '
            f'{_e(nbytes(plan["memory_per_image_bytes"]))} per image. {summary}'
            'Hollow points do not fit.</p>'
            f'<div class="pair">{speed}{memory}</div>'
            '<table class="plan"><thead><tr>'
            + "".join(f'<th class="{"num" if i < 5 else ""}">{h}</th>'
                      for i, h in enumerate(head)) + '<th></th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></section>')


COLUMNS = (  # (header, JSON getter, text, numeric)
    ("#", None, None, True),
    ("layer", None, None, False),  # the short name; the whole one in its tooltip
    ("type", lambda x: x["type"], None, False),
    ("output", lambda x: _shape(x["output_shapes"]), None, False),
    ("n", lambda x: x["gemm"] and x["gemm"]["n"], str, True),
    ("k", lambda x: x["gemm"] and x["gemm"]["k"], str, True),
    ("m", lambda x: x["gemm"] and x["gemm"]["m"], str, True),
    ("MACs", lambda x: x["macs"], count, True),
    ("FLOPs", lambda x: x["flops"], count, True),
    ("params", lambda x: x["params"], count, True),
    ("data", lambda x: x["memory"]["data_bytes"], nbytes, True),
    ("workspace", lambda x: x["memory"]["workspace_bytes"], nbytes, True),
    ("time ms", lambda x: x["time_ms"], _ms, True),
)


def _layer_table(d: Mapping[str, Any]) -> str:
    timed = d["totals"]["time_ms"] is not None
    cols = [c for c in COLUMNS if timed or c[0] != "time ms"]
    most_ms = max((x["time_ms"] or 0.0 for x in d["layers"]), default=0.0)
    head = "".join(f'<th class="{"num" if c[3] else "txt"}" tabindex="0">{_e(c[0])}</th>'
                   for c in cols)
    rows = []
    short = short_names([x["name"] for x in d["layers"]])
    for i, x in enumerate(d["layers"], 1):
        cells = []
        for name, get, fmt, numeric in cols:
            if name == "#":
                cells.append(f'<td class="num" data-v="{i}">{i}</td>')
                continue
            if name == "layer":
                cells.append(f'<td class="name" title="{_e(x["name"])}">{_e(short[i - 1])}</td>')
                continue
            assert get is not None
            v = get(x)
            if not numeric:
                cells.append(f"<td>{_e(v)}</td>")
                continue
            if v is None:
                cells.append('<td class="num"></td>')
                continue
            shown = fmt(v) if (v or name == "time ms" or name == "data") else ""
            bar = ""
            if name == "time ms" and most_ms:  # the slowest layer fills the cell
                bar = f'<span class="bar" style="width:{100 * v / most_ms:.1f}%"></span>'
            cells.append(f'<td class="num" data-v="{_e(json.dumps(v))}">{bar}{_e(shown)}</td>')
        warn = ' class="warn"' if x["warnings"] else ""
        title = f' title="{_e("; ".join(x["warnings"]))}"' if x["warnings"] else ""
        rows.append(f'<tr data-i="{i}"{warn}{title}>{"".join(cells)}</tr>')
    return ('<section id="layers"><h2>Layers</h2><p class="note">Click a column heading to '
            'sort (again to reverse). ' + _e(CONVENTION) + '. Rows with a warning are tinted; '
            'hover for it. Names are shortened as in the terminal table (hover a name for it '
            'whole).</p><div class="scroll"><table id="layer-table" class="sortable">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
            '</section>')


def _warnings(d: Mapping[str, Any]) -> str:
    ws = d["warnings"]
    if not ws:
        return ""
    items = "".join(f"<li>{_e(w)}</li>" for w in ws)
    return (f'<section id="warnings"><details{" open" if len(ws) <= 8 else ""}>'
            f'<summary>{len(ws)} warning(s)</summary><ul>{items}</ul></details></section>')


STYLE = """
:root{color-scheme:light}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:#1d2329;background:#fff}
main{max-width:1200px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:26px;margin:0}h3{font-size:14px;margin:12px 0 2px;color:#333}
h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd}
.sub,.meta{margin:2px 0;color:#444}.note{color:#555;margin:4px 0 8px;max-width:980px}
code{font-size:12px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px}
.fig{border:1px solid #dde3ea;border-radius:4px;padding:6px 10px;background:#f7f9fb}
.fig .k{display:block;font-size:12px;color:#555}.fig .v{font-size:19px;font-weight:600}
svg.chart{max-width:100%;height:auto;display:block}
svg text{font-family:inherit}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:16px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:12.5px}
th,td{padding:2px 6px;white-space:nowrap;text-align:left}
th.num,td.num{text-align:right}
thead th{position:sticky;top:0;background:#eef2f6;border-bottom:1px solid #ccd;cursor:pointer}
tbody tr:nth-child(even){background:#f8f9fb}
tr.warn td:first-child{box-shadow:inset 3px 0 #e0a020}
td.name{max-width:440px;overflow:hidden;text-overflow:ellipsis}
td{position:relative}
.bar{position:absolute;left:0;top:3px;bottom:3px;background:#3f6fb0;opacity:.22}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
tr.nofit{color:#888}
.scroll{overflow-x:auto}
footer{margin-top:28px;color:#777;font-size:12px}
@media print{
body{font-size:10px}main{max-width:none;padding:0}
h2,h3{break-after:avoid}svg.chart,section#memory,section#plan{break-inside:avoid}
thead th{position:static}.scroll{overflow:visible}
table{font-size:8px}th,td{padding:1px 4px}
td.name{max-width:none;white-space:normal}
thead{display:table-header-group}
.fig{background:none}
}
"""

SCRIPT = """
"use strict";
for (const th of document.querySelectorAll("table.sortable th")) {
  const sort = () => {
    const body = th.closest("table").tBodies[0], col = th.cellIndex;
    const num = th.classList.contains("num"), first = num ? "descending" : "ascending";
    const order = th.getAttribute("aria-sort") === first
      ? (num ? "ascending" : "descending") : first;
    for (const h of th.parentNode.children) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", order);
    const sign = order === "ascending" ? 1 : -1;
    const key = td => num ? Number(td.dataset.v || 0) : td.textContent;
    const rows = Array.from(body.rows).sort((a, b) => {
      const x = key(a.cells[col]), y = key(b.cells[col]);
      return sign * (x < y ? -1 : x > y ? 1 : 0) || a.dataset.i - b.dataset.i;
    });
    body.append(...rows);
  };
  th.addEventListener("click", sort);
  th.addEventListener("keydown", e => { if (e.key === "Enter") sort(); });
}
"""


def to_html(report: Report, plan: Mapping[str, Any] | None = None,
            plan_note: str | None = None) -> str:
    """The whole page. ``plan`` is ``cnnstat plan``'s JSON dict (with a device);
    ``plan_note`` says why there is none."""
    d = to_dict(report)
    body = "".join([_header(d), _totals(d), _time_chart(d), _memory_chart(report, d),
                    _plan_section(plan, plan_note), _layer_table(d), _warnings(d)])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>cnnstat report: {_e(d['model']['name'])}</title>"
            f"<style>{STYLE}</style></head>\n<body><main>{body}"
            f"<footer>cnnstat {_e(__version__)} · counts use decimal prefixes (K = 10³), "
            "bytes binary ones (KiB = 2¹⁰); exact values: the totals' tooltips, "
            "<code>--format json</code>.</footer></main>"
            f"<script>{SCRIPT}</script></body></html>\n")
