"""Cost rules: (layer, bottom shapes, top shapes) → GEMM sizes, MACs, FLOPs, params, workspace.

Conventions (printed in the table header and the README):

- **MACs** are multiply-accumulates of the GEMM-like layers (convolution, deconvolution,
  inner product, batched matmul, recurrent and embedding gathers count 0); a grouped
  convolution counts per group.
- **FLOPs** = 2·MACs for those layers, plus an element-wise operation count for the
  others (1 per output element for activations, see each rule).
- **GEMM sizes** follow Lu et al. 2017: a convolution is ``groups`` matmuls of
  [n × k]·[k × m] per image with n = num_output/group, k = (C_in/group)·kh·kw,
  m = H_out·W_out. An inner product is [m × k]·[k × n] with k = input width,
  n = output width and m = rows (the batch). A matmul of two activations (ONNX MatMul,
  Einsum) is [n × k]·[k × m] per matrix, ``groups`` = the batch of matrices.
- **params** are the stored blobs the layer owns, in elements, each marked learnable
  or statistics (BatchNorm's mean/variance/scale factor are statistics).
- **workspace** is elements of the im2col column buffer Caffe allocates for a conv or
  deconv layer: C·kh·kw × spatial (none for a 1×1, stride 1, pad 0 convolution).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from analyzer.ir import Layer, Shape
from analyzer.layers.shapes import (
    ShapeError,
    conv_geometry,
    einsum_dims,
    matmul_operands,
    pool_geometry,
)


@dataclass(frozen=True)
class Gemm:
    """GEMM sizes of one layer: ``groups`` products of [n × k]·[k × m] per image."""

    n: int
    k: int
    m: int
    groups: int = 1


@dataclass(frozen=True)
class ParamBlob:
    """One stored parameter blob: its role, shape (elements) and whether it is learned."""

    role: str
    shape: Shape
    learnable: bool = True
    itemsize: int | None = None  # bytes per element when the file says (ONNX); else dtype's
    name: str | None = None  # a shared name (ONNX initializer) counts once per net

    @property
    def count(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Cost:
    gemm: Gemm | None = None
    macs: int = 0
    flops: int = 0
    params: tuple[ParamBlob, ...] = ()
    workspace: int = 0  # elements


CostRule = Callable[[Layer, list[Shape], list[Shape]], Cost]


def _n(shape: Shape) -> int:
    return math.prod(shape)


def free(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """Data movement only (Concat, Slice, Split, Reshape, Flatten, Dropout at inference…)."""
    return Cost()


def elementwise(per_element: int) -> CostRule:
    """``per_element`` FLOPs for every element of the first top."""

    def rule(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
        return Cost(flops=per_element * _n(outs[0]) if outs else 0)

    rule.__doc__ = f"{per_element} FLOP(s) per output element."
    return rule


def _conv_cost(layer: Layer, g: dict, rows: int, m: int, c_gemm: int, c_other: int,
               ins: list[Shape]) -> Cost:
    """Shared by conv and deconv: ``c_gemm`` channels form n, ``c_other`` channels form k.

    Convolution: c_gemm = C_out, c_other = C_in; deconvolution the other way round. The
    weight blob is [c_gemm, c_other/group, kh, kw]; im2col gathers c_other·kh·kw × m.
    """
    group = g["group"]
    n, k = c_gemm // group, c_other // group * _n(g["kernel"])
    macs = rows * group * n * k * m * len(ins)
    params = [ParamBlob("weight", (c_gemm, c_other // group, *g["kernel"]))]
    if layer.attr("bias", True):
        params.append(ParamBlob("bias", (g["c_out"],)))
    one = all(v == 1 for v in g["kernel"]) and all(v == 1 for v in g["stride"]) and not any(
        g["pad"] + g["pad_end"])
    workspace = 0 if one or layer.attr("depthwise") else c_other * _n(g["kernel"]) * m
    return Cost(Gemm(n, k, m, group), macs, 2 * macs, tuple(params), workspace)


def convolution(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    g = conv_geometry(layer, ins[0])
    axis, out = g["axis"], outs[0]
    return _conv_cost(layer, g, _n(out[:axis]), _n(out[axis + 1 :]), g["c_out"], g["c_in"], ins)


def deconvolution(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """The transpose of a convolution from top to bottom: n = C_in/g, k = (C_out/g)·kh·kw,
    m = the input's spatial size."""
    g = conv_geometry(layer, ins[0])
    axis, x = g["axis"], ins[0]
    return _conv_cost(layer, g, _n(x[:axis]), _n(x[axis + 1 :]), g["c_in"], g["c_out"], ins)


