"""The ONNX frontend: a ``.onnx`` file → the layer IR, reading only dims, never weights.

How it reads a model:

1. The file is memory-mapped and its large initializers are re-encoded without their data
   (see ``_load_without_weights``); onnx's own loader parses the rest (no external data is
   loaded: a path named in ``external_data`` is never opened). Memory and time follow the
   graph, not the weights; malformed files fall back to ``onnx.load`` for its verdict.
   Each node's fields are then read once into plain Python values (``_Node``): protobuf
   field access is the largest single cost of a read.
2. Graph inputs are bound: ``batch`` sets the leading dim of every input, ``shapes`` (the
   user's ``--input-shape``) a whole input. Any dim still symbolic is named in one error.
3. One pass in execution order shapes every tensor with cnnstat's own rules: the IR rule of
   the layer's kind (Conv, Pool, Gemm, Concat, Reshape, …), the ONNX spec for data-driven
   ops (Slice, Pad, Resize, Gather, …) on constant inputs, and a NumPy evaluation of shape
   arithmetic (Shape → Gather → Div → Unsqueeze → Concat → Reshape). Where that leaves a gap
   (an operator outside cnnstat's list), ONNX shape inference with data propagation runs on
   a slim copy of the graph (nodes, bound inputs, small inline initializers, other
   initializers as typed inputs) and the pass is redone with its shapes as hints. Anything
   still unknown is named in one error.
4. Shape arithmetic is folded: Constant, Shape and Size nodes, and every node whose inputs
   are all constants, produce constants rather than layers (a runtime folds them away too),
   so the table lists the layers that touch activations.
5. Each node becomes one :class:`~analyzer.ir.Layer` of a canonical kind shared with the Caffe
   frontend where one fits; its initializers become ``Layer.weights`` (float ones are
   learnable, BatchNormalization's running mean/variance and integer constants are not).
   An operator cnnstat has no rule for gets the kind ``onnx.<op>`` (``<domain>.<op>`` for a
   custom domain), is flagged "not costed", and is shaped by ONNX shape inference.
"""

from __future__ import annotations

import math
import mmap
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, helper, numpy_helper, shape_inference

from analyzer.errors import CnnstatError
from analyzer.ir import Layer, Net, Shape, Weight, frozen
from analyzer.registry import rule_for
from analyzer.shapes import ShapeError, hinted

_ITEMSIZE = {
    TensorProto.FLOAT: 4, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.UINT16: 2,
    TensorProto.INT16: 2, TensorProto.INT32: 4, TensorProto.INT64: 8, TensorProto.BOOL: 1,
    TensorProto.FLOAT16: 2, TensorProto.DOUBLE: 8, TensorProto.UINT32: 4,
    TensorProto.UINT64: 8, TensorProto.COMPLEX64: 8, TensorProto.COMPLEX128: 16,
    TensorProto.BFLOAT16: 2,
}
_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
_FOLD_ALWAYS = {"Constant", "Shape", "Size"}  # nodes folded whatever their inputs are
_LITTLE_ENDIAN = sys.byteorder == "little"
_SMALL_CONST = 4096  # elements: constants kept for shape inference and folding

# ONNX op → IR kind for ops that map one-to-one (attrs need no translation).
_SAME_KIND = {
    "Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "Elu": "ELU", "Clip": "Clip",
    "HardSigmoid": "HardSigmoid", "HardSwish": "HardSwish", "Selu": "Selu",
    "Softplus": "Softplus", "Erf": "Erf", "Gelu": "Gelu", "LogSoftmax": "LogSoftmax",
    "Identity": "Identity", "Cast": "Cast", "Dropout": "Dropout", "PRelu": "PReLU",
    "InstanceNormalization": "InstanceNorm", "LayerNormalization": "LayerNorm",
    "Squeeze": "Squeeze", "Unsqueeze": "Unsqueeze", "Gather": "Gather", "Expand": "Expand",
    "Tile": "ShapedTile", "Pad": "Pad", "Slice": "StridedSlice",
}
# Element-wise arithmetic with NumPy broadcasting (unary ones: one FLOP per element).
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Sqrt", "Exp",
              "Log", "Abs", "Neg", "Reciprocal", "Floor", "Ceil"}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2"}


def read_onnx(path: str, batch: int | None = None,
              shapes: Mapping[str, tuple[int, ...]] | None = None,
              onnx_inference: str = "auto") -> Net:
    """Read an ONNX model's graph into the IR; raise CnnstatError for anything unusable.

    ``onnx_inference``: "auto" runs ONNX shape inference only when cnnstat's own rules leave
    a tensor unshaped (an operator outside its list); "always" runs it first and keeps its
    shapes as every layer's ``shapes_hint`` (the tests compare the two).
    """
    model = _load(path)
    return _Reader(model, path, batch, dict(shapes or {})).net(onnx_inference == "always")


