"""``cnnstat diff A B``: what changing a network costs, layer by layer and in total.

A and B are model sources (a path, or ``REV:path`` for a file at a git revision). Both are
analysed with the same options; their layers are then paired:

1. **by name** — a layer of B pairs with the layer of A of the same name;
2. **as a rename** — a B layer left over pairs with a left-over A layer of the same kind,
   the same parameters (every canonical attr, and the stored weight shapes when the file
   has them) and the same inputs, where B's blob names are first translated into A's
   through the tops of the layers already paired (so a renamed chain pairs layer by layer)
   and Caffe's automatic Split layers are looked through. The first such A layer in
   execution order wins;
3. **by order within kind** — only when A and B come from different frontends (a Caffe
   prototxt against an ONNX export, whose node names differ) or with ``--match order``:
   the i-th left-over Convolution of A pairs with the i-th left-over Convolution of B, and
   so on for every kind. For such pairs only shapes, GEMM sizes and costs are compared
   (attrs and blob names are written differently by each frontend).

What is left over is *removed* (A only) or *added* (B only). A pair whose type, inputs,
input or output shapes, GEMM sizes, attrs or costs differ is *changed*; a pair that only
differs in name is *renamed*; the rest are *unchanged* and folded away.

Units: MACs, FLOPs and params are counts; ``*_bytes`` are bytes; ``time_ms`` is
milliseconds (only with ``--device``). Every Δ is B − A; Δ % is relative to A.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.analysis import LayerResult, Report
from analyzer.commands.options import (
    Parser,
    add_model_options,
    analyze_path,
    options_from,
    write_output,
    write_rich,
)
from analyzer.errors import CnnstatError
from analyzer.render import count, nbytes, shape_str

SCHEMA_VERSION = 1

# Per-layer figures, in display order: (key, label, is a byte count).
FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("macs", "MACs", False), ("flops", "FLOPs", False), ("params", "params", False),
    ("params_bytes", "params memory", True), ("data_bytes", "data memory", True),
    ("workspace_bytes", "workspace", True), ("time_ms", "time (ms)", False),
)
# Net totals add the two other memory conventions (liveness peak, one shared workspace).
TOTAL_FIGURES: tuple[tuple[str, str, bool], ...] = (
    *FIGURES[:5], ("data_peak_bytes", "data peak (liveness)", True),
    FIGURES[5], ("workspace_shared_bytes", "workspace shared", True), FIGURES[6],
)
STATUSES = ("changed", "added", "removed", "renamed", "unchanged")


@dataclass(frozen=True)
class Change:
    """One thing that differs between the two versions of a layer (``old`` → ``new``)."""

    field: str  # 'type', 'inputs', 'input shape', 'output shape', 'n', 'k', 'm', an attr…
    old: Any
    new: Any


@dataclass(frozen=True)
class LayerDiff:
    """One row of the diff. ``old`` is A's layer, ``new`` B's; one may be None."""

    status: str  # changed | added | removed | renamed | unchanged
    old: LayerResult | None
    new: LayerResult | None
    changes: tuple[Change, ...] = ()
    matched_by: str | None = None  # name | rename | order (None for added/removed)

    @property
    def name(self) -> str:
        if self.old is not None and self.new is not None and \
                self.old.layer.name != self.new.layer.name:
            return f"{self.old.layer.name} → {self.new.layer.name}"
        r = self.new or self.old
        assert r is not None
        return r.layer.name

    @property
    def type(self) -> str:
        r = self.new or self.old
        assert r is not None
        return r.layer.type

    def figure(self, side: str, key: str) -> float | None:
        """A figure of one side (``old`` or ``new``); 0 for a side the layer is absent from."""
        r = self.old if side == "old" else self.new
        return 0 if r is None else getattr(r, key)

    def delta(self, key: str) -> float | None:
        a, b = self.figure("old", key), self.figure("new", key)
        if key == "time_ms" and (a is None or b is None):
            return None
        return (b or 0) - (a or 0)

    @property
    def cost_changed(self) -> bool:
        return any(self.delta(k) for k, _, _ in FIGURES)


@dataclass(frozen=True)
class NetDiff:
    """The whole comparison: both reports and every layer row in display order."""

    old: Report
    new: Report
    layers: tuple[LayerDiff, ...]
    matching: str  # 'name' or 'name+order' (which strategies were used)

    @property
    def timed(self) -> bool:
        return self.old.totals.time_ms is not None and self.new.totals.time_ms is not None

    def total(self, side: str, key: str) -> float | None:
        return getattr((self.old if side == "old" else self.new).totals, key)

    def delta(self, key: str) -> float | None:
        a, b = self.total("old", key), self.total("new", key)
        return None if a is None or b is None else b - a

    def figures(self) -> list[tuple[str, str, bool]]:
        return [f for f in TOTAL_FIGURES if f[0] != "time_ms" or self.timed]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for d in self.layers if d.status == s) for s in STATUSES}

    @property
    def shown(self) -> list[LayerDiff]:
        return [d for d in self.layers if d.status != "unchanged"]

    def uncosted(self) -> str:
        """'`x` (B), …' for layers cnnstat has no cost rule for (their Δ is not known), or ''."""
        names = [f"{r.layer.name} ({side})" for side, rep in (("A", self.old), ("B", self.new))
                 for r in rep.layers if not r.costed]
        return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")

    @property
    def totals_changed(self) -> bool:
        return any(self.delta(k) for k, _, _ in self.figures())

    @property
    def cost_changed(self) -> bool:
        """True when a total or any one layer's cost differs (costs may move between layers)."""
        return self.totals_changed or any(d.cost_changed for d in self.layers)


