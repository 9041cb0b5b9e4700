"""Lower an analysed IR net to an ONNX graph with random weights, for measuring it.

The graph is built from a :class:`~analyzer.analysis.Report`, so every node gets the
shapes cnnstat inferred, and Caffe's rounding is reproduced exactly (pooling's ceil via
explicit end pads). Weight values are random (He-uniform, so activations neither blow
up nor sink into denormals); only their dims come from the net. Each ONNX node is named
after the IR layer it lowers (``conv1``, or ``conv1/flatten`` for a helper node) and
:attr:`Exported.node_layer` maps every node name back to its layer.

Split and Dropout layers (and Caffe's test-time identities) become aliases, no node.
A layer kind with no lowering raises :class:`CnnstatError` naming the layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from analyzer.analysis import LayerResult, Report
from analyzer.errors import CnnstatError
from analyzer.ir import Shape
from analyzer.layers.shapes import conv_geometry, pool_geometry

OPSET = 17
ALIASES = {"Split", "Dropout"}  # no computation at inference: the top is the bottom


@dataclass(frozen=True)
class Exported:
    """An ONNX model of a net and how its parts map back to IR layers."""

    model: onnx.ModelProto
    node_layer: dict[str, str]  # ONNX node name -> IR layer name
    inputs: dict[str, Shape]  # graph input name -> dims
    top_tensor: dict[tuple[str, str], str]  # (layer name, top) -> ONNX tensor name


@dataclass
class _Graph:
    """The graph being built: nodes, initializers and the current tensor of every blob."""

    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    node_layer: dict[str, str] = field(default_factory=dict)
    blob: dict[str, str] = field(default_factory=dict)  # IR blob name -> ONNX tensor
    used: set[str] = field(default_factory=set)  # tensor names already taken

    def tensor(self, base: str) -> str:
        """A fresh, unique tensor name (Caffe's in-place layers rewrite the same blob)."""
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}#{i}", i + 1
        self.used.add(name)
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        name = self.tensor(name)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, name: str, shape: Shape, fan_in: int) -> str:
        """He-uniform random values of ``shape`` (float32)."""
        bound = math.sqrt(6.0 / max(fan_in, 1))
        data = self.rng.random(shape, dtype=np.float32)
        data *= 2 * bound
        data -= bound
        return self.const(name, data)

    def node(self, layer: str, op: str, inputs: list[str], outputs: list[str],
             suffix: str = "", **attrs) -> None:
        name = f"{layer}/{suffix}" if suffix else layer
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        self.node_layer[name] = layer


Lowering = Callable[[_Graph, LayerResult, list[str], list[str]], None]


def _ints(values) -> list[int]:
    return [int(v) for v in values]


