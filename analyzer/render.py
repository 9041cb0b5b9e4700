"""Renderers: a :class:`~analyzer.analysis.Report` → rich table, JSON, CSV or Markdown.

Counts use decimal prefixes (K = 10³, M = 10⁶, G = 10⁹); bytes use binary ones
(KiB = 2¹⁰ …). JSON, CSV and Markdown carry exact integers; only the table rounds.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from analyzer.analysis import LayerResult, Report

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


def _data_summary(report: Report) -> str:
    """Both data conventions, the one that fits the source's runtime first: a runtime that
    frees dead tensors (ONNX) needs the peak; Caffe keeps every top."""
    caffe = f"{nbytes(report.totals.data_bytes)} (Caffe convention, every top)"
    peak = f"{nbytes(report.totals.data_peak_bytes)} (liveness peak)"
    return f"{peak} · {caffe}" if report.net.format == "onnx" else f"{caffe} · {peak}"


def to_table(report: Report, rows: Sequence[LayerResult], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    timed = report.totals.time_ms is not None
    h = header_lines(report)
    table = Table(title=h[0], caption=f"{h[1]}\n{h[2]}", show_footer=True,
                  header_style="bold", footer_style="bold", box=None, pad_edge=False)
    t = report.totals
    cols = [("layer", "total", "left"), ("type", "", "left"), ("output", "", "left"),
            ("n", "", "right"), ("k", "", "right"), ("m", "", "right"),
            ("MACs", count(t.macs), "right"), ("params", count(t.params), "right"),
            ("data", nbytes(t.data_bytes), "right"),
            ("workspace", nbytes(t.workspace_bytes), "right")]
    if timed:
        cols += [("time ms", f"{t.time_ms:.3f}", "right"), ("share", "", "left")]
    for name, foot, justify in cols:
        table.add_column(name, footer=foot, justify=justify, no_wrap=name != "layer",
                         min_width=12 if name == "layer" else None)
    for r in rows:
        g = r.gemm
        name = escape(r.layer.name) + ("" if r.costed else " [yellow](not costed)[/]")
        cells = [name, r.layer.type, shape_str(r.out_shapes),
                 *(("", "", "") if g is None else (str(g.n), str(g.k), str(g.m))),
                 count(r.macs) if r.macs else "", count(r.params) if r.params else "",
                 nbytes(r.data_bytes), nbytes(r.workspace_bytes) if r.workspace_bytes else ""]
        if timed:
            share = (r.time_ms or 0.0) / t.time_ms if t.time_ms else 0.0
            mark = "~" if any("(fallback" in w for w in r.warnings) else ""  # estimate
            cells += ["" if r.time_ms is None else f"{mark}{r.time_ms:.3f}",
                      "█" * round(share * 20) + f" {share:.0%}" if r.time_ms else ""]
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"data: {_data_summary(report)}   workspace: "
        f"{nbytes(t.workspace_bytes)} (per layer, summed) · "
        f"{nbytes(t.workspace_shared_bytes)} (shared)   params: {t.params:,} learnable"
        + (f" + {t.stats:,} statistics" if t.stats else "") + f" = {nbytes(t.params_bytes)}",
        highlight=False)
    if t.runtime_peak_bytes is not None:
        console.print(_runtime_line(report), highlight=False)
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)


def _runtime_line(report: Report) -> str:
    """The predicted runtime memory, beside (not part of) the three parts above."""
    return (f"runtime memory on {report.device}: {nbytes(report.totals.runtime_peak_bytes or 0)} "
            "(predicted resident growth of onnxruntime to load the model and run it once)")