# ---------------------------------------------------------------------------------------
# Pairing


def _family(fmt: str) -> str:
    return fmt.split("-")[0]  # caffe-v1 / caffe-v2 → caffe


def _split_origin(report: Report) -> dict[str, str]:
    """Blob → the blob it copies, through Caffe's automatic Split layers."""
    origin: dict[str, str] = {}
    for r in report.layers:
        if r.layer.kind == "Split" and len(r.layer.bottoms) == 1:
            src = origin.get(r.layer.bottoms[0], r.layer.bottoms[0])
            for t in r.layer.tops:
                origin[t] = src
    return origin


def _weights(r: LayerResult) -> tuple[tuple[int, ...], ...] | None:
    w = r.layer.weights
    return None if w is None else tuple(x.shape for x in w)


def _value(v: Any) -> Any:
    """An attr value made JSON-friendly and comparable: tuples → lists, recursively."""
    if isinstance(v, (tuple, list)):
        return [_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


class _Pairer:
    """Pairs A's and B's layers (see the module docstring) and lists what changed."""

    def __init__(self, old: Report, new: Report, order: bool) -> None:
        self.old, self.new, self.order = old, new, order
        self.old_origin, self.new_origin = _split_origin(old), _split_origin(new)
        self.blob_map: dict[str, str] = {}  # B blob name → A blob name
        self.pair: dict[int, tuple[int, str]] = {}  # B index → (A index, how)
        self.used: set[int] = set()

    def _inputs(self, i: int, side: str) -> tuple[str, ...]:
        if side == "old":
            r, origin = self.old.layers[i], self.old_origin
            return tuple(origin.get(b, b) for b in r.layer.bottoms)
        r, origin = self.new.layers[i], self.new_origin
        return tuple(self.blob_map.get(origin.get(b, b), origin.get(b, b))
                     for b in r.layer.bottoms)

    def _same_signature(self, i_old: int, i_new: int) -> bool:
        a, b = self.old.layers[i_old], self.new.layers[i_new]
        return (a.layer.kind == b.layer.kind and dict(a.layer.attrs) == dict(b.layer.attrs)
                and _weights(a) == _weights(b)
                and self._inputs(i_old, "old") == self._inputs(i_new, "new"))

    def _record(self, i_new: int, i_old: int, how: str) -> None:
        self.pair[i_new] = (i_old, how)
        self.used.add(i_old)
        for t_new, t_old in zip(self.new.layers[i_new].layer.tops,
                                self.old.layers[i_old].layer.tops):
            self.blob_map[t_new] = t_old

    def run(self) -> dict[int, tuple[int, str]]:
        by_name: dict[str, list[int]] = {}
        for i, r in enumerate(self.old.layers):
            by_name.setdefault(r.layer.name, []).append(i)
        named: dict[int, int] = {}
        for j, r in enumerate(self.new.layers):
            free = by_name.get(r.layer.name)
            if free:
                named[j] = free.pop(0)
        reserved = set(named.values())
        for j in range(len(self.new.layers)):
            if j in named:
                self._record(j, named[j], "name")
                continue
            for i in range(len(self.old.layers)):
                if i not in self.used and i not in reserved and self._same_signature(i, j):
                    self._record(j, i, "rename")
                    break
        if self.order:
            left_old: dict[str, list[int]] = {}
            for i, r in enumerate(self.old.layers):
                if i not in self.used:
                    left_old.setdefault(r.layer.kind, []).append(i)
            for j, r in enumerate(self.new.layers):
                free = left_old.get(r.layer.kind)
                if j not in self.pair and free:
                    self._record(j, free.pop(0), "order")
        return self.pair

    def changes(self, i_old: int, i_new: int, how: str) -> list[Change]:
        a, b = self.old.layers[i_old], self.new.layers[i_new]
        out: list[Change] = []
        if how != "order":
            if a.layer.type != b.layer.type:
                out.append(Change("type", a.layer.type, b.layer.type))
            ins_a, ins_b = self._inputs(i_old, "old"), self._inputs(i_new, "new")
            if ins_a != ins_b:
                out.append(Change("inputs", list(a.layer.bottoms), list(b.layer.bottoms)))
            for key in sorted(set(a.layer.attrs) | set(b.layer.attrs)):
                va, vb = _value(a.layer.attr(key)), _value(b.layer.attr(key))
                if va != vb:
                    out.append(Change(key, va, vb))
        same_io = a.in_shapes == a.out_shapes and b.in_shapes == b.out_shapes
        if same_io and a.out_shapes != b.out_shapes:  # a shape-keeping layer (ReLU…)
            out.append(Change("shape", [list(s) for s in a.out_shapes],
                              [list(s) for s in b.out_shapes]))
        else:
            if a.in_shapes != b.in_shapes:
                out.append(Change("input shape", [list(s) for s in a.in_shapes],
                                  [list(s) for s in b.in_shapes]))
            if a.out_shapes != b.out_shapes:
                out.append(Change("output shape", [list(s) for s in a.out_shapes],
                                  [list(s) for s in b.out_shapes]))
        ga, gb = a.gemm, b.gemm
        if (ga is None) != (gb is None):
            out.append(Change("gemm", None if ga is None else [ga.n, ga.k, ga.m, ga.groups],
                              None if gb is None else [gb.n, gb.k, gb.m, gb.groups]))
        elif ga is not None and gb is not None:
            for key in ("n", "k", "m", "groups"):
                if getattr(ga, key) != getattr(gb, key):
                    out.append(Change(key, getattr(ga, key), getattr(gb, key)))
        if how != "order" and _weights(a) != _weights(b):
            out.append(Change("weights", _value(_weights(a)), _value(_weights(b))))
        return out


def diff_reports(old: Report, new: Report, match: str = "auto") -> NetDiff:
    """Pair the layers of two analysed nets and say what changed (A = old, B = new).

    ``match``: ``auto`` (by name and renames; by order within kind when the two come from
    different frontends), ``name`` (never by order) or ``order`` (always).
    """
    if match not in ("auto", "name", "order"):
        raise CnnstatError(f"--match must be auto, name or order, got '{match}'")
    order = match == "order" or (
        match == "auto" and _family(old.net.format) != _family(new.net.format))
    pairer = _Pairer(old, new, order)
    pairs = pairer.run()
    paired_old = {i for i, _ in pairs.values()}
    rows: list[LayerDiff] = []
    next_old = 0  # A's layers before this index are already placed

    def removed_before(limit: int) -> None:
        """Place A's unpaired layers that come before A's layer ``limit`` (execution order)."""
        nonlocal next_old
        for i in range(next_old, limit):
            if i not in paired_old:
                rows.append(LayerDiff("removed", old.layers[i], None))
        next_old = max(next_old, limit)

    for j, r in enumerate(new.layers):
        if j not in pairs:
            rows.append(LayerDiff("added", None, r))
            continue
        i, how = pairs[j]
        removed_before(i)
        changes = pairer.changes(i, j, how)
        d = LayerDiff("unchanged", old.layers[i], r, tuple(changes), how)
        if changes or d.cost_changed:
            status = "changed"
        elif how == "rename":
            status = "renamed"
        else:
            status = "unchanged"
        rows.append(LayerDiff(status, d.old, d.new, d.changes, how))
    removed_before(len(old.layers))
    return NetDiff(old, new, tuple(rows), "name+order" if order else "name")


# ---------------------------------------------------------------------------------------
# Formatting helpers


def pct(old: float | None, new: float | None) -> float | None:
    """Δ % relative to old; None when old is 0 (or either side is unknown)."""
    if old is None or new is None or old == 0:
        return None
    return (new - old) / old * 100.0


def fmt_pct(old: float | None, new: float | None) -> str:
    p = pct(old, new)
    if p is None:
        return "new" if old == 0 and new else ""
    if p == 0:
        return "0%"
    return f"{p:+.2g}%" if abs(p) < 1 else f"{p:+.1f}%"


def fmt_figure(value: float | None, key: str, is_bytes: bool) -> str:
    if value is None:
        return "–"
    if key == "time_ms":
        return f"{value:.3f}"
    return nbytes(value) if is_bytes else count(value)


def fmt_delta(value: float | None, key: str, is_bytes: bool) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    sign = "+" if value > 0 else ""
    if key == "time_ms":
        return f"{value:+.3f}"
    return sign + (nbytes(value) if is_bytes else count(value))


def _fmt_value(v: Any) -> str:
    if isinstance(v, list) and v and all(isinstance(x, list) for x in v):
        return shape_str(v)  # a list of shapes
    if isinstance(v, list):
        return "×".join(str(x) for x in v) if v else "[]"
    return "–" if v is None else str(v)


def describe(c: Change) -> str:
    """'num_output 384 → 512'."""
    if c.field == "inputs":
        return f"inputs {', '.join(c.old)} → {', '.join(c.new)}"
    return f"{c.field} {_fmt_value(c.old)} → {_fmt_value(c.new)}"


def what_changed(d: LayerDiff) -> str:
    if d.status == "added":
        r = d.new
        assert r is not None
        return f"added ({shape_str(r.out_shapes)})"
    if d.status == "removed":
        r = d.old
        assert r is not None
        return f"removed (was {shape_str(r.out_shapes)})"
    parts = [describe(c) for c in d.changes]
    if d.matched_by == "rename":
        parts.insert(0, "renamed")
    elif d.matched_by == "order" and d.old and d.new and d.old.layer.name != d.new.layer.name:
        parts.insert(0, "paired by order")
    return "; ".join(parts) or "cost only"


def _cell(d: LayerDiff, key: str, is_bytes: bool) -> str:
    delta = d.delta(key)
    text = fmt_delta(delta, key, is_bytes)
    if delta and d.status == "changed":
        p = fmt_pct(d.figure("old", key), d.figure("new", key))
        text += f" ({p})" if p else ""
    return text


def _layer_figures(net_diff: NetDiff) -> list[tuple[str, str, bool]]:
    keep = ("macs", "params", "params_bytes", "data_bytes", "workspace_bytes", "time_ms")
    return [f for f in FIGURES if f[0] in keep and (f[0] != "time_ms" or net_diff.timed)]


def headline(nd: NetDiff) -> str:
    """One sentence: the Δ of MACs, params, each memory part and time, or 'no cost change'."""
    c = nd.counts()
    moved = ", ".join(f"{c[s]} {s}" for s in STATUSES[:4] if c[s])
    if not nd.cost_changed:
        return "No cost change" + (f" (layers: {moved})." if moved
                                   else "; the layers are the same.")
    if not nd.totals_changed:
        return f"Totals unchanged, but cost moved between layers — layers: {moved}"
    parts, same = [], []
    for key, label, is_bytes in nd.figures():
        if key in ("flops", "data_peak_bytes", "workspace_shared_bytes"):
            continue
        name = {"time_ms": "time"}.get(key, label)
        d = nd.delta(key)
        if not d:
            same.append(name)
            continue
        p = fmt_pct(nd.total("old", key), nd.total("new", key))
        unit = " ms" if key == "time_ms" else ""
        parts.append(f"{name} {fmt_delta(d, key, is_bytes)}{unit}" + (f" ({p})" if p else ""))
    text = " · ".join(parts)
    text += f"; {', '.join(same)} unchanged" if same else ""
    return text + (f" — layers: {moved}" if moved else "")


def biggest(nd: NetDiff, n: int = 3) -> list[LayerDiff]:
    """The layers with the largest change: by |Δ time| with a device, else |Δ MACs|, |Δ params|."""
    def key(d: LayerDiff) -> tuple[float, ...]:
        t = abs(d.delta("time_ms") or 0.0) if nd.timed else 0.0
        return (t, abs(d.delta("macs") or 0), abs(d.delta("params") or 0),
                abs(d.delta("data_bytes") or 0))
    rows = [d for d in nd.shown if d.cost_changed]
    return sorted(rows, key=key, reverse=True)[:n]


def _biggest_text(nd: NetDiff, code: Callable[[str], str]) -> str:
    """'`conv4` +0.331 ms, +37.4M MACs, +221K params; …' for :func:`biggest`."""
    out = []
    for d in biggest(nd):
        bits = []
        for key, label, is_bytes in (("time_ms", "ms", False), ("macs", "MACs", False),
                                     ("params", "params", False), ("data_bytes", "data", True),
                                     ("workspace_bytes", "workspace", True)):
            delta = d.delta(key)
            if delta and (key != "time_ms" or nd.timed) and len(bits) < 3:
                bits.append(f"{fmt_delta(delta, key, is_bytes)} {label}")
        out.append(f"{code(d.name)} ({d.status}) {', '.join(bits)}")
    return "; ".join(out)


def _title(nd: NetDiff) -> tuple[str, str]:
    o, n = nd.old, nd.new
    title = f"{o.net.path} → {n.net.path}"
    ins = ", ".join(f"{k} {'×'.join(map(str, v))}" for k, v in n.inputs.items())
    dev = f" · device {n.device}" if n.device else ""
    return title, f"{n.net.name} · inputs: {ins or 'none'} · batch {n.batch} · {n.dtype}{dev}"


# ---------------------------------------------------------------------------------------
# Renderers


def to_markdown(nd: NetDiff) -> str:
    """A PR comment: the summary first, per-layer details in a collapsible block."""
    title, sub = _title(nd)
    lines = [f"#### cnnstat diff: `{nd.old.net.path}` → `{nd.new.net.path}`", "",
             f"**{headline(nd)}**", ""]
    big = _biggest_text(nd, lambda s: f"`{s}`")
    if big and nd.cost_changed:
        lines += [f"Largest changes: {big}", ""]
    if nd.uncosted():
        lines += [f"⚠ not costed (no rule for their type, counted as 0): {nd.uncosted()}", ""]
    lines += [f"<sub>{sub}</sub>", "", "| | A | B | Δ | Δ % |", "|---|---:|---:|---:|---:|"]
    for key, label, is_bytes in nd.figures():
        a, b = nd.total("old", key), nd.total("new", key)
        lines.append(f"| {label} | {fmt_figure(a, key, is_bytes)} | "
                     f"{fmt_figure(b, key, is_bytes)} | {fmt_delta(nd.delta(key), key, is_bytes)}"
                     f" | {fmt_pct(a, b)} |")
    shown = nd.shown
    c = nd.counts()
    if shown:
        figs = _layer_figures(nd)
        lines += ["", f"<details><summary>{len(shown)} layer(s) differ "
                  f"({c['unchanged']} unchanged not shown)</summary>", "",
                  "| layer | type | status | what changed | "
                  + " | ".join(f"Δ {label}" for _, label, _ in figs) + " |",
                  "|---|---|---|---|" + "---:|" * len(figs)]
        for d in shown:
            cells = [f"`{d.name}`", d.type, d.status, what_changed(d)]
            cells += [_cell(d, k, b) for k, _, b in figs]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def to_table(nd: NetDiff, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    title, sub = _title(nd)
    console.print(f"[bold]{escape(title)}[/]", highlight=False)
    console.print(escape(sub), highlight=False)
    console.print(f"[bold]{escape(headline(nd))}[/]", highlight=False)
    if nd.uncosted():
        console.print(f"[yellow]not costed[/] (no rule for their type, counted as 0): "
                      f"{escape(nd.uncosted())}", highlight=False)
    totals = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (("", "left"), ("A", "right"), ("B", "right"), ("Δ", "right"),
                          ("Δ %", "right")):
        totals.add_column(name, justify=justify)  # type: ignore[arg-type]
    for key, label, is_bytes in nd.figures():
        a, b = nd.total("old", key), nd.total("new", key)
        totals.add_row(label, fmt_figure(a, key, is_bytes), fmt_figure(b, key, is_bytes),
                       fmt_delta(nd.delta(key), key, is_bytes), fmt_pct(a, b))
    console.print(totals)
    shown = nd.shown
    c = nd.counts()
    if not shown:
        console.print(f"no layer differs ({c['unchanged']} unchanged)", highlight=False)
        return
    figs = _layer_figures(nd)
    table = Table(box=None, pad_edge=False, header_style="bold",
                  caption=f"{c['unchanged']} unchanged layers not shown")
    table.add_column("layer")
    table.add_column("type")
    table.add_column("status")
    table.add_column("what changed", overflow="fold")
    for _, label, _ in figs:
        table.add_column(f"Δ {label}", justify="right", no_wrap=True)
    for d in shown:
        table.add_row(escape(d.name), d.type, d.status, escape(what_changed(d)),
                      *[_cell(d, k, b) for k, _, b in figs])
    console.print(table)


def _side(r: LayerResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    g = r.gemm
    return {"name": r.layer.name, "type": r.layer.type, "kind": r.layer.kind,
            "output_shapes": [list(s) for s in r.out_shapes],
            "gemm": None if g is None else {"n": g.n, "k": g.k, "m": g.m, "groups": g.groups},
            **{k: getattr(r, k) for k, _, _ in FIGURES}}


def to_dict(nd: NetDiff) -> dict[str, Any]:
    """The diff as plain data (``schema_version`` 1, documented in the README)."""
    def model(rep: Report) -> dict[str, Any]:
        return {"path": rep.net.path, "name": rep.net.name, "format": rep.net.format,
                "inputs": {k: list(v) for k, v in rep.inputs.items()}, "batch": rep.batch}

    keys = [k for k, _, _ in TOTAL_FIGURES]
    return {
        "schema_version": SCHEMA_VERSION,
        "old": model(nd.old), "new": model(nd.new),
        "dtype": nd.new.dtype, "device": nd.new.device, "matching": nd.matching,
        "cost_changed": nd.cost_changed,
        "counts": nd.counts(),
        "totals": {
            "old": {k: nd.total("old", k) for k in keys},
            "new": {k: nd.total("new", k) for k in keys},
            "delta": {k: nd.delta(k) for k in keys},
            "delta_pct": {k: pct(nd.total("old", k), nd.total("new", k)) for k in keys},
        },
        "warnings": {"old": list(nd.old.warnings), "new": list(nd.new.warnings)},
        "layers": [{
            "status": d.status, "matched_by": d.matched_by,
            "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in d.changes],
            "old": _side(d.old), "new": _side(d.new),
            "delta": {k: d.delta(k) for k, _, _ in FIGURES},
        } for d in nd.shown],
    }


def to_json(nd: NetDiff) -> str:
    return json.dumps(to_dict(nd), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------
# git textconv: a stable, line-per-layer summary


def _compact(v: Any) -> str:
    v = _value(v)
    if isinstance(v, list):
        return "x".join(_compact(x) for x in v) if all(not isinstance(x, list) for x in v) \
            else ",".join(_compact(x) for x in v)
    return str(v).replace(" ", "_")


def textconv_lines(report: Report) -> list[str]:
    """One line per layer (every figure an exact integer), then a TOTAL line.

    No paths, dates or versions: the text changes only when the net's cost or structure does.
    """
    ins = " ".join(f"{k}={'x'.join(map(str, v))}" for k, v in report.inputs.items())
    dev = f" device={report.device}" if report.device else ""
    lines = [f"# cnnstat {report.net.name} ({report.net.format}) inputs: {ins or 'none'} "
             f"batch={report.batch} dtype={report.dtype}{dev}"]
    for r in report.layers:
        g = r.gemm
        bits = [r.layer.name, r.layer.type,
                "out=" + (" ".join("x".join(map(str, s)) for s in r.out_shapes) or "-")]
        if r.layer.bottoms:
            bits.append("in=" + ",".join(r.layer.bottoms))
        bits += [f"{k}={_compact(r.layer.attr(k))}" for k in sorted(r.layer.attrs)]
        if g is not None:
            bits.append(f"gemm={g.n}x{g.k}x{g.m}/{g.groups}")
        for key, label in (("macs", "macs"), ("params", "params"), ("stats", "stats"),
                           ("params_bytes", "params_bytes"), ("data_bytes", "data_bytes"),
                           ("workspace_bytes", "workspace_bytes")):
            if getattr(r, key):
                bits.append(f"{label}={getattr(r, key)}")
        if r.time_ms is not None:
            bits.append(f"time_ms={r.time_ms:.4f}")
        lines.append("  ".join(bits))
    t = report.totals
    total = (f"TOTAL  macs={t.macs}  flops={t.flops}  params={t.params}  stats={t.stats}  "
             f"params_bytes={t.params_bytes}  data_bytes={t.data_bytes}  "
             f"data_peak_bytes={t.data_peak_bytes}  workspace_bytes={t.workspace_bytes}  "
             f"workspace_shared_bytes={t.workspace_shared_bytes}")
    if t.time_ms is not None:
        total += f"  time_ms={t.time_ms:.4f}"
    return [*lines, total]


def run_textconv(args: argparse.Namespace) -> int:
    """``cnnstat --textconv FILE``: print the summary; on bad input print the reason and the
    raw text (so ``git diff`` still shows the change) and exit 0, since a failing textconv
    aborts the whole ``git diff``."""
    try:
        lines = textconv_lines(analyze_path(args.model, args))
    except CnnstatError as e:
        try:
            with open(args.model, encoding="utf-8", errors="replace") as fh:
                raw = fh.read()
        except OSError:
            raw = ""
        write_output(f"# cnnstat cannot analyse this version: {e.message}\n{raw}", args.output)
        return 0
    write_output("\n".join(lines) + "\n", args.output)
    return 0


# ---------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="cnnstat diff", description=(
        "Compare the cost of two versions of a network: added, removed and changed layers "
        "with Δ MACs, params, memory and time. A source is a path or REV:path (git)."))
    p.add_argument("old", metavar="A", help="the version before (path or REV:path)")
    p.add_argument("new", metavar="B", help="the version after (path or REV:path)")
    add_model_options(p)
    p.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    p.add_argument("--match", choices=["auto", "name", "order"], default="auto",
                   help="pair layers by name and renames (auto also pairs by order within kind "
                   "when the files come from different frontends)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def diff_sources(old: str, new: str, args: argparse.Namespace) -> NetDiff:
    """Analyse both versions and diff them. An --input-shape shapes the version(s) having a
    blob of that name, so each side of a Caffe-vs-ONNX diff (``data`` vs ``input``) or of a
    renamed input gets its own; a name that neither has is an error."""
    a = analyze_path(old, args, own_shapes_only=True)
    b = analyze_path(new, args, own_shapes_only=True)
    tops = {t for report in (a, b) for r in report.layers for t in r.layer.tops}
    for name in options_from(args).shapes:
        if name not in tops:
            raise CnnstatError(f"--input-shape names '{name}', a blob of neither version "
                               f"(inputs: {', '.join(a.inputs) or 'none'} before, "
                               f"{', '.join(b.inputs) or 'none'} after)", f"{old} vs {new}")
    return diff_reports(a, b, getattr(args, "match", "auto"))


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    nd = diff_sources(args.old, args.new, args)
    if args.format == "json":
        write_output(to_json(nd), args.output)
    elif args.format == "markdown":
        write_output(to_markdown(nd), args.output)
    else:
        write_rich(lambda console: to_table(nd, console), args.output)
    return 0

