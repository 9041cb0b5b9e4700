"""Small SVG charts drawn as text: horizontal bars, a stacked area over a sequence, a line
over batch sizes. No JavaScript and no external resource: each function returns one
``<svg>`` element to inline in a page. Sizes are in SVG user units (pixels at 100 %); the
``viewBox`` lets the page scale a chart to its column.

Inputs are plain numbers and labels; what they mean (ms, bytes) is the caller's business,
told through the ``fmt`` functions that turn a value into axis and label text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from analyzer.termtable import cut_name

Fmt = Callable[[float], str]

FONT = 12  # px, labels
AXIS = "#555"
GRID = "#e3e3e3"


def _e(text: str) -> str:
    return escape(text, quote=True)


def _n(x: float) -> str:
    """A coordinate, short: 12.5 → '12.5', 12.0 → '12'."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def nice_step(span: float, count: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 × 10^k) giving about ``count`` intervals over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag  # pragma: no cover - the loop always returns


def byte_step(span: float, count: int = 5) -> float:
    """A round step in bytes: a nice number of B, KiB, MiB or GiB."""
    unit = 1
    for u in (2**30, 2**20, 2**10):
        if span / count >= u:
            unit = u
            break
    return nice_step(span / unit, count) * unit


def ticks(top: float, step: float) -> list[float]:
    """0, step, 2·step, … up to the first tick ≥ top."""
    out = [0.0]
    while out[-1] < top:
        out.append(out[-1] + step)
    return out


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, value, the text after it and a hover title."""

    label: str
    value: float
    text: str
    title: str
    text_only: bool = False  # no bar (e.g. "the other layers", larger than any bar)


def hbar_chart(bars: Sequence[Bar], *, width: int = 900, label_width: int = 260,
               row: int = 20, color: str = "#3f6fb0", title: str = "") -> str:
    """Horizontal bars, one per row, in the order given; the longest spans the plot."""
    text_width = 170
    plot = width - label_width - text_width
    top = max((b.value for b in bars if not b.text_only), default=0.0) or 1.0
    height = row * len(bars) + 8
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{_e(title)}">']
    for i, b in enumerate(bars):
        y = 4 + i * row
        w = 0.0 if b.text_only else max(plot * b.value / top, 0.5 if b.value > 0 else 0.0)
        parts.append(
            f'<g><title>{_e(b.title)}</title>'
            f'<text x="{label_width - 6}" y="{_n(y + row * 0.7)}" text-anchor="end" '
            f'font-size="{FONT}">{_e(cut_name(b.label, label_width // 7))}</text>'
            f'<rect x="{label_width}" y="{_n(y + 2)}" width="{_n(w)}" height="{row - 5}" '
            f'fill="{color}"/>'
            f'<text x="{_n(label_width + w + 6)}" y="{_n(y + row * 0.7)}" font-size="{FONT}" '
            f'fill="{AXIS}">{_e(b.text)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Frame:
    """A plot area inside an SVG: margins and the value ranges of both axes."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x0: float
    x1: float
    y1: float  # y axis runs from 0 to y1

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (v - self.x0) / span * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        return self.height - self.bottom - v / (self.y1 or 1.0) * (
            self.height - self.top - self.bottom)


def _y_axis(f: Frame, step: float, fmt: Fmt) -> list[str]:
    out = []
    for t in ticks(f.y1, step):
        if t > f.y1 + 1e-9:
            break
        y = _n(f.y(t))
        out.append(f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{y}" y2="{y}" '
                   f'stroke="{GRID}"/>'
                   f'<text x="{f.left - 6}" y="{_n(f.y(t) + 4)}" text-anchor="end" '
                   f'font-size="{FONT}" fill="{AXIS}">{_e(fmt(t))}</text>')
    return out


def _open(f: Frame, title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {f.width} {f.height}" width="{f.width}" '
            f'height="{f.height}" role="img" aria-label="{_e(title)}">')


def _label(x: float, y: float, text: str, anchor: str = "start", color: str = AXIS,
           bold: bool = False) -> str:
    weight = ' font-weight="600"' if bold else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{FONT}" '
            f'fill="{color}"{weight}>{_e(text)}</text>')


