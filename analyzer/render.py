"""Renderers: a :class:`~analyzer.analysis.Report` → rich table, JSON, CSV or Markdown.

Counts use decimal prefixes (K = 10³, M = 10⁶, G = 10⁹); bytes use binary ones
(KiB = 2¹⁰ …). JSON, CSV and Markdown carry exact integers; only the table rounds.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any

from analyzer.analysis import LayerResult, Report
from analyzer.termtable import Column, distinct_width, fit, short_names

SCHEMA_VERSION = 1
CONVENTION = ("MACs = multiply-accumulates of conv/deconv/fc/recurrent layers (grouped conv "
              "per group); FLOPs = 2·MACs + element-wise ops")
SORT_KEYS = {
    "order": None, "macs": lambda r: r.macs, "flops": lambda r: r.flops,
    "params": lambda r: r.params, "data": lambda r: r.data_bytes,
    "workspace": lambda r: r.workspace_bytes, "time": lambda r: r.time_ms or 0.0,
    "name": lambda r: r.layer.name,
}


def count(n: float) -> str:
    """1234567 → '1.23M'."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}" if abs(n) / div < 100 else f"{n / div:.0f}{unit}"
    return f"{n:g}" if isinstance(n, float) else str(n)


def nbytes(n: float) -> str:
    """1536 → '1.5 KiB'."""
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}" if abs(n) / div < 100 else f"{n / div:.0f} {unit}"
    return f"{int(n)} B"


def shape_str(shapes: Sequence[Sequence[int]]) -> str:
    return " ".join("×".join(str(d) for d in s) or "scalar" for s in shapes)


def select(report: Report, sort: str = "order", top: int | None = None) -> list[LayerResult]:
    """Layers in the requested order, the first ``top`` of them."""
    rows = list(report.layers)
    key = SORT_KEYS[sort]
    if key is not None:
        rows.sort(key=key, reverse=sort != "name")
    return rows[:top] if top else rows


# --------------------------------------------------------------------------- JSON


def layer_dict(r: LayerResult) -> dict[str, Any]:
    g = r.gemm
    return {
        "name": r.layer.name, "type": r.layer.type, "kind": r.layer.kind,
        "bottoms": list(r.layer.bottoms), "tops": list(r.layer.tops),
        "output_shapes": [list(s) for s in r.out_shapes],
        "gemm": None if g is None else {"n": g.n, "k": g.k, "m": g.m, "groups": g.groups},
        "macs": r.macs, "flops": r.flops, "params": r.params, "param_stats": r.stats,
        "memory": {"params_bytes": r.params_bytes, "data_bytes": r.data_bytes,
                   "workspace_bytes": r.workspace_bytes},
        "costed": r.costed, "time_ms": r.time_ms, "warnings": list(r.warnings),
    }


def to_dict(report: Report, rows: Sequence[LayerResult] | None = None) -> dict[str, Any]:
    t = report.totals
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {"path": report.net.path, "name": report.net.name, "format": report.net.format},
        "inputs": {k: list(v) for k, v in report.inputs.items()},
        "batch": report.batch, "dtype": report.dtype, "device": report.device,
        "convention": CONVENTION,
        "layers": [layer_dict(r) for r in (report.layers if rows is None else rows)],
        "totals": {
            "macs": t.macs, "flops": t.flops, "params": t.params, "param_stats": t.stats,
            "memory": {"params_bytes": t.params_bytes, "data_bytes": t.data_bytes,
                       "data_peak_bytes": t.data_peak_bytes,
                       "workspace_bytes": t.workspace_bytes,
                       "workspace_shared_bytes": t.workspace_shared_bytes,
                       "runtime_peak_bytes": t.runtime_peak_bytes},
            "time_ms": t.time_ms,
        },
        "warnings": list(report.warnings),
    }


def to_json(report: Report, rows: Sequence[LayerResult] | None = None) -> str:
    return json.dumps(to_dict(report, rows), indent=2) + "\n"


# --------------------------------------------------------------------------- CSV

CSV_FIELDS = ["name", "type", "output_shape", "n", "k", "m", "groups", "macs", "flops",
              "params", "params_bytes", "data_bytes", "workspace_bytes", "time_ms"]


def _flat(r: LayerResult) -> list[Any]:
    g = r.gemm
    return [r.layer.name, r.layer.type, shape_str(r.out_shapes),
            *(("", "", "", "") if g is None else (g.n, g.k, g.m, g.groups)),
            r.macs, r.flops, r.params, r.params_bytes, r.data_bytes, r.workspace_bytes,
            "" if r.time_ms is None else f"{r.time_ms:.6g}"]


def to_csv(report: Report, rows: Sequence[LayerResult]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in rows:
        w.writerow(_flat(r))
    t = report.totals
    w.writerow(["TOTAL", "", "", "", "", "", "", t.macs, t.flops, t.params, t.params_bytes,
                t.data_bytes, t.workspace_bytes, "" if t.time_ms is None else f"{t.time_ms:.6g}"])
    return out.getvalue()


# --------------------------------------------------------------------------- Markdown


def header_lines(report: Report) -> list[str]:
    ins = ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in report.inputs.items())
    dev = f" · device {report.device}" if report.device else ""
    return [f"{report.net.name} ({report.net.format}, {report.net.path})",
            f"inputs: {ins or 'none'} · batch {report.batch} · {report.dtype}{dev}",
            CONVENTION]


