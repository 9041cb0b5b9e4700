"""ONNX op translators: one function per op family turns a node into an IR layer's kind and attrs.

The registry (``registry.py``) pairs each IR kind with its shape and cost rule; this table does
the same one step earlier for ONNX: ``TRANSLATORS[op_type]`` is a :data:`Translator`, called as
``translate(ctx, node)``, that reads the node's attributes (and the values of its constant
inputs, through ``ctx``) and returns a :class:`Translation`: the canonical kind, its attrs, and
which inputs and outputs the layer keeps. An op missing from the table becomes the kind
``onnx.<op>``: not costed, shaped by ONNX shape inference.

``SHAPES[op_type]`` holds, for the data-movement ops whose output shape depends on constant
inputs (Reshape targets, Slice starts, Pad widths, Resize scales, …), a :data:`ShapeSpec`
computing the output shapes from the ONNX spec, given the input shapes and constant values
the reader knows.

Each function's docstring states the ONNX semantics it follows. The reader (``onnx_reader.py``)
owns the graph walk, constant folding and initializers; it passes itself as the
:class:`Context`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import AttributeProto, helper

from analyzer.ir import Shape

# --------------------------------------------------------------------- nodes as plain values

# Attribute types decoded straight from their AttributeProto field (the values
# onnx.helper.get_attribute_value gives); the rare others go through onnx.helper (see Node).
_ATTR_ONE = {AttributeProto.INT: "i", AttributeProto.FLOAT: "f", AttributeProto.STRING: "s",
             AttributeProto.TENSOR: "t"}
_ATTR_MANY = {AttributeProto.INTS: "ints", AttributeProto.FLOATS: "floats",
              AttributeProto.STRINGS: "strings"}


def outer_names(graph: onnx.GraphProto) -> set[str]:
    """Tensors a subgraph reads from its enclosing scopes (nested subgraphs included)."""
    defined = {vi.name for vi in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for n in graph.node:
        defined.update(n.output)
        used.update(n.input)
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                used |= outer_names(a.g)
            elif a.type == AttributeProto.GRAPHS:
                for g in a.graphs:
                    used |= outer_names(g)
    return used - defined - {""}


class Node:
    """A graph node as plain Python values, read from its NodeProto once.

    Every protobuf field access builds a new Python object, and the reader looks at each
    node's inputs and attributes many times; reading them once is most of the speed.
    ``attrs`` holds each attribute's value as ``onnx.helper.get_attribute_value`` gives it.
    """

    __slots__ = ("op_type", "domain", "name", "input", "output", "attrs", "proto", "implicit")

    def __init__(self, proto: onnx.NodeProto) -> None:
        self.proto = proto
        self.op_type: str = proto.op_type
        self.domain: str = proto.domain
        self.name: str = proto.name
        self.input: list[str] = proto.input[:]
        self.output: list[str] = proto.output[:]
        attrs: dict[str, Any] = {}
        graphs: list[onnx.GraphProto] = []
        for a in proto.attribute:  # each field read once: protobuf access is the cost here
            kind = a.type
            one = _ATTR_ONE.get(kind)
            if one is not None:
                attrs[a.name] = getattr(a, one)
                continue
            many = _ATTR_MANY.get(kind)
            attrs[a.name] = list(getattr(a, many)) if many else helper.get_attribute_value(a)
            if kind == AttributeProto.GRAPH:
                graphs.append(a.g)
            elif kind == AttributeProto.GRAPHS:
                graphs.extend(a.graphs)
        self.attrs = attrs
        # outer-scope tensors its subgraphs (If branches, Loop and Scan bodies) read
        self.implicit: tuple[str, ...] = ()
        if graphs:
            outer = set().union(*(outer_names(g) for g in graphs))
            self.implicit = tuple(sorted(outer - set(self.input)))

    def text_attrs(self) -> dict[str, Any]:
        """The attributes with byte strings decoded (``auto_pad``, ``mode``, …)."""
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in self.attrs.items()}


# --------------------------------------------------------------------- the translator contract


class Context(Protocol):
    """What a translator may ask the reader: known shapes, which tensors are constant, and
    the values of constant inputs."""

    path: str
    shapes: Mapping[str, Shape]  # every tensor shaped so far
    static: Set[str]  # tensors known before run time (initializers, folded constants)

    def value(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor cnnstat holds, else None."""

    def ints(self, name: str) -> tuple[int, ...] | None:
        """A constant tensor's values as ints, else None."""

    def is_initializer(self, name: str) -> bool:
        """Whether the tensor is a graph initializer (a stored weight)."""