def inner_product(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    x = ins[0]
    axis = layer.attr("axis", 1) % len(x)
    rows, width, n = _n(x[:axis]), _n(x[axis:]), layer.attr("num_output")
    macs = rows * width * n
    w = (width, n) if layer.attr("transpose") else (n, width)
    params = [ParamBlob("weight", w)]
    if layer.attr("bias", True):
        params.append(ParamBlob("bias", (n,)))
    return Cost(Gemm(n, width, rows), macs, 2 * macs, tuple(params))


def pooling(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """One FLOP per window element per output (compare or add)."""
    window = math.prod(k for k, _, _ in pool_geometry(layer, ins[0]))
    return Cost(flops=_n(outs[0]) * window)


def lrn(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """local_size multiply-adds for the window sum, then scale, power and divide: 2·size + 3."""
    return Cost(flops=_n(outs[0]) * (2 * layer.attr("local_size", 5) + 3))


def eltwise(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """One FLOP per element per extra input."""
    return Cost(flops=_n(outs[0]) * max(len(ins) - 1, 1))


def batch_norm(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """Caffe BatchNorm: subtract mean, divide by std (2 FLOPs/element); stored statistics.
    ONNX BatchNormalization (``affine``) also scales and shifts: 4 FLOPs/element, as Caffe's
    BatchNorm + Scale pair."""
    c = ins[0][1] if len(ins[0]) > 1 else 1
    stats = (ParamBlob("mean", (c,), False), ParamBlob("variance", (c,), False),
             ParamBlob("scale_factor", (1,), False))
    return Cost(flops=(4 if layer.attr("affine") else 2) * _n(outs[0]), params=stats)


def matmul(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """A batched matmul of two activations [.., n, k]·[.., k, m], written as a convolution's
    weight·columns product: Gemm(n = rows of the first, k, m = columns of the second,
    groups = batch matrices); MACs = batch·n·k·m."""
    a, b = matmul_operands(layer, ins)
    k = a[-1]
    n = a[-2] if len(a) > 1 else 1
    m = b[-1] if len(b) > 1 else 1
    batch = _n(outs[0]) // (n * m) if n * m else 0
    macs = batch * n * k * m
    return Cost(Gemm(n, k, m, batch), macs, 2 * macs)


def einsum(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """Einsum of two operands as a batched GEMM, as :func:`matmul`: batch = indices in both
    operands and the output, n = in the first and the output, m = in the second and the
    output, k = summed indices; MACs = the product of every index size. One operand (a
    transpose or a sum): one FLOP per input element; more than two: MACs per extra operand."""
    letters, out, sizes = einsum_dims(layer, ins)
    if len(letters) < 2:
        return Cost(flops=_n(ins[0]) if ins else 0)
    every = math.prod(sizes.values())
    if len(letters) > 2:
        macs = every * (len(letters) - 1)
        return Cost(macs=macs, flops=2 * macs)
    a, b = set(letters[0]), set(letters[1])
    o = set(out)

    def size(keys: set[str]) -> int:
        return math.prod(sizes[c] for c in keys)

    gemm = Gemm(n=size(a & o - b), k=size(a & b - o), m=size(b & o - a), groups=size(a & b & o))
    return Cost(gemm, every, 2 * every)


def reduce(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """One FLOP per input element (add or compare)."""
    return Cost(flops=_n(ins[0]))


def broadcast(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """Element-wise arithmetic with broadcasting: one FLOP per output element per extra operand
    (a unary op such as Sqrt: one per element)."""
    operands = len(ins) + len(layer.attr("const_shapes", ()))
    return Cost(flops=_n(outs[0]) * max(operands - 1, 1))


def resize(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """Nearest: a copy (0); linear: 4 FLOPs per output element, as Interp; cubic: 16."""
    per = {"nearest": 0, "linear": 4, "cubic": 16}.get(layer.attr("mode", "nearest"), 4)
    return Cost(flops=per * _n(outs[0]))


def bn(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """The forks' BN layer: learned scale and shift per channel, plus running mean/variance
    (PSPNet); SegNet/ENet's inference-mode BN (``bn_mode``) stores only scale and shift."""
    c = ins[0][1]
    blobs = [ParamBlob("scale", (1, c, 1, 1)), ParamBlob("shift", (1, c, 1, 1))]
    if not layer.attr("inference_only"):
        blobs += [ParamBlob("mean", (1, c, 1, 1), False),
                  ParamBlob("variance", (1, c, 1, 1), False)]
    return Cost(flops=2 * _n(outs[0]), params=tuple(blobs))


def _axes(layer: Layer, x: Shape) -> Shape:
    axis = layer.attr("axis", 1) % len(x)
    num = layer.attr("num_axes", 1)
    return tuple(x[axis:] if num == -1 else x[axis : axis + num])


def scale(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """A learned per-channel scale (and bias) unless the scale comes from a second bottom."""
    if len(ins) > 1:
        return Cost(flops=_n(outs[0]))
    s = _axes(layer, ins[0])
    blobs = [ParamBlob("scale", s)] + ([ParamBlob("bias", s)] if layer.attr("bias") else [])
    return Cost(flops=len(blobs) * _n(outs[0]), params=tuple(blobs))


def bias(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    if len(ins) > 1:
        return Cost(flops=_n(outs[0]))
    return Cost(flops=_n(outs[0]), params=(ParamBlob("bias", _axes(layer, ins[0])),))


def prelu(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """One learned slope per channel (axis 1), or one for all with channel_shared."""
    if not layer.attr("channel_shared") and len(ins[0]) < 2:
        raise ShapeError(f"PReLU needs a channel axis; input is {list(ins[0])}")
    c = 1 if layer.attr("channel_shared") else ins[0][1]
    return Cost(flops=_n(outs[0]), params=(ParamBlob("slope", (c,)),))


def normalize(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """SSD Normalize: L2 norm (square, sum, root, divide ≈ 3/element) and a learned scale."""
    c = 1 if layer.attr("channel_shared") else ins[0][1]
    return Cost(flops=4 * _n(outs[0]), params=(ParamBlob("scale", (c,)),))


def embed(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """A table look-up: no arithmetic, a [input_dim × num_output] table (+ bias)."""
    n = layer.attr("num_output")
    blobs = [ParamBlob("weight", (layer.attr("input_dim"), n))]
    if layer.attr("bias", True):
        blobs.append(ParamBlob("bias", (n,)))
    return Cost(flops=_n(outs[0]) if layer.attr("bias", True) else 0, params=tuple(blobs))


def recurrent(layer: Layer, ins: list[Shape], outs: list[Shape]) -> Cost:
    """Caffe LSTM: W_xc [4H×I], b_c [4H], W_hc [4H×H] (+ W_xc_static [4H×I_s] with a third
    bottom). MACs: T·N·4H·(I+H) + N·4H·I_s. RNN: W_xh, b_h, W_hh, W_ho, b_o."""
    x = ins[0]
    t, n, i = x[0], x[1], _n(x[2:])
    h = layer.attr("num_output")
    if layer.kind == "LSTM":
        blobs = [ParamBlob("W_xc", (4 * h, i)), ParamBlob("b_c", (4 * h,))]
        macs = t * n * 4 * h * (i + h)
        if len(ins) > 2:
            i_s = _n(ins[2][1:])
            blobs.append(ParamBlob("W_xc_static", (4 * h, i_s)))
            macs += n * 4 * h * i_s
        blobs.append(ParamBlob("W_hc", (4 * h, h)))
        gemm = Gemm(4 * h, i + h, t * n)
    else:
        blobs = [ParamBlob("W_xh", (h, i)), ParamBlob("b_h", (h,)), ParamBlob("W_hh", (h, h)),
                 ParamBlob("W_ho", (h, h)), ParamBlob("b_o", (h,))]
        macs = t * n * h * (i + 2 * h)
        gemm = Gemm(h, i + h, t * n)
    return Cost(gemm, macs, 2 * macs, tuple(blobs))
