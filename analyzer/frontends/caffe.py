"""Caffe frontend: a ``.prototxt`` file → :class:`~analyzer.ir.Net`.

Parsing is protobuf's own ``text_format`` against ``proto/caffe.proto``. The old V1
(``layers {}`` with enum types) and V0 (``layers { layer { ... } }``) formats are
upgraded to V2 ``LayerParameter`` messages first, the way Caffe's ``upgrade_proto``
does; network inputs become one ``Input`` layer named ``input``; include/exclude rules
are applied for the requested phase; Split layers are inserted where Caffe inserts
them. Then each layer is translated into canonical IR attrs. Nothing after this module
sees a protobuf message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message

from analyzer.errors import CnnstatError, layer_where
from analyzer.frontends import caffe_pb2 as pb
from analyzer.ir import Layer, Net, frozen
from analyzer.layers.registry import ONNX_ONLY_KINDS

# --------------------------------------------------------------------------- parsing


MAX_UNKNOWN_DEPTH = 64  # unknown messages nested deeper than this are refused, not recursed


class _TolerantParser(text_format._Parser):  # noqa: SLF001 - protobuf's parser, extended
    """text_format's parser that records unknown fields (skipped) and layer start lines.

    Only the outermost of nested unknown fields is recorded; nesting deeper than
    :data:`MAX_UNKNOWN_DEPTH` is a parse error (protobuf would recurse until Python's
    stack runs out). ``tokenizer`` is kept to locate any other RecursionError.
    """

    def __init__(self) -> None:
        super().__init__(allow_unknown_field=True)
        self.unknown: list[tuple[int, int, str, str]] = []
        self.layer_lines: list[int] = []
        self.tokenizer: Any = None
        self._skipping = 0

    def _MergeField(self, tokenizer, message):  # noqa: N802 - overrides protobuf
        self.tokenizer = tokenizer
        if message.DESCRIPTOR.name == "NetParameter" and tokenizer.token in ("layer", "layers"):
            self.layer_lines.append(tokenizer._line + 1)  # noqa: SLF001
        return super()._MergeField(tokenizer, message)

    def _SkipFieldContents(self, tokenizer, field_name, immediate_message_type):  # noqa: N802
        if self._skipping == 0:
            line, col = tokenizer._previous_line + 1, tokenizer._previous_column + 1  # noqa: SLF001
            self.unknown.append((line, col, immediate_message_type, field_name))
        elif self._skipping >= MAX_UNKNOWN_DEPTH:
            raise tokenizer.ParseErrorPreviousToken(
                f"unknown field '{field_name}' is nested more than {MAX_UNKNOWN_DEPTH} deep")
        self._skipping += 1
        try:
            return super()._SkipFieldContents(tokenizer, field_name, immediate_message_type)
        finally:
            self._skipping -= 1


@dataclass(frozen=True)
class _Raw:
    """An upgraded V2 layer message and the line it starts on."""

    lp: Any  # caffe_pb2.LayerParameter
    line: int | None


MAX_PROTOTXT_BYTES = 256 * 2**20  # the largest published prototxts are well under 1 MiB
# Bytes no text prototxt holds (C0 controls other than tab, newline, VT, FF, CR).
_BINARY_BYTES = bytes([*range(0, 9), *range(14, 32)])


def _read_text(path: str) -> str:
    """The file's text. The first 4 KiB are checked for binary before reading on, so
    ``/dev/zero`` or a multi-GB weights file fails at once."""
    p = Path(path)
    if not p.exists():
        raise CnnstatError("no such file", path)
    if p.is_dir():
        raise CnnstatError("is a directory, not a model file", path)
    try:
        with p.open("rb") as fh:
            data = fh.read(4096)
            if data.translate(None, _BINARY_BYTES) != data:
                raise CnnstatError(
                    "binary file, not a text prototxt (a .caffemodel holds weights, not the "
                    "net; an ONNX model needs the .onnx extension)", path)
            data += fh.read(MAX_PROTOTXT_BYTES + 1 - len(data))
    except OSError as e:
        raise CnnstatError(f"cannot read: {e.strerror}", path) from None
    if len(data) > MAX_PROTOTXT_BYTES:
        raise CnnstatError(f"larger than {MAX_PROTOTXT_BYTES // 2**20} MiB; not a prototxt", path)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # an editor's byte-order mark
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CnnstatError(f"not UTF-8 text (byte 0x{data[e.start]:02x})",
                           f"{path}:{line}:{col}") from None


def parse_prototxt(path: str) -> tuple[Any, list[int], list[str]]:
    """Parse a prototxt into a NetParameter; return it, layer start lines and warnings."""
    text = _read_text(path)
    lines = text.split("\n")
    parser = _TolerantParser()
    net = pb.NetParameter()
    try:
        parser.MergeLines(lines, net)
    except text_format.ParseError as e:
        line, col = e.GetLine(), e.GetColumn()
        msg = str(e)
        if line is not None and msg.startswith(f"{line}:{col} : "):
            msg = msg[len(f"{line}:{col} : ") :]
        if line is not None and 1 <= line <= len(lines):  # protobuf quotes the whole line
            msg = msg.removeprefix(f"'{lines[line - 1]}': ")
        if msg == 'Expected "}".' and parser.tokenizer is not None and parser.tokenizer.AtEnd():
            msg = 'the file ends inside a { } block (a "}" is missing)'
        if len(msg) > 200:  # protobuf quotes a whole token, however long
            msg = msg[:200] + "… (cut)"
        where = f"{path}:{line}:{col}" if line is not None else path
        raise CnnstatError(f"malformed prototxt: {msg}", where) from None
    except RecursionError:
        tok = parser.tokenizer
        where = f"{path}:{tok._line + 1}:{tok._column + 1}" if tok else path  # noqa: SLF001
        raise CnnstatError("malformed prototxt: messages nested too deeply", where) from None
    warnings = [
        f"{path}:{line}:{col}: field '{name}' is not in cnnstat's caffe.proto ({msg_type}); skipped"
        for line, col, msg_type, name in parser.unknown
    ]
    return net, parser.layer_lines, warnings


# --------------------------------------------------------------------------- upgrade

# V1 LayerType enum name -> V2 type string (from Caffe's upgrade_proto.cpp table).
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU",
    "SIGMOID": "Sigmoid", "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence", "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH", "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold", "CROP": "Crop",
}

# V0 type string -> V2 type string (Caffe's UpgradeV0LayerType).
V0_TYPES = {
    "accuracy": "Accuracy", "bnll": "BNLL", "concat": "Concat", "conv": "Convolution",
    "data": "Data", "dropout": "Dropout", "euclidean_loss": "EuclideanLoss",
    "flatten": "Flatten", "hdf5_data": "HDF5Data", "hdf5_output": "HDF5Output",
    "im2col": "Im2col", "images": "ImageData", "infogain_loss": "InfogainLoss",
    "innerproduct": "InnerProduct", "lrn": "LRN",
    "multinomial_logistic_loss": "MultinomialLogisticLoss", "pool": "Pooling",
    "relu": "ReLU", "sigmoid": "Sigmoid", "softmax": "Softmax",
    "softmax_loss": "SoftmaxWithLoss", "split": "Split", "tanh": "TanH",
    "window_data": "WindowData",
}

_V1_SPECIAL = {"type", "blobs_lr", "weight_decay", "param", "blob_share_mode", "layer", "blobs"}


def _copy_field(dst: Message, name: str, value: Any, repeated: bool) -> None:
    fd = dst.DESCRIPTOR.fields_by_name[name]
    if repeated:
        if fd.message_type is not None:
            for v in value:
                getattr(dst, name).add().CopyFrom(v)
        else:
            getattr(dst, name).extend(value)
    elif fd.message_type is not None:
        getattr(dst, name).CopyFrom(value)
    else:
        setattr(dst, name, value)


def _upgrade_v1(v1: Any) -> Any:
    """V1LayerParameter → LayerParameter (fields with the same name copied as they are)."""
    lp = pb.LayerParameter()
    target = lp.DESCRIPTOR.fields_by_name
    for fd, value in v1.ListFields():
        if fd.name in _V1_SPECIAL or fd.name not in target:
            continue
        _copy_field(lp, fd.name, value, fd.is_repeated)
    enum_name = v1.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number[v1.type].name
    lp.type = V1_TYPES.get(enum_name, enum_name)
    n = max(len(v1.blobs_lr), len(v1.weight_decay), len(v1.param))
    for i in range(n):
        spec = lp.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    return lp


def _upgrade_v0(outer: Any) -> Any:
    """V0 ``layers { layer {...} bottom top }`` → LayerParameter, as Caffe's upgrade does."""
    v0 = outer.layer
    lp = pb.LayerParameter()
    lp.name = v0.name
    lp.bottom.extend(outer.bottom)
    lp.top.extend(outer.top)
    t = v0.type
    lp.type = V0_TYPES.get(t, t)
    has = v0.HasField
    if t in ("conv", "innerproduct"):
        p = lp.convolution_param if t == "conv" else lp.inner_product_param
        if has("num_output"):
            p.num_output = v0.num_output
        if has("biasterm"):
            p.bias_term = v0.biasterm
        if has("weight_filler"):
            p.weight_filler.CopyFrom(v0.weight_filler)
        if has("bias_filler"):
            p.bias_filler.CopyFrom(v0.bias_filler)
        if t == "conv":
            if has("pad"):
                p.pad.append(v0.pad)
            if has("kernelsize"):
                p.kernel_size.append(v0.kernelsize)
            if has("group"):
                p.group = v0.group
            if has("stride"):
                p.stride.append(v0.stride)
    elif t == "padding" and has("pad"):  # carried to the next layer by _fold_v0_padding
        lp.convolution_param.pad.append(v0.pad)
    elif t == "pool":
        p = lp.pooling_param
        if has("pad"):
            p.pad = v0.pad
        if has("kernelsize"):
            p.kernel_size = v0.kernelsize
        if has("stride"):
            p.stride = v0.stride
        if has("pool"):
            p.pool = v0.pool
    elif t == "dropout" and has("dropout_ratio"):
        lp.dropout_param.dropout_ratio = v0.dropout_ratio
    elif t == "lrn":
        p = lp.lrn_param
        for f in ("local_size", "alpha", "beta", "k"):
            if has(f):
                setattr(p, f, getattr(v0, f))
    elif t == "concat" and has("concat_dim"):
        lp.concat_param.concat_dim = v0.concat_dim
    elif t in ("data", "images", "window_data"):
        p = {
            "data": lp.data_param, "images": lp.image_data_param,
            "window_data": lp.window_data_param,
        }[t]
        if has("batchsize"):
            p.batch_size = v0.batchsize
        if has("cropsize"):
            lp.transform_param.crop_size = v0.cropsize
    for lr in v0.blobs_lr:
        lp.param.add().lr_mult = lr
    return lp