@dataclass(frozen=True)
class Translation:
    """A node as an IR layer: ``kind`` and ``attrs`` as the registry's rules read them.

    ``bottoms`` None keeps the node's activation inputs (those not constant); ``tops`` None
    keeps every named output; ``stats`` are input slots whose initializers are stored
    statistics rather than learnable weights; ``notes`` are what the translation assumed.
    """

    kind: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    bottoms: tuple[str, ...] | None = None
    tops: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    stats: tuple[int, ...] = ()


Translator = Callable[[Context, Node], Translation]
ShapeSpec = Callable[[Context, Node], "list[Shape] | None"]


def activations(ctx: Context, node: Node) -> tuple[str, ...]:
    """The node's named inputs that are not constants, in order (then the activations its
    subgraphs read)."""
    return tuple(x for x in (*node.input, *node.implicit) if x and x not in ctx.static)


# --------------------------------------------------------------------- translators


def conv(ctx: Context, node: Node) -> Translation:
    """Conv / ConvTranspose: weight [M, C/group, k…] (transposed: [C, M/group, k…]);
    ``pads`` are begin values then end values per spatial axis; ``auto_pad`` SAME_UPPER,
    SAME_LOWER or VALID replaces them; ``output_shape`` of ConvTranspose fixes the pads."""
    a = node.text_attrs()
    w = ctx.shapes.get(node.input[1])
    if w is None:  # a weight computed in the graph that cnnstat cannot shape: ONNX's turn
        return unknown(ctx, node)
    notes = ()
    if not ctx.is_initializer(node.input[1]):
        notes = (f"weight '{node.input[1]}' is computed in the graph; its size is "
                 "not counted as parameters here",)
    kernel = tuple(a.get("kernel_shape") or w[2:])
    n = len(kernel)
    pads = tuple(a.get("pads") or (0,) * (2 * n))
    group = a.get("group", 1)
    transposed = node.op_type == "ConvTranspose"
    attrs: dict[str, Any] = {
        "num_output": w[1] * group if transposed else w[0], "kernel": kernel,
        "stride": tuple(a.get("strides") or (1,) * n), "pad": pads[:n], "pad_end": pads[n:],
        "dilation": tuple(a.get("dilations") or (1,) * n), "group": group,
        "bias": len(node.input) > 2 and bool(node.input[2]),
    }
    auto = a.get("auto_pad", "NOTSET")
    if auto != "NOTSET":
        attrs["auto_pad"] = auto
    if transposed:
        attrs["output_padding"] = tuple(a.get("output_padding") or (0,) * n)
        if a.get("output_shape"):
            if node.input[0] not in ctx.shapes:
                return unknown(ctx, node)  # the pads need the input's size
            attrs.update(_deconv_pads(ctx, node, attrs, tuple(a["output_shape"]), auto))
    kind = "Deconvolution" if transposed else "Convolution"
    return Translation(kind, attrs, bottoms=(node.input[0],), notes=notes)


