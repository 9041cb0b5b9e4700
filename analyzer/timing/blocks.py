"""Calibration blocks: small ONNX graphs of the blocks modern CNNs are made of.

``cnnstat calibrate`` times one-layer nets for the per-kind formulas, but what onnxruntime
runs for a layer depends on its neighbours: it fuses BatchNorm and most activations into
the convolution before them, turns ``x · Sigmoid(x)`` into one node, leaves the broadcast
``Mul`` of a squeeze-and-excitation block alone, and inserts layout reorders where a node
it runs in its blocked (NCHWc) layout meets one it does not. So the grid also holds the
blocks themselves, written as a torchvision export writes them (ONNX ops, opset 17):

- squeeze-and-excitation: GlobalAveragePool → 1×1 conv → ReLU/SiLU → 1×1 conv →
  Sigmoid/HardSigmoid → broadcast Mul (MobileNetV3, EfficientNet, RegNetY);
- inverted residuals (MobileNetV2/V3, MnasNet, EfficientNet): 1×1 expand, depthwise 3×3 or
  5×5 at stride 1 or 2, 1×1 project, each with BatchNorm and ReLU/ReLU6/HardSwish/SiLU, and
  EfficientNetV2's fused MBConv (a dense 3×3 with SiLU before the residual Add);
- grouped bottlenecks of the group widths torchvision uses (RegNet 8–64 channels per group,
  ResNeXt 32×4d/32×8d), with and without SE, residual Add + ReLU;
- ShuffleNetV2's unit (channel split, branch, concat, channel shuffle), the shuffle with its
  view sizes computed from a symbolic batch dim (shape arithmetic the runtime runs),
  DenseNet's BN-ReLU-conv layer after a Concat;
- ConvNeXt's block (depthwise 7×7, Transpose to channels-last, LayerNorm, Linear, GELU as
  ``x·0.5·(1+erf(x/√2))``, Linear, Transpose back, layer scale, Add) and a self-attention
  block (batched MatMul, Softmax, Transpose).

Each block is read back by cnnstat's own ONNX reader, so its layers carry exactly the
features and context a user's ONNX model will. Weights are random. Sizes are channels and
pixels; nothing here times anything (see :mod:`analyzer.timing.calibrate`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OPSET = 17


@dataclass
class Builder:
    """An ONNX graph under construction: NCHW float tensors with known shapes."""

    name: str
    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    count: int = 0

    def _id(self, op: str) -> str:
        self.count += 1
        return f"/{op}_{self.count}"

    def input(self, shape: Sequence[int]) -> str:
        from onnx import TensorProto, helper

        name = f"in{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                         ["N", *list(shape)[1:]]))
        self.shapes[name] = tuple(shape)
        return name

    def const(self, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def weight(self, *shape: int) -> str:
        return self.const((self.rng.standard_normal(shape) * 0.1).astype(np.float32))

    def op(self, op: str, inputs: Sequence[str], shape: Sequence[int], **attrs: Any) -> str:
        from onnx import helper

        name = self._id(op)
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        self.shapes[out] = tuple(shape)
        return out

    # layers -----------------------------------------------------------------------------

    def conv(self, x: str, c_out: int, k: int = 1, s: int = 1, group: int = 1,
             bias: bool = False) -> str:
        n, c, h, w = self.shapes[x]
        p = k // 2
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        ins = [x, self.weight(c_out, c // group, k, k)]
        if bias:
            ins.append(self.weight(c_out))
        return self.op("Conv", ins, (n, c_out, ho, wo), kernel_shape=[k, k], strides=[s, s],
                       pads=[p] * 4, group=group, dilations=[1, 1])

    def bn(self, x: str) -> str:
        c = self.shapes[x][1]
        scale, shift, mean = (self.weight(c) for _ in range(3))
        var = self.const(np.abs(self.rng.standard_normal(c)).astype(np.float32) + 0.5)
        return self.op("BatchNormalization", [x, scale, shift, mean, var], self.shapes[x])

    def act(self, x: str, kind: str) -> str:
        """``relu``, ``relu6`` (Clip 0–6), ``hardswish``, ``silu`` (Sigmoid then Mul, as
        torch exports it), ``sigmoid``, ``hardsigmoid`` or ``none``."""
        shape = self.shapes[x]
        if kind == "relu":
            return self.op("Relu", [x], shape)
        if kind == "relu6":
            lo = self.const(np.array(0.0, np.float32))
            hi = self.const(np.array(6.0, np.float32))
            return self.op("Clip", [x, lo, hi], shape)
        if kind == "hardswish":
            return self.op("HardSwish", [x], shape)
        if kind == "silu":
            return self.op("Mul", [x, self.op("Sigmoid", [x], shape)], shape)
        if kind == "sigmoid":
            return self.op("Sigmoid", [x], shape)
        if kind == "hardsigmoid":
            return self.op("HardSigmoid", [x], shape, alpha=1.0 / 6)
        return x

    def cba(self, x: str, c_out: int, k: int = 1, s: int = 1, group: int = 1,
            act: str = "relu") -> str:
        """Conv → BatchNorm → activation, as torchvision's Conv2dNormActivation."""
        return self.act(self.bn(self.conv(x, c_out, k, s, group)), act)

    def se(self, x: str, squeeze: int, act: str = "relu", gate: str = "sigmoid") -> str:
        """Squeeze-and-excitation: GlobalAveragePool → 1×1 conv → act → 1×1 conv → gate → Mul."""
        n, c = self.shapes[x][:2]
        s = self.op("GlobalAveragePool", [x], (n, c, 1, 1))
        s = self.act(self.conv(s, squeeze, bias=True), act)
        s = self.act(self.conv(s, c, bias=True), gate)
        return self.op("Mul", [s, x], self.shapes[x])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b], self.shapes[a])

    def linear(self, x: str, c_out: int) -> str:
        """MatMul by a constant weight, then the bias Add (torch's Linear on a 3-D/4-D input)."""
        shape = (*self.shapes[x][:-1], c_out)
        y = self.op("MatMul", [x, self.weight(self.shapes[x][-1], c_out)], shape)
        return self.op("Add", [y, self.weight(c_out)], shape)

    def gelu(self, x: str) -> str:
        """GELU as torch exports it: x · 0.5 · (1 + erf(x / √2))."""
        shape = self.shapes[x]
        d = self.op("Div", [x, self.const(np.array(1.4142135, np.float32))], shape)
        e = self.op("Erf", [d], shape)
        a = self.op("Add", [e, self.const(np.array(1.0, np.float32))], shape)
        m = self.op("Mul", [x, a], shape)
        return self.op("Mul", [m, self.const(np.array(0.5, np.float32))], shape)

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        shape = tuple(self.shapes[x][p] for p in perm)
        return self.op("Transpose", [x], shape, perm=list(perm))

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.const(np.array(shape, np.int64))], tuple(shape))

    def layer_norm(self, x: str) -> str:
        c = self.shapes[x][-1]
        return self.op("LayerNormalization", [x, self.weight(c), self.weight(c)],
                       self.shapes[x], axis=-1, epsilon=1e-6)

    def stem(self, shape: Sequence[int]) -> str:
        """The block's input as a net's inner tensor: a graph input through a 1×1 conv,
        BatchNorm and ReLU, so onnxruntime sees what a block deep in a net reads (a tensor
        in its own layout, not a graph input)."""
        return self.cba(self.input(shape), shape[1])

    def tail(self, x: str) -> str:
        """A 1×1 conv after the block, so its output feeds a layer rather than the graph's
        output (which the runtime hands back in plain NCHW)."""
        return self.cba(x, self.shapes[x][1])

    def model(self, outputs: Sequence[str]) -> bytes:
        """The graph as torch exports it with a dynamic batch (``dynamic_axes``, as every
        torchvision graph in the corpus has): the inputs' (:meth:`input`) and outputs' first
        dim is the symbolic ``N``. It matters for a Linear on a 3-D/4-D tensor: onnxruntime turns
        MatMul + bias Add into one Gemm only when every shape is known; with ``N`` it folds
        the bias into the GELU after it (``BiasGelu``, measured 2.5× a plain ``Gelu`` at
        ConvNeXt's 56²×384) and the second Linear's bias Add runs as a node of its own. The
        other blocks run the same nodes either way."""
        from onnx import TensorProto, helper

        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT,
                                              ["N", *list(self.shapes[o])[1:]])
                for o in outputs]
        graph = helper.make_graph(self.nodes, self.name, self.inputs, outs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="cnnstat calibrate")
        model.ir_version = 8
        return model.SerializeToString()


