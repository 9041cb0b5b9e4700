"""Shape rules: (layer, bottom shapes) → top shapes, with Caffe's exact semantics.

Each rule takes the layer and the list of its bottom shapes and returns one shape per
top. A rule raises :class:`ShapeError` with a plain sentence when the shapes cannot
work (the pass adds the file and layer). Rules are looked up through ``registry.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from analyzer.ir import Layer, Shape


class ShapeError(ValueError):
    """The layer's parameters do not fit its input shapes."""


ShapeRule = Callable[[Layer, list[Shape]], list[Shape]]


def _canon_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ShapeError(f"axis {axis} is out of range for a {ndim}-D input")
    return axis % ndim


def _per_axis(values: Sequence[int], n: int, name: str) -> tuple[int, ...]:
    """Caffe's repeated kernel/pad/stride: one value for every spatial axis, or one each."""
    if len(values) == 1:
        return tuple(values) * n
    if len(values) != n:
        raise ShapeError(f"{name} has {len(values)} values for {n} spatial axes")
    return tuple(values)


def _count(shape: Shape) -> int:
    return math.prod(shape)


def same(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Every top has the shape of the first bottom (activations, BatchNorm, Dropout, …)."""
    if not ins:
        raise ShapeError("needs a bottom")
    return [ins[0]] * len(layer.tops)


def conv_geometry(layer: Layer, x: Shape) -> dict[str, tuple[int, ...] | int]:
    """Channels, group and per-axis kernel/stride/pad/dilation of a conv on input ``x``."""
    attr = layer.attrs.get  # layer.attr without a method call: this runs for every conv
    axis = _canon_axis(attr("axis", 1), len(x))
    spatial = x[axis + 1 :]
    n = len(spatial)
    if n == 0:
        raise ShapeError(f"input {list(x)} has no spatial axes after channel axis {axis}")
    c_in = x[axis]
    group = c_in if attr("depthwise") else attr("group", 1)
    if group < 1 or c_in % group:
        raise ShapeError(f"input channels {c_in} are not divisible by group {group}")
    c_out = attr("num_output")
    if c_out % group:
        raise ShapeError(f"num_output {c_out} is not divisible by group {group}")
    kernel = _per_axis(attr("kernel"), n, "kernel_size")
    stride = _per_axis(attr("stride", (1,)), n, "stride")
    dilation = _per_axis(attr("dilation", (1,)), n, "dilation")
    pad = _per_axis(attr("pad", (0,)), n, "pad")
    pad_end = _per_axis(attr("pad_end", pad), n, "pad_end")
    if attr("auto_pad"):
        extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        pad, pad_end = auto_pads(attr("auto_pad"), spatial, extents, stride,
                                 layer.kind == "Deconvolution",
                                 _per_axis(attr("output_padding", (0,)), n, "output_padding"))
    return {
        "axis": axis, "spatial": spatial, "c_in": c_in, "c_out": c_out, "group": group,
        "kernel": kernel, "stride": stride, "pad": pad, "pad_end": pad_end,
        "dilation": dilation,
    }


def auto_pads(mode: str, spatial: Sequence[int], extents: Sequence[int], stride: Sequence[int],
              transposed: bool = False, output_padding: Sequence[int] = ()
              ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """ONNX ``auto_pad``: (begin pads, end pads) per spatial axis.

    SAME_* makes out = ceil(in / stride) (transposed: in · stride) and puts the odd pad at the
    end (SAME_UPPER) or the beginning (SAME_LOWER); VALID pads nothing.
    """
    if mode == "VALID":
        return (0,) * len(spatial), (0,) * len(spatial)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise ShapeError(f"unknown auto_pad '{mode}'")
    begin, end = [], []
    for i, (size, e, s) in enumerate(zip(spatial, extents, stride)):
        if transposed:
            op = output_padding[i] if output_padding else 0
            total = max(s * (size - 1) + op + e - size * s, 0)
        else:
            total = max((-(-size // s) - 1) * s + e - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(total - begin[-1])
    return tuple(begin), tuple(end)


def conv_windows(g: dict) -> list[tuple[int, int, int]]:
    """Per spatial axis of a :func:`conv_geometry`: (window extent = dilation·(kernel−1)+1,
    padded input = in + pad + pad_end, stride). ONNX pads may be asymmetric."""
    return [(g["dilation"][i] * (g["kernel"][i] - 1) + 1, size + g["pad"][i] + g["pad_end"][i],
             g["stride"][i]) for i, size in enumerate(g["spatial"])]


def convolution(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """out = (in + 2·pad − (dilation·(kernel−1)+1)) / stride + 1, floored."""
    outs = []
    for x in ins:  # Caffe's conv applies the same filters to every bottom
        g = conv_geometry(layer, x)
        dims = []
        for extent, padded, stride in conv_windows(g):
            if extent > padded:
                raise ShapeError(
                    f"kernel extent {extent} is larger than the padded input {padded} "
                    f"(input {list(x)})")
            if stride < 1:
                raise ShapeError("stride must be at least 1")
            dims.append((padded - extent) // stride + 1)
        outs.append((*x[: g["axis"]], g["c_out"], *dims))
    return outs


def deconvolution(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """out = stride·(in − 1) + dilation·(kernel−1) + 1 − pad − pad_end (+ ONNX output_padding)."""
    outs = []
    for x in ins:
        g = conv_geometry(layer, x)
        extra = _per_axis(layer.attr("output_padding", (0,)), len(g["spatial"]),
                          "output_padding")
        dims = []
        for i, size in enumerate(g["spatial"]):
            extent = g["dilation"][i] * (g["kernel"][i] - 1) + 1
            d = (g["stride"][i] * (size - 1) + extent + extra[i]
                 - g["pad"][i] - g["pad_end"][i])
            if d < 1:
                raise ShapeError(f"output size {d} is not positive (input {list(x)})")
            dims.append(d)
        outs.append((*x[: g["axis"]], g["c_out"], *dims))
    return outs


def pool_geometry(layer: Layer, x: Shape) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, pad) per spatial axis of an N×C×… pooling input (pad: the begin pad)."""
    if len(x) < 3 or (len(x) != 4 and not layer.attr("nd")):
        raise ShapeError(f"Pooling needs a 4-D input, got {list(x)}")
    n = len(x) - 2
    if layer.attr("global_pooling"):
        return tuple((d, 1, 0) for d in x[2:])  # type: ignore[return-value]
    k = _per_axis(layer.attr("kernel"), n, "kernel_size")
    s = _per_axis(layer.attr("stride", (1,)), n, "stride")
    p = _per_axis(layer.attr("pad", (0,)), n, "pad")
    if layer.attr("auto_pad"):
        p = auto_pads(layer.attr("auto_pad"), x[2:], k, s)[0]
    return tuple(zip(k, s, p))  # type: ignore[return-value]


def pool_end_pads(layer: Layer, x: Shape) -> tuple[int, ...]:
    """End pad per spatial axis: ONNX ``pads`` may differ from the begin pads; Caffe's do not."""
    n = len(x) - 2
    if layer.attr("global_pooling"):
        return (0,) * n
    if layer.attr("auto_pad"):
        k = _per_axis(layer.attr("kernel"), n, "kernel_size")
        s = _per_axis(layer.attr("stride", (1,)), n, "stride")
        return auto_pads(layer.attr("auto_pad"), x[2:], k, s)[1]
    return _per_axis(layer.attr("pad_end", layer.attr("pad", (0,))), n, "pad_end")


def pooling(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Caffe rounds up (ceil) by default, then drops a last window that starts in the pad.

    ``ceil`` False floors (ONNX's default unless ceil_mode=1); ``pad_end`` is an ONNX end pad;
    ``drop_outside`` drops a last window starting past the input even when pad is 0.
    """
    x = ins[0]
    geo = pool_geometry(layer, x)
    dims = []
    for size, (k, s, p), pe in zip(x[2:], geo, pool_end_pads(layer, x)):
        if p >= k and not layer.attr("auto_pad"):
            raise ShapeError(f"pad {p} must be smaller than kernel {k}")
        if k > size + p + pe:
            raise ShapeError(f"kernel {k} is larger than the padded input {size + p + pe}")
        span = size + p + pe - k
        out = (-(-span // s) if layer.attr("ceil", True) else span // s) + 1
        if (p or layer.attr("drop_outside")) and (out - 1) * s >= size + p:
            out -= 1  # ONNX (as PyTorch and onnxruntime run it) drops it even without pad
        dims.append(out)
    top = (x[0], x[1], *dims)
    return [top] * len(layer.tops)  # a second top is the MAX argmax mask


def inner_product(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Flattens dims from ``axis`` on; out = dims[:axis] + [num_output]."""
    x = ins[0]
    axis = _canon_axis(layer.attr("axis", 1), len(x))
    return [(*x[:axis], layer.attr("num_output"))]


def concat(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    axis = _canon_axis(layer.attr("axis", 1), len(x))
    for y in ins[1:]:
        if len(y) != len(x) or any(a != b for i, (a, b) in enumerate(zip(x, y)) if i != axis):
            raise ShapeError(f"cannot concatenate {list(x)} and {list(y)} on axis {axis}")
    return [(*x[:axis], sum(y[axis] for y in ins), *x[axis + 1 :])]


def slice_(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    axis = _canon_axis(layer.attr("axis", 1), len(x))
    points = list(layer.attr("points", ()))
    n = len(layer.tops)
    if points:
        if len(points) != n - 1:
            raise ShapeError(f"{len(points)} slice points for {n} tops")
        edges = [0, *points, x[axis]]
    else:
        if x[axis] % n:
            raise ShapeError(f"axis size {x[axis]} does not split evenly into {n} tops")
        edges = [i * x[axis] // n for i in range(n + 1)]
    sizes = [b - a for a, b in zip(edges, edges[1:])]
    if any(s <= 0 for s in sizes):
        raise ShapeError(f"slice points {points} do not fit axis size {x[axis]}")
    return [(*x[:axis], s, *x[axis + 1 :]) for s in sizes]


def eltwise(layer: Layer, ins: list[Shape]) -> list[Shape]:
    for y in ins[1:]:
        if y != ins[0]:
            raise ShapeError(f"Eltwise inputs differ: {list(ins[0])} vs {list(y)}")
    return [ins[0]]


def crop(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Dims before ``axis`` from bottom 0, the rest from bottom 1 (the reference)."""
    x, ref = ins[0], ins[1]
    axis = _canon_axis(layer.attr("axis", 2), len(x))
    offs = list(layer.attr("offset", ())) or [0]
    out = list(x)
    for i in range(axis, len(x)):
        off = offs[0] if len(offs) == 1 else offs[i - axis]
        if ref[i] + off > x[i]:
            raise ShapeError(f"crop of {ref[i]} at offset {off} exceeds size {x[i]} on axis {i}")
        out[i] = ref[i]
    return [tuple(out)]


def reshape(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Caffe's Reshape: 0 copies the input dim, −1 is inferred; ``axis``/``num_axes`` window."""
    x = ins[0]
    spec = list(layer.attr("shape", ()))
    axis = layer.attr("axis", 0)
    start = axis if axis >= 0 else len(x) + axis + 1
    num_axes = layer.attr("num_axes", -1)
    end = len(x) if num_axes == -1 else start + num_axes
    if not 0 <= start <= end <= len(x):
        raise ShapeError("axis/num_axes out of range")
    dims = []
    for i, d in enumerate(spec):
        if d == 0:
            if start + i >= len(x):
                raise ShapeError(f"dim 0 at position {i} copies a missing input axis")
            dims.append(x[start + i])
        else:
            dims.append(d)
    out = [*x[:start], *dims, *x[end:]]
    if out.count(-1) > 1:
        raise ShapeError("more than one -1 in reshape")
    total = _count(x)
    if -1 in out:
        known = -math.prod(out)
        if known == 0 or total % known:
            raise ShapeError(f"cannot infer -1: {total} elements into {out}")
        out[out.index(-1)] = total // known
    if _count(tuple(out)) != total:
        raise ShapeError(f"reshape {list(x)} → {out} changes the element count")
    return [tuple(out)]


def flatten(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    if layer.attr("to_2d"):  # ONNX Flatten: always 2-D; axis in [-r, r]
        a = layer.attr("axis", 1)
        a = a + len(x) if a < 0 else a
        return [(_count(x[:a]), _count(x[a:]))]
    a = _canon_axis(layer.attr("axis", 1), len(x))
    e = _canon_axis(layer.attr("end_axis", -1), len(x))
    return [(*x[:a], _count(x[a : e + 1]), *x[e + 1 :])]


def permute(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    order = list(layer.attr("order", ()))
    for i in range(len(x)):
        if i not in order:
            order.append(i)
    if sorted(order) != list(range(len(x))):
        raise ShapeError(f"order {order} is not a permutation of {len(x)} axes")
    return [tuple(x[i] for i in order)]


def prior_box(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """SSD PriorBox: [1, 2, H·W·priors·4]; priors = |ratios incl. 1 (and flips)|·|min| + |max|."""
    x = ins[0]
    ratios = [1.0]
    for r in layer.attr("aspect_ratios", ()):
        if all(abs(r - q) >= 1e-6 for q in ratios):
            ratios.append(r)
            if layer.attr("flip", True):
                ratios.append(1.0 / r)
    n_min = len(layer.attr("min_sizes", ()))
    priors = len(ratios) * n_min + len(layer.attr("max_sizes", ()))
    return [(1, 2, x[2] * x[3] * priors * 4)]


def detection_output(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """SSD fixes [1, 1, 1, 7] at set-up; the row count is only known at run time."""
    return [(1, 1, 1, 7)]


def roi_pooling(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x, rois = ins[0], ins[1]
    return [(rois[0], x[1], layer.attr("pooled_h"), layer.attr("pooled_w"))]


def interp(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """PSPNet/DeepLab Interp: a reference bottom, zoom/shrink factors, or height/width."""
    x = ins[0]
    if len(ins) > 1:
        return [(x[0], x[1], ins[1][2], ins[1][3])]
    a = layer.attrs
    h = x[2] + a.get("pad_beg", 0) + a.get("pad_end", 0)
    w = x[3] + a.get("pad_beg", 0) + a.get("pad_end", 0)
    zoom, shrink = a.get("zoom_factor"), a.get("shrink_factor")
    if shrink and not zoom:
        h, w = (h - 1) // shrink + 1, (w - 1) // shrink + 1
    elif zoom and not shrink:
        h, w = h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1)
    elif "height" in a and "width" in a:
        h, w = a["height"], a["width"]
    elif zoom and shrink:
        h, w = (h - 1) // shrink + 1, (w - 1) // shrink + 1
        h, w = h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1)
    else:
        raise ShapeError("interp_param needs zoom_factor, shrink_factor or height and width")
    return [(x[0], x[1], h, w)]


def upsample(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """SegNet Upsample: explicit upsample_h/w, else input × scale (minus pad_out)."""
    x = ins[0]
    a = layer.attrs
    sh, sw = a.get("scale_h", a.get("scale", 2)), a.get("scale_w", a.get("scale", 2))
    h = a.get("upsample_h") or x[2] * sh - int(a.get("pad_out_h", False))
    w = a.get("upsample_w") or x[3] * sw - int(a.get("pad_out_w", False))
    if h < 1 or w < 1:
        raise ShapeError(f"upsampled size {h}×{w} is not positive (check scale)")
    return [(x[0], x[1], h, w)]


def same_on_axis(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Shape-preserving along ``axis`` (Softmax): the axis must exist in the input."""
    _canon_axis(layer.attr("axis", 1), len(ins[0]))
    return same(layer, ins)


def scalar(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Losses and Accuracy: a scalar (Caffe shape [], one element) per top."""
    return [()] * len(layer.tops)


def nothing(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Silence: no tops."""
    return []


def lstm(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """Caffe Recurrent: x is T×N×…, cont is T×N; h is T×N×num_output."""
    x = ins[0]
    if len(x) < 2:
        raise ShapeError(f"recurrent input must be T×N×…, got {list(x)}")
    if len(ins) > 1 and tuple(ins[1]) != tuple(x[:2]):
        raise ShapeError(f"cont shape {list(ins[1])} must be T×N = {list(x[:2])}")
    return [(x[0], x[1], layer.attr("num_output"))] + [
        (1, x[1], layer.attr("num_output"))] * (len(layer.tops) - 1)


def embed(layer: Layer, ins: list[Shape]) -> list[Shape]:
    return [(*ins[0], layer.attr("num_output"))]


def axpy(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """SENet Axpy: a·x + y with a of N×C×1×1; the output has x's shape."""
    if len(ins) != 3:
        raise ShapeError("Axpy needs three bottoms (a, x, y)")
    return [ins[1]]


def argmax(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    k = layer.attr("top_k", 1)
    axis = layer.attr("axis")
    if axis is None:
        return [(x[0], 2 if layer.attr("out_max_val") else 1, k)]
    axis = _canon_axis(axis, len(x))
    return [(*x[:axis], k, *x[axis + 1 :])]


def reduction(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    return [tuple(x[: _canon_axis(layer.attr("axis", 0), len(x))])]


def tile(layer: Layer, ins: list[Shape]) -> list[Shape]:
    x = ins[0]
    axis = _canon_axis(layer.attr("axis", 1), len(x))
    return [(*x[:axis], x[axis] * layer.attr("tiles", 1), *x[axis + 1 :])]


def hinted(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """The frontend's shapes, for ops whose output depends on constant inputs (Slice starts,
    Pad widths, Resize scales…): the ONNX reader applies the op's spec to those values, or
    takes ONNX shape inference's result."""
    if layer.shapes_hint is None:
        raise ShapeError(f"the output shape of this {layer.type} is not known to the frontend; "
                         "give it with --input-shape " + " ".join(
                             f"{t}=d,d,..." for t in layer.tops))
    return [tuple(s) for s in layer.shapes_hint]


def broadcast(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """NumPy broadcasting over the bottoms and any constant operands (``const_shapes``)."""
    return [broadcast_shapes([*ins, *layer.attr("const_shapes", ())])]


def broadcast_shapes(shapes: Sequence[Shape]) -> Shape:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0}
        if len(dims - {1}) > 1:
            raise ShapeError(f"shapes {[list(s) for s in shapes]} do not broadcast")
        out.append(max(dims - {1}, default=min(dims)))  # a 0-sized dim stays 0
    return tuple(out)


def matmul_operands(layer: Layer, ins: list[Shape]) -> tuple[Shape, Shape]:
    """The two matmul operands' shapes, in order and after any transposes."""
    a, b = [*ins, *layer.attr("const_shapes", ())][:2]
    if layer.attr("const_first"):
        a, b = b, a
    if layer.attr("trans_a"):
        a = (*a[:-2], a[-1], a[-2])
    if layer.attr("trans_b"):
        b = (*b[:-2], b[-1], b[-2])
    return a, b


def matmul(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """NumPy matmul of two bottoms (or a bottom and ``const_shapes``): batch dims broadcast."""
    a, b = matmul_operands(layer, ins)
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ShapeError(f"matmul of {list(a)} and {list(b)}: inner dims differ")
    batch = broadcast_shapes([a2[:-2], b2[:-2]])
    out = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        out = (*out[:-2], out[-1])
    if len(b) == 1:
        out = out[:-1]
    return [out]


def einsum_dims(layer: Layer, ins: list[Shape]) -> tuple[list[str], list[str], dict[str, int]]:
    """ONNX Einsum ``equation`` on the operands (bottoms, and constants in ``operands``):
    (each operand's index letters, the output's letters, letter → size). An ellipsis is spelt
    as one index per broadcast dim ('0', '1', …, right-aligned across operands)."""
    it = iter(ins)
    shapes = [next(it) if s is None else s for s in layer.attr("operands", (None,) * len(ins))]
    eq = layer.attr("equation", "").replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(f"equation '{eq}' has {len(terms)} operands, the node {len(shapes)}")
    ell = max((len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes)
               if "..." in t), default=0)
    ell_names = [str(i) for i in range(ell)]
    sizes: dict[str, int] = {}
    letters = []
    for t, s in zip(terms, shapes):
        head, dots, tail = t.partition("...")
        n_ell = len(s) - len(head) - len(tail) if dots else 0
        names = [*head, *ell_names[ell - n_ell:], *tail]
        if len(names) != len(s) or n_ell < 0:
            raise ShapeError(f"'{t}' does not fit an operand of shape {list(s)}")
        for c, d in zip(names, s):
            if sizes.get(c, d) != d and d != 1 and sizes[c] != 1:
                raise ShapeError(f"index '{c}' is {sizes[c]} in one operand and {d} in another")
            sizes[c] = d if sizes.get(c, 1) == 1 else sizes[c]
        letters.append(names)
    if arrow:
        head, dots, tail = rhs.partition("...")
        out = [*head, *(ell_names if dots else []), *tail]
    else:  # implicit output: broadcast dims, then letters used once, in alphabetical order
        counts = [c for names in letters for c in names if c not in ell_names]
        out = ell_names + sorted(c for c in set(counts) if counts.count(c) == 1)
    return letters, out, sizes


def einsum(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """ONNX Einsum: the output indices' sizes (explicit after '->', else implicit)."""
    _, out, sizes = einsum_dims(layer, ins)
    return [tuple(sizes[c] for c in out)]


def reduce(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """ONNX ReduceMean/Sum/Max: ``axes`` (none: all), ``keepdims`` (default 1)."""
    x = ins[0]
    axes = {_canon_axis(a, len(x)) for a in layer.attr("axes") or range(len(x))}
    if layer.attr("keepdims", 1):
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


def batch_norm(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """BatchNorm: y as x; any further top (ONNX training mode: running mean, variance) per
    channel (axis 1)."""
    x = ins[0]
    return [x] + [(x[1] if len(x) > 1 else 1,)] * (len(layer.tops) - 1)


def layer_norm(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """ONNX LayerNormalization: Y as X; Mean and InvStdDev keep X's dims before ``axis``, 1
    from it on."""
    x = ins[0]
    axis = _canon_axis(layer.attr("axis", -1), len(x))
    return [x] + [(*x[:axis], *(1,) * (len(x) - axis))] * (len(layer.tops) - 1)


def assumed_same(layer: Layer, ins: list[Shape]) -> list[Shape]:
    """A layer nobody here can shape (Python, an unknown type): identity if 1→1, else error."""
    if len(ins) == 1 and len(layer.tops) == 1:
        return [ins[0]]
    given = " ".join(f"--input-shape {t}=d,d,..." for t in layer.tops)
    raise ShapeError(
        f"cnnstat cannot know the output shape of a {layer.type!r} layer with "
        f"{len(ins)} bottom(s) and {len(layer.tops)} top(s); give it with {given}")