def _deconv_pads(ctx: Context, node: Node, attrs: dict[str, Any], out: Shape,
                 auto: str) -> dict[str, Any]:
    """ConvTranspose with ``output_shape``: total pad = stride·(in−1) + output_padding +
    extent − out, split evenly, the odd one at the end (begin for SAME_UPPER)."""
    x = ctx.shapes[node.input[0]]
    begin, end = [], []
    for i, size in enumerate(x[2:]):
        extent = attrs["dilation"][i] * (attrs["kernel"][i] - 1) + 1
        total = (attrs["stride"][i] * (size - 1) + attrs["output_padding"][i] + extent
                 - out[-len(x) + 2 + i])
        small = total // 2
        begin.append(small if auto == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return {"pad": tuple(begin), "pad_end": tuple(end), "auto_pad": None}


def gemm(ctx: Context, node: Node) -> Translation:
    """Gemm (A·B + C, ``transA``/``transB``) and MatMul (NumPy matmul): with a constant 2-D
    weight B and an activation A, an inner product whose width is B's output dim; otherwise
    a batched matmul of the operands (constant ones kept as ``const_shapes``)."""
    a = node.attrs
    x, w = node.input[0], node.input[1]
    ta, tb = a.get("transA", 0), a.get("transB", 0)
    w_shape = ctx.shapes.get(w)
    is_fc = (w in ctx.static and x not in ctx.static and not ta and w_shape is not None
             and len(w_shape) == 2)
    if is_fc:
        bias = node.op_type == "Gemm" and len(node.input) > 2 and bool(node.input[2])
        n = w_shape[0] if tb else w_shape[1]
        axis = 1 if node.op_type == "Gemm" else -1
        return Translation("InnerProduct", {"num_output": n, "bias": bias, "axis": axis,
                                            "transpose": not tb}, bottoms=(x,))
    consts = tuple(ctx.shapes.get(v) for v in (x, w) if v in ctx.static)
    if None in consts:  # a constant operand cnnstat could not evaluate
        return unknown(ctx, node)
    acts = tuple(v for v in (x, w) if v not in ctx.static)
    return Translation("MatMul", {"const_shapes": consts, "const_first": x in ctx.static,
                                  "trans_a": ta, "trans_b": tb}, bottoms=acts)


def pool(ctx: Context, node: Node) -> Translation:
    """MaxPool / AveragePool / Global*Pool: ``kernel_shape``, ``strides``, begin-then-end
    ``pads``, ``ceil_mode`` (a last window starting past the input is dropped, as runtimes do),
    ``count_include_pad``, ``auto_pad``; dilated pooling is shaped but not costed."""
    op = node.op_type
    a = node.text_attrs()
    attrs: dict[str, Any] = {"method": "MAX" if "Max" in op else "AVE", "nd": True}
    if op.startswith("Global"):
        attrs["global_pooling"] = True
        return Translation("Pooling", attrs)
    kernel = tuple(a["kernel_shape"])
    n = len(kernel)
    pads = tuple(a.get("pads") or (0,) * (2 * n))
    attrs.update(kernel=kernel, stride=tuple(a.get("strides") or (1,) * n), pad=pads[:n],
                 pad_end=pads[n:], ceil=bool(a.get("ceil_mode", 0)), drop_outside=True,
                 count_include_pad=bool(a.get("count_include_pad", 0)))
    if a.get("auto_pad", "NOTSET") != "NOTSET":
        attrs["auto_pad"] = a["auto_pad"]
    if any(d != 1 for d in a.get("dilations") or ()):
        return Translation(f"onnx.{op}", attrs)  # dilated pooling: ONNX's shape, not costed
    return Translation("Pooling", attrs)


def batch_norm(ctx: Context, node: Node) -> Translation:
    """BatchNormalization: y = scale·(x − mean)/√(var + ε) + B per channel (axis 1); inputs 3
    and 4 (running mean and variance) are statistics; in training mode (opset 14+) the new
    running mean and variance, one value per channel, are outputs 1 and 2."""
    return Translation("BatchNorm", {"affine": True, "eps": node.attrs.get("epsilon", 1e-5)},
                       stats=(3, 4))


def lrn(ctx: Context, node: Node) -> Translation:
    """LRN across channels: ``size`` channels, ``alpha``, ``beta`` (Caffe's LRN)."""
    a = node.attrs
    return Translation("LRN", {"local_size": a["size"], "alpha": a.get("alpha", 1e-4),
                               "beta": a.get("beta", 0.75)})


def leaky_relu(ctx: Context, node: Node) -> Translation:
    """LeakyRelu: x for x ≥ 0, ``alpha``·x below (default 0.01): a ReLU with a slope."""
    return Translation("ReLU", {"negative_slope": node.attrs.get("alpha", 0.01)})


def softmax(ctx: Context, node: Node) -> Translation:
    """Softmax over ``axis`` (default −1 from opset 13)."""
    return Translation("Softmax", {"axis": node.attrs.get("axis", -1)})


def broadcast(ctx: Context, node: Node) -> Translation:
    """Element-wise arithmetic with NumPy (multidirectional) broadcasting; constant operands
    are kept as ``const_shapes`` so a learned per-channel scale counts as parameters."""
    consts = [ctx.shapes.get(x) for x in node.input if x and x in ctx.static]
    if None in consts:  # a constant operand cnnstat could not evaluate
        return unknown(ctx, node)
    return Translation("Broadcast", {"const_shapes": tuple(consts)})


def reduce(ctx: Context, node: Node) -> Translation:
    """Reduce*: ``axes`` as an attribute (or, from opset 18, a constant second input), none
    meaning all; ``keepdims`` (default 1); empty axes with ``noop_with_empty_axes`` is Identity."""
    a = node.attrs
    axes = a.get("axes")
    bottoms = activations(ctx, node)[:1]
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.ints(node.input[1])
        if axes is None:  # axes known only at run time: the reader says which input
            return Translation(f"onnx.{node.op_type}", bottoms=bottoms)
    if not axes and a.get("noop_with_empty_axes"):
        return Translation("Identity", bottoms=bottoms)
    return Translation("Reduce", {"axes": tuple(axes or ()), "keepdims": a.get("keepdims", 1)},
                       bottoms=bottoms)


def concat(ctx: Context, node: Node) -> Translation:
    """Concat on ``axis``; with a constant operand the reader's spec shape is used."""
    all_acts = len(activations(ctx, node)) == len([x for x in node.input if x])
    return Translation("Concat" if all_acts else "ShapedConcat", {"axis": node.attrs["axis"]})


def split(ctx: Context, node: Node) -> Translation:
    """Split on ``axis`` (default 0) into ``split`` sizes (attribute, or a constant second
    input from opset 13): Caffe's Slice when every part is non-empty; otherwise (equal parts,
    ``num_outputs``, empty parts) the spec shape :func:`split_shape`."""
    a = node.attrs
    sizes = a.get("split") or (ctx.ints(node.input[1]) if len(node.input) > 1 else None)
    bottoms = activations(ctx, node)[:1]
    if sizes and all(s > 0 for s in sizes) and all(node.output):
        return Translation("Slice", {"axis": a.get("axis", 0),
                                     "points": tuple(np.cumsum(sizes[:-1]).tolist())},
                           bottoms=bottoms)
    return Translation("ShapedSplit", bottoms=bottoms)


def reshape(ctx: Context, node: Node) -> Translation:
    """Reshape to a constant ``shape`` input: 0 copies the input dim (unless ``allowzero``),
    −1 is inferred — Caffe's Reshape rule; otherwise the reader's spec shape."""
    target = ctx.ints(node.input[1])
    if target is not None and not node.attrs.get("allowzero"):
        return Translation("Reshape", {"shape": target})
    return Translation("ShapedReshape")


def flatten(ctx: Context, node: Node) -> Translation:
    """Flatten to 2-D: dims before ``axis`` (default 1) × the rest."""
    return Translation("Flatten", {"axis": node.attrs.get("axis", 1), "to_2d": True})


def transpose(ctx: Context, node: Node) -> Translation:
    """Transpose by ``perm`` (default: reversed axes)."""
    perm = node.attrs.get("perm")
    if perm is None and node.input[0] in ctx.shapes:
        perm = list(reversed(range(len(ctx.shapes[node.input[0]]))))
    if perm:
        return Translation("Permute", {"order": tuple(perm)})
    return Translation("ShapedReshape")


def resize(ctx: Context, node: Node) -> Translation:
    """Resize / Upsample: ``mode`` nearest, linear (``bilinear`` in old Upsample) or cubic;
    the output size comes from constant ``sizes`` or ``scales`` (the reader's spec shape)."""
    a = node.text_attrs()
    mode = a.get("mode", "nearest")
    return Translation("Resize", {"mode": {"bilinear": "linear"}.get(mode, mode)},
                       bottoms=activations(ctx, node)[:1])


def layer_norm(ctx: Context, node: Node) -> Translation:
    """LayerNormalization over the dims from ``axis`` (default −1) on; the optional Mean and
    InvStdDev outputs keep the dims before ``axis`` and have 1 for the others."""
    return Translation("LayerNorm", {"axis": node.attrs.get("axis", -1)})


def einsum(ctx: Context, node: Node) -> Translation:
    """Einsum by its ``equation`` (explicit or implicit output, ellipsis broadcasting);
    constant operands are kept in order as ``operands`` (None marks an activation)."""
    operands = tuple(ctx.shapes.get(x) if x in ctx.static else None for x in node.input)
    if any(s is None and x in ctx.static for s, x in zip(operands, node.input)):
        return unknown(ctx, node)  # a constant operand cnnstat could not evaluate
    eq = node.attrs.get("equation", b"")
    return Translation("Einsum", {"equation": eq.decode() if isinstance(eq, bytes) else eq,
                                  "operands": operands})


def cast_like(ctx: Context, node: Node) -> Translation:
    """CastLike: input 0 converted to the element type of input 1, whose values are not read
    (a CastLike of a constant is folded by the reader)."""
    return Translation("Cast", bottoms=(node.input[0],))


def renamed(kind: str) -> Translator:
    """An op that maps one-to-one onto an IR kind, its attrs needing no translation."""

    def translate(ctx: Context, node: Node) -> Translation:
        return Translation(kind)

    translate.__doc__ = f"The IR kind '{kind}', attributes as ONNX gives them."
    return translate


def unknown(ctx: Context, node: Node) -> Translation:
    """An op cnnstat has no rule for: kind ``onnx.<op>`` (``<domain>.<op>`` for a custom
    domain), not costed, shaped by ONNX shape inference."""
    if node.domain in ("", "ai.onnx"):
        return Translation(f"onnx.{node.op_type}")
    return Translation(f"{node.domain}.{node.op_type}")


# ONNX op → IR kind for ops that map one-to-one (attrs need no translation).
_SAME_KIND = {
    "Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "Elu": "ELU", "Clip": "Clip",
    "HardSigmoid": "HardSigmoid", "HardSwish": "HardSwish", "Selu": "Selu",
    "Softplus": "Softplus", "Erf": "Erf", "Gelu": "Gelu", "LogSoftmax": "LogSoftmax",
    "Identity": "Identity", "Cast": "Cast", "Dropout": "Dropout", "PRelu": "PReLU",
    "InstanceNormalization": "InstanceNorm",
    "Squeeze": "Squeeze", "Unsqueeze": "Unsqueeze", "Gather": "Gather", "Expand": "Expand",
    "Tile": "ShapedTile", "Pad": "Pad", "Slice": "StridedSlice",
}
# Element-wise arithmetic, comparison and logic with NumPy broadcasting (unary ones: one FLOP
# per element).
BROADCAST_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "Where",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
    "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor",
    "Sqrt", "Exp", "Log", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Not", "BitwiseNot",
    "Sign", "Round", "IsNaN", "IsInf", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh",
    "Cosh", "Asinh", "Acosh", "Atanh", "Softsign", "ThresholdedRelu", "Celu", "Shrink", "Mish",
})
REDUCE_OPS = frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
                        "ReduceL2"})