def to_markdown(report: Report, rows: Sequence[LayerResult]) -> str:
    timed = report.totals.time_ms is not None
    head = ["layer", "type", "output", "n", "k", "m", "MACs", "params", "data", "workspace"]
    head += ["time (ms)"] if timed else []
    lines = [f"**{header_lines(report)[0]}**  ", header_lines(report)[1] + "  ",
             f"_{CONVENTION}_", "", "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|"]
    for r in rows:
        g = r.gemm
        cells = [f"`{r.layer.name}`", r.layer.type, shape_str(r.out_shapes),
                 *(("", "", "") if g is None else (str(g.n), str(g.k), str(g.m))),
                 count(r.macs), count(r.params), nbytes(r.data_bytes), nbytes(r.workspace_bytes)]
        if timed:
            cells.append("" if r.time_ms is None else f"{r.time_ms:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    t = report.totals
    cells = ["**total**", "", "", "", "", "", count(t.macs), count(t.params),
             nbytes(t.data_bytes), nbytes(t.workspace_bytes)]
    if timed:
        cells.append(f"{t.time_ms:.3f}")
    lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"data peak (liveness) {nbytes(t.data_peak_bytes)} · shared workspace "
              f"{nbytes(t.workspace_shared_bytes)} · params {nbytes(t.params_bytes)}"
              + (f" · {_runtime_line(report)}" if t.runtime_peak_bytes is not None else "")]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- rich table


def _runtime_line(report: Report) -> str:
    """The predicted runtime memory, beside (not part of) the three parts above."""
    return (f"runtime memory on {report.device}: {nbytes(report.totals.runtime_peak_bytes or 0)} "
            "(predicted resident growth of onnxruntime to load the model and run it once)")


def _data_summary(report: Report) -> str:
    """Both data conventions, the one that fits the source's runtime first: a runtime that
    frees dead tensors (ONNX) needs the peak; Caffe keeps every top."""
    caffe = f"{nbytes(report.totals.data_bytes)} (Caffe convention, every top)"
    peak = f"{nbytes(report.totals.data_peak_bytes)} (liveness peak)"
    return f"{peak} · {caffe}" if report.net.format == "onnx" else f"{caffe} · {peak}"


def _share(share: float) -> str:
    bar = "█" * round(share * 10)
    return f"{bar} {share:.0%}" if bar else f"{share:.0%}"


def table_columns(report: Report, rows: Sequence[LayerResult]) -> list[Column]:
    """The table's columns, each told how it gives way on a narrow terminal: the share bar
    goes first, then workspace, n/k/m, output shape, type, params, data, MACs; the name
    and the time stay, the name cut in the middle no narrower than keeps names distinct."""
    t = report.totals
    names = short_names([r.layer.name for r in rows])
    gemm = [r.gemm for r in rows]

    def col(header: str, cells: Sequence[str], footer: str = "", **kw: Any) -> Column:
        return Column(header, tuple(cells), footer, **kw)

    cols = [
        col("layer", names, "total", cut="name", prefer=32,
            least=max(distinct_width(names), 5)),
        col("type", [r.layer.type + ("" if r.costed else " (not costed)") for r in rows],
            cut="end", prefer=12, least=8, drop=5),
        col("output", [shape_str(r.out_shapes) for r in rows], drop=4),
        col("n", ["" if g is None else str(g.n) for g in gemm], right=True, drop=3),
        col("k", ["" if g is None else str(g.k) for g in gemm], right=True, drop=3),
        col("m", ["" if g is None else str(g.m) for g in gemm], right=True, drop=3),
        col("MACs", [count(r.macs) if r.macs else "" for r in rows], count(t.macs),
            right=True, drop=8),
        col("params", [count(r.params) if r.params else "" for r in rows], count(t.params),
            right=True, drop=6),
        col("data", [nbytes(r.data_bytes) for r in rows], nbytes(t.data_bytes), right=True,
            drop=7),
        col("workspace", [nbytes(r.workspace_bytes) if r.workspace_bytes else "" for r in rows],
            nbytes(t.workspace_bytes), right=True, drop=2),
    ]
    if t.time_ms is not None:
        def ms(r: LayerResult) -> str:
            mark = "~" if any("(fallback" in w for w in r.warnings) else ""  # an estimate
            return "" if r.time_ms is None else f"{mark}{r.time_ms:.3f}"
        cols += [col("time ms", [ms(r) for r in rows], f"{t.time_ms:.3f}", right=True),
                 col("share", [_share((r.time_ms or 0.0) / t.time_ms) if r.time_ms and t.time_ms
                               else "" for r in rows], drop=1)]
    return cols