def _fold_v0_padding(raws: list[_Raw], path: str) -> list[_Raw]:
    """Remove V0 ``padding`` layers, moving their pad into the conv/pool that reads them
    (Caffe's UpgradeV0PaddingLayers, which also refuses any other reader)."""
    pads: dict[str, tuple[str, int]] = {}
    out = []
    for r in raws:
        lp = r.lp
        where = layer_where(path, lp.name, r.line)
        if lp.type == "padding":
            if len(lp.bottom) != 1 or len(lp.top) != 1:
                raise CnnstatError("a V0 padding layer needs one bottom and one top", where)
            pads[lp.top[0]] = (lp.bottom[0], r.lp.convolution_param.pad[0] if
                               r.lp.convolution_param.pad else 0)
            continue
        for i, b in enumerate(lp.bottom):
            if b in pads:
                if lp.type not in ("Convolution", "Pooling"):
                    raise CnnstatError(f"reads the V0 padding output '{b}'; only a conv or "
                                       "pool layer may", where)
                src, pad = pads[b]
                lp.bottom[i] = src
                if lp.type == "Convolution":
                    del lp.convolution_param.pad[:]
                    lp.convolution_param.pad.append(pad)
                elif lp.type == "Pooling":
                    lp.pooling_param.pad = pad
        out.append(r)
    return out