_ALL_REDUCE = REDUCE_OPS | {"ReduceL1", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}

TRANSLATORS: dict[str, Translator] = {
    "Conv": conv, "ConvTranspose": conv,
    "Gemm": gemm, "MatMul": gemm,
    "MaxPool": pool, "AveragePool": pool, "GlobalMaxPool": pool, "GlobalAveragePool": pool,
    "BatchNormalization": batch_norm,
    "LRN": lrn,
    "LeakyRelu": leaky_relu,
    "Softmax": softmax,
    "LayerNormalization": layer_norm,
    "CastLike": cast_like,
    "Einsum": einsum,
    **{op: broadcast for op in BROADCAST_OPS},
    **{op: reduce for op in REDUCE_OPS},
    "Concat": concat,
    "Split": split,
    "Reshape": reshape,
    "Flatten": flatten,
    "Transpose": transpose,
    "Resize": resize, "Upsample": resize,
    **{op: renamed(kind) for op, kind in _SAME_KIND.items()},
}


def translate(ctx: Context, node: Node) -> Translation:
    """The node's translation: its op's translator for the standard domain, else unknown."""
    if node.domain not in ("", "ai.onnx"):
        return unknown(ctx, node)
    return TRANSLATORS.get(node.op_type, unknown)(ctx, node)