_FUSED = re.compile(r"^fused into '.*' on (.+): 0 ms$", re.S)
_GROUPED = re.compile(r"^\d+ layer\(s\) \(")  # predict_report's own summary of layer notes


def warning_groups(report: Report) -> list[tuple[str, list[str]]]:
    """Warnings by kind: (what, the layers it applies to — empty for a whole-net warning).

    Layer notes are grouped by their text (a fusion note by device, whatever the layer fused
    into); the report's per-layer copies and summaries of them are left out.
    """
    groups: dict[str, list[str]] = {}
    from_layers: set[str] = set()
    for r in report.layers:
        for note in r.warnings:
            from_layers.add(f"layer '{r.layer.name}': {note}")
            m = _FUSED.match(note)
            kind = f"fused into the layer before it on {m.group(1)}: 0 ms" if m else note
            groups.setdefault(kind, []).append(r.layer.name)
    net = [(w, []) for w in report.net.warnings]
    rest = [(w, []) for w in report.warnings if w not in report.net.warnings
            and w not in from_layers and not _GROUPED.match(w)]
    return net + list(groups.items()) + rest  # file, layers, then the net's time


def _with_names(head: str, names: Sequence[str], width: int) -> str:
    """``head: a, b (+3 more)`` with as many names as fit in the terminal lines the head
    takes anyway (``width`` cells each)."""
    width *= -(-(len(head) + 12) // width)  # a note that wraps leaves its second line
    text = head
    for i, name in enumerate(names):
        rest = len(names) - i - 1
        candidate = f"{text}{': ' if i == 0 else ', '}{name}"
        if len(candidate) + (len(f" (+{rest} more)") if rest else 0) > width:
            return text + (f" (+{len(names) - i} more)" if i else "")
        text = candidate
    return text


def warning_lines(report: Report, width: int, verbose: bool = False,
                  shown: dict[str, str] | None = None) -> list[str]:
    """One line per kind of warning: the count, the note and as many names (as the table
    shows them) as fit in ``width``; ``verbose`` lists every name."""
    lines = []
    for what, names in warning_groups(report):
        if not names:
            lines.append(f"warning: {what}")
            continue
        head = f"warning: {len(names)} layer{'s' if len(names) > 1 else ''}: {what}"
        said = [(shown or {}).get(n, n) for n in names]
        if verbose:
            lines.append(f"{head}: {', '.join(said)}")
            continue
        lines.append(_with_names(head, said, width))
    return lines


def to_table(report: Report, rows: Sequence[LayerResult], console: Any,
             verbose: bool = False) -> None:
    """The rich table, fitted to ``console.width``: no row wraps, no number is cut, names stay
    distinct (see :mod:`analyzer.termtable`). Warnings: one line per kind."""
    from rich.markup import escape
    from rich.table import Table

    width = console.width
    h = header_lines(report)
    console.print(f"[bold]{escape(h[0])}[/]", highlight=False)
    console.print(escape(h[1]), highlight=False)
    cols = fit(table_columns(report, rows), width)
    table = Table(show_footer=True, header_style="bold", footer_style="bold", box=None,
                  pad_edge=False, padding=(0, 1, 0, 0), show_edge=False)
    for c in cols:
        table.add_column(c.header, footer=c.footer, justify="right" if c.right else "left",
                         no_wrap=True, width=c.width, overflow="crop")
    for i, r in enumerate(rows):
        table.add_row(*(escape(c.text(i)) for c in cols),
                      style=None if r.costed else "yellow")
    console.print(table)
    t = report.totals
    shown = {r.layer.name: cols[0].text(i) for i, r in enumerate(rows)}
    how = [what for what, done in (
        ("paths folded (/features/features.3/x → features.3/x)",
         any(r.layer.name != c for r, c in zip(rows, cols[0].cells))),
        ("cut in the middle (…)", any(c != shown[r.layer.name]
                                      for r, c in zip(rows, cols[0].cells)))) if done]
    if how:
        console.print(f"[dim]layer names: {' and '.join(how)}; --format json has them "
                      "whole[/]", highlight=False)
    console.print(f"data: {_data_summary(report)}", highlight=False)
    console.print(f"workspace: {nbytes(t.workspace_bytes)} (per layer, summed) · "
                  f"{nbytes(t.workspace_shared_bytes)} (shared)", highlight=False)
    console.print(f"params: {t.params:,} learnable"
                  + (f" + {t.stats:,} statistics" if t.stats else "")
                  + f" = {nbytes(t.params_bytes)}", highlight=False)
    if t.runtime_peak_bytes is not None:
        console.print(_runtime_line(report), highlight=False)
    console.print(f"[dim]{escape(h[2])}[/]", highlight=False)
    everyone = [r.layer.name for r in report.layers]  # rows may be only the --top ones
    shown = {**dict(zip(everyone, short_names(everyone))), **shown}
    for line in warning_lines(report, width, verbose, shown):
        console.print("[yellow]warning:[/]" + escape(line[len("warning:"):]), highlight=False)