def _input_layer(net: Any, path: str) -> _Raw | None:
    """Top-level ``input`` + ``input_dim``/``input_shape`` → an Input layer named ``input``."""
    if not net.input:
        if net.input_dim or net.input_shape:
            raise CnnstatError("input_dim/input_shape given without an 'input' name", path)
        return None
    lp = pb.LayerParameter(name="input", type="Input")
    lp.top.extend(net.input)
    if net.input_shape:
        if len(net.input_shape) not in (1, len(net.input)):
            raise CnnstatError(
                f"{len(net.input)} inputs but {len(net.input_shape)} input_shape entries", path
            )
        for s in net.input_shape:
            lp.input_param.shape.add().CopyFrom(s)
    elif net.input_dim:
        if len(net.input_dim) != 4 * len(net.input):
            raise CnnstatError(
                f"{len(net.input)} inputs need {4 * len(net.input)} input_dim values, "
                f"found {len(net.input_dim)}", path,
            )
        for i in range(len(net.input)):
            lp.input_param.shape.add().dim.extend(net.input_dim[4 * i : 4 * i + 4])
    else:
        raise CnnstatError(
            f"input '{net.input[0]}' has no input_dim or input_shape; pass --input-shape", path
        )
    return _Raw(lp, None)


# --------------------------------------------------------------------------- phase rules