# --------------------------------------------------------------------- spec shapes


def _arg_ints(ctx: Context, node: Node) -> list[tuple[int, ...] | None]:
    return [ctx.ints(n) if n else None for n in node.input]


def _unknown(node: Node, arg: list[tuple[int, ...] | None], *where: int) -> bool:
    """Whether one of the inputs at ``where`` is given (a name) but its value is unknown."""
    return any(i < len(arg) and node.input[i] and arg[i] is None for i in where)


def reshape_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Reshape: 0 copies the input dim unless ``allowzero``; one −1 takes the rest."""
    x, target = ctx.shapes[node.input[0]], ctx.ints(node.input[1])
    if target is None:
        return None
    out = [d if d != 0 or node.attrs.get("allowzero") else x[i] for i, d in enumerate(target)]
    if -1 in out:
        out[out.index(-1)] = int(np.prod(x)) // -int(np.prod(out))
    return [tuple(out)]


def slice_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Slice: per listed axis (default all), ``range(start, end, step)`` clamped as Python
    slices clamp (``slice.indices``)."""
    x, arg = ctx.shapes[node.input[0]], _arg_ints(ctx, node)
    if len(arg) < 3 or _unknown(node, arg, 1, 2, 3, 4):
        return None
    axes = arg[3] if len(arg) > 3 and arg[3] else range(len(arg[1]))
    steps = arg[4] if len(arg) > 4 and arg[4] else (1,) * len(arg[1])
    out = list(x)
    for ax, b, e, st in zip(axes, arg[1], arg[2], steps):
        out[ax] = len(range(*slice(b, e, st).indices(x[ax])))
    return [tuple(out)]