def _conv(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    layer = r.layer
    if len(x) != 1:
        raise _cannot(r, "a convolution over several bottoms")
    geo = conv_geometry(layer, r.in_shapes[0])
    if geo["axis"] != 1:
        raise _cannot(r, f"a convolution with axis {geo['axis']}")
    c_in, c_out, group, kernel = geo["c_in"], geo["c_out"], geo["group"], geo["kernel"]
    deconv = layer.kind == "Deconvolution"
    if deconv:
        w_shape = (c_in, c_out // group, *kernel)
        fan_in = c_in // group * math.prod(kernel)
    else:
        w_shape = (c_out, c_in // group, *kernel)
        fan_in = w_shape[1] * math.prod(kernel)
    ins = [x[0], g.weight(f"{layer.name}.weight", w_shape, fan_in)]
    if layer.attr("bias", True):
        ins.append(g.const(f"{layer.name}.bias", np.zeros(c_out, np.float32)))
    pads = _ints(geo["pad"]) * 2
    if not deconv:  # Caffe's int division truncates toward 0: a window wider than the padded
        # input can still give 1 output; an end pad makes ONNX's floor give the same size
        out = r.out_shapes[0][geo["axis"] + 1 :]
        pads = _ints(geo["pad"]) + [
            max(p, (o - 1) * s + d * (k - 1) + 1 - n - p) for n, o, k, s, p, d in zip(
                geo["spatial"], out, kernel, geo["stride"], geo["pad"], geo["dilation"])]
    g.node(layer.name, "ConvTranspose" if deconv else "Conv", ins, y,
           kernel_shape=_ints(kernel), strides=_ints(geo["stride"]), pads=pads,
           dilations=_ints(geo["dilation"]), group=group)


def _inner_product(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    layer = r.layer
    shape = r.in_shapes[0]
    axis = layer.attr("axis", 1) % len(shape)
    rows, width, n = math.prod(shape[:axis]), math.prod(shape[axis:]), layer.attr("num_output")
    flat = x[0]
    if len(shape) != 2 or axis != 1:
        flat = g.tensor(f"{layer.name}/flat")
        g.node(layer.name, "Reshape", [x[0], g.const(f"{layer.name}/flat_shape",
               np.array([rows, width], np.int64))], [flat], "flatten")
    ins = [flat, g.weight(f"{layer.name}.weight", (n, width), width)]
    if layer.attr("bias", True):
        ins.append(g.const(f"{layer.name}.bias", np.zeros(n, np.float32)))
    out_shape = r.out_shapes[0]
    if len(out_shape) == 2:
        g.node(layer.name, "Gemm", ins, y, transB=1)
        return
    mid = g.tensor(f"{layer.name}/gemm")
    g.node(layer.name, "Gemm", ins, [mid], transB=1)
    g.node(layer.name, "Reshape", [mid, g.const(f"{layer.name}/out_shape",
           np.array(out_shape, np.int64))], y, "reshape")


def _pooling(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    """Caffe's ceil rounding as explicit end pads, so ONNX's floor gives Caffe's dims."""
    layer = r.layer
    if len(y) != 1:
        raise _cannot(r, "a pooling layer with a second (argmax mask) top")
    method = layer.attr("method", "MAX")
    if method not in ("MAX", "AVE"):
        raise _cannot(r, f"{method} pooling")
    if layer.attr("global_pooling"):
        op = "GlobalMaxPool" if method == "MAX" else "GlobalAveragePool"
        g.node(layer.name, op, x, y)
        return
    size, out = r.in_shapes[0][2:], r.out_shapes[0][2:]
    kernel, strides, begin, end = [], [], [], []
    for n, o, (k, s, p) in zip(size, out, pool_geometry(layer, r.in_shapes[0])):
        kernel.append(k)
        strides.append(s)
        begin.append(p)
        end.append(max(0, (o - 1) * s + k - n - p))  # floor((n+p+end−k)/s)+1 == o
    if any(e >= k for e, k in zip(end, kernel)):
        raise _cannot(r, "pooling whose Caffe rounding needs an end pad ≥ the kernel")
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": begin + end}
    if method == "AVE":
        attrs["count_include_pad"] = 1
    g.node(layer.name, "MaxPool" if method == "MAX" else "AveragePool", x, y, **attrs)


def _relu(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    slope = r.layer.attr("negative_slope", 0.0)
    if slope:
        g.node(r.layer.name, "LeakyRelu", x, y, alpha=float(slope))
    else:
        g.node(r.layer.name, "Relu", x, y)


def _unary(op: str) -> Lowering:
    def lower(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
        g.node(r.layer.name, op, x[:1], y)

    return lower


def _channel_shape(shape: Shape, axis: int, count: int) -> tuple[int, ...]:
    """Broadcastable dims for a per-channel parameter of ``count`` elements at ``axis``."""
    return (count,) + (1,) * (len(shape) - axis - 1)


def _prelu(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    shape = r.in_shapes[0]
    c = 1 if r.layer.attr("channel_shared") else shape[1]
    slope = np.full(_channel_shape(shape, 1, c), 0.25, np.float32)
    g.node(r.layer.name, "PRelu", [x[0], g.const(f"{r.layer.name}.slope", slope)], y)


def _lrn(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    if r.layer.attr("region", "ACROSS_CHANNELS") != "ACROSS_CHANNELS":
        raise _cannot(r, "WITHIN_CHANNEL LRN")
    g.node(r.layer.name, "LRN", x, y, size=int(r.layer.attr("local_size", 5)),
           alpha=1e-4, beta=0.75, bias=1.0)


def _batch_norm(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    name, c = r.layer.name, r.in_shapes[0][1]
    ins = [x[0], g.const(f"{name}.gamma", np.ones(c, np.float32)),
           g.const(f"{name}.beta", np.zeros(c, np.float32)),
           g.const(f"{name}.mean", np.zeros(c, np.float32)),
           g.const(f"{name}.var", np.ones(c, np.float32))]
    g.node(name, "BatchNormalization", ins, y, epsilon=1e-5)


def _affine(op: str) -> Lowering:
    """Caffe Scale (Mul, then Add for its bias) and Bias (Add): learned or a second bottom."""

    def lower(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
        layer, shape = r.layer, r.in_shapes[0]
        axis = layer.attr("axis", 1) % len(shape)
        if len(x) > 1:  # the factor is a bottom, e.g. SE-nets' N×C
            other = r.in_shapes[1]
            dims = (*shape[:axis], *other[axis:], *(1,) * (len(shape) - axis - len(other[axis:])))
            factor = g.tensor(f"{layer.name}/factor")
            g.node(layer.name, "Reshape", [x[1], g.const(f"{layer.name}/factor_shape",
                   np.array(dims, np.int64))], [factor], "reshape")
            g.node(layer.name, op, [x[0], factor], y)
            return
        num = layer.attr("num_axes", 1)
        span = shape[axis:] if num == -1 else shape[axis : axis + num]
        dims = (*span, *(1,) * (len(shape) - axis - len(span)))
        value = np.ones if op == "Mul" else np.zeros
        param = g.const(f"{layer.name}.{'scale' if op == 'Mul' else 'bias'}",
                        value(dims, np.float32))
        if op == "Mul" and layer.attr("bias"):
            mid = g.tensor(f"{layer.name}/scaled")
            g.node(layer.name, "Mul", [x[0], param], [mid])
            bias = g.const(f"{layer.name}.bias", np.zeros(dims, np.float32))
            g.node(layer.name, "Add", [mid, bias], y, "bias")
        else:
            g.node(layer.name, op, [x[0], param], y)

    return lower


def _clip(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    """ReLU6 and other clamps: Clip between ``min`` and ``max`` (default 0 and 6)."""
    name = r.layer.name
    lo = g.const(f"{name}.min", np.array(r.layer.attr("min", 0.0), np.float32))
    hi = g.const(f"{name}.max", np.array(r.layer.attr("max", 6.0), np.float32))
    g.node(name, "Clip", [x[0], lo, hi], y)


def _broadcast(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    """cnnstat's ONNX ``Broadcast`` kind (Add, Mul, …), lowered as the residual sum Add."""
    g.node(r.layer.name, "Add", x[:2], y)


def _eltwise(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    layer = r.layer
    op = {"SUM": "Sum", "PROD": "Mul", "MAX": "Max"}[layer.attr("operation", "SUM")]
    coeff = list(layer.attr("coeff", ()))
    ins = list(x)
    if op == "Sum" and any(c != 1 for c in coeff):
        for i, c in enumerate(coeff):
            if c != 1:
                scaled = g.tensor(f"{layer.name}/coeff{i}")
                g.node(layer.name, "Mul", [ins[i], g.const(f"{layer.name}.coeff{i}",
                       np.array(c, np.float32))], [scaled], f"coeff{i}")
                ins[i] = scaled
    if op == "Sum" and len(ins) == 2:
        op = "Add"
    if op == "Mul" and len(ins) > 2:
        acc = ins[0]
        for i, other in enumerate(ins[1:-1], 1):
            nxt = g.tensor(f"{layer.name}/prod{i}")
            g.node(layer.name, "Mul", [acc, other], [nxt], f"prod{i}")
            acc = nxt
        ins = [acc, ins[-1]]
    g.node(layer.name, op, ins, y)


def _concat(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    axis = r.layer.attr("axis", 1) % len(r.in_shapes[0])
    g.node(r.layer.name, "Concat", x, y, axis=axis)


def _slice(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    axis = r.layer.attr("axis", 1) % len(r.in_shapes[0])
    sizes = np.array([s[axis] for s in r.out_shapes], np.int64)
    g.node(r.layer.name, "Split", [x[0], g.const(f"{r.layer.name}/sizes", sizes)], y,
           axis=axis)


def _softmax(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    axis = r.layer.attr("axis", 1) % len(r.in_shapes[0])
    g.node(r.layer.name, "Softmax", x, y, axis=axis)


def _reshape(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    """Flatten and Reshape: a Reshape to the dims cnnstat inferred."""
    dims = np.array(r.out_shapes[0], np.int64)
    g.node(r.layer.name, "Reshape", [x[0], g.const(f"{r.layer.name}/shape", dims)], y)


def _permute(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    n = len(r.in_shapes[0])
    order = list(r.layer.attr("order", ()))
    order += [i for i in range(n) if i not in order]
    g.node(r.layer.name, "Transpose", x, y, perm=order)


def _shuffle(g: _Graph, r: LayerResult, x: list[str], y: list[str]) -> None:
    name, (n, c, *rest) = r.layer.name, r.in_shapes[0]
    groups = r.layer.attr("group", 1)
    a, b = g.tensor(f"{name}/split"), g.tensor(f"{name}/swapped")
    g.node(name, "Reshape", [x[0], g.const(f"{name}/s1", np.array(
        [n, groups, c // groups, *rest], np.int64))], [a], "reshape")
    g.node(name, "Transpose", [a], [b], perm=[0, 2, 1, *range(3, 3 + len(rest))])
    g.node(name, "Reshape", [b, g.const(f"{name}/s2", np.array(r.in_shapes[0], np.int64))],
           y, "reshape_back")


LOWERINGS: dict[str, Lowering] = {
    "Convolution": _conv,
    "Deconvolution": _conv,
    "InnerProduct": _inner_product,
    "Pooling": _pooling,
    "ReLU": _relu,
    "PReLU": _prelu,
    "Sigmoid": _unary("Sigmoid"),
    "TanH": _unary("Tanh"),
    "AbsVal": _unary("Abs"),
    "ELU": _unary("Elu"),
    "Exp": _unary("Exp"),
    "LRN": _lrn,
    "BatchNorm": _batch_norm,
    "Scale": _affine("Mul"),
    "Bias": _affine("Add"),
    "Eltwise": _eltwise,
    "Clip": _clip,
    "Broadcast": _broadcast,
    "Concat": _concat,
    "Slice": _slice,
    "Softmax": _softmax,
    "Flatten": _reshape,
    "Reshape": _reshape,
    "Permute": _permute,
    "ShuffleChannel": _shuffle,
}


def _cannot(r: LayerResult, what: str) -> CnnstatError:
    return CnnstatError(f"cannot lower {what} to ONNX for measuring",
                        f"layer '{r.layer.name}' ({r.layer.type})")


def export(report: Report, seed: int = 0, all_outputs: bool = False) -> Exported:
    """The ONNX model of ``report``'s net (opset 17, float32, random weights).

    Graph outputs are the blobs no later layer reads; with ``all_outputs`` every layer's
    tops are outputs too (to compare every shape with the IR's).
    """
    g = _Graph(np.random.default_rng(seed))
    inputs: dict[str, Shape] = {}
    top_tensor: dict[tuple[str, str], str] = {}
    read: set[str] = set()
    for r in report.layers:
        layer = r.layer
        if layer.kind == "Input":
            for top, shape in zip(layer.tops, r.out_shapes):
                g.blob[top] = g.tensor(top)
                inputs[g.blob[top]] = shape
                top_tensor[(layer.name, top)] = g.blob[top]
            continue
        x = [g.blob[b] for b in layer.bottoms]
        read.update(x)
        if layer.kind in ALIASES:
            for top in layer.tops:
                g.blob[top] = x[0]
                top_tensor[(layer.name, top)] = x[0]
            continue
        lower = LOWERINGS.get(layer.kind)
        if lower is None:
            raise CnnstatError(
                f"cannot lower a {layer.type} layer to ONNX for measuring (supported: "
                f"{', '.join(sorted(LOWERINGS))}, Split, Dropout)", f"layer '{layer.name}'")
        y = [g.tensor(t) for t in layer.tops]
        lower(g, r, x, y)
        for top, t in zip(layer.tops, y):
            g.blob[top] = t
            top_tensor[(layer.name, top)] = t
    finals = dict.fromkeys(g.blob.values())
    outs = [t for t in finals if t not in read and t not in inputs]
    if all_outputs:
        outs = list(dict.fromkeys([*outs, *(t for t in top_tensor.values() if t not in inputs)]))
    shape_of = {top_tensor[(r.layer.name, t)]: s for r in report.layers
                for t, s in zip(r.layer.tops, r.out_shapes)}
    # built in place, not by helper.make_graph/make_model: each of those copies every
    # initializer once more (a second per 256 MiB of weights, as calibration's fc points hold)
    model = onnx.ModelProto(ir_version=8, producer_name="cnnstat")
    model.opset_import.append(helper.make_opsetid("", OPSET))
    graph = model.graph
    graph.name = _safe_name(report.net.name)
    graph.node.extend(g.nodes)
    graph.input.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))
                       for n, s in inputs.items())
    graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape_of[n]))
                        for n in outs)
    graph.initializer.extend(g.inits)
    return Exported(model, dict(g.node_layer), inputs, top_tensor)


def _safe_name(name: str) -> str:
    return name or "net"