def _load(path: str) -> onnx.ModelProto:
    try:
        try:
            model = _load_without_weights(path)
        except (ValueError, IndexError, DecodeError):  # not well-formed: onnx's own verdict
            model = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise CnnstatError("no such file", path) from None
    except IsADirectoryError:
        raise CnnstatError("is a directory, not an ONNX file", path) from None
    except OSError as e:
        raise CnnstatError(f"cannot read: {e.strerror}", path) from None
    except (DecodeError, RuntimeWarning, ValueError) as e:
        raise CnnstatError(f"not an ONNX model (the protobuf does not parse: {e})",
                           path) from None
    if not model.ir_version or not model.HasField("graph"):
        raise CnnstatError("not an ONNX model (no IR version or graph in the file)", path)
    if model.ir_version > onnx.IR_VERSION:
        raise CnnstatError(f"ONNX IR version {model.ir_version} is newer than the installed "
                           f"onnx package reads (up to {onnx.IR_VERSION})", path)
    newest = onnx.defs.onnx_opset_version()
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version > newest:
            raise CnnstatError(f"opset {op.version} is newer than the installed onnx package "
                               f"knows (up to {newest}); upgrade onnx", path)
    return model


# --------------------------------------------------------------------- loading without weights
# A ModelProto's large initializers are skipped at the wire level: the file is memory-mapped,
# the model → graph → initializer fields are walked, and each large initializer is re-encoded
# without its data fields, so the pages holding weights are never read. What remains (the
# graph, dims, types, names, small constants) is parsed by onnx's own loader.

_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_TENSOR_DATA = {4, 5, 6, 7, 9, 10, 11}  # float/int32/string/int64/raw/double/uint64 data
_STRIP_BYTES = 64 * 1024  # initializers larger than this lose their data