def squeeze_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Squeeze: drop the listed axes (attribute, or input from opset 13); none: every 1."""
    x, arg = ctx.shapes[node.input[0]], _arg_ints(ctx, node)
    if _unknown(node, arg, 1):
        return None
    axes = node.attrs.get("axes") or (arg[1] if len(arg) > 1 else None)
    gone = {ax % len(x) for ax in axes} if axes else {i for i, d in enumerate(x) if d == 1}
    return [tuple(d for i, d in enumerate(x) if i not in gone)]


def unsqueeze_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Unsqueeze: insert a 1 at each listed axis of the output (rank + len(axes))."""
    x, arg = ctx.shapes[node.input[0]], _arg_ints(ctx, node)
    axes = node.attrs.get("axes") or (arg[1] if len(arg) > 1 else None)
    rank = len(x) + len(axes)
    out = list(x)
    for ax in sorted(ax % rank for ax in axes):
        out.insert(ax, 1)
    return [tuple(out)]


def gather_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Gather: data dims with the ``axis`` dim replaced by the indices' dims."""
    x = ctx.shapes[node.input[0]]
    idx = ctx.value(node.input[1])
    ishape = idx.shape if idx is not None else ctx.shapes.get(node.input[1])
    if ishape is None:
        return None
    ax = node.attrs.get("axis", 0) % len(x)
    return [(*x[:ax], *ishape, *x[ax + 1:])]


def expand_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Expand: the input broadcast with the constant ``shape`` (NumPy rules)."""
    x, target = ctx.shapes[node.input[0]], ctx.ints(node.input[1])
    if target is None:
        return None
    return [tuple(np.broadcast_shapes(x, tuple(target)))]


def tile_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Tile: each dim times its ``repeats`` entry."""
    x, reps = ctx.shapes[node.input[0]], ctx.ints(node.input[1])
    if reps is None:
        return None
    return [tuple(d * r for d, r in zip(x, reps))]


def pad_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Pad: ``pads`` (attribute before opset 11, then an input) are begin values then end
    values, over ``axes`` (opset 18 input; default all)."""
    x, arg = ctx.shapes[node.input[0]], _arg_ints(ctx, node)
    pads = node.attrs.get("pads") or (arg[1] if len(arg) > 1 else None)
    if pads is None or _unknown(node, arg, 3):
        return None
    axes = arg[3] if len(arg) > 3 and arg[3] else range(len(x))
    out, n = list(x), len(pads) // 2
    for i, ax in enumerate(axes):
        out[ax] += pads[i] + pads[i + n]
    return [tuple(out)]


def resize_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Resize: constant ``sizes`` (input 3), else floor(dim · scale) per dim with ``scales``
    (input 2; Upsample: input 1 or the attribute)."""
    x = ctx.shapes[node.input[0]]
    arg = _arg_ints(ctx, node)
    if node.op_type == "Resize" and len(node.input) > 3 and arg[3]:
        return [tuple(arg[3])]
    if node.op_type == "Upsample":
        scales = ctx.value(node.input[1]) if len(node.input) > 1 else np.asarray(
            node.attrs.get("scales"))
    else:
        scales = ctx.value(node.input[2]) if len(node.input) > 2 else None
    if scales is None or scales.size != len(x):
        return None
    return [tuple(int(np.floor(d * s)) for d, s in zip(x, scales.reshape(-1)))]