def stacked_area_chart(names: Sequence[str], base: float, values: Sequence[float], *,
                       mark: int | None, mark_text: str, fmt: Fmt, base_label: str,
                       area_label: str, width: int = 900, height: int = 320,
                       title: str = "") -> str:
    """``values`` over a sequence (x = position) stacked on a constant band ``base``.

    Each position gets a step of its own width; ``mark`` (a position) is drawn as a
    vertical line with ``mark_text`` beside it. Hovering a step names it (``names``).
    When the band is more than twice the largest value it is drawn short, with a broken
    axis (zig-zag), and the values get the plot's height: the y labels then read "+ x"
    above the band.
    """
    n = len(values)
    peak = max(values, default=0.0)
    broken = base > 2 * peak > 0
    band_px = 40
    if broken:
        step = byte_step(peak)
        f = Frame(width, height, 84, 16, 50, 34, 0, max(n, 1), 1.0)
        floor_y = f.y(0)
        base_y = floor_y - band_px
        top_v = ticks(peak, step)[-1]

        def ydata(v: float) -> float:
            return base_y - v / top_v * (base_y - f.top)
        axis = []
        for t in ticks(top_v, step):
            y = _n(ydata(t))
            axis.append(f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{y}" y2="{y}" '
                        f'stroke="{GRID}"/>'
                        + _label(f.left - 6, ydata(t) + 4, "+ " + fmt(t) if t else "0",
                                 anchor="end"))
        axis.append(_label(f.left - 6, floor_y - band_px / 2 + 4, "params", anchor="end"))
    else:
        step = byte_step(base + peak)
        f = Frame(width, height, 84, 16, 50, 34, 0, max(n, 1), ticks(base + peak, step)[-1])
        floor_y, base_y = f.y(0), f.y(base)

        def ydata(v: float) -> float:
            return f.y(base + v)
        axis = _y_axis(f, step, fmt)
    parts = [_open(f, title), *axis]
    right = f.x(n)
    parts.append(f'<rect x="{f.left}" y="{_n(base_y)}" width="{_n(right - f.left)}" '
                 f'height="{_n(floor_y - base_y)}" fill="#c9d2dc"/>')
    if broken:  # a white zig-zag across the band: the axis is broken there
        zig = " ".join(f"{_n(f.left + i * 8)},{_n(base_y + 12 + (4 if i % 2 else 0))}"
                       for i in range(int((right - f.left) / 8) + 1))
        parts.append(f'<polyline points="{f.left - 8},{_n(base_y + 14)} {zig}" fill="none" '
                     'stroke="white" stroke-width="3"/>')
    path = [f"M{_n(f.x(0))},{_n(base_y)}"]
    for i, v in enumerate(values):
        y = _n(ydata(v))
        path.append(f"L{_n(f.x(i))},{y}L{_n(f.x(i + 1))},{y}")
    path.append(f"L{_n(right)},{_n(base_y)}Z")
    parts.append(f'<path d="{"".join(path)}" fill="#e8a33d" fill-opacity="0.85"/>')
    for i, name in enumerate(names):  # hover targets
        parts.append(f'<rect x="{_n(f.x(i))}" y="{f.top}" width="{_n(f.x(i + 1) - f.x(i))}" '
                     f'height="{_n(floor_y - f.top)}" fill="transparent">'
                     f'<title>{_e(name)}</title></rect>')
    legend = [(area_label, "#e8a33d"), (base_label + (" (band not to scale)" if broken
                                                       else ""), "#c9d2dc")]
    x = f.left
    for text, color in legend:
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{color}"/>'
                     + _label(x + 17, 16, text))
        x += 40 + 7 * len(text)
    if mark is not None and 0 <= mark < n:
        x = f.x(mark + 0.5)
        y = ydata(values[mark])
        anchor = "end" if x > width * 0.6 else "start"
        dx = -6 if anchor == "end" else 6
        parts.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{_n(f.top - 12)}" '
                     f'y2="{_n(floor_y)}" stroke="#b03030" stroke-dasharray="4 3"/>'
                     f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4" fill="#b03030"/>')
        parts.append(_label(x + dx, f.top - 4, mark_text, anchor=anchor, color="#b03030",
                            bold=True))
    for i in _x_positions(n):
        parts.append(_label(f.x(i + 0.5), height - f.bottom + 16, str(i + 1), anchor="middle"))
    parts.append(_label(f.width - f.right, height - 4, "layer, in execution order →",
                        anchor="end"))
    parts.append("</svg>")
    return "".join(parts)