def _varint(buf: Any, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(buf: Any, start: int, end: int):
    """(field number, wire type, field start, value start, field end) of each field."""
    pos = start
    while pos < end:
        first = pos
        key = buf[pos]
        if key < 0x80:  # one-byte key: fields 1-15, every field cnnstat walks
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        wire = key & 7
        value = pos
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, value = _varint(buf, pos)
            pos = value + n
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > end:
            raise ValueError("truncated")
        yield key >> 3, wire, first, value, pos


def _submessage(number: int, body: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(body)) + body


def _load_without_weights(path: str) -> onnx.ModelProto:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise ValueError("empty file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            buf = memoryview(mm)
            try:
                parts = []
                for num, wire, first, value, end in _fields(buf, 0, size):
                    if num == _MODEL_GRAPH and wire == 2:
                        parts.append(_submessage(num, _graph_without_weights(buf, value, end)))
                    else:
                        parts.append(bytes(buf[first:end]))
            finally:
                buf.release()
    return onnx.load_model_from_string(b"".join(parts))


def _graph_without_weights(buf: Any, start: int, end: int) -> bytes:
    parts = []
    run = start  # start of the fields kept as they are since the last stripped one
    for num, wire, first, value, stop in _fields(buf, start, end):
        if num == _GRAPH_INITIALIZER and wire == 2 and stop - value > _STRIP_BYTES:
            kept = [bytes(buf[f:e]) for n, _, f, _, e in _fields(buf, value, stop)
                    if n not in _TENSOR_DATA]
            parts += (bytes(buf[run:first]), _submessage(num, b"".join(kept)))
            run = stop
    parts.append(bytes(buf[run:end]))  # copies, never views: the map must close cleanly
    return b"".join(parts)


_RAW_DTYPES = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32,
               TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}


def _inline_array(t: TensorProto) -> np.ndarray | None:
    """The tensor's value if it is stored inline, else None (``numpy_helper.to_array``, with
    a short path for the common little-endian raw tensors)."""
    if t.data_location == TensorProto.EXTERNAL:
        return None
    raw = t.raw_data
    dtype = _RAW_DTYPES.get(t.data_type)
    if raw and dtype is not None and _LITTLE_ENDIAN and not t.HasField("segment"):
        return np.frombuffer(raw, dtype=dtype).reshape(tuple(t.dims))
    return numpy_helper.to_array(t) if _has_data(t) else None


def _has_data(t: TensorProto) -> bool:
    return t.data_location == TensorProto.EXTERNAL or bool(
        t.raw_data or t.float_data or t.int32_data or t.int64_data or t.double_data
        or t.uint64_data or t.string_data) or not math.prod(t.dims)


# Attribute types decoded straight from their AttributeProto field (the values
# onnx.helper.get_attribute_value gives); the rare others go through onnx.helper.
_ATTR_ONE = {AttributeProto.INT: "i", AttributeProto.FLOAT: "f", AttributeProto.STRING: "s",
             AttributeProto.TENSOR: "t"}
_ATTR_MANY = {AttributeProto.INTS: "ints", AttributeProto.FLOATS: "floats",
              AttributeProto.STRINGS: "strings"}


def _attr_value(a: AttributeProto) -> Any:
    field = _ATTR_ONE.get(a.type)
    if field is not None:
        return getattr(a, field)
    field = _ATTR_MANY.get(a.type)
    if field is not None:
        return list(getattr(a, field))
    return helper.get_attribute_value(a)


class _Node:
    """A graph node as plain Python values, read from its NodeProto once.

    Every protobuf field access builds a new Python object, and the passes below look at
    each node's inputs and attributes many times; reading them once is most of the speed.
    ``attrs`` holds each attribute's value as ``onnx.helper.get_attribute_value`` gives it.
    """

    __slots__ = ("op_type", "domain", "name", "input", "output", "attrs")

    def __init__(self, proto: onnx.NodeProto) -> None:
        self.op_type: str = proto.op_type
        self.domain: str = proto.domain
        self.name: str = proto.name
        self.input: list[str] = proto.input[:]
        self.output: list[str] = proto.output[:]
        self.attrs: dict[str, Any] = {a.name: _attr_value(a) for a in proto.attribute}


def _dims(tensor_type: Any) -> list[int | str | None] | None:
    """Dims of a tensor type: int, the symbol's name, or None (unnamed); None if no rank."""
    if not tensor_type.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(d.dim_value)
        else:
            out.append(d.dim_param or None)
    return out


class _Reader:
    """One read: bind inputs, infer shapes, fold constants, translate nodes."""

    def __init__(self, model: onnx.ModelProto, path: str, batch: int | None,
                 shapes: dict[str, tuple[int, ...]]) -> None:
        self.model, self.path, self.batch, self.user = model, path, batch, shapes
        self.graph = model.graph
        self.init = {t.name: t for t in self.graph.initializer}
        # (name, data type, dims) of every initializer, in file order, read once
        self.init_info = [(t.name, t.data_type, tuple(t.dims)) for t in self.graph.initializer]
        self.init_type = {name: (dtype, dims) for name, dtype, dims in self.init_info}
        self.arrays: dict[str, np.ndarray] = {}  # decoded initializers and Constant values
        self.consts: dict[str, TensorProto] = {}  # Constant node outputs
        self.static: set[str] = set(self.init)  # tensors known before run time
        self.shapes: dict[str, Shape] = {}
        self.values: dict[str, np.ndarray] = {}  # folded constants cnnstat evaluated
        self.warnings: list[str] = []
        # shape arithmetic on a dim the file leaves symbolic: folded here, run by a runtime
        self.symbolic = False
        self.dynamic: set[str] = set()
        self.exprs: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
        self.same: dict[str, str] = {}  # a repeated expression's output → the first one's
        self.shape_nodes = 0

    # ------------------------------------------------------------------ inputs and shapes

    def _bind_inputs(self) -> list[tuple[str, Shape]]:
        bound, unknown = [], []
        for vi in self.graph.input:
            if vi.name in self.init:
                continue  # IR < 4 lists initializers as inputs too
            if not vi.type.HasField("tensor_type"):
                raise CnnstatError(f"graph input '{vi.name}' is not a tensor", self.path)
            dims = list(self.user[vi.name]) if vi.name in self.user else _dims(
                vi.type.tensor_type)
            if dims is None:
                unknown.append(f"'{vi.name}' (rank unknown)")
                continue
            self.symbolic |= any(not isinstance(d, int) or d <= 0 for d in dims)
            if self.batch is not None and dims:  # as the analysis does, --input-shape too
                dims[0] = self.batch
            if any(not isinstance(d, int) or d <= 0 for d in dims):
                shown = ",".join(str(d) if d is not None else "?" for d in dims)
                unknown.append(f"'{vi.name}' [{shown}]")
                continue
            bound.append((vi.name, tuple(dims)))  # type: ignore[arg-type]
        if unknown:
            raise CnnstatError(
                "input dims are symbolic: " + "; ".join(unknown) + ". Give --batch N for the "
                "leading dim and --input-shape NAME=d,d,... for a whole input", self.path)
        return bound

    def _infer(self, bound: list[tuple[str, Shape]]) -> None:
        """ONNX shape inference (with data propagation) on a slim, weightless graph."""
        slim = onnx.ModelProto()
        slim.ir_version = self.model.ir_version
        slim.opset_import.extend(self.model.opset_import)
        g = slim.graph
        g.node.extend(self.graph.node)
        for name, shape in bound:
            elem = next(vi.type.tensor_type.elem_type for vi in self.graph.input
                        if vi.name == name)
            g.input.append(helper.make_tensor_value_info(name, elem, shape))
        for t in self.graph.initializer:
            if _inline_small(t):
                g.initializer.append(t)
            else:
                g.input.append(helper.make_tensor_value_info(t.name, t.data_type, t.dims))
        try:
            inferred = shape_inference.infer_shapes(slim, check_type=False, strict_mode=False,
                                                    data_prop=True)
        except Exception as e:  # onnx raises its own InferenceError and RuntimeError types
            raise CnnstatError(f"ONNX shape inference failed: {e}", self.path) from None
        for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
            if vi.type.HasField("tensor_type"):
                dims = _dims(vi.type.tensor_type)
                if dims is not None and all(isinstance(d, int) for d in dims):
                    self.shapes[vi.name] = tuple(dims)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ graph order

    def _ordered_nodes(self) -> list[_Node]:
        """Nodes in a valid execution order; errors for a missing input or a cycle."""
        nodes = [_Node(n) for n in self.graph.node]
        producer: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for o in n.output:
                if o:
                    producer[o] = i
        given = set(self.init) | {vi.name for vi in self.graph.input}
        in_order = True
        for i, n in enumerate(nodes):
            for x in n.input:
                if x and x not in given:
                    at = producer.get(x)
                    if at is None:
                        raise CnnstatError(f"node '{n.name or n.op_type}' reads '{x}', which "
                                           "no node, initializer or graph input provides",
                                           self.path)
                    in_order = in_order and at < i
        if in_order:  # the usual case: the file lists nodes in execution order
            return nodes
        deps = [{producer[x] for x in n.input if x in producer and x not in given}
                for n in nodes]
        order, done, waiting = [], set(), list(range(len(nodes)))
        while waiting:
            ready = [i for i in waiting if deps[i] <= done]
            if not ready:
                stuck = ", ".join(f"'{nodes[i].name or nodes[i].op_type}'" for i in waiting[:5])
                raise CnnstatError(f"the graph has a cycle through nodes {stuck}", self.path)
            order += ready
            done.update(ready)
            waiting = [i for i in waiting if i not in done]
        return [nodes[i] for i in order]

    # ------------------------------------------------------------------ values

    def _value(self, name: str) -> np.ndarray | None:
        """The value of an inline constant (initializer, Constant node or folded), else None."""
        if name in self.values:
            return self.values[name]
        if name in self.arrays:
            return self.arrays[name]
        t = self.init.get(name) or self.consts.get(name)
        value = self.arrays[name] = None if t is None else _inline_array(t)
        return value

    def _ints(self, name: str) -> tuple[int, ...] | None:
        v = self._value(name) if name else None
        return None if v is None else tuple(int(x) for x in v.reshape(-1))

    def _weights(self, node: _Node, stats: tuple[int, ...] = ()) -> tuple[Weight, ...]:
        """Initializers the node reads, as IR weights (slots in ``stats`` are statistics)."""
        out = []
        for i, x in enumerate(node.input):
            t = self.init_type.get(x)
            if t is None:
                continue
            dtype, dims = t
            out.append(Weight(x, dims, dtype in _FLOATS and i not in stats,
                              _ITEMSIZE.get(dtype, 1)))
        return tuple(out)

    # ------------------------------------------------------------------ translation

    def net(self, infer_first: bool = False) -> Net:
        bound = self._bind_inputs()
        nodes = self._ordered_nodes()
        if infer_first:
            self._infer(bound)
        layers = self._translate(bound, nodes)
        if not infer_first and any(la.shapes_hint is None for la in layers[len(bound):]):
            self._reset()  # a gap cnnstat's rules cannot fill: ask ONNX shape inference
            self._infer(bound)
            layers = self._translate(bound, nodes)
        self._check_known(layers)
        used = {w.name for la in layers for w in la.weights or ()}
        for t_name, dtype, dims in self.init_info:
            if t_name not in used and dtype in _FLOATS:
                self.warnings.append(f"initializer '{t_name}' ({list(dims)}) feeds no layer "
                                     "(only folded constant arithmetic); not counted")
        name = self.graph.name or os.path.splitext(os.path.basename(self.path))[0]
        return Net(name, self.path, "onnx", tuple(layers), tuple(self.warnings),
                   self.shape_nodes)

    def _reset(self) -> None:
        self.consts, self.static = {}, set(self.init)
        self.shapes, self.values, self.warnings, self.arrays = {}, {}, [], {}
        self.dynamic, self.shape_nodes, self.exprs, self.same = set(), 0, {}, {}

    def _translate(self, bound: list[tuple[str, Shape]],
                   nodes: list[_Node]) -> list[Layer]:
        """One pass in execution order: fold constants, make layers, shape what is unshaped."""
        for name, shape in bound:
            self.shapes[name] = shape
        for t_name, _, dims in self.init_info:
            self.shapes[t_name] = dims
        layers = [Layer(name, "Input", "Input", (), (name,),
                        frozen({"shapes": (shape,), "source": "ONNX graph input"}))
                  for name, shape in bound]
        for i, node in enumerate(nodes):
            if self._fold(node):
                continue
            layer = self._layer(node, i)
            given = [self.user.get(t) for t in layer.tops]
            if all(g is not None for g in given):
                self.shapes.update(zip(layer.tops, given))  # type: ignore[arg-type]
                layer = _with_hint(layer, tuple(given))  # type: ignore[arg-type]
            elif layer.shapes_hint is None:
                layer = self._fill_shapes(layer, node)
            layers.append(layer)
        return layers

    def _fold(self, node: _Node) -> bool:
        """Mark a constant-producing node's outputs static; True if it makes no layer."""
        op = node.op_type
        if op not in _FOLD_ALWAYS:  # the usual case, a layer: some input is an activation
            static = self.static
            for x in node.input:
                if x and x not in static:
                    return False
        ins = [x for x in node.input if x]
        if op == "Constant":
            for a_name, a_value in node.attrs.items():
                if a_name == "value":
                    self.consts[node.output[0]] = a_value
                elif a_name in ("value_int", "value_ints", "value_float", "value_floats"):
                    self.consts[node.output[0]] = numpy_helper.from_array(np.asarray(a_value))
        elif op in ("Shape", "Size"):
            if ins[0] not in self.shapes:
                return False
        self.static.update(o for o in node.output if o)
        if self.symbolic and op != "Constant" and (
                (op in ("Shape", "Size") and ins and ins[0] not in self.init)
                or any(x in self.dynamic for x in ins)):
            self.dynamic.update(o for o in node.output if o)  # runs at run time all the same
            # a runtime computes a repeated expression once (onnxruntime's common
            # subexpression elimination: torch exports one Shape per use of a tensor's shape)
            key = (op, tuple(self.same.get(x, x) for x in ins), repr(sorted(node.attrs.items())))
            first = self.exprs.setdefault(key, list(node.output))
            if first is node.output or first == list(node.output):
                self.shape_nodes += 1
            else:
                self.same.update(zip(node.output, first))
        if op == "Constant":
            return True  # its value is kept as its TensorProto, decoded when read
        values = [self._value(x) if x else None for x in node.input]
        out = None
        if op in ("Shape", "Size") or all(
                v is not None and v.size <= _SMALL_CONST for v, x in zip(values, node.input) if x):
            try:
                out = fold_node(node, values, self.shapes.get(ins[0]) if ins else None)
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError):
                out = None  # not evaluated: ONNX inference's shapes stand
        if out is not None:
            for o, v in zip(node.output, out):
                if o:
                    v = self.values[o] = np.asarray(v)
                    self.shapes[o] = v.shape
        return True

    def _layer(self, node: _Node, index: int) -> Layer:
        op = node.op_type
        a = {k: v.decode() if isinstance(v, bytes) else v for k, v in node.attrs.items()}
        acts = tuple(x for x in node.input if x and x not in self.static)
        tops = tuple(o for o in node.output if o)
        notes: list[str] = []
        attrs: dict[str, Any] = {}
        kind = f"onnx.{op}"
        standard = node.domain in ("", "ai.onnx")
        # BatchNormalization's running mean and variance (inputs 3, 4) are statistics
        weights = self._weights(node, (3, 4) if standard and op == "BatchNormalization" else ())
        bottoms = acts
        if not standard:
            kind = f"{node.domain}.{op}"
        elif op in ("Conv", "ConvTranspose"):
            kind, attrs = self._conv(node, a, notes)
            bottoms = (node.input[0],)
        elif op in ("Gemm", "MatMul"):
            kind, attrs, bottoms = self._gemm(node, a)
        elif op in ("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"):
            kind, attrs = self._pool(op, a)
        elif op == "BatchNormalization":
            kind, attrs = "BatchNorm", {"affine": True, "eps": a.get("epsilon", 1e-5)}
            tops = tops[:1]
        elif op == "LRN":
            kind, attrs = "LRN", {"local_size": a["size"], "alpha": a.get("alpha", 1e-4),
                                  "beta": a.get("beta", 0.75)}
        elif op == "LeakyRelu":
            kind, attrs = "ReLU", {"negative_slope": a.get("alpha", 0.01)}
        elif op == "Softmax":
            kind, attrs = "Softmax", {"axis": a.get("axis", -1)}
        elif op in _BROADCAST:
            kind = "Broadcast"
            attrs = {"const_shapes": tuple(self.shapes[x] for x in node.input
                                           if x and x in self.static)}
        elif op in _REDUCE:
            axes = a.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = self._ints(node.input[1])
            if not axes and a.get("noop_with_empty_axes"):
                kind = "Identity"
            else:
                kind, attrs = "Reduce", {"axes": tuple(axes or ()),
                                         "keepdims": a.get("keepdims", 1)}
            bottoms = acts[:1]
        elif op == "Concat":
            all_acts = len(acts) == len([x for x in node.input if x])
            kind = "Concat" if all_acts else "ShapedConcat"
            attrs = {"axis": a["axis"]}
        elif op == "Split":
            sizes = a.get("split") or (self._ints(node.input[1]) if len(node.input) > 1
                                       else None)
            if sizes:
                kind = "Slice"
                attrs = {"axis": a.get("axis", 0),
                         "points": tuple(np.cumsum(sizes[:-1]).tolist())}
            else:
                kind = "ShapedSplit"
            bottoms = acts[:1]
        elif op == "Reshape":
            target = self._ints(node.input[1])
            if target is not None and not a.get("allowzero"):
                kind, attrs = "Reshape", {"shape": target}
            else:
                kind = "ShapedReshape"
        elif op == "Flatten":
            kind, attrs = "Flatten", {"axis": a.get("axis", 1), "to_2d": True}
        elif op == "Transpose":
            perm = a.get("perm")
            if perm is None and node.input[0] in self.shapes:
                perm = list(reversed(range(len(self.shapes[node.input[0]]))))
            kind, attrs = ("Permute", {"order": tuple(perm)}) if perm else ("ShapedReshape", {})
        elif op in ("Resize", "Upsample"):
            kind = "Resize"
            attrs = {"mode": {"bilinear": "linear"}.get(a.get("mode", "nearest"),
                                                        a.get("mode", "nearest"))}
            bottoms = acts[:1]
        elif op in _SAME_KIND:
            kind = _SAME_KIND[op]
        hint = tuple(self.shapes[t] for t in tops) if all(t in self.shapes for t in tops) \
            else None
        return Layer(node.name or f"{op}_{index}", kind, op, tuple(bottoms), tops,
                     frozen(attrs), None, weights, tuple(notes), hint)

    def _conv(self, node: _Node, a: dict[str, Any],
              notes: list[str]) -> tuple[str, dict[str, Any]]:
        w = self.shapes.get(node.input[1])
        if w is None:
            raise CnnstatError(f"the weight '{node.input[1]}' of {node.op_type} "
                               f"'{node.name}' has no known shape", self.path)
        if node.input[1] not in self.init:
            notes.append(f"weight '{node.input[1]}' is computed in the graph; its size is "
                         "not counted as parameters here")
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
                attrs.update(self._deconv_pads(node, attrs, tuple(a["output_shape"]), auto))
        return ("Deconvolution" if transposed else "Convolution"), attrs

    def _deconv_pads(self, node: _Node, attrs: dict[str, Any], out: Shape,
                     auto: str) -> dict[str, Any]:
        """ConvTranspose with ``output_shape``: the pads that give it (ONNX spec)."""
        x = self.shapes.get(node.input[0])
        if x is None:
            raise CnnstatError(f"the input shape of ConvTranspose '{node.name}' is unknown",
                               self.path)
        begin, end = [], []
        for i, size in enumerate(x[2:]):
            extent = attrs["dilation"][i] * (attrs["kernel"][i] - 1) + 1
            total = (attrs["stride"][i] * (size - 1) + attrs["output_padding"][i] + extent
                     - out[-len(x) + 2 + i])
            small = total // 2
            begin.append(small if auto == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return {"pad": tuple(begin), "pad_end": tuple(end), "auto_pad": None}

    def _gemm(self, node: _Node,
              a: dict[str, Any]) -> tuple[str, dict[str, Any], tuple[str, ...]]:
        x, w = node.input[0], node.input[1]
        ta, tb = a.get("transA", 0), a.get("transB", 0)
        w_shape = self.shapes.get(w)
        is_fc = (w in self.static and x not in self.static and not ta and w_shape is not None
                 and len(w_shape) == 2)
        if is_fc:
            bias = node.op_type == "Gemm" and len(node.input) > 2 and bool(node.input[2])
            n = w_shape[0] if tb else w_shape[1]
            axis = 1 if node.op_type == "Gemm" else -1
            return "InnerProduct", {"num_output": n, "bias": bias, "axis": axis,
                                    "transpose": not tb}, (x,)
        consts = tuple(self.shapes[v] for v in (x, w) if v in self.static)
        acts = tuple(v for v in (x, w) if v not in self.static)
        return "MatMul", {"const_shapes": consts, "const_first": x in self.static,
                          "trans_a": ta, "trans_b": tb}, acts

    def _pool(self, op: str, a: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        attrs: dict[str, Any] = {"method": "MAX" if "Max" in op else "AVE", "nd": True}
        if op.startswith("Global"):
            attrs["global_pooling"] = True
            return "Pooling", attrs
        kernel = tuple(a["kernel_shape"])
        n = len(kernel)
        pads = tuple(a.get("pads") or (0,) * (2 * n))
        attrs.update(kernel=kernel, stride=tuple(a.get("strides") or (1,) * n), pad=pads[:n],
                     pad_end=pads[n:], ceil=bool(a.get("ceil_mode", 0)), drop_outside=True,
                     count_include_pad=bool(a.get("count_include_pad", 0)))
        if a.get("auto_pad", "NOTSET") != "NOTSET":
            attrs["auto_pad"] = a["auto_pad"]
        if any(d != 1 for d in a.get("dilations") or ()):
            return f"onnx.{op}", attrs  # dilated pooling: ONNX's shape, not costed
        return "Pooling", attrs

    def _fill_shapes(self, layer: Layer, node: _Node) -> Layer:
        """Where ONNX inference left a gap: the IR's rule, or the op's spec on known values."""
        ins = [self.shapes.get(b) for b in layer.bottoms]
        if any(s is None for s in ins):
            return layer
        rule = rule_for(layer.kind)
        try:
            if rule is not None and rule.shape is not hinted:
                outs = rule.shape(layer, ins)  # type: ignore[arg-type]
            else:
                spec = self._spec_shapes(node)
                outs = spec and [tuple(int(d) for d in o) for o in spec]
        except (ShapeError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError):
            return layer  # the analysis reports it, naming the layer
        if outs is None or len(outs) != len(layer.tops):
            return layer
        self.shapes.update(zip(layer.tops, outs))
        return _with_hint(layer, tuple(outs))

    def _spec_shapes(self, node: _Node) -> list[Shape] | None:
        """Output shapes of ONNX's data-movement ops from their constant inputs (ONNX spec)."""
        op = node.op_type
        a = node.attrs
        x = self.shapes.get(node.input[0])
        arg = [self._ints(n) if n else None for n in node.input]
        if x is None:
            return None
        if op == "Reshape" and arg[1] is not None:
            out = [d if d != 0 or a.get("allowzero") else x[i] for i, d in enumerate(arg[1])]
            if -1 in out:
                out[out.index(-1)] = int(np.prod(x)) // -int(np.prod(out))
            return [tuple(out)]
        if op == "Slice" and arg[1] is not None and arg[2] is not None:
            axes = arg[3] if len(arg) > 3 and arg[3] else range(len(arg[1]))
            steps = arg[4] if len(arg) > 4 and arg[4] else (1,) * len(arg[1])
            out = list(x)
            for ax, b, e, st in zip(axes, arg[1], arg[2], steps):
                out[ax] = len(range(*slice(b, e, st).indices(x[ax])))
            return [tuple(out)]
        if op in ("Squeeze", "Unsqueeze"):
            axes = a.get("axes") or (arg[1] if len(arg) > 1 else None)
            if op == "Squeeze":
                gone = {ax % len(x) for ax in axes} if axes else {
                    i for i, d in enumerate(x) if d == 1}
                return [tuple(d for i, d in enumerate(x) if i not in gone)]
            rank = len(x) + len(axes)
            out = list(x)
            for ax in sorted(ax % rank for ax in axes):
                out.insert(ax, 1)
            return [tuple(out)]
        if op == "Gather":
            idx = self._value(node.input[1])
            ishape = idx.shape if idx is not None else self.shapes.get(node.input[1])
            if ishape is None:
                return None
            ax = a.get("axis", 0) % len(x)
            return [(*x[:ax], *ishape, *x[ax + 1:])]
        if op == "Expand" and arg[1] is not None:
            return [tuple(np.broadcast_shapes(x, tuple(arg[1])))]
        if op == "Tile" and arg[1] is not None:
            return [tuple(d * r for d, r in zip(x, arg[1]))]
        if op == "Pad":
            pads = a.get("pads") or (arg[1] if len(arg) > 1 else None)
            if pads is None:
                return None
            axes = arg[3] if len(arg) > 3 and arg[3] else range(len(x))
            out, n = list(x), len(pads) // 2
            for i, ax in enumerate(axes):
                out[ax] += pads[i] + pads[i + n]
            return [tuple(out)]
        if op in ("Resize", "Upsample"):
            if op == "Resize" and len(node.input) > 3 and arg[3]:
                return [tuple(arg[3])]
            if op == "Upsample":
                scales = self._value(node.input[1]) if len(node.input) > 1 else np.asarray(
                    a.get("scales"))
            else:
                scales = self._value(node.input[2]) if len(node.input) > 2 else None
            if scales is None or scales.size != len(x):
                return None
            return [tuple(int(np.floor(d * s)) for d, s in zip(x, scales.reshape(-1)))]
        if op == "Concat":
            ins = [self.shapes.get(n) for n in node.input if n]
            if any(s is None for s in ins):
                return None
            ax = a["axis"] % len(x)
            return [(*x[:ax], sum(s[ax] for s in ins), *x[ax + 1:])]  # type: ignore[index]
        return None

    def _check_known(self, layers: list[Layer]) -> None:
        """One error naming every output whose shape nothing can give (never guessed)."""
        missing = []
        for layer in layers:
            rule = rule_for(layer.kind)
            needs_hint = layer.kind != "Input" and (rule is None or rule.shape is hinted)
            if needs_hint and layer.shapes_hint is None:
                missing += [f"'{t}' ({layer.type} '{layer.name}')" for t in layer.tops
                            if t not in self.user]
        if missing:
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise CnnstatError(
                "ONNX shape inference could not shape " + ", ".join(missing[:8]) + more
                + "; give each with --input-shape NAME=d,d,...", self.path)


def _with_hint(la: Layer, hint: tuple[Shape, ...]) -> Layer:
    """The layer with its output shapes known (``dataclasses.replace``, written out: faster)."""
    return Layer(la.name, la.kind, la.type, la.bottoms, la.tops, la.attrs, la.line, la.weights,
                 la.notes, hint)


def _inline_small(t: TensorProto) -> bool:
    """A small initializer stored in the file (shape constants, scales): kept for inference."""
    return (t.data_location != TensorProto.EXTERNAL and _has_data(t)
            and math.prod(t.dims) <= _SMALL_CONST)


def fold_node(node: _Node, values: list[np.ndarray | None],
              in_shape: Shape | None) -> list[np.ndarray] | None:
    """Evaluate one shape-arithmetic node on constant values (NumPy), or None if unsupported.

    Covers what exporters emit around Reshape targets: Shape, Gather, Unsqueeze, Concat,
    Slice, Cast, integer arithmetic, ConstantOfShape, Range, Equal/Where and friends.
    """
    op = node.op_type
    a = node.attrs
    v = values
    if op == "Shape":
        dims = np.array(in_shape, dtype=np.int64)
        return [dims[a.get("start", 0): a.get("end", len(dims))]]
    if op == "Size":
        return [np.array(int(np.prod(in_shape)), dtype=np.int64)]
    if op == "Constant" or any(x is None for x, name in zip(v, node.input) if name):
        return None  # a Constant's value is kept as its TensorProto
    if op == "Identity":
        return [v[0]]
    if op == "Gather":
        return [np.take(v[0], v[1], axis=a.get("axis", 0))]
    if op == "Unsqueeze":
        axes = a.get("axes") or [int(i) for i in v[1]]
        rank = v[0].ndim + len(axes)
        where = sorted(ax % rank for ax in axes)
        if len(set(where)) != len(where):
            raise ValueError("repeated axis")  # as np.expand_dims does
        dims = list(v[0].shape)
        for ax in where:
            dims.insert(ax, 1)
        return [v[0].reshape(dims)]
    if op == "Squeeze":
        axes = a.get("axes") or (v[1].tolist() if len(v) > 1 and v[1] is not None else None)
        return [np.squeeze(v[0], axis=tuple(axes) if axes else None)]
    if op == "Concat":
        return [np.concatenate([x for x in v if x is not None], axis=a["axis"])]
    if op == "Cast":
        return [v[0].astype(helper.tensor_dtype_to_np_dtype(a["to"]))]
    if op in _BINARY:
        x, y = v[0], v[1]
        if op == "Div" and np.issubdtype(x.dtype, np.integer):
            return [np.trunc(x / y).astype(x.dtype)]  # ONNX integer division truncates
        return [_BINARY[op](x, y)]
    if op in _UNARY:
        return [_UNARY[op](v[0])]
    if op == "Slice":
        axes = v[3].tolist() if len(v) > 3 and v[3] is not None else range(len(v[1]))
        steps = v[4].tolist() if len(v) > 4 and v[4] is not None else [1] * len(v[1])
        idx = [slice(None)] * v[0].ndim
        for ax, b, e, st in zip(axes, v[1].tolist(), v[2].tolist(), steps):
            idx[ax] = slice(b, e, st)
        return [v[0][tuple(idx)]]
    if op == "ConstantOfShape":
        if int(np.prod(v[0])) > _SMALL_CONST:
            return None
        fill = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in v[0]), fill.reshape(-1)[0], dtype=fill.dtype)]
    if op == "Reshape":
        target = [int(d) if d != 0 else v[0].shape[i] for i, d in enumerate(v[1])]
        return [v[0].reshape(target)]
    if op == "Range":
        return [np.arange(v[0], v[1], v[2])]
    if op == "Where":
        return [np.where(v[0], v[1], v[2])]
    if op == "Expand":
        return [v[0] * np.ones(tuple(int(d) for d in v[1]), dtype=v[0].dtype)]
    if op == "Transpose":
        return [np.transpose(v[0], a.get("perm"))]
    if op == "ReduceProd":
        return [np.prod(v[0], axis=tuple(a["axes"]) if a.get("axes") else None,
                        keepdims=bool(a.get("keepdims", 1)))]
    return None


_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
           "Max": np.maximum, "Min": np.minimum, "Equal": np.equal, "Less": np.less,
           "Greater": np.greater, "Mod": np.mod}
_UNARY = {"Floor": np.floor, "Ceil": np.ceil, "Neg": np.negative, "Abs": np.abs,
          "Sqrt": np.sqrt, "Not": np.logical_not}
