"""Building blocks of the small IR nets that calibration measures and the probe times."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from analyzer.ir import Layer, Shape, frozen


def make_layer(name: str, kind: str, bottoms: Sequence[str], tops: Sequence[str],
               **attrs: Any) -> Layer:
    """A layer of ``kind`` with canonical ``attrs`` (see :mod:`analyzer.ir`)."""
    return Layer(name, kind, kind, tuple(bottoms), tuple(tops), frozen(attrs))


def input_layer(*shapes: Shape) -> Layer:
    """The net's Input layer: one top ``in0``, ``in1``, … per shape."""
    tops = tuple(f"in{i}" for i in range(len(shapes)))
    return Layer("input", "Input", "Input", (), tops, frozen({"shapes": tuple(shapes)}))


def conv_attrs(c_out: int, k: int, s: int, group: int) -> dict[str, Any]:
    """A square ``k``×``k`` convolution, stride ``s``, 'same' padding, with bias."""
    return {"num_output": c_out, "kernel": (k,), "stride": (s,), "pad": (k // 2,),
            "dilation": (1,), "group": group, "bias": True, "axis": 1}