def _x_positions(n: int) -> list[int]:
    """About ten evenly spaced positions (0-based) for tick labels, the last included."""
    if n <= 0:
        return []
    step = max(1, round(nice_step(n, 10)))
    picks = list(range(step - 1, n, step))
    return [0, *picks] if picks and picks[0] != 0 else picks or [0]


@dataclass(frozen=True)
class Series:
    """Points of one line: x values (batch sizes) and y values."""

    xs: Sequence[float]
    ys: Sequence[float]
    color: str = "#3f6fb0"
    hollow_from: float | None = None  # points with x ≥ this are drawn hollow (do not fit)


def line_chart(series: Series, *, fmt: Fmt, y_bytes: bool = False, hline: float | None = None,
               hline_text: str = "", vline: float | None = None, vline_text: str = "",
               width: int = 440, height: int = 260, title: str = "", y_title: str = "") -> str:
    """A line over batch sizes on a log₂ x axis, with an optional horizontal limit line
    (``hline``) and an optional vertical marker (``vline``)."""
    xs = [math.log2(x) for x in series.xs]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if vline is not None:
        x1 = max(x1, math.log2(vline))
    top = max([*series.ys, hline or 0.0], default=1.0) or 1.0
    step = byte_step(top) if y_bytes else nice_step(top)
    f = Frame(width, height, 76, 20, 30, 40, x0, x1 if x1 > x0 else x0 + 1,
              ticks(top, step)[-1])
    parts = [_open(f, title), *_y_axis(f, step, fmt)]
    last = -1e9
    for x, lx in zip(series.xs, xs):
        if f.x(lx) - last >= 22:  # labels closer than that would overlap
            parts.append(_label(f.x(lx), height - f.bottom + 16, f"{int(x):,}",
                                anchor="middle"))
            last = f.x(lx)
    parts.append(_label(f.width - f.right, height - 6, "batch (log scale) →", anchor="end"))
    if y_title:
        parts.append(_label(f.left, f.top - 14, y_title, anchor="start", bold=True))
    if hline is not None:
        y = _n(f.y(hline))
        parts.append(f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{y}" y2="{y}" '
                     'stroke="#b03030" stroke-dasharray="6 4"/>')
        parts.append(_label(f.width - f.right, f.y(hline) - 5, hline_text, anchor="end",
                            color="#b03030"))
    if vline is not None:
        x = _n(f.x(math.log2(vline)))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{f.top}" y2="{_n(f.y(0))}" '
                     'stroke="#2e7d32" stroke-dasharray="4 3"/>')
        anchor = "end" if f.x(math.log2(vline)) > width * 0.6 else "start"
        parts.append(_label(f.x(math.log2(vline)) + (-5 if anchor == "end" else 5),
                            f.top + 12, vline_text, anchor=anchor, color="#2e7d32", bold=True))
    pts = " ".join(f"{_n(f.x(lx))},{_n(f.y(y))}" for lx, y in zip(xs, series.ys))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="{series.color}" '
                 'stroke-width="2"/>')
    for x, lx, y in zip(series.xs, xs, series.ys):
        hollow = series.hollow_from is not None and x >= series.hollow_from
        fill = "white" if hollow else series.color
        parts.append(f'<circle cx="{_n(f.x(lx))}" cy="{_n(f.y(y))}" r="3.5" fill="{fill}" '
                     f'stroke="{series.color}" stroke-width="1.5">'
                     f'<title>batch {int(x):,}: {_e(fmt(y))}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