@dataclass(frozen=True)
class NetState:
    """Caffe's NetState: phase (``TEST`` or ``TRAIN``), level and stages."""

    phase: str = "TEST"
    level: int = 0
    stages: tuple[str, ...] = ()


def _meets(rule: Any, state: NetState) -> bool:
    if rule.HasField("phase") and pb.Phase.Name(rule.phase) != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(s not in state.stages for s in rule.stage):
        return False
    return not any(s in state.stages for s in rule.not_stage)


def _included(lp: Any, state: NetState) -> bool:
    """Caffe's Net::FilterNet: include rules are OR-ed; any matching exclude removes."""
    if lp.include:
        return any(_meets(r, state) for r in lp.include)
    return not any(_meets(r, state) for r in lp.exclude)


# --------------------------------------------------------------------------- splits


def insert_splits(layers: list[Layer], path: str = "") -> list[Layer]:
    """Insert Split layers where one top feeds several bottoms, named as Caffe names them.

    Follows Caffe's ``InsertSplits``: a consumer reads the latest producer of a blob name;
    a producer top read more than once gets a Split layer right after the producer, whose
    tops ``{blob}_{producer}_{top_index}_split_{i}`` replace the consumers' bottoms in order.
    An explicit non-zero ``loss_weight`` counts as one more use.
    """
    last: dict[str, tuple[int, int]] = {}
    source: dict[tuple[int, int], tuple[int, int]] = {}
    count: dict[tuple[int, int], int] = {}
    for i, layer in enumerate(layers):
        for j, b in enumerate(layer.bottoms):
            if b not in last:
                raise CnnstatError(
                    f"bottom '{b}' is not produced by any earlier layer (or network input)",
                    layer_where(path, layer.name, layer.line),
                )
            source[(i, j)] = last[b]
            count[last[b]] = count.get(last[b], 0) + 1
        for j, t in enumerate(layer.tops):
            last[t] = (i, j)
        for j, w in enumerate(layer.attr("loss_weight", ())[: len(layer.tops)]):
            if w:
                count[last[layer.tops[j]]] = count.get(last[layer.tops[j]], 0) + 1
    next_split: dict[tuple[int, int], int] = {}
    out: list[Layer] = []
    for i, layer in enumerate(layers):
        bottoms = list(layer.bottoms)
        for j, b in enumerate(bottoms):
            src = source[(i, j)]
            if count.get(src, 0) > 1:
                k = next_split.get(src, 0)
                next_split[src] = k + 1
                bottoms[j] = f"{b}_{layers[src[0]].name}_{src[1]}_split_{k}"
        if bottoms != list(layer.bottoms):
            layer = Layer(layer.name, layer.kind, layer.type, tuple(bottoms), layer.tops,
                          layer.attrs, layer.line, layer.weights, layer.notes)
        out.append(layer)
        for j, t in enumerate(layer.tops):
            n = count.get((i, j), 0)
            if n > 1:
                stem = f"{t}_{layer.name}_{j}_split"
                if layer.attr("loss_weight", ())[j : j + 1] and layer.attr("loss_weight")[j]:
                    next_split[(i, j)] = next_split.get((i, j), 0) + 1
                out.append(Layer(stem, "Split", "Split", (t,),
                                 tuple(f"{stem}_{k}" for k in range(n)),
                                 frozen({"inserted": True})))
    return out


