"""Caffe's own output-size arithmetic, for the kinds where it differs from exact integers.

Caffe computes output sizes in C++ ``int`` and ``float``, and accepts a net whenever those
give a size its ``Blob`` can hold (≥ 0). The generic rules in ``shapes.py`` refuse a kernel
larger than its padded input; Caffe does not, so a net whose input is a run-time
placeholder (``input_dim: 1``, as OpenPose ships) loads in Caffe and must shape here the
same way. Facts followed (BVLC Caffe master):

- Convolution (``ConvolutionLayer::compute_output_shape``):
  out = (in + 2·pad − extent) / stride + 1 in ``int``; C++ division truncates toward zero,
  so a window larger than the padded input by less than the stride still gives 1.
- Pooling (``PoolingLayer::Reshape``): out = ceil or floor of
  ``float(in + 2·pad − kernel) / stride``, + 1, in single precision; then, if the layer has
  any pad (either axis), a last window starting at or past ``in + pad`` is dropped, on every
  axis.
- ``Blob::Reshape`` refuses a negative dim and accepts 0. An empty output is refused where
  Caffe's set-up writes to it: a convolution with a bias fills a bias multiplier of the
  output's spatial size, and ``Blob::mutable_cpu_data`` checks the (never allocated) data.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection

from analyzer.ir import Layer, Shape
from analyzer.layers.shapes import ShapeError, conv_geometry, conv_windows, pool_geometry


def _f32(x: float) -> float:
    """``x`` rounded to IEEE single precision (what C++ ``float`` holds)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _trunc_div(a: int, b: int) -> int:
    """C++ integer division: the quotient truncated toward zero (b > 0)."""
    return a // b if a >= 0 else -(-a // b)


def convolution(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """out = trunc((in + 2·pad − extent) / stride) + 1, as Caffe's ``int`` arithmetic."""
    outs = []
    for x in ins:  # Caffe's conv applies the same filters to every bottom
        g = conv_geometry(layer, x)
        dims = []
        for extent, padded, stride in conv_windows(g):
            if stride < 1:
                raise ShapeError("stride must be at least 1")
            d = _trunc_div(padded - extent, stride) + 1
            if d < 0:
                raise ShapeError(
                    f"kernel extent {extent} is larger than the padded input {padded}: the "
                    f"output size would be {d}, which Caffe refuses (input {list(x)})")
            dims.append(d)
        if 0 in dims and layer.attr("bias", True):
            raise ShapeError(
                f"the output would be empty ({'×'.join(map(str, dims))}): Caffe refuses a "
                f"convolution with a bias term and an empty output (input {list(x)})")
        outs.append((*x[: g["axis"]], g["c_out"], *dims))
    return outs


def pooling(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """ceil (or floor) of float32 (in + 2·pad − kernel) / stride, + 1; then Caffe's pad clip."""
    x = ins[0]
    geo = pool_geometry(layer, x)
    if layer.attr("global_pooling"):
        if 0 in x[2:]:
            raise ShapeError(f"global pooling of an empty input {list(x)}: Caffe refuses a "
                             "kernel of 0")
        if any(v != 1 for v in layer.attr("stride", (1,))) or any(layer.attr("pad", (0,))):
            raise ShapeError("global pooling takes only pad 0 and stride 1 in Caffe")
    elif layer.attr("method", "MAX") == "STOCHASTIC" and any(p for _, _, p in geo):
        raise ShapeError("Caffe pads only MAX and AVE pooling, not STOCHASTIC")
    padded_layer = any(p for _, _, p in geo)
    rnd = math.ceil if layer.attr("ceil", True) else math.floor
    dims = []
    for size, (k, s, p) in zip(x[2:], geo):
        if p >= k:
            raise ShapeError(f"pad {p} must be smaller than kernel {k}")
        out = int(rnd(_f32(_f32(size + 2 * p - k) / _f32(s)))) + 1
        if padded_layer and (out - 1) * s >= size + p:
            out -= 1  # the last window would start in the pad
        if out < 0:
            raise ShapeError(f"kernel {k} is larger than the padded input {size + 2 * p}: the "
                             f"output size would be {out}, which Caffe refuses")
        dims.append(out)
    top = (x[0], x[1], *dims)
    return [top] * len(layer.tops)  # a second top is the MAX argmax mask


def oversized_window(layer: Layer, x: Shape) -> tuple[int, int] | None:
    """(window extent, padded input) of the first axis where a Convolution or Pooling
    window is larger than its padded input, else None."""
    if layer.kind == "Convolution":
        for extent, padded, _ in conv_windows(conv_geometry(layer, x)):
            if extent > padded:
                return extent, padded
    elif layer.kind == "Pooling" and not layer.attr("global_pooling"):
        for size, (k, _, p) in zip(x[2:], pool_geometry(layer, x)):
            if k > size + 2 * p:
                return k, size + 2 * p
    return None


def _has_window(layer: Layer, x: Shape) -> bool:
    """A Convolution or (non-global) Pooling whose window is larger than one element."""
    if layer.kind == "Convolution":
        return any(k > 1 for k in conv_geometry(layer, x)["kernel"])
    if layer.kind == "Pooling" and not layer.attr("global_pooling"):
        return any(k > 1 for k, _, _ in pool_geometry(layer, x))
    return False


def placeholder_warning(layers: list[tuple[Layer, Shape]], inputs: dict[str, Shape],
                        given: Collection[str]) -> str | None:
    """One warning for a net shaped at a size it was probably not meant for, or None.

    Two signs: an input the file gives as spatially 1×1 (not set by ``--input-shape``,
    ``given``) in a net with spatial windows — OpenPose writes ``input_dim: 1 # defined at
    runtime`` — and any layer whose window is larger than its padded input (Caffe accepts
    it; the shapes follow Caffe). Names the inputs and the ``--input-shape`` that fixes it.
    """
    hit = [layer.name for layer, x in layers if oversized_window(layer, x)]
    tiny = {k: s for k, s in inputs.items()
            if k not in given and len(s) >= 3 and all(d == 1 for d in s[2:])}
    if not hit and not (tiny and any(_has_window(layer, x) for layer, x in layers)):
        return None
    named = tiny or inputs
    what = ", ".join(f"'{k}' is {'×'.join(map(str, s))}" for k, s in named.items())
    fix = " ".join(f"--input-shape {k}={','.join(map(str, s[:2]))}" + ",H,W" * (len(s) == 4)
                   + ",..." * (len(s) != 4) for k, s in named.items())
    parts = [f"input {what}"
             + (" in the file: a spatial size of 1 is usually a placeholder the program sets "
                "at run time" if tiny else "")]
    if hit:
        shown = ", ".join(hit[:5]) + (f" and {len(hit) - 5} more" if len(hit) > 5 else "")
        parts.append(f"{len(hit)} layer(s) ({shown}) have a window larger than their padded "
                     "input, which Caffe accepts; they are shaped as Caffe shapes them")
    return "; ".join(parts) + f". Give the real size with {fix}"
