"""Read the output of ``caffe time``: per-layer forward/backward times and the pass averages.

Caffe's ``time`` command (tools/caffe.cpp) prints, after "Average time per layer:", one line
per layer in execution order, ``<name>\\tforward: <ms> ms.`` and ``<name>\\tbackward: <ms> ms.``
(the name right-aligned in 10 columns, behind glog's ``I... caffe.cpp:NNN]`` prefix), then
``Average Forward pass: <ms> ms.``. Times are milliseconds per iteration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import CnnstatError

_LAYER = re.compile(r"\]\s*(?P<name>\S.*?)\s*\t(?P<dir>forward|backward): "
                    r"(?P<ms>[0-9.eE+-]+) ms\.")
_FORWARD = re.compile(r"Average Forward pass: (?P<ms>[0-9.eE+-]+) ms\.")


@dataclass(frozen=True)
class CaffeTime:
    """One ``caffe time`` run: layer name → forward ms (execution order), and the pass total."""

    path: str
    forward_ms: dict[str, float]
    backward_ms: dict[str, float]
    forward_total_ms: float | None


def parse_caffe_time(text: str, path: str = "<log>") -> CaffeTime:
    """Parse a ``caffe time`` log; raise CnnstatError when it holds no per-layer times."""
    fwd: dict[str, float] = {}
    bwd: dict[str, float] = {}
    total = None
    for line in text.splitlines():
        m = _LAYER.search(line)
        if m:
            (fwd if m["dir"] == "forward" else bwd)[m["name"]] = float(m["ms"])
            continue
        m = _FORWARD.search(line)
        if m:
            total = float(m["ms"])
    if not fwd:
        raise CnnstatError("no per-layer 'forward: … ms.' lines: not a 'caffe time' log", path)
    return CaffeTime(path, fwd, bwd, total)


def read_caffe_time(path: str) -> CaffeTime:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise CnnstatError(f"cannot read: {e.strerror}", path) from None
    return parse_caffe_time(text, path)