# --------------------------------------------------------------------------- translation


def _rep(values: Any, h: int | None, w: int | None, default: int | None) -> tuple[int, ...]:
    """Caffe's kernel/pad/stride rule: _h/_w if given, else the repeated field, else default."""
    if h is not None or w is not None:
        if h is None or w is None:
            raise ValueError("both _h and _w must be given")
        return (h, w)
    if len(values):
        return tuple(int(v) for v in values)
    return () if default is None else (default,)


def _opt(msg: Any, name: str) -> Any:
    return getattr(msg, name) if msg.HasField(name) else None


def _positive(name: str, values: Any) -> None:
    """Caffe CHECKs these are > 0 at set-up (a zero kernel or stride is no layer)."""
    if any(v <= 0 for v in values):
        raise ValueError(f"{name} must be positive, got {', '.join(map(str, values))}")


def _conv(lp: Any) -> dict[str, Any]:
    p = lp.convolution_param
    kernel = _rep(p.kernel_size, _opt(p, "kernel_h"), _opt(p, "kernel_w"), None)
    if not kernel:
        raise ValueError("convolution_param needs kernel_size or kernel_h/kernel_w")
    if not p.HasField("num_output"):
        raise ValueError("convolution_param needs num_output")
    stride = _rep(p.stride, _opt(p, "stride_h"), _opt(p, "stride_w"), 1)
    dilation = _rep(p.dilation, None, None, 1)
    _positive("num_output", (p.num_output,))
    _positive("kernel_size", kernel)
    _positive("stride", stride)
    _positive("dilation", dilation)
    _positive("group", (p.group,))
    return {
        "num_output": p.num_output,
        "kernel": kernel,
        "stride": stride,
        "pad": _rep(p.pad, _opt(p, "pad_h"), _opt(p, "pad_w"), 0),
        "dilation": dilation,
        "group": p.group,
        "bias": p.bias_term,
        "axis": p.axis,
        "depthwise": lp.type in ("ConvolutionDepthwise", "DepthwiseConvolution"),
    }


def _pool(lp: Any) -> dict[str, Any]:
    p = lp.pooling_param
    ceil = True
    if p.HasField("round_mode"):
        ceil = pb.PoolingParameter.RoundMode.Name(p.round_mode) == "CEIL"
    if p.HasField("ceil_mode"):
        ceil = p.ceil_mode
    kernel = () if p.global_pooling else _rep(
        [p.kernel_size] if p.HasField("kernel_size") else [],
        _opt(p, "kernel_h"), _opt(p, "kernel_w"), None)
    if not p.global_pooling and not kernel:
        raise ValueError("pooling_param needs kernel_size, kernel_h/kernel_w or global_pooling")
    stride = _rep([p.stride] if p.HasField("stride") else [],
                  _opt(p, "stride_h"), _opt(p, "stride_w"), 1)
    _positive("kernel_size", kernel)
    _positive("stride", stride)
    return {
        "method": pb.PoolingParameter.PoolMethod.Name(p.pool),
        "kernel": kernel,
        "stride": stride,
        "pad": _rep([p.pad] if p.HasField("pad") else [], _opt(p, "pad_h"), _opt(p, "pad_w"), 0),
        "global_pooling": p.global_pooling,
        "ceil": ceil,
    }


def _shape_list(shapes: Any) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in s.dim) for s in shapes]


def _input(lp: Any) -> dict[str, Any]:
    shapes = _shape_list(lp.input_param.shape)
    if len(shapes) == 1 and len(lp.top) > 1:
        shapes = shapes * len(lp.top)
    if len(shapes) != len(lp.top):
        raise ValueError(f"{len(lp.top)} tops but {len(shapes)} input_param shapes")
    return {"shapes": tuple(shapes), "source": "Input"}


