"""The ONNX frontend: a ``.onnx`` file → the layer IR, reading only dims, never weights.

How it reads a model:

1. The file is memory-mapped and its large initializers are re-encoded without their data
   (see ``_load_without_weights``); onnx's own loader parses the rest (no external data is
   loaded: a path named in ``external_data`` is never opened). Memory and time follow the
   graph, not the weights; malformed files fall back to ``onnx.load`` for its verdict.
   Each node's fields are then read once into plain Python values (``Node``): protobuf
   field access is the largest single cost of a read.
2. Graph inputs are bound: ``batch`` sets the leading dim of every input, ``shapes`` (the
   user's ``--input-shape``) a whole input; a 0 dim is valid (an empty tensor). Any dim still
   symbolic is named in one error. A value that is not a tensor (a sequence, optional or map
   input, or the output of a Sequence*/Optional op) is refused at the node that makes or
   reads it.
3. One pass in execution order shapes every tensor with cnnstat's own rules: each node is
   translated by its op's entry in ``onnx_ops.TRANSLATORS`` into an IR kind whose registry
   rule shapes it (Conv, Pool, Gemm, Concat, Reshape, …), or shaped by the ONNX spec of its
   op (``onnx_ops.SHAPES``: Slice, Pad, Resize, Split, Gather, … on constant inputs). Where
   that leaves a gap (an operator outside cnnstat's list), ONNX shape inference with data
   propagation runs on a slim copy of the graph (nodes, bound inputs, small inline
   initializers, other initializers as typed inputs) and the pass is redone, taking ONNX's
   shape only where cnnstat has none and ONNX gives every dim. Anything still unknown is
   refused in one line naming the node, its op and why — naming the graph input whose values
   the shape depends on when that is the reason.
4. Constants are folded: Constant, Shape and Size nodes, and every node whose inputs
   (including what its subgraphs read) are all constants, produce constants rather than
   layers (a runtime folds them away too), evaluated with NumPy (``fold_node``) or, for an op
   without a NumPy rule, onnx's reference implementation on small inputs; a constant whose
   value is not read (a weight) still gets its shape from the op's spec. A folded node whose
   output is a graph output keeps a row of kind ``Constant``.
5. Each node becomes one :class:`~analyzer.ir.Layer` of a canonical kind shared with the Caffe
   frontend where one fits; the initializers it reads, directly or through folded constant ops
   (a Transpose of a weight), become ``Layer.weights``: float ones are learnable except
   BatchNormalization's running mean/variance, a one-element float in element-wise arithmetic
   (an exporter's Python scalar) and the data operand A of a MatMul/Gemm on constants (a stored
   buffer); integer constants are statistics. An operator cnnstat has no rule for gets the
   kind ``onnx.<op>`` (``<domain>.<op>`` for a custom domain), is flagged "not costed", and is
   shaped by ONNX shape inference.
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
from onnx import TensorProto, helper, numpy_helper, shape_inference

from analyzer.errors import CnnstatError
from analyzer.frontends.onnx_ops import (
    BROADCAST_OPS,
    GROWS,
    NON_TENSOR_OPS,
    Node,
    activations,
    spec_shapes,
    translate,
    value_inputs,
)
from analyzer.ir import Layer, Net, Shape, Weight, frozen
from analyzer.layers.registry import rule_for
from analyzer.layers.shapes import ShapeError, hinted

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

def read_onnx(path: str, batch: int | None = None,
              shapes: Mapping[str, tuple[int, ...]] | None = None,
              onnx_inference: str = "auto") -> Net:
    """Read an ONNX model's graph into the IR; raise CnnstatError for anything unusable.

    ``onnx_inference``: "auto" runs ONNX shape inference only when cnnstat's own rules leave
    a tensor unshaped (an operator outside its list); "always" runs it first and keeps its
    shapes as every layer's ``shapes_hint`` where it gives one (the tests compare the two).
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
    """One read: bind inputs, infer shapes, fold constants, translate nodes.

    It is the :class:`~analyzer.frontends.onnx_ops.Context` the translators read: ``shapes``,
    ``static``, :meth:`value`, :meth:`ints`, :meth:`is_initializer`.
    """

    def __init__(self, model: onnx.ModelProto, path: str, batch: int | None,
                 shapes: dict[str, tuple[int, ...]]) -> None:
        self.model, self.path, self.batch, self.user = model, path, batch, shapes
        self.graph = model.graph
        self.init = {t.name: t for t in self.graph.initializer}
        # (name, data type, dims) of every initializer, in file order, read once
        self.init_info = [(t.name, t.data_type, tuple(t.dims)) for t in self.graph.initializer]
        self.init_type = {name: (dtype, dims) for name, dtype, dims in self.init_info}
        self.float_inits = {name for name, dtype, _ in self.init_info if dtype in _FLOATS}
        self.outputs = tuple(vi.name for vi in self.graph.output)
        self.opset = next((o.version for o in model.opset_import
                           if o.domain in ("", "ai.onnx")), onnx.defs.onnx_opset_version())
        self.nontensor: dict[str, str] = {}  # graph inputs that are no tensor → their type
        self.elem_types = {vi.name: vi.type.tensor_type.elem_type for vi in self.graph.input
                           if vi.type.HasField("tensor_type")}  # graph inputs' element types
        self.inputs: set[str] = set()  # tensor graph inputs
        self.producer: dict[str, Node] = {}
        self.onnx_shapes: dict[str, Shape] = {}  # ONNX shape inference's, once it ran
        self.onnx_kinds: dict[str, str] = {}  # tensors ONNX infers to be sequences etc.
        self.prefer_onnx = False  # "always": ONNX's shapes as hints wherever it gives one
        self._reset()

    def _reset(self) -> None:
        self.arrays: dict[str, np.ndarray | None] = {}  # decoded initializers and Constants
        self.consts: dict[str, TensorProto] = {}  # Constant node outputs
        self.static: set[str] = set(self.init)  # tensors known before run time
        self.shapes: dict[str, Shape] = {}
        self.values: dict[str, np.ndarray] = {}  # folded constants cnnstat evaluated
        self.sources: dict[str, tuple[str, ...]] = {}  # folded tensor → float initializers in it
        self.data_consts: set[str] = set()  # float initializers that are data, not weights
        self.warnings: list[str] = []
        # shape arithmetic on a dim the file leaves symbolic: folded here, run by a runtime
        # (``symbolic`` is set while binding the inputs, before any reset)
        self.symbolic = getattr(self, "symbolic", False)
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
                which = vi.type.WhichOneof("value") or "untyped value"
                self.nontensor[vi.name] = which.replace("_type", "").replace("_", " ")
                continue  # refused where a node reads it (or as a graph output)
            dims = list(self.user[vi.name]) if vi.name in self.user else _dims(
                vi.type.tensor_type)
            if dims is None:
                unknown.append(f"'{vi.name}' (rank unknown)")
                continue
            self.symbolic |= any(not isinstance(d, int) or d <= 0 for d in dims)
            if self.batch is not None and dims:  # as the analysis does, --input-shape too
                dims[0] = self.batch
            if any(not isinstance(d, int) or d < 0 for d in dims):  # 0: an empty tensor
                shown = ",".join(str(d) if d is not None else "?" for d in dims)
                unknown.append(f"'{vi.name}' [{shown}]")
                continue
            bound.append((vi.name, tuple(dims)))  # type: ignore[arg-type]
        if unknown:
            raise CnnstatError(
                "input dims are symbolic: " + "; ".join(unknown) + ". Give --batch N for the "
                "leading dim and --input-shape NAME=d,d,... for a whole input", self.path)
        self.inputs = {name for name, _ in bound}
        return bound

    def _infer(self, bound: list[tuple[str, Shape]]) -> None:
        """ONNX shape inference (with data propagation) on a slim, weightless graph."""
        slim = onnx.ModelProto()
        slim.ir_version = self.model.ir_version
        slim.opset_import.extend(self.model.opset_import)
        slim.functions.extend(self.model.functions)
        g = slim.graph
        g.node.extend(self.graph.node)
        elem = {vi.name: vi.type.tensor_type.elem_type for vi in self.graph.input
                if vi.type.HasField("tensor_type")}
        for name, shape in bound:
            g.input.append(helper.make_tensor_value_info(name, elem[name], shape))
        g.input.extend(vi for vi in self.graph.input if vi.name in self.nontensor)
        for t in self.graph.initializer:
            if _inline_small(t):
                g.initializer.append(t)
            else:
                g.input.append(helper.make_tensor_value_info(t.name, t.data_type, t.dims))
        try:
            inferred = shape_inference.infer_shapes(slim, check_type=False, strict_mode=False,
                                                    data_prop=True)
        except Exception as e:  # onnx raises its own InferenceError and RuntimeError types
            said = " ".join(str(e).split())
            raise CnnstatError(f"ONNX shape inference failed: {said}", self.path) from None
        for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
            which = vi.type.WhichOneof("value")
            if which == "tensor_type":
                dims = _dims(vi.type.tensor_type)
                if dims is not None and all(isinstance(d, int) and d >= 0 for d in dims):
                    self.onnx_shapes[vi.name] = tuple(dims)  # type: ignore[arg-type]
            elif which:
                self.onnx_kinds[vi.name] = which.replace("_type", "").replace("_", " ")

    # ------------------------------------------------------------------ graph order

    def _ordered_nodes(self) -> list[Node]:
        """Nodes in a valid execution order; errors for a missing input or a cycle."""
        nodes = [Node(n) for n in self.graph.node]
        producer: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for o in n.output:
                if o:
                    producer[o] = i
        given = set(self.init) | {vi.name for vi in self.graph.input}
        in_order = True
        for i, n in enumerate(nodes):
            for x in (*n.input, *n.implicit):
                if x and x not in given:
                    at = producer.get(x)
                    if at is None:
                        raise CnnstatError(f"node '{n.name or n.op_type}' reads '{x}', which "
                                           "no node, initializer or graph input provides",
                                           self.path)
                    in_order = in_order and at < i
        self.producer = {o: nodes[i] for o, i in producer.items()}
        if in_order:  # the usual case: the file lists nodes in execution order
            return nodes
        deps = [{producer[x] for x in (*n.input, *n.implicit) if x in producer and x not in given}
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

    def _check_types(self, nodes: list[Node]) -> None:
        """Refuse, at the first node concerned, any value that is not a tensor."""
        made: dict[str, str] = dict(self.nontensor)
        for i, node in enumerate(nodes):
            for x in node.input:
                if x in made:
                    origin = "graph input" if x in self.nontensor else "value"
                    raise CnnstatError(
                        f"reads {origin} '{x}', {_a(made[x])} (not a tensor); cnnstat analyses "
                        "tensors only", self._where(node, i))
            kind = NON_TENSOR_OPS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if kind:
                raise CnnstatError(f"makes {_a(kind)} (not a tensor); cnnstat analyses tensors "
                                   "only", self._where(node, i))
        for name in self.outputs:
            if name in made:
                raise CnnstatError(f"graph output '{name}' is {_a(made[name])} (not a tensor); "
                                   "cnnstat analyses tensors only", self.path)

    def _where(self, node: Node, index: int) -> str:
        return f"{self.path}: node '{node.name or f'{node.op_type}_{index}'}' ({node.op_type})"

    # ------------------------------------------------------------------ values

    def value(self, name: str) -> np.ndarray | None:
        """The value of an inline constant (initializer, Constant node or folded), else None."""
        if name in self.values:
            return self.values[name]
        if name in self.arrays:
            return self.arrays[name]
        t = self.init.get(name) or self.consts.get(name)
        value = self.arrays[name] = None if t is None else _inline_array(t)
        return value

    def ints(self, name: str) -> tuple[int, ...] | None:
        """A constant's values as ints; None if unknown or not all finite numbers."""
        v = self.value(name) if name else None
        if v is None or v.dtype.kind not in "iubf" or (
                v.dtype.kind == "f" and not np.isfinite(v).all()):
            return None
        return tuple(int(x) for x in v.reshape(-1))

    def is_initializer(self, name: str) -> bool:
        return name in self.init

    def _weights(self, node: Node, stats: tuple[int, ...] = ()) -> tuple[Weight, ...]:
        """Initializers the node reads, directly or through folded constant ops (a Transpose
        of a weight), as IR weights (slots in ``stats`` are statistics)."""
        out = []
        init_type, sources = self.init_type, self.sources
        elementwise = node.op_type in BROADCAST_OPS
        for i, x in enumerate(node.input):
            names = sources.get(x)
            if names is None:
                if x not in init_type:
                    continue
                names = (x,)
            for name in names:
                dtype, dims = init_type[name]
                learnable = (dtype in _FLOATS and i not in stats and name not in self.data_consts
                             and not (elementwise and math.prod(dims) == 1))  # a scalar constant
                out.append(Weight(name, dims, learnable, _ITEMSIZE.get(dtype, 1)))
        return tuple(out)

    def _scalar_constant(self, node: Node, name: str) -> bool:
        """A one-element float initializer in element-wise arithmetic: a Python scalar an
        exporter stored as an initializer (an attention scale), not a learned weight."""
        return (node.op_type in BROADCAST_OPS and name in self.init_type
                and math.prod(self.init_type[name][1]) == 1)

    # ------------------------------------------------------------------ translation

    def net(self, infer_first: bool = False) -> Net:
        bound = self._bind_inputs()
        nodes = self._ordered_nodes()
        self._check_types(nodes)
        if infer_first:
            self.prefer_onnx = True
            self._infer(bound)
        layers = self._translate(bound, nodes)
        if not infer_first and self._gaps(layers):
            self._reset()  # a gap cnnstat's rules cannot fill: ask ONNX shape inference
            self._infer(bound)
            layers = self._translate(bound, nodes)
        self._check_known(layers, nodes)
        used = {w.name for la in layers for w in la.weights or ()}
        for t_name, dtype, dims in self.init_info:
            if t_name not in used and dtype in _FLOATS:
                self.warnings.append(f"initializer '{t_name}' ({list(dims)}) feeds no layer "
                                     "(only folded constant arithmetic); not counted")
        name = self.graph.name or os.path.splitext(os.path.basename(self.path))[0]
        return Net(name, self.path, "onnx", tuple(layers), tuple(self.warnings), self.outputs,
                   self.shape_nodes)

    def _gaps(self, layers: list[Layer]) -> bool:
        """Whether some layer or graph output is left without a shape."""
        return any(la.shapes_hint is None for la in layers if la.kind != "Input") or any(
            o not in self.shapes for o in self.outputs)

    def _translate(self, bound: list[tuple[str, Shape]],
                   nodes: list[Node]) -> list[Layer]:
        """One pass in execution order: fold constants, make layers, shape what is unshaped.
        Folding evaluates constants as the graph says, overflows and infinities included."""
        with np.errstate(all="ignore"):
            return self._translate_pass(bound, nodes)

    def _translate_pass(self, bound: list[tuple[str, Shape]],
                        nodes: list[Node]) -> list[Layer]:
        for name, shape in bound:
            self.shapes[name] = shape
        for t_name, _, dims in self.init_info:
            self.shapes[t_name] = dims
        layers = [Layer(name, "Input", "Input", (), (name,),
                        frozen({"shapes": (shape,), "source": "ONNX graph input"}))
                  for name, shape in bound]
        outputs = set(self.outputs)
        for i, node in enumerate(nodes):
            if self._fold(node):
                if outputs.intersection(node.output):
                    layers.append(self._constant_layer(node, i))
                continue
            layer = self._layer(node, i)
            given = [self.user.get(t) for t in layer.tops]
            if all(g is not None for g in given):
                self.shapes.update(zip(layer.tops, given))  # type: ignore[arg-type]
                layer = _with_hint(layer, tuple(given))  # type: ignore[arg-type]
            else:
                layer = self._fill_shapes(layer, node)
            layers.append(layer)
        produced = {t for la in layers for t in la.tops}
        for name in self.outputs:  # an initializer that is itself a graph output
            if name not in produced and name in self.init:
                layers.append(Layer(name, "Constant", "Initializer", (), (name,), frozen({}),
                                    None, (), (), (self.shapes[name],)))
        return layers

    def _fold(self, node: Node) -> bool:
        """Mark a constant-producing node's outputs static; True if it makes no layer."""
        op = node.op_type
        if op not in _FOLD_ALWAYS:  # the usual case, a layer: some input is an activation
            static = self.static
            for x in node.input[:1] if op == "CastLike" else node.input:  # reads 1's type only
                if x and x not in static:
                    return False
            for x in node.implicit:  # what an If branch or a Loop body reads
                if x not in static:
                    return False
        ins = [x for x in node.input if x]
        if op == "Constant":
            self._constant(node)
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
        if op not in _FOLD_ALWAYS:  # a weight transposed, cast or reshaped stays that weight
            srcs: set[str] = set()
            for x in node.input:
                got = self.sources.get(x)
                if got is not None:
                    srcs.update(got)
                elif x in self.float_inits and not self._scalar_constant(node, x):
                    srcs.add(x)
            if op in ("MatMul", "Gemm") and node.input[0] in self.init_type:  # an initializer
                # as the data operand A of a constant product is a stored buffer (Swin V2's
                # relative coordinates table into its position-bias MLP), not a weight
                self.data_consts.add(node.input[0])
            if srcs:
                for o in node.output:
                    self.sources[o] = tuple(sorted(srcs))
        values = [self.value(x) if x else None for x in node.input]
        if op == "CastLike" and values[1] is None:  # the element type of an activation
            dtype = self.elem_types.get(node.input[1])
            if dtype is None or values[0] is None:
                if node.input[0] in self.shapes:  # the shape without the value
                    self.shapes[node.output[0]] = self.shapes[node.input[0]]
                return True
            values[1] = np.empty(0, helper.tensor_dtype_to_np_dtype(dtype))
        out = None
        if op in ("Shape", "Size") or all(
                v is not None and v.size <= _SMALL_CONST for v, x in zip(values, node.input) if x):
            try:  # (NumPy warnings are off for the whole pass: see _translate)
                out = fold_node(node, values, self.shapes.get(ins[0]) if ins else None)
                if out is None and node.domain in ("", "ai.onnx") and op not in GROWS:
                    out = self._reference(node, values)
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
                    OverflowError):
                out = None  # not evaluated: ONNX inference's shapes stand
        if out is not None:
            for o, v in zip(node.output, out):
                if o:
                    v = self.values[o] = np.asarray(v)
                    self.shapes[o] = v.shape
        else:  # the value is unknown (a weight not read): its shape by the op's spec
            try:
                spec = spec_shapes(self, node)
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
                    OverflowError):
                spec = None
            named = [o for o in node.output if o]
            if spec is not None and len(spec) == len(named):
                self.shapes.update(zip(named, (tuple(int(d) for d in o) for o in spec)))
            for o in named:
                if o not in self.shapes and o in self.onnx_shapes:
                    self.shapes[o] = self.onnx_shapes[o]
        return True

    def _constant(self, node: Node) -> None:
        """A Constant node: its value (numbers) and its shape, whichever attribute holds it."""
        out = node.output[0]
        for a_name, a_value in node.attrs.items():
            if a_name == "value":
                self.consts[out] = a_value
                self.shapes[out] = tuple(a_value.dims)
            elif a_name in ("value_int", "value_ints", "value_float", "value_floats"):
                self.consts[out] = numpy_helper.from_array(np.asarray(a_value))
                self.shapes[out] = np.shape(a_value)
            elif a_name in ("value_string", "value_strings"):
                self.shapes[out] = np.shape(a_value)
            elif a_name == "sparse_value":
                self.shapes[out] = tuple(a_value.dims)

    def _reference(self, node: Node, values: list[np.ndarray | None]
                   ) -> list[np.ndarray] | None:
        """Evaluate a constant node cnnstat has no NumPy rule for with onnx's reference
        implementation; None when it has none or the result is not small."""
        from onnx.reference import ReferenceEvaluator

        try:
            ev = ReferenceEvaluator(node.proto, opsets={"": self.opset})
            feeds = {x: v for x, v in zip(node.input, values) if x}
            out = ev.run(None, feeds)
        except Exception:  # noqa: BLE001 - onnx's evaluator raises many types; none is fatal
            return None
        if not all(isinstance(v, np.ndarray) and v.size <= _SMALL_CONST for v in out):
            return None
        return out

    def _constant_layer(self, node: Node, index: int) -> Layer:
        """A folded node whose output is a graph output: a row, so every output has a shape."""
        tops = tuple(o for o in node.output if o)
        hint = tuple(self.shapes[o] for o in tops) if all(o in self.shapes for o in tops) \
            else None
        bottoms = activations(self, node)
        return Layer(node.name or f"{node.op_type}_{index}", "Constant", node.op_type, bottoms,
                     tops, frozen({}), None, (), (), hint)

    def _layer(self, node: Node, index: int) -> Layer:
        """The node as an IR layer, by its op's translator (``onnx_ops.TRANSLATORS``)."""
        t = translate(self, node)
        bottoms = t.bottoms if t.bottoms is not None else activations(self, node)
        tops = t.tops if t.tops is not None else tuple(o for o in node.output if o)
        return Layer(node.name or f"{node.op_type}_{index}", t.kind, node.op_type,
                     tuple(bottoms), tops, frozen(t.attrs), None,
                     self._weights(node, t.stats), tuple(t.notes), None)

    def _fill_shapes(self, layer: Layer, node: Node) -> Layer:
        """The layer's output shapes: the IR's rule or the op's spec on known values; where
        neither gives them (or with ``prefer_onnx``), ONNX shape inference's when complete."""
        outs = None if self.prefer_onnx else self._own_shapes(layer, node)
        if outs is None:
            known = [self.onnx_shapes.get(t) for t in layer.tops]
            if all(s is not None for s in known):
                outs = known
            elif self.prefer_onnx:
                outs = self._own_shapes(layer, node)
        if outs is None:
            return layer
        self.shapes.update(zip(layer.tops, outs))  # type: ignore[arg-type]
        return _with_hint(layer, tuple(outs))  # type: ignore[arg-type]

    def _own_shapes(self, layer: Layer, node: Node) -> list[Shape] | None:
        ins = [self.shapes.get(b) for b in layer.bottoms]
        if any(s is None for s in ins):
            return None
        rule = rule_for(layer.kind)
        try:
            if rule is not None and rule.shape is not hinted:
                outs = rule.shape(layer, ins)  # type: ignore[arg-type]
            else:
                spec = spec_shapes(self, node)
                outs = spec and [tuple(int(d) for d in o) for o in spec]
        except (ShapeError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
                OverflowError):
            return None  # the analysis reports it, naming the layer
        if outs is None or len(outs) != len(layer.tops):
            return None
        return outs

    def _check_known(self, layers: list[Layer], nodes: list[Node]) -> None:
        """Refuse the first layer whose shape nothing can give, saying why (never guessed)."""
        index = {id(n): i for i, n in enumerate(nodes)}
        by_top = {o: n for n in nodes for o in n.output if o}
        for layer in layers:
            rule = rule_for(layer.kind)
            needs_hint = layer.kind != "Input" and (rule is None or rule.shape is hinted)
            if not needs_hint or layer.shapes_hint is not None:
                continue
            missing = [t for t in layer.tops if t not in self.user]
            if missing:
                node = by_top[layer.tops[0]]
                raise CnnstatError(self._why_unshaped(node, missing),
                                   self._where(node, index[id(node)]))
        for name in self.outputs:
            if name not in self.shapes and name not in self.user and name in by_top:
                node = by_top[name]
                raise CnnstatError(self._why_unshaped(node, [name]),
                                   self._where(node, index[id(node)]))

    def _why_unshaped(self, node: Node, missing: list[str]) -> str:
        """Why a node's outputs have no shape: a non-tensor, values known only at run time,
        an unknown constant, or an op neither cnnstat nor ONNX shape inference can shape."""
        named = ", ".join(f"'{t}'" for t in missing)
        for t in missing:
            if t in self.onnx_kinds:
                return (f"output '{t}' is {_a(self.onnx_kinds[t])} (not a tensor); cnnstat "
                        "analyses tensors only")
        for x in value_inputs(node):
            if self.value(x) is not None:
                continue
            behind = sorted(self._graph_inputs_behind(x))
            if behind:
                which = ", ".join(f"'{g}'" for g in behind)
                via = "" if behind == [x] else f" (through its input '{x}')"
                inputs = "graph inputs" if len(behind) > 1 else "graph input"
                return (f"its output shape depends on the values of {inputs} {which}{via}, "
                        "known only at run time; cnnstat reads shapes only. Give "
                        f"{named} with --input-shape NAME=d,d,...")
        unknown = [x for x in node.input if x and x in self.static and x not in self.shapes]
        if unknown:
            return (f"cnnstat cannot evaluate the constant '{unknown[0]}' it reads, and ONNX "
                    f"shape inference did not shape {named}; give each with --input-shape "
                    "NAME=d,d,...")
        what = "folded constant" if node.output and node.output[0] in self.static else "op"
        return (f"cnnstat has no shape rule for this {what} and ONNX shape inference did not "
                f"shape {named}; give each with --input-shape NAME=d,d,...")

    def _graph_inputs_behind(self, name: str) -> set[str]:
        """Graph inputs whose values flow into ``name`` (Shape and Size pass shapes only)."""
        found, seen, todo = set(), set(), [name]
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            if x in self.inputs:
                found.add(x)
                continue
            node = self.producer.get(x)
            if node is None or node.op_type in ("Shape", "Size"):
                continue
            todo.extend(i for i in (*node.input, *node.implicit) if i)
        return found


def _a(kind: str) -> str:
    """'a sequence', 'an optional', 'a map'."""
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def _with_hint(la: Layer, hint: tuple[Shape, ...]) -> Layer:
    """The layer with its output shapes known (``dataclasses.replace``, written out: faster)."""
    return Layer(la.name, la.kind, la.type, la.bottoms, la.tops, la.attrs, la.line, la.weights,
                 la.notes, hint)


def _inline_small(t: TensorProto) -> bool:
    """A small initializer stored in the file (shape constants, scales): kept for inference."""
    return (t.data_location != TensorProto.EXTERNAL and _has_data(t)
            and math.prod(t.dims) <= _SMALL_CONST)


def fold_node(node: Node, values: list[np.ndarray | None],
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
