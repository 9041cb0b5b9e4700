"""Fitting a table to a terminal's width: short names that stay distinct, and columns given
up by priority rather than squeezed, so no row wraps and no number is ever cut.

Widths are in terminal cells; every cell text here is one line of single-width characters
(×, … and █ are single-width).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

ELLIPSIS = "…"


def fold_path(name: str) -> str:
    """A torch-style exported node path without its repeats: a segment followed by one that
    extends it (``features`` → ``features.3``) is dropped, and so is the leading ``/``:
    ``/features/features.3/block/block.0/block.0.1/Conv`` → ``features.3/block.0.1/Conv``."""
    if "/" not in name:
        return name
    parts = [p for p in name.split("/") if p]
    kept = [p for p, nxt in zip(parts, [*parts[1:], ""]) if not nxt.startswith(p + ".")]
    return "/".join(kept) or name


def common_prefix(names: Sequence[str]) -> str:
    """The longest prefix ending in ``/`` that every name has and none is only made of."""
    if len(names) < 2:
        return ""
    first, last = min(names), max(names)
    i = 0
    while i < min(len(first), len(last)) and first[i] == last[i]:
        i += 1
    prefix = first[:i]
    prefix = prefix[:prefix.rfind("/") + 1]
    return prefix if all(len(n) > len(prefix) for n in names) else ""


def short_names(names: Sequence[str]) -> list[str]:
    """Names folded (:func:`fold_path`) and without the prefix all share, when they stay
    distinct; else the names as they are."""
    folded = [fold_path(n) for n in names]
    if len(set(folded)) != len(set(names)):
        folded = list(names)
    prefix = common_prefix(folded)
    return [n[len(prefix):] for n in folded]


def cut_middle(text: str, width: int) -> str:
    """``text`` in ``width`` cells: the head and the tail kept, ``…`` between."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = (width - 1) * 2 // 5
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head):]


def cut_name(text: str, width: int) -> str:
    """A name in ``width`` cells. A path (``a/b/c``) keeps its segments: the longest one is
    cut in the middle, then the next longest, so ``features.1/block.0.1/BatchNormalization``
    becomes ``features.1/block.0.1/Batch…zation``; other names are cut in the middle."""
    if len(text) <= width:
        return text
    parts = text.split("/")
    while len(parts) > 1:
        excess = sum(map(len, parts)) + len(parts) - 1 - width
        if excess <= 0:
            return "/".join(parts)
        i = max(range(len(parts)), key=lambda j: (len(parts[j]), j))
        if len(parts[i]) <= 3:
            break
        parts[i] = cut_middle(parts[i], max(len(parts[i]) - excess, 3))
    return cut_middle(text, width)


def cut_end(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + ELLIPSIS


def distinct_width(names: Sequence[str], least: int = 8) -> int:
    """The narrowest width ≥ ``least`` at which :func:`cut_name` keeps distinct names
    distinct (the longest name's length at worst)."""
    full = max((len(n) for n in names), default=0)
    want = len(set(names))
    for w in range(min(least, full), full + 1):
        if len({cut_name(n, w) for n in names}) == want:
            return w
    return full


@dataclass(frozen=True)
class Column:
    """One column: header, cells (one per row), footer, alignment and how it may give way.

    ``drop`` orders the columns given up when the table is too wide (1 first; 0 never);
    ``cut`` says how a text column shrinks (``name``, ``end``; ``None``: never cut —
    numbers, shapes): to ``prefer`` cells before any column is given up, to ``least`` after.
    """

    header: str
    cells: tuple[str, ...]
    footer: str = ""
    right: bool = False
    drop: int = 0
    cut: str | None = None
    least: int = 0
    prefer: int = 0
    width: int = 0  # 0: as wide as its widest text

    @property
    def natural(self) -> int:
        return max([len(self.header), len(self.footer), *(len(c) for c in self.cells)])

    def at(self, width: int) -> Column:
        return replace(self, width=width)

    def text(self, i: int) -> str:
        """Row ``i``'s cell cut to the column's width."""
        cell, w = self.cells[i], self.width or self.natural
        if self.cut == "name":
            return cut_name(cell, w)
        if self.cut == "end":
            return cut_end(cell, w)
        return cell


def fit(columns: Sequence[Column], width: int, gap: int = 1) -> list[Column]:
    """The columns that fit in ``width`` cells, each with its width.

    Text columns shrink first, to their ``prefer`` width; then columns are given up in
    ``drop`` order; then text columns shrink to their ``least``. The room left goes back
    to the text columns, first to last. Numbers are never cut: if even the columns that
    never drop do not fit, the table is returned wider than ``width``.
    """
    cols = list(columns)

    def base(c: Column, floor: bool) -> int:
        if c.cut is None:
            return c.natural
        return min(c.natural, c.least if floor else max(c.least, c.prefer))

    def need(cs: Sequence[Column], floor: bool) -> int:
        return gap * (len(cs) - 1) + sum(base(c, floor) for c in cs)

    for level in sorted({c.drop for c in cols if c.drop}):
        if need(cols, False) <= width:
            break
        cols = [c for c in cols if c.drop != level]
    floor = need(cols, False) > width
    room = width - need(cols, floor)
    out = []
    for c in cols:
        extra = min(max(room, 0), c.natural - base(c, floor))
        room -= extra
        out.append(c.at(base(c, floor) + extra))
    return out