def _data_shapes(lp: Any) -> tuple[list[tuple[int, ...] | None], str]:
    """Shapes a data layer's tops have where its parameters say so (None: not knowable)."""
    t = lp.type
    crop = lp.transform_param.crop_size if lp.transform_param.HasField("crop_size") else 0
    unknown = "its shape comes from the data source"
    if t == "DummyData":
        p = lp.dummy_data_param
        shapes = _shape_list(p.shape)
        if not shapes and p.num:
            shapes = [tuple(int(x) for x in dims) for dims in zip(
                p.num, p.channels or [1] * len(p.num), p.height or [1] * len(p.num),
                p.width or [1] * len(p.num))]
        if len(shapes) == 1:
            shapes = shapes * len(lp.top)
        return list(shapes), ""
    if t == "MemoryData":
        p = lp.memory_data_param
        return [(p.batch_size, p.channels, p.height, p.width), (p.batch_size,)], ""
    batch, chans, hw = None, None, None
    if t == "Data":
        batch = lp.data_param.batch_size
        hw = (crop, crop) if crop else None
        unknown = "channels and size come from its database"
    elif t == "ImageData":
        p = lp.image_data_param
        batch, chans = p.batch_size, 3 if p.is_color else 1
        hw = (crop, crop) if crop else (
            (p.new_height, p.new_width) if p.new_height and p.new_width else None)
        unknown = "image size comes from the files it lists"
    elif t == "WindowData":
        batch, chans = lp.window_data_param.batch_size, 3
        hw = (crop, crop) if crop else None
    elif t == "DenseImageData" and lp.HasField("dense_image_data_param"):
        p = lp.dense_image_data_param
        batch = p.batch_size
        chans = 3 if not p.HasField("is_color") or p.is_color else 1
        if p.HasField("crop_height") and p.HasField("crop_width") and p.crop_height:
            hw = (p.crop_height, p.crop_width)
        elif p.new_height and p.new_width:
            hw = (p.new_height, p.new_width)
        unknown = "image size comes from the files it lists"
    if batch and chans and hw:
        data = (batch, chans, *hw)
        label = (batch, 1, *hw) if t == "DenseImageData" else (batch,)
        return [data, label][: len(lp.top)], ""
    label = (batch,) if batch and t in ("Data", "ImageData", "WindowData") else None
    return [None, label][: len(lp.top)], unknown


DATA_TYPES = {"Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "WindowData",
              "DenseImageData", "AnnotatedData", "VideoData"}