@dataclass(frozen=True)
class Block:
    """A calibration block: its label, the class it belongs to and its ONNX bytes."""

    label: str
    group: str  # the grid class (tests check every class is present)
    onnx: bytes


# ---------------------------------------------------------------------------------------
# The blocks.


def inverted_residual(c: int, hw: int, expand: int, k: int, s: int, act: str,
                      se: str = "") -> Block:
    """MobileNetV2/V3, MnasNet, EfficientNet: 1×1 expand, depthwise k×k stride s, optional
    SE (``relu-hardsigmoid`` as MobileNetV3, ``silu-sigmoid`` as EfficientNet), 1×1
    project, and the residual Add when the shapes allow."""
    b = Builder(f"mbconv {c}x{expand} {hw}² k{k} s{s} {act} {se}")
    x = b.stem((1, c, hw, hw))
    e = c * expand
    y = b.cba(x, e, act=act) if expand > 1 else x
    y = b.cba(y, e, k, s, group=e, act=act)
    if se:
        inner, gate = se.split("-")
        y = b.se(y, max(8, c // 4), inner, gate)
    y = b.cba(y, c, act="none")
    if s == 1:
        y = b.add(y, x)
    return Block(b.name, "se" if se else "inverted-residual", b.model([b.tail(y)]))


def fused_mbconv(c: int, hw: int, expand: int, s: int) -> Block:
    """EfficientNetV2's fused MBConv: a dense 3×3 (stride s) with BatchNorm and SiLU, a 1×1
    project when it expands, and the residual Add — which, after a SiLU, has no convolution
    to fuse into."""
    b = Builder(f"fused-mbconv {c}x{expand} {hw}² s{s}")
    x = b.stem((1, c, hw, hw))
    y = b.cba(x, c * expand, 3, s, act="silu")
    if expand > 1:
        y = b.cba(y, c, act="none")
    if s == 1:
        y = b.add(y, x)
    return Block(b.name, "inverted-residual", b.model([b.tail(y)]))


def grouped_bottleneck(c: int, hw: int, width: int, se: bool = False, s: int = 1) -> Block:
    """RegNet / ResNeXt: 1×1 → grouped 3×3 with ``width`` channels per group → [SE] → 1×1,
    BatchNorm after each, residual Add (a projection when strided) and ReLU."""
    b = Builder(f"grouped {c} {hw}² w{width} s{s}{' se' if se else ''}")
    x = b.stem((1, c, hw, hw))
    y = b.cba(x, c)
    y = b.cba(y, c, 3, s, group=c // width)
    if se:
        y = b.se(y, max(8, c // 4))
    y = b.cba(y, c, act="none")
    short = b.bn(b.conv(x, c, 1, s)) if s > 1 else x
    y = b.act(b.add(y, short), "relu")
    return Block(b.name, "grouped", b.model([b.tail(y)]))


def shuffle_unit(c: int, hw: int) -> Block:
    """Two of ShuffleNetV2's stride-1 units: split the channels, 1×1 → depthwise 3×3 → 1×1
    on one half, concat, then the channel shuffle (Reshape → Transpose → Reshape); the
    second unit splits what the first one's shuffle wrote, as in the net."""
    b = Builder(f"shuffle {c} {hw}²")
    x = b.stem((1, c, hw, hw))
    return Block(b.name, "shuffle", b.model([b.tail(_shuffle(b, _shuffle(b, x)))]))


def _shuffle(b: Builder, x: str) -> str:
    c, hw = b.shapes[x][1], b.shapes[x][2]
    half = c // 2
    a = b.op("Slice", [x, b.const(np.array([0])), b.const(np.array([half])),
                       b.const(np.array([1]))], (1, half, hw, hw))
    r = b.op("Slice", [x, b.const(np.array([half])), b.const(np.array([c])),
                       b.const(np.array([1]))], (1, half, hw, hw))
    y = b.cba(b.cba(b.cba(r, half), half, 3, 1, group=half, act="none"), half)
    y = b.op("Concat", [a, y], (1, c, hw, hw), axis=1)
    y = b.reshape(y, (1, 2, half, hw, hw))
    y = b.transpose(y, (0, 2, 1, 3, 4))
    return b.reshape(y, (1, c, hw, hw))


def shuffle_dynamic(c: int, hw: int) -> Block:
    """Two ShuffleNetV2 units as torch exports them from a graph whose batch dim is
    symbolic: the chunk's bounds and the shuffle's view sizes come from Shape → Gather →
    Add/Div/Mul → Unsqueeze → Concat, nodes cnnstat folds (the net's ``shape_nodes``) but
    onnxruntime runs on every call, and the Slices read bounds it computes."""
    b = Builder(f"shuffle dynamic {c} {hw}²")
    x = b.stem((1, c, hw, hw))
    y = b.cba(x, c)
    one = b.const(np.array(1, np.int64))
    axis, zero = b.const(np.array([1], np.int64)), b.const(np.array([0], np.int64))
    for _ in range(2):
        # x.chunk(2, dim=1): split size (c + 1) // 2 from the runtime's shape
        ch = b.op("Gather", [b.op("Shape", [y], (4,)), one], (), axis=0)
        split = b.op("Div", [b.op("Add", [ch, one], ()), b.const(np.array(2, np.int64))], ())
        end1 = b.op("Unsqueeze", [split, zero], (1,))
        end2 = b.op("Unsqueeze", [b.op("Mul", [split, b.const(np.array(2, np.int64))], ()),
                                  zero], (1,))
        keep = b.op("Slice", [y, zero, end1, axis], (1, c // 2, hw, hw))
        branch = b.op("Slice", [y, end1, end2, axis], (1, c // 2, hw, hw))
        branch = b.cba(b.cba(b.cba(branch, c // 2), c // 2, 3, 1, group=c // 2, act="none"),
                       c // 2)
        y = b.op("Concat", [keep, branch], (1, c, hw, hw), axis=1)
        shape = b.op("Shape", [y], (4,))
        dims = [b.op("Gather", [shape, b.const(np.array(i, np.int64))], (), axis=0)
                for i in range(4)]
        half = b.op("Div", [dims[1], b.const(np.array(2, np.int64))], ())
        two = b.const(np.array([2], np.int64))
        parts = [b.op("Unsqueeze", [d, b.const(np.array([0], np.int64))], (1,))
                 for d in (dims[0], half, dims[2], dims[3])]
        five = b.op("Concat", [parts[0], two, *parts[1:]], (5,), axis=0)
        z = b.op("Reshape", [y, five], (1, 2, c // 2, hw, hw))
        z = b.transpose(z, (0, 2, 1, 3, 4))
        minus = b.const(np.array([-1], np.int64))
        four = b.op("Concat", [parts[0], minus, parts[2], parts[3]], (4,), axis=0)
        y = b.op("Reshape", [z, four], (1, c, hw, hw))
    return Block(b.name, "shape", b.model([b.tail(y)]))


def dense_layer(c: int, hw: int, growth: int = 32) -> Block:
    """DenseNet: Concat of two inputs → BN → ReLU → 1×1 → BN → ReLU → 3×3, concat again."""
    b = Builder(f"dense {c} {hw}²")
    x0 = b.stem((1, c, hw, hw))
    x1 = b.stem((1, growth, hw, hw))
    cat = b.op("Concat", [x0, x1], (1, c + growth, hw, hw), axis=1)
    y = b.act(b.bn(cat), "relu")
    y = b.cba(y, 4 * growth)
    y = b.conv(y, growth, 3)
    out = b.op("Concat", [cat, y], (1, c + 2 * growth, hw, hw), axis=1)
    return Block(b.name, "dense", b.model([b.act(b.bn(out), "relu")]))


def convnext_block(c: int, hw: int) -> Block:
    """ConvNeXt as torchvision's CNBlock: depthwise 7×7 → Transpose to NHWC → LayerNorm →
    Linear 4c → GELU → Linear c → Transpose back → layer scale (Mul by a c×1×1 constant) →
    residual Add."""
    b = Builder(f"convnext {c} {hw}²")
    x = b.stem((1, c, hw, hw))
    y = b.conv(x, c, 7, 1, group=c, bias=True)
    y = b.layer_norm(b.transpose(y, (0, 2, 3, 1)))
    y = b.transpose(b.linear(b.gelu(b.linear(y, 4 * c)), c), (0, 3, 1, 2))
    y = b.add(b.op("Mul", [b.weight(c, 1, 1), y], b.shapes[y]), x)
    return Block(b.name, "convnext", b.model([b.tail(y)]))


def attention_block(tokens: int, dim: int, heads: int) -> Block:
    """Self-attention as torch exports it: LayerNorm, Linear to q, k, v, Reshape and
    Transpose to heads, batched MatMul q·kᵀ, scale, Softmax, MatMul by v, Transpose and
    Reshape back, Linear, residual Add; then an MLP with GELU."""
    b = Builder(f"attention {tokens}×{dim} h{heads}")
    x = b.input((1, tokens, dim))
    d = dim // heads
    y = b.layer_norm(x)
    q, k, v = (b.transpose(b.reshape(b.linear(y, dim), (1, tokens, heads, d)), (0, 2, 1, 3))
               for _ in range(3))
    kt = b.transpose(k, (0, 1, 3, 2))
    s = b.op("MatMul", [q, kt], (1, heads, tokens, tokens))
    s = b.op("Mul", [s, b.const(np.array(d ** -0.5, np.float32))], b.shapes[s])
    p = b.op("Softmax", [s], b.shapes[s], axis=-1)
    o = b.op("MatMul", [p, v], (1, heads, tokens, d))
    o = b.reshape(b.transpose(o, (0, 2, 1, 3)), (1, tokens, dim))
    x = b.add(b.linear(o, dim), x)
    y = b.linear(b.gelu(b.linear(b.layer_norm(x), 4 * dim)), dim)
    return Block(b.name, "attention", b.model([b.add(y, x)]))


# group widths torchvision's RegNets (8–64 channels per group, 24 and 56 among them) and
# ResNeXts (32×4d: 4, 8, 16, 32; 32×8d: 8 … 64) use
GROUP_WIDTHS = (4, 8, 16, 24, 32, 48, 56, 64)


def blocks(quick: bool) -> list[Block]:
    """The calibration blocks; ``quick`` keeps every class with fewer sizes."""
    out: list[Block] = []
    mb = [(16, 56, 6, 3, 1, "relu6", ""), (24, 56, 6, 3, 2, "relu6", ""),
          (40, 28, 6, 5, 1, "hardswish", "relu-hardsigmoid"),
          (24, 56, 4, 5, 2, "relu", "relu-hardsigmoid"),
          (80, 14, 6, 3, 1, "hardswish", ""),
          (16, 112, 6, 3, 2, "silu", "silu-sigmoid"), (40, 28, 6, 5, 1, "silu", "silu-sigmoid"),
          (112, 14, 6, 5, 2, "silu", "silu-sigmoid"), (48, 56, 4, 3, 1, "silu", ""),
          (32, 28, 3, 3, 1, "relu", "")]
    out += [inverted_residual(*m) for m in (mb[:7] + mb[8::2] if quick else mb)]
    out += [fused_mbconv(*f) for f in (((24, 56, 1, 1), (48, 28, 4, 1)) if quick else
                                       ((24, 56, 1, 1), (48, 28, 4, 1), (64, 28, 4, 2)))]
    grouped = [(c, hw, w, se, s) for ((c, hw), w), (se, s) in itertools.product(
        itertools.product(((64, 56), (192, 28), (432, 14)), GROUP_WIDTHS),
        ((False, 1), (True, 2), (True, 1), (False, 2))) if c % w == 0 and c // w > 1]
    out += [grouped_bottleneck(*g) for g in (grouped[::3] if quick else grouped[::2])]
    out += [grouped_bottleneck(c, hw, w, se) for c, hw, w, se in (
        (128, 56, 4, False), (256, 28, 8, False), (240, 28, 24, True), (224, 28, 56, True))]
    out += [shuffle_unit(c, hw) for c, hw in (((116, 28), (244, 28)) if quick else
                                              ((116, 28), (232, 14), (244, 28), (488, 14)))]
    out += [shuffle_dynamic(c, hw) for c, hw in ((116, 28), (464, 7))]
    out += [dense_layer(c, hw) for c, hw in (((128, 28),) if quick else ((128, 56), (512, 14)))]
    out += [convnext_block(c, hw) for c, hw in (((96, 56),) if quick else ((96, 56), (384, 14)))]
    out += [attention_block(t, d, h) for t, d, h in (((197, 192, 3),) if quick else
                                                     ((197, 192, 3), (50, 512, 8)))]
    return out


GROUPS = ("se", "inverted-residual", "grouped", "shuffle", "shape", "dense", "convnext",
          "attention")