def concat_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Concat: the inputs' ``axis`` dims summed, the others as the first input's."""
    x = ctx.shapes[node.input[0]]
    ins = [ctx.shapes.get(n) for n in node.input if n]
    if any(s is None for s in ins):
        return None
    ax = node.attrs["axis"] % len(x)
    return [(*x[:ax], sum(s[ax] for s in ins), *x[ax + 1:])]  # type: ignore[index]


def split_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Split: the ``split`` sizes (attribute or input 1) along ``axis``; without them,
    ``num_outputs`` parts of ceil(d / n), the last one smaller (opset 18), or equal parts."""
    x, arg = ctx.shapes[node.input[0]], _arg_ints(ctx, node)
    if _unknown(node, arg, 1):
        return None
    axis = node.attrs.get("axis", 0) % len(x)
    d, n = x[axis], len(node.output)
    sizes = node.attrs.get("split") or (arg[1] if len(arg) > 1 else None)
    if not sizes:
        if "num_outputs" in node.attrs:
            chunk = -(-d // node.attrs["num_outputs"])
            sizes = [chunk] * (n - 1) + [d - chunk * (n - 1)]
        elif d % n == 0:
            sizes = [d // n] * n
    if not sizes or len(sizes) != n or sum(sizes) != d or min(sizes) < 0:
        return None
    return [(*x[:axis], s, *x[axis + 1:]) for s, o in zip(sizes, node.output) if o]


def same_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """One output shaped as input 0: Cast, CastLike, Identity, Scatter* (the data), and
    normalizations ONNX shape inference may leave unshaped (GroupNormalization,
    MeanVarianceNormalization)."""
    return [ctx.shapes[node.input[0]]]


def string_normalizer_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """StringNormalizer without ``stopwords`` keeps its input's shape (with stopwords the
    output length depends on the strings: unknown)."""
    return None if node.attrs.get("stopwords") else [ctx.shapes[node.input[0]]]


def loss_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss: the loss has the target's shape
    [N, d1, …] with ``reduction`` none, else it is a scalar; SoftmaxCrossEntropyLoss's optional
    log_prob output has the scores' shape."""
    target = ctx.shapes.get(node.input[1])
    if target is None:
        return None
    reduction = node.text_attrs().get("reduction", "mean")
    outs = [target if reduction == "none" else ()]
    if len(node.output) > 1:
        outs.append(ctx.shapes[node.input[0]])
    return [s for s, o in zip(outs, node.output) if o]


def constant_of_shape_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """ConstantOfShape: the output's shape is the value of its input (a 1-D int64 tensor)."""
    dims = ctx.ints(node.input[0])
    return None if dims is None else [dims]


def range_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Range: max(ceil((limit − start) / delta), 0) elements."""
    start, limit, delta = (ctx.value(x) for x in node.input[:3])
    if start is None or limit is None or delta is None:
        return None
    n = math.ceil((float(limit.reshape(-1)[0]) - float(start.reshape(-1)[0]))
                  / float(delta.reshape(-1)[0]))
    return [(max(n, 0),)]


def indices_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """GatherElements: the output has the indices' (input 1) shape."""
    return [ctx.shapes[node.input[1]]]


def transpose_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Transpose: dims in ``perm`` order (default reversed)."""
    x = ctx.shapes[node.input[0]]
    perm = node.attrs.get("perm") or list(reversed(range(len(x))))
    return [tuple(x[p] for p in perm)]


def broadcast_shape(ctx: Context, node: Node) -> list[Shape] | None:
    """Element-wise ops: every named input broadcast together (NumPy rules)."""
    ins = [ctx.shapes.get(x) for x in node.input if x]
    if None in ins:
        return None
    return [tuple(np.broadcast_shapes(*ins))]


SHAPES: dict[str, ShapeSpec] = {
    "Transpose": transpose_shape,
    **{op: broadcast_shape for op in BROADCAST_OPS},
    "Cast": same_shape, "CastLike": same_shape, "Identity": same_shape,
    "ScatterND": same_shape, "ScatterElements": same_shape, "Scatter": same_shape,
    "GatherElements": indices_shape, "ConstantOfShape": constant_of_shape_shape,
    "Range": range_shape,
    "GroupNormalization": same_shape, "MeanVarianceNormalization": same_shape,
    "NegativeLogLikelihoodLoss": loss_shape, "SoftmaxCrossEntropyLoss": loss_shape,
    "StringNormalizer": string_normalizer_shape,
    "Split": split_shape,
    "Reshape": reshape_shape, "Slice": slice_shape, "Squeeze": squeeze_shape,
    "Unsqueeze": unsqueeze_shape, "Gather": gather_shape, "Expand": expand_shape,
    "Tile": tile_shape, "Pad": pad_shape, "Resize": resize_shape, "Upsample": resize_shape,
    "Concat": concat_shape,
}


def spec_shapes(ctx: Context, node: Node) -> list[Shape] | None:
    """Output shapes by the op's spec on known input shapes and constants, or None."""
    spec = SHAPES.get(node.op_type)
    if spec is None or not node.input or node.input[0] not in ctx.shapes:
        return None
    return spec(ctx, node)


# --------------------------------------------------------------------- what a shape depends on

# Inputs (by position) whose VALUES set the output shape; for the data-dependent ops (NonZero,
# Unique, Compress, NonMaxSuppression, …) the data itself. A graph input reaching one of these
# makes the output shape unknowable before run time.
VALUE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 3),
    "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "TopK": (1,),
    "OneHot": (1,), "Range": (0, 1, 2), "ConstantOfShape": (0,), "CenterCropPad": (1,),
    "Col2Im": (1, 2), "STFT": (1, 3), "DFT": (1, 2), "HannWindow": (0,), "HammingWindow": (0,),
    "BlackmanWindow": (0,), "MelWeightMatrix": (0, 1), "MaxUnpool": (2,), "AffineGrid": (1,),
    "NonZero": (0,), "Unique": (0,), "Compress": (1,), "NonMaxSuppression": (0, 1, 2, 3, 4),
    "StringSplit": (0,), "StringNormalizer": (0,), "ImageDecoder": (0,), "Loop": (0, 1),
    "If": (0,), "TfIdfVectorizer": (0,), **{op: (1,) for op in _ALL_REDUCE},
}
# Ops whose output may be far larger than their inputs (sizes come from values): never
# evaluated by the generic constant folder, only by the reader's own bounded rules.
GROWS = frozenset({"Expand", "Tile", "Pad", "Resize", "Upsample", "ConstantOfShape", "Range",
                   "OneHot", "HannWindow", "HammingWindow", "BlackmanWindow",
                   "MelWeightMatrix", "CenterCropPad", "Col2Im", "STFT", "DFT", "MaxUnpool",
                   "AffineGrid", "Loop", "Scan", "If", "RandomNormal", "RandomUniform",
                   "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
                   "EyeLike", "Einsum", "ImageDecoder", "SequenceMap", "ConvTranspose"})
# Ops whose outputs are not tensors (cnnstat analyses tensors only).
NON_TENSOR_OPS: dict[str, str] = {
    "SequenceConstruct": "sequence", "SequenceEmpty": "sequence", "SequenceInsert": "sequence",
    "SequenceErase": "sequence", "SplitToSequence": "sequence", "SequenceMap": "sequence",
    "Optional": "optional",
}


def value_inputs(node: Node) -> list[str]:
    """The node's inputs whose values decide its output shape (see :data:`VALUE_INPUTS`)."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return []
    if op == "Resize":  # opset 10: (X, scales); from 11: (X, roi, scales, sizes)
        where: tuple[int, ...] = (1,) if len(node.input) == 2 else (2, 3)
    else:
        where = VALUE_INPUTS.get(op, ())
    return [node.input[i] for i in where if i < len(node.input) and node.input[i]]