def _attrs(lp: Any) -> tuple[str, dict[str, Any]]:
    """(canonical kind, attrs) for one V2 layer message."""
    t = lp.type
    simple: dict[str, Callable[[Any], tuple[str, dict[str, Any]]]] = {
        "Convolution": lambda lp: ("Convolution", _conv(lp)),
        "ConvolutionDepthwise": lambda lp: ("Convolution", _conv(lp)),
        "DepthwiseConvolution": lambda lp: ("Convolution", _conv(lp)),
        "Deconvolution": lambda lp: ("Deconvolution", _conv(lp)),
        "Pooling": lambda lp: ("Pooling", _pool(lp)),
        "Input": lambda lp: ("Input", _input(lp)),
    }
    if t in simple:
        return simple[t](lp)
    if t in DATA_TYPES or (t == "Python" and not lp.bottom):
        shapes, why = _data_shapes(lp) if t != "Python" else (
            [None] * len(lp.top), "a Python data layer's shapes are set by its code at run time")
        return "Input", {"shapes": tuple(shapes), "source": t, "unknown_reason": why}
    if t == "InnerProduct":
        p = lp.inner_product_param
        if not p.HasField("num_output"):
            raise ValueError("inner_product_param needs num_output")
        _positive("num_output", (p.num_output,))
        return t, {"num_output": p.num_output, "bias": p.bias_term, "axis": p.axis,
                   "transpose": p.transpose}
    if t == "LRN":
        p = lp.lrn_param
        return t, {"local_size": p.local_size,
                   "region": pb.LRNParameter.NormRegion.Name(p.norm_region)}
    if t == "Concat":
        p = lp.concat_param
        return t, {"axis": p.concat_dim if p.HasField("concat_dim") else p.axis}
    if t == "Slice":
        p = lp.slice_param
        return t, {"axis": p.slice_dim if p.HasField("slice_dim") else p.axis,
                   "points": tuple(p.slice_point)}
    if t == "Eltwise":
        p = lp.eltwise_param
        return t, {"operation": pb.EltwiseParameter.EltwiseOp.Name(p.operation),
                   "coeff": tuple(p.coeff)}
    if t == "Crop":
        p = lp.crop_param
        return t, {"axis": p.axis, "offset": tuple(p.offset)}
    if t == "Reshape":
        p = lp.reshape_param
        if any(d < -1 for d in p.shape.dim):
            raise ValueError(f"reshape_param dims must be ≥ -1, got {list(p.shape.dim)}")
        return t, {"shape": tuple(p.shape.dim), "axis": p.axis, "num_axes": p.num_axes}
    if t == "Flatten":
        p = lp.flatten_param
        return t, {"axis": p.axis, "end_axis": p.end_axis}
    if t == "Softmax" or t == "SoftmaxWithLoss":
        return t, {"axis": lp.softmax_param.axis}
    if t == "Scale":
        p = lp.scale_param
        return t, {"axis": p.axis, "num_axes": p.num_axes, "bias": p.bias_term}
    if t == "Bias":
        p = lp.bias_param
        return t, {"axis": p.axis, "num_axes": p.num_axes}
    if t == "PReLU":
        return t, {"channel_shared": lp.prelu_param.channel_shared}
    if t == "Embed":
        p = lp.embed_param
        return t, {"num_output": p.num_output, "input_dim": p.input_dim, "bias": p.bias_term}
    if t in ("LSTM", "RNN"):
        return t, {"num_output": lp.recurrent_param.num_output}
    if t == "Permute":
        return t, {"order": tuple(lp.permute_param.order)}
    if t == "PriorBox":
        p = lp.prior_box_param
        return t, {"min_sizes": tuple(p.min_size), "max_sizes": tuple(p.max_size),
                   "aspect_ratios": tuple(p.aspect_ratio), "flip": p.flip}
    if t == "DetectionOutput":
        p = lp.detection_output_param
        return t, {"keep_top_k": p.keep_top_k, "num_classes": p.num_classes}
    if t == "ROIPooling":
        p = lp.roi_pooling_param
        return t, {"pooled_h": p.pooled_h, "pooled_w": p.pooled_w}
    if t == "Interp":
        p = lp.interp_param
        return t, {k: getattr(p, k) for k in
                   ("height", "width", "zoom_factor", "shrink_factor") if p.HasField(k)} | {
            "pad_beg": p.pad_beg, "pad_end": p.pad_end}
    if t == "Upsample":
        p = lp.upsample_param
        a = {k: getattr(p, k) for k in ("upsample_h", "upsample_w", "scale_h", "scale_w")
             if p.HasField(k)}
        return t, a | {"scale": p.scale, "pad_out_h": bool(p.pad_out_h),
                       "pad_out_w": bool(p.pad_out_w)}
    if t == "Normalize":
        p = lp.norm_param
        return t, {"channel_shared": p.channel_shared, "across_spatial": p.across_spatial}
    if t == "ShuffleChannel":
        return t, {"group": lp.shuffle_channel_param.group}
    if t == "BN":
        return t, {"inference_only": lp.bn_param.HasField("bn_mode")}
    if t == "ReLU":
        return t, {"negative_slope": lp.relu_param.negative_slope}
    if t == "ArgMax":
        p = lp.argmax_param
        return t, {"top_k": p.top_k, "out_max_val": p.out_max_val,
                   "axis": p.axis if p.HasField("axis") else None}
    if t == "Reduction":
        p = lp.reduction_param
        return t, {"axis": p.axis}
    if t == "Tile":
        _positive("tiles", (lp.tile_param.tiles,))
        return t, {"axis": lp.tile_param.axis, "tiles": lp.tile_param.tiles}
    if t == "Python":
        return t, {"module": lp.python_param.module, "layer": lp.python_param.layer}
    if t in ONNX_ONLY_KINDS:  # a fork's type that happens to share an ONNX kind's name
        return f"caffe:{t}", {}
    return t, {}


# How many bottoms Caffe's layers take (Min/Max/ExactNumBottomBlobs in their headers).
BOTTOM_COUNTS: dict[str, tuple[int, int | None]] = {
    "Convolution": (1, None), "Deconvolution": (1, None), "InnerProduct": (1, 1),
    "Pooling": (1, 1), "LRN": (1, 1), "Concat": (1, None), "Eltwise": (2, None),
    "Slice": (1, 1), "Crop": (2, 2), "Reshape": (1, 1), "Flatten": (1, 1),
    "Softmax": (1, 1), "BatchNorm": (1, 1), "Scale": (1, 2), "Bias": (1, 2),
    "ROIPooling": (2, 2), "Axpy": (3, 3), "Dropout": (1, 1), "ReLU": (1, 1),
    "Sigmoid": (1, 1), "TanH": (1, 1), "PReLU": (1, 1), "Permute": (1, 1), "Split": (1, 1),
}


def _check_bottoms(kind: str, n: int) -> None:
    lo, hi = BOTTOM_COUNTS.get(kind, (0, None))
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        raise ValueError(f"takes {want} bottom(s), this one has {n}")


def _translate(raw: _Raw, path: str) -> Layer:
    lp = raw.lp
    where = layer_where(path, lp.name, raw.line)
    if not lp.type:
        raise CnnstatError("layer has no type", where)
    try:
        kind, attrs = _attrs(lp)
        _check_bottoms(kind, len(lp.bottom))
    except ValueError as e:
        raise CnnstatError(f"{lp.type}: {e}", where) from None
    if lp.loss_weight:
        attrs["loss_weight"] = tuple(lp.loss_weight)
    return Layer(lp.name, kind, lp.type, tuple(lp.bottom), tuple(lp.top), frozen(attrs),
                 raw.line)


def read_caffe(path: str, state: NetState = NetState()) -> Net:
    """Read a Caffe prototxt into the IR (phase-filtered, Splits inserted)."""
    net, lines, warnings = parse_prototxt(path)
    if net.layer and net.layers:
        raise CnnstatError("mixes V2 'layer' and V1/V0 'layers' blocks", path)
    if net.layers:
        v0 = any(lr.HasField("layer") for lr in net.layers)
        fmt = "caffe-v0" if v0 else "caffe-v1"
        raws = [_Raw(_upgrade_v0(lr) if v0 else _upgrade_v1(lr), ln)
                for lr, ln in zip(net.layers, lines)]
        if v0:
            raws = _fold_v0_padding(raws, path)
    else:
        fmt = "caffe-v2"
        raws = [_Raw(lp, ln) for lp, ln in zip(net.layer, lines)]
    inp = _input_layer(net, path)
    if inp is not None:
        raws.insert(0, inp)
    if not raws:
        raise CnnstatError("no layers found (is this a Caffe prototxt?)", path)
    kept = [r for r in raws if _included(r.lp, state)]
    if not kept:
        raise CnnstatError(f"include/exclude rules leave no layer in the {state.phase} phase "
                           "(see --phase, --stage, --level)", path)
    seen: dict[str, int] = {}
    layers = []
    for r in kept:
        if r.lp.name in seen and r.lp.name:
            warnings.append(f"{path}:{r.line}: duplicate layer name '{r.lp.name}'")
        seen[r.lp.name] = 1
        layers.append(_translate(r, path))
    _check_tops(layers, path)
    layers = insert_splits(layers, path)
    name = net.name or Path(path).stem
    return Net(name, str(path), fmt, tuple(layers), tuple(warnings))


def _check_tops(layers: list[Layer], path: str) -> None:
    """A top name produced twice is an error unless the second producer is in place."""
    produced: set[str] = set()
    for layer in layers:
        for t in layer.tops:
            if t in produced and t not in layer.bottoms:
                raise CnnstatError(
                    f"writes top '{t}', which an earlier layer already produced "
                    "(only in-place layers may reuse a blob name)",
                    layer_where(path, layer.name, layer.line))
            produced.add(t)
