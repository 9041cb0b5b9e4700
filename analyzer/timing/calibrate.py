"""Calibration: measure this machine with onnxruntime on a grid of small nets and fit a
profile (the command is :mod:`analyzer.commands.calibrate`).

Each grid point is a small net built directly in the IR (an ``Input`` and the layer, or
copies of it), analysed by the normal passes (so its features are exactly what a
prediction will see), lowered to ONNX with random weights and timed by onnxruntime with
its DEFAULT session options (graph optimizations on, default thread count; ``--threads``
pins the count). A layer's time is the median kernel time of its nodes in onnxruntime's
profile (runtime layout reorders excluded) after warm-up runs, less the profiler's own cost
per node. Convolutions and inner products run as two or more copies: onnxruntime runs a
lone node slower than the same node inside a graph, and copies whose weights together
outgrow the caches read them from memory, as a layer deep in a net does.
:func:`analyzer.timing.profile.fit_profile` fits the per-kind models.

Properties of the runtime are measured too, not assumed:

- **fusions**: for each (producer, consumer) pair onnxruntime might merge (Conv+BatchNorm,
  Conv+Scale, Conv+ReLU, Conv+Clip, Conv+Eltwise/Add, InnerProduct+ReLU, …) a small net is
  run, and the pair is listed when fewer of its layers run a node than it has;
- **per_layer_overhead_ms**: the wall time of a run per layer, on chains of nodes that
  cost next to nothing (the same chains give the profiler's cost per node), or what the
  probe net's run costs per layer beyond its layers' fitted times, whichever is larger;
- **probe**: the machine's state while it measured (:mod:`analyzer.timing.probe`), read between
  points; points measured in another state are measured again, and ``cnnstat measure``
  compares only sessions run in the same state.

Times are milliseconds.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.analysis import Report, analyze
from analyzer.ir import Net, Shape
from analyzer.timing.grid import conv_attrs, input_layer, make_layer
from analyzer.timing.measure import REORDER_OPS, attribute, tensor_layers
from analyzer.timing.runtime import time_model

# ---------------------------------------------------------------------------------------
# The grid: one-layer (or small) nets built in the IR.


@dataclass(frozen=True)
class Point:
    """One grid point: a small net and the layer of it that is being measured.

    ``streams`` marks a point bound by reading its weights from memory (a batch-1 inner
    product). The host's memory bandwidth has fast spells the compute probe cannot see
    (measured on this 2-core VM, a 9216→4096 fc alone or as AlexNet's fc6 in some 60
    sessions: 1.7–1.9 ms in five of them, in spells of seconds, 2.7–3.3 ms in the rest), so
    of such a point's readings the slower is kept, not the faster.
    """

    label: str
    net: Net
    streams: bool = False
    onnx: bytes | None = None  # a block (analyzer.timing.blocks): run as written, not lowered
    group: str = ""  # the grid class a block belongs to


COPY = "copy"  # name prefix of the copies of a layer measured together


def single(label: str, kind: str, shapes: Sequence[Shape], copies: int = 1,
           streams: bool = False, **attrs: Any) -> Point:
    """A net of one ``kind`` layer (named ``layer``) reading inputs of ``shapes``.

    With ``copies`` > 1 the net holds that many copies (``copy0``, ``copy1``, …, each with
    its own random weights) reading the same inputs, run one after the other: together
    their weights outgrow the caches, so each copy reads its weights from memory as a layer
    deep in a real net does, instead of from a cache kept warm by timing it alone.
    """
    inp = input_layer(*shapes)
    if copies == 1:
        layers = (inp, make_layer("layer", kind, inp.tops, ("out",), **attrs))
    else:
        layers = (inp, *(make_layer(f"{COPY}{c}", kind, inp.tops, (f"out{c}",), **attrs)
                         for c in range(copies)))
    return Point(label, Net(label, f"<calibrate {label}>", "calibrate", layers), streams)


# (spatial size, input channels) pairs as they occur along ImageNet CNNs
_STAGES = [(224, 3), (112, 32), (112, 64), (56, 64), (56, 128), (56, 256), (28, 128),
           (28, 256), (28, 512), (14, 256), (14, 512), (14, 1024), (7, 512), (7, 1024),
           (7, 2048), (27, 96), (13, 256), (13, 384), (35, 192), (17, 768)]
_MAX_CONV_MACS = 2.5e9  # keep every point well under a second


def conv_points(n: int, rng: np.random.Generator, batch: int = 1) -> list[Point]:
    """``n`` convolutions drawn from a grid over size × channels × kernel × stride × groups."""
    grid = []
    for (hw, c_in), ratio, k, s, g in itertools.product(
            _STAGES, (0.25, 0.5, 1, 2, 4), (1, 3, 5, 7, 11), (1, 2), ("1", "dw", "g")):
        c_out = max(8, int(c_in * ratio))
        if g == "dw":
            if c_in < 16 or ratio != 1 or k not in (3, 5, 7):
                continue
            group = c_in
        elif g == "g":
            group = next((d for d in (32, 8, 4, 2) if c_in % d == 0 and c_out % d == 0
                          and c_in // d >= 4), 1)
            if group == 1 or k not in (1, 3):
                continue
        else:
            group = 1
        if k > hw or (k >= 7 and c_in > 256) or (k == 11 and c_in > 3):
            continue
        if c_in == 3 and (g != "1" or k == 1):
            continue
        stride = 4 if (k == 11 and s == 2) else s
        out = (hw + 2 * (k // 2) - k) // stride + 1
        macs = batch * c_out * out * out * (c_in // group) * k * k
        if macs > _MAX_CONV_MACS:
            continue
        grid.append((hw, c_in, c_out, k, stride, group))
    picks = sorted(rng.choice(len(grid), size=min(n, len(grid)), replace=False))
    points = []
    for i in picks:
        hw, c_in, c_out, k, stride, group = grid[i]
        label = f"conv {c_in}→{c_out} {hw}² k{k} s{stride} g{group}"
        weights = c_out * c_in // group * k * k * 4
        out = (hw + 2 * (k // 2) - k) // stride + 1
        macs = batch * c_out * out * out * (c_in // group) * k * k
        # a short conv on big weights (deep 1×1 and 3×3) is bound by reading them: measure
        # it with cold weights, as it runs in a net; any other conv: two copies (_copies)
        copies = _copies(weights) if weights >= 2**20 and macs <= 100e6 else 2
        points.append(single(label, "Convolution", [(batch, c_in, hw, hw)], copies=copies,
                             **conv_attrs(c_out, k, stride, group)))
    return points


def first_points(quick: bool) -> list[Point]:
    """First layers: an RGB image (3 channels at 224²) into 16–96 filters with the kernels
    and strides ImageNet nets open with (3×3 s2 MobileNet/MnasNet/SqueezeNet, 7×7 s2
    ResNet/GoogLeNet, 11×11 s4 AlexNet): the points of the ``image`` class
    (:func:`analyzer.timing.profile.conv_class`). The random grid draws few of them, and only with
    8 or 12 filters: fitted with the other dense convolutions and without these, the first
    layers of the 11 benchmark nets were predicted at 1.06–2.2× their time in onnxruntime;
    fitted on these as a class of their own, at 0.77–1.08× (one calibration, fast state)."""
    shapes = [(c, k, s) for c in (16, 32, 64, 96)
              for k, s in ((3, 1), (3, 2), (5, 2), (7, 2), (11, 4))]
    return [single(f"conv 3→{c} 224² k{k} s{s} g1", "Convolution", [(1, 3, 224, 224)],
                   copies=2, **conv_attrs(c, k, s, 1))
            for c, k, s in (shapes[::3] if quick else shapes)]


# (spatial size, channels) of depthwise and 1×1 convolutions along mobile nets (MobileNet v1/v2,
# MnasNet, ShuffleNetV2; 58 and 116 are not multiples of 8)
_MOBILE_STAGES = [(112, 32), (112, 16), (56, 72), (56, 144), (28, 58), (28, 144), (28, 240),
                  (14, 116), (14, 480), (14, 576), (7, 232), (7, 960), (112, 96)]


def mobile_points(quick: bool) -> list[Point]:
    """Depthwise (3×3 stride 1 and 2, 5×5) and 1×1 convolutions at the sizes and channel
    counts of mobile nets: the random grid draws few of them, and CPU runtimes run each
    class with its own kernel (see :func:`analyzer.timing.profile.conv_class`)."""
    shapes = [(hw, c, k, s, g) for hw, c in _MOBILE_STAGES
              for k, s, g in ((3, 1, c), (3, 2, c), (5, 1, c), (1, 1, 1))]
    return [single(f"conv {c}→{c} {hw}² k{k} s{s} g{g}", "Convolution", [(1, c, hw, hw)],
                   copies=2, **conv_attrs(c, k, s, g))
            for hw, c, k, s, g in (shapes[::3] if quick else shapes)]


def fc_points(quick: bool) -> list[Point]:
    """Inner products over input width × output width × batch. Half the grid is classifier
    heads whose weights outgrow the caches (fc6/fc7-like, where an FC costs most), the rest
    smaller layers. A batch-1 point reads each weight once, so its time is the time to
    stream its weights from memory: it gets enough copies to hold :func:`stream_bytes` of
    weights (a classifier head in a net reads weights that no cache holds)."""
    batches = (1, 10, 32) if not quick else (1, 16)
    grid = [*itertools.product((4096, 9216), (4096,), batches),
            *itertools.product((2048, 4096), (1000,), batches[:2]), (1024, 1000, 1),
            (1280, 1000, 1), (512, 1000, 1), (256, 10, 1)]
    if quick:  # each batch-1 head streams 256 MiB: the quick grid keeps 5 of the 7
        grid = [g for g in grid if g not in ((4096, 1000, 1), (1024, 1000, 1))]
    stream = stream_bytes()
    points = []
    for i, o, b in grid:
        weights = i * o * 4
        streams = b == 1 and weights >= 2**20
        copies = _copies(weights, stream, 64) if streams else _copies(weights)
        points.append(single(f"fc {i}→{o} b{b}", "InnerProduct", [(b, i)], num_output=o,
                             bias=True, axis=1, copies=copies, streams=streams))
    return points


def token_points(quick: bool) -> list[Point]:
    """Linears over tokens (``InnerProduct/tokens``): the widths of ConvNeXt's MLP at 56²
    and 14², Swin-T's at 56² and 7², ViT-B/16's (197 tokens) and a CLIP-like 50 tokens
    (tokens × input width → output width, no bias: the nets' bias Add is a node of its own
    or folds into the GELU after it)."""
    grid = [(3136, 96, 384), (3136, 384, 96), (196, 384, 1536), (197, 768, 3072),
            (49, 768, 3072), (197, 3072, 768), (784, 192, 768), (50, 512, 2048)]
    return [single(f"linear {t}×{i}→{o}", "InnerProduct", [(1, t, i)], num_output=o,
                   bias=False, axis=2, copies=_copies(i * o * 4, most=4))
            for t, i, o in (grid[::3] if quick else grid)]


_EVICT_BYTES = 96 * 2**20  # weights a conv point's copies hold (a batch-1 fc: stream_bytes)


def _copies(weight_bytes: int, evict_bytes: int = _EVICT_BYTES, most: int = 12) -> int:
    """How many copies of a layer make its weights leave the caches between its runs
    (``evict_bytes`` of weights in all, at most ``most`` copies).

    At least two: onnxruntime runs a graph of one node markedly slower than the same node
    inside a graph (measured: a 64→64 3×3 conv at 56², 0.86 ms alone, 0.43 ms as one of
    two or more), so a layer is never timed alone.
    """
    return max(2, min(most, -(-evict_bytes // max(weight_bytes, 1))))


_STREAM_BYTES = 256 * 2**20


def stream_bytes() -> int:
    """Weights to stream per batch-1 inner-product point: 256 MiB, or an eighth of the
    memory available (the point's session holds its weights about twice over).

    96 MiB is not enough on every host: on this project's 2-core EPYC VM a 4096→4096 fc
    measured 1.20–1.24 ms as 2 copies (134 MB), and 1.41–1.47 ms as 4, 6 or 8 copies
    (268–537 MB; three runs each), which is what AlexNet's fc7 takes inside the net.
    """
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return min(_STREAM_BYTES, int(line.split()[1]) * 1024 // 8)
    except (OSError, ValueError, IndexError):
        pass
    return _STREAM_BYTES


def _maps(quick: bool) -> list[Shape]:
    """Feature-map shapes for the element-wise and pooling kinds: in a private cache, and
    beyond it (64×112², 4 MiB moved by a ReLU: a net's early layers, where its pooling and
    element-wise layers cost most; see ``spill_bytes`` in :mod:`analyzer.timing.profile`)."""
    if quick:
        return [(1, 64, 56, 56), (1, 256, 28, 28), (1, 512, 7, 7), (1, 64, 112, 112)]
    return [(1, 64, 112, 112), (1, 64, 56, 56), (1, 256, 56, 56), (1, 128, 28, 28),
            (1, 512, 28, 28), (1, 256, 14, 14), (1, 1024, 14, 14), (1, 2048, 7, 7),
            (1, 96, 55, 55), (1, 32, 17, 17)]


# maps of the data-moving layers: ShuffleNetV2's stages and two wider ones
_LAYOUT_MAPS: list[Shape] = [(1, 116, 28, 28), (1, 64, 56, 56), (1, 232, 14, 14),
                             (1, 464, 7, 7), (1, 256, 28, 28), (1, 1024, 7, 7)]


def other_points(quick: bool) -> list[Point]:
    """Pooling, ReLU, Clip, Add, LRN, BatchNorm, Scale, Eltwise, Concat, Softmax, Flatten,
    and the data-moving Permute, Slice and Reshape (:func:`layout_points`)."""
    pts: list[Point] = []
    for x in _maps(quick):
        tag = "×".join(map(str, x[1:]))
        # GoogLeNet's inception branches pool 3×3 at stride 1 with a pad of 1; DenseNet's
        # transitions average 2×2 at stride 2
        for method, k, s, pad in (("MAX", 3, 2, 0), ("MAX", 2, 2, 0), ("AVE", 3, 1, 0),
                                  ("MAX", 3, 1, 1), ("AVE", 2, 2, 0)):
            pts.append(single(f"pool {method} k{k} s{s} p{pad} {tag}", "Pooling", [x],
                              method=method, kernel=(k,), stride=(s,), pad=(pad,), ceil=True))
        pts.append(single(f"pool global AVE {tag}", "Pooling", [x], method="AVE",
                          global_pooling=True, kernel=(1,)))
        pts.append(single(f"relu {tag}", "ReLU", [x]))
        pts.append(single(f"clip {tag}", "Clip", [x]))
        pts.append(single(f"add {tag}", "Broadcast", [x, x]))
        pts.append(single(f"lrn {tag}", "LRN", [x], local_size=5, region="ACROSS_CHANNELS"))
        pts.append(single(f"batchnorm {tag}", "BatchNorm", [x]))
        pts.append(single(f"scale {tag}", "Scale", [x], axis=1, num_axes=1, bias=True))
        pts.append(single(f"eltwise sum {tag}", "Eltwise", [x, x], operation="SUM",
                          coeff=()))
        pts.append(single(f"concat 2 {tag}", "Concat", [x, x], axis=1))
        pts.append(single(f"concat 4 {tag}", "Concat", [x] * 4, axis=1))
        pts.append(single(f"flatten {tag}", "Flatten", [x], axis=1, end_axis=-1))
    for x in _LAYOUT_MAPS[::3] if quick else _LAYOUT_MAPS:
        pts += layout_points(x)
    for b, c in ((1, 1000), (8, 1000), (32, 1000), (1, 21 * 4096)):
        pts.append(single(f"softmax {b}×{c}", "Softmax", [(b, c)], axis=1))
    return pts


def layout_points(x: Shape) -> list[Point]:
    """Layers that only move data, as ShuffleNetV2's channel split and shuffle do: a
    transpose to channels-last, a split of the channels in two, a concat of two halves, a
    reshape to 5-D groups and the 5-D transpose that swaps them."""
    n, c, h, w = x
    tag = "×".join(map(str, x[1:]))
    inp = input_layer(x)
    concat = Net(f"concat 2 {tag}", f"<calibrate concat {tag}>", "calibrate", (
        input_layer(x, x), make_layer("layer", "Concat", ("in0", "in1"), ("out",), axis=1)))
    halves = make_layer("layer", "Slice", inp.tops, ("a", "b"), axis=1, points=())
    pts = [single(f"permute nhwc {tag}", "Permute", [x], order=(0, 2, 3, 1)),
           Point(f"slice 2 {tag}", Net(f"slice 2 {tag}", f"<calibrate slice {tag}>",
                                       "calibrate", (inp, halves))),
           Point(f"concat 2 {tag}", concat)]
    if c % 2 == 0:
        pts.append(single(f"reshape groups {tag}", "Reshape", [x],
                          shape=(n, 2, c // 2, h, w), axis=0, num_axes=-1))
        pts.append(single(f"permute shuffle {tag}", "Permute", [(n, 2, c // 2, h, w)],
                          order=(0, 2, 1, 3, 4)))
    return pts


def chain(label: str, blocks: int, x: Shape = (1, 16, 4, 4)) -> Point:
    """``blocks`` × (ReLU, Sigmoid) on a tiny tensor: nodes that cost next to nothing, so a
    run's wall time per layer is the runtime's own cost per layer."""
    layers = [input_layer(x)]
    prev = "in0"
    for i in range(blocks):
        layers.append(make_layer(f"r{i}", "ReLU", [prev], [f"r{i}"]))
        layers.append(make_layer(f"s{i}", "Sigmoid", [f"r{i}"], [f"s{i}"]))
        prev = f"s{i}"
    return Point(label, Net(label, f"<calibrate {label}>", "calibrate", tuple(layers)))


def between_points(quick: bool) -> list[Point]:
    """A Caffe-style layer between two convolutions (conv → X → 1×1 conv): LRN, max and
    average pooling, a Concat of two convs. Where onnxruntime runs X outside its blocked
    layout it reorders before X and before the next conv (AlexNet's and GoogLeNet's LRN:
    about 3 and 5 ms of reorders at batch 10); a one-layer point never shows that."""
    pts = []
    sizes = ((1, 64, 56, 56),) if quick else ((1, 64, 56, 56), (4, 96, 27, 27))
    for x in sizes:
        n, c, h, _ = x
        tag = "×".join(map(str, x))
        kinds: list[tuple[str, dict[str, Any]]] = [
            ("LRN", {"local_size": 5, "region": "ACROSS_CHANNELS"}),
            ("Pooling", {"method": "MAX", "kernel": (3,), "stride": (2,), "pad": (0,),
                         "ceil": True}),
            ("Pooling", {"method": "MAX", "kernel": (3,), "stride": (1,), "pad": (1,),
                         "ceil": True}),
            ("Concat", {"axis": 1})]
        for kind, attrs in kinds:
            layers = [input_layer(x), make_layer("a", "Convolution", ["in0"], ["a"],
                                        **conv_attrs(c, 3, 1, 1))]
            bottoms = ["a"]
            if kind == "Concat":
                layers.append(make_layer("a2", "Convolution", ["in0"], ["a2"],
                                     **conv_attrs(c, 1, 1, 1)))
                bottoms = ["a", "a2"]
            layers += [make_layer("x", kind, bottoms, ["x"], **attrs),
                       make_layer("b", "Convolution", ["x"], ["b"], **conv_attrs(c, 1, 1, 1))]
            label = f"between {kind} {attrs.get('method', '')}{attrs.get('stride', '')} {tag}"
            pts.append(Point(label, Net(label, f"<calibrate {label}>", "calibrate",
                                        tuple(layers))))
    return pts


FUSION_CANDIDATES = (("Convolution", "ReLU"), ("Convolution", "BatchNorm"),
                     ("Convolution", "Scale"), ("Convolution", "Eltwise"),
                     ("Convolution", "Broadcast"), ("Convolution", "Clip"),
                     ("Convolution", "Sigmoid"), ("InnerProduct", "ReLU"))


def pair(producer: str, consumer: str) -> Point:
    """A producer layer and a consumer reading its top. A two-input consumer (Eltwise,
    Broadcast) sums two producers, as a residual block does."""
    if producer == "InnerProduct":
        x: Shape = (1, 1024)
        attrs = {"num_output": 1024, "bias": True, "axis": 1}
    else:
        x = (1, 64, 28, 28)
        attrs = conv_attrs(64, 3, 1, 1)
    layers = [input_layer(x), make_layer("a", producer, ["in0"], ["a"], **attrs)]
    bottoms = ["a"]
    extra: dict[str, Any] = {}
    if consumer == "Scale":
        extra = {"axis": 1, "num_axes": 1, "bias": True}
    elif consumer in ("Eltwise", "Broadcast"):
        layers.append(make_layer("c", producer, ["in0"], ["c"], **attrs))
        bottoms = ["c", "a"]
        extra = {"operation": "SUM", "coeff": ()} if consumer == "Eltwise" else {}
    layers.append(make_layer("b", consumer, bottoms, ["b"], **extra))
    label = f"{producer}+{consumer}"
    return Point(label, Net(label, f"<calibrate {label}>", "calibrate", tuple(layers)))


# ---------------------------------------------------------------------------------------
# Measuring.


@dataclass(frozen=True)
class Measured:
    """One measured point: its report, the wall time and ms charged to each layer."""

    point: Point
    report: Report
    wall_ms: float
    layer_ms: dict[str, float]
    fused_into: dict[str, str]
    nodes_ms: float  # all profiled nodes, reorders included
    layer_nodes: dict[str, int]  # executed nodes charged to each layer
    node_count: int  # executed nodes, reorders included
    nchwc: frozenset[str] = frozenset()  # layers whose node ran in the NCHWc layout
    # nodes no layer computes that are not reorders (shape arithmetic): count and ms
    other_nodes: tuple[int, float] = (0, 0.0)
    # layout reorders run just before a layer's node: count and ms
    reorders: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)

    def corrected(self, profiler_ms: float) -> dict[str, float]:
        """Layer times less the profiler's own cost per node (``profiler_ms`` each), kept
        at no less than a quarter of what the profile said."""
        return {name: max(ms - profiler_ms * self.layer_nodes.get(name, 0), 0.25 * ms)
                for name, ms in self.layer_ms.items()}


@dataclass(frozen=True)
class _Lowered:
    """A point ready to run: its report, ONNX bytes, inputs and node/tensor → layer maps."""

    report: Report
    model: bytes
    inputs: dict[str, Shape]
    node_layer: dict[str, str]
    tensors: dict[str, str]


_LOWERED: dict[int, _Lowered] = {}  # by id(point): a point is lowered once per calibration


def _lower(point: Point) -> _Lowered:
    low = _LOWERED.get(id(point))
    if low is not None and low.report.net is point.net:
        return low
    report = analyze(point.net)
    if point.onnx is not None:
        low = _Lowered(report, point.onnx, dict(report.inputs),
                       {r.layer.name: r.layer.name for r in report.layers},
                       tensor_layers(report))
    else:
        from analyzer.timing.lower import export

        ex = export(report)
        tensors = {t: layer for (layer, _), t in ex.top_tensor.items()}
        tensors.update(tensor_layers(report))
        low = _Lowered(report, ex.model.SerializeToString(), dict(ex.inputs), ex.node_layer,
                       tensors)
    if len(_LOWERED) > 64 and sum(len(v.model) for v in _LOWERED.values()) > 2**30:
        _LOWERED.clear()  # keep at most about a GiB of lowered weights
    _LOWERED[id(point)] = low
    return low


def measure_point(point: Point, threads: int, repeats: int, wall: bool = False) -> Measured:
    """Lower the point's net to ONNX (a block runs as written; once per point) and time it
    with onnxruntime: its profile only, unless ``wall`` (a chain's per-node cost is its
    wall time)."""
    low = _lower(point)
    report, node_layer, tensors = low.report, low.node_layer, low.tensors
    run = time_model(low.model, low.inputs, threads, repeats=repeats, warmup=2,
                     profile_runs=repeats, wall=wall)
    att = attribute(report, run.nodes, node_layer, tensors)
    counts: dict[str, int] = {}
    for layer in att.node_layer.values():
        counts[layer] = counts.get(layer, 0) + 1
    nchwc = frozenset(att.node_layer[n.name] for n in run.nodes
                      if n.name in att.node_layer and n.name.endswith("_nchwc"))
    before: dict[str, tuple[int, float]] = {}
    pending: list[float] = []
    for n in run.nodes:  # layout reorders count for the next layer's node
        if n.name not in att.node_layer:
            if n.op in REORDER_OPS:
                pending.append(n.ms)
        elif pending:
            layer = att.node_layer[n.name]
            count, ms = before.get(layer, (0, 0.0))
            before[layer] = (count + len(pending), ms + sum(pending))
            pending = []
    other = [n.ms for n in run.nodes if n.name not in att.node_layer and n.op not in REORDER_OPS]
    return Measured(point, report, run.wall_ms, att.layer_ms, att.fused_into,
                    sum(n.ms for n in run.nodes), counts, len(run.nodes), nchwc=nchwc,
                    reorders=before, other_nodes=(len(other), sum(other)))


def block_points(quick: bool) -> list[Point]:
    """The blocks of :mod:`analyzer.timing.blocks`, read back by cnnstat's ONNX reader."""
    import tempfile

    from analyzer.frontends.load import load_net
    from analyzer.timing.blocks import blocks

    points = []
    with tempfile.TemporaryDirectory(prefix="cnnstat-blocks-") as tmp:
        for i, b in enumerate(blocks(quick)):
            path = Path(tmp) / f"block{i}.onnx"
            path.write_bytes(b.onnx)
            net = load_net(str(path), batch=1)  # every block's batch is symbolic
            net = dataclasses.replace(net, name=b.label, path=f"<calibrate {b.label}>")
            points.append(Point(b.label, net, onnx=b.onnx, group=b.group))
    return points


def observed_context(m: Measured) -> list[Any]:
    """Each layer's context (:func:`analyzer.timing.profile.walk_context`) as onnxruntime ran the
    measured net: which layers ran a node, into which the others were fused, which
    convolutions ran in the NCHWc layout."""
    from analyzer.timing.profile import walk_context

    layers = m.report.layers
    index = {r.layer.name: i for i, r in enumerate(layers)}

    def decide(i: int, sig: str, keys: tuple[str, ...]) -> tuple[bool, int | None]:
        name = layers[i].layer.name
        into = m.fused_into.get(name)
        return name in m.layer_ms, index.get(into) if into else None

    return walk_context(m.report, lambda i, r: r.layer.name in m.nchwc, decide)


def record(m: Measured) -> dict[str, Any]:
    """What was measured on one point, as JSON (``calibrate --record``): enough to rebuild
    its :class:`Measured` from the plan's point of the same label (:func:`replay`)."""
    return {"label": m.point.label, "wall_ms": round(m.wall_ms, 4),
            "layer_ms": {k: round(v, 4) for k, v in m.layer_ms.items()},
            "fused_into": m.fused_into, "nodes_ms": round(m.nodes_ms, 4),
            "layer_nodes": m.layer_nodes, "node_count": m.node_count,
            "nchwc": sorted(m.nchwc),
            "reorders": {k: [c, round(t, 4)] for k, (c, t) in m.reorders.items()},
            "other_nodes": [m.other_nodes[0], round(m.other_nodes[1], 4)]}


def replay(points: Sequence[Point], recorded: Sequence[dict[str, Any]]) -> list[Measured]:
    """The :class:`Measured` of every point of ``points`` that ``recorded`` (a
    ``--record`` file's list) holds, by label: a calibration fitted again without timing
    anything."""
    by_label = {r["label"]: r for r in recorded}
    out = []
    for point in points:
        r = by_label.get(point.label)
        if r is None:
            continue
        out.append(Measured(point, analyze(point.net), r["wall_ms"], dict(r["layer_ms"]),
                            dict(r["fused_into"]), r["nodes_ms"], dict(r["layer_nodes"]),
                            r["node_count"], nchwc=frozenset(r["nchwc"]),
                            reorders={k: (int(c), float(t)) for k, (c, t)
                                      in r["reorders"].items()},
                            other_nodes=tuple(r.get("other_nodes", (0, 0.0)))))
    return out


def context_tables(measured: Sequence[Measured]) -> dict[str, Any]:
    """What onnxruntime did with each layer in context, over every measured point: the
    share of layers of each key that ran a node of their own (``runs``), the mean count of
    runtime nodes (layout reorders) just before their node (``reorders``), and the share of
    convolutions of each layout key it ran in its blocked NCHWc layout (``conv_layout``).
    Keys are :func:`analyzer.timing.profile.walk_context`'s."""
    from analyzer.timing.profile import conv_layout_key

    runs: dict[str, list[float]] = {}
    reorders: dict[str, list[float]] = {}
    layout: dict[str, list[float]] = {}
    for m in measured:
        layers = m.report.layers
        # copies of a layer: the reorder of one copy's output (a graph output) runs before
        # the next copy's node, so their reorders say nothing about a layer in a net
        copies = any(r.layer.name.startswith(COPY) for r in layers)
        for i, c in enumerate(observed_context(m)):
            r = layers[i]
            if r.layer.kind == "Input":
                continue
            for k in (c.ahead, *c.keys):
                runs.setdefault(k, []).append(float(c.runs))
            if c.runs and not copies:
                count = float(m.reorders.get(r.layer.name, (0, 0.0))[0])
                for k in c.keys[:2]:  # not by kind alone: a GAP's layout decides its reorder
                    reorders.setdefault(k, []).append(count)
                if r.layer.kind == "Convolution":
                    layout.setdefault(conv_layout_key(r), []).append(
                        float(r.layer.name in m.nchwc))

    def mean(table: dict[str, list[float]]) -> dict[str, float]:
        return {k: round(statistics.fmean(v), 3) for k, v in sorted(table.items())}

    return {"runs": mean(runs), "reorders": mean(reorders), "conv_layout": mean(layout),
            "note": "measured on the grid and blocks: runs = share of layers of a key that "
                    "ran a node of their own; reorders = mean runtime nodes (layout "
                    "reorders) just before their node; conv_layout = share run in "
                    "onnxruntime's NCHWc layout"}


def shape_node_ms(measured: Sequence[Measured], profiler_ms: float = 0.0) -> float | None:
    """The time of one node of shape arithmetic (ms): over the points whose net has some
    (``Net.shape_nodes``, counted by cnnstat's reader), the nodes no layer computes that
    are not reorders, less the profiler's cost per node, per node cnnstat counted."""
    per = [max(ms - profiler_ms * count, 0.25 * ms) / m.point.net.shape_nodes
           for m in measured if m.point.net.shape_nodes
           for count, ms in (m.other_nodes,)]
    return round(statistics.median(per), 6) if per else None


def reorder_fit(measured: Sequence[Measured], profiler_ms: float = 0.0) -> dict[str, Any] | None:
    """The time of the layout reorders run before a layer's node, fitted as ``count · a +
    moved_bytes · b`` over every such group measured (ms; the bytes of the inputs written in
    the other layout, :meth:`analyzer.timing.profile.LayerContext.moved`), less the profiler's own
    cost per node (``profiler_ms``)."""
    from analyzer.timing.nnls import nnls
    from analyzer.timing.profile import MIN_MS

    rows, ms = [], []
    for m in measured:
        if any(r.layer.name.startswith(COPY) for r in m.report.layers):
            continue  # a copy's output reorder runs before the next copy (context_tables)
        for r, c in zip(m.report.layers, observed_context(m)):
            count, t = m.reorders.get(r.layer.name, (0, 0.0))
            if count and r.layer.name in m.layer_ms:
                rows.append((float(count), c.moved(r)))
                ms.append(max(t - profiler_ms * count, 0.25 * t))
    if len(rows) < 3:
        return None
    # least squares on absolute, not relative, error: the large reorders are what a net's
    # total feels, and the small ones' byte counts are the least certain (weighted by 1/ms,
    # the byte rate of one calibration collapsed to 0.08 µs/MB)
    x, y = np.array(rows), np.array(ms)
    scale = np.maximum(x.max(axis=0), 1e-30)
    coef = nnls(x / scale, y) / scale
    pred = x @ coef
    rel = np.abs(pred - y) / np.maximum(y, MIN_MS)
    return {"formula": "count + moved_bytes",
            "coef": {"sum": {"count": float(f"{coef[0]:.6g}"),
                             "moved_bytes": float(f"{coef[1]:.6g}")}},
            "points": len(rows),
            "in_sample": {"median_rel_error": round(float(np.median(rel)), 4),
                          "mean_rel_error": round(float(np.mean(rel)), 4)},
            "what": "layout reorders onnxruntime runs just before a layer's node: their count "
                    "and the bytes of the inputs they convert (written in the other layout)"}




def aliases() -> Point:
    """Input → Dropout → Split → Eltwise: the kinds that run no node cost 0 ms, measured."""
    x = (1, 64, 28, 28)
    layers = (input_layer(x), make_layer("drop", "Dropout", ["in0"], ["in0"]),
              make_layer("split", "Split", ["in0"], ["s0", "s1"]),
              make_layer("sum", "Eltwise", ["s0", "s1"], ["out"], operation="SUM", coeff=()))
    return Point("aliases", Net("aliases", "<calibrate aliases>", "calibrate", layers))


def samples_of(m: Measured, profiler_ms: float = 0.0) -> list[Any]:
    """Timing samples of the measured net's layers (ms; 0 for layers that run no node).

    The ``Input`` layer is sampled only where the net has no other layer that runs nothing,
    so the thousands of identical zero-time inputs do not swamp the fit quality.
    ``profiler_ms`` is what profiling adds to each node's time (see :func:`run_plan`).
    """
    from analyzer.timing.profile import Sample

    layer_ms = m.corrected(profiler_ms)
    out = []
    copies: list[float] = []
    for r in m.report.layers:
        name = r.layer.name
        if name in m.fused_into or (r.layer.kind == "Input" and m.point.label != "aliases"):
            continue
        if name.startswith(COPY):
            copies.append(layer_ms.get(name, 0.0))
            continue
        out.append(Sample(r, layer_ms.get(name, 0.0), m.point.label))
    if copies:  # identical layers: one sample, the median copy
        out.append(Sample(m.report.layers[1], statistics.median(copies), m.point.label))
    return out


# ---------------------------------------------------------------------------------------
# Hardware facts for the profile.


def ram_bytes() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def hardware() -> dict[str, Any]:
    """CPU model, logical and physical cores (from /proc/cpuinfo where there is one)."""
    model, cores = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        phys = core = ""
        for line in info.splitlines():
            key, _, value = (s.strip() for s in line.partition(":"))
            if key == "model name":
                model = value
            elif key == "physical id":
                phys = value
            elif key == "core id":
                core = value
                cores.add((phys, core))
    except OSError:
        pass
    return {"cpu": model, "logical_cores": os.cpu_count(),
            "physical_cores": len(cores) or None, "machine": platform.machine(),
            "os": f"{platform.system()} {platform.release()}"}


# ---------------------------------------------------------------------------------------
# The command.


@dataclass(frozen=True)
class Plan:
    """What a calibration run measures."""

    points: tuple[Point, ...]
    fusion_points: tuple[Point, ...]
    chains: tuple[Point, ...]
    repeats: int
    passes: int = 2  # measure every layer point this many times (1 or 2)
    block_passes: int = 2  # the same for the blocks (analyzer.timing.blocks)
    retry_seconds: float = 30.0  # re-measure points taken in another machine state this long


def plan(quick: bool, seed: int = 0) -> Plan:
    rng = np.random.default_rng(seed)
    convs = conv_points(36 if quick else 140, rng)
    points = [aliases(), *convs, *first_points(quick), *mobile_points(quick), *fc_points(quick),
              *token_points(quick),
              *other_points(quick), *between_points(quick), *block_points(quick)]
    fusions = tuple(pair(a, b) for a, b in FUSION_CANDIDATES)
    chains = (chain("chain 20", 20), chain("chain 40", 40))
    return Plan(tuple(points), fusions, chains, repeats=5 if quick else 7,
                retry_seconds=3.0 if quick else 30.0)


def _progress() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=False)


@dataclass(frozen=True)
class _Timed:
    """One measurement of a point and whether the probe showed the reference state around
    it (decided once every probe reading is in)."""

    what: str  # "layer", "fusion" or "chain"
    point: Point
    m: Measured
    probe_before: float
    probe_after: float


def run_plan(p: Plan, threads: int, show: bool = True) -> dict[str, Any]:
    """Measure every point; return samples, detected fusions, the per-layer overhead and the
    machine state the calibration measured in (:mod:`analyzer.timing.probe`).

    Every layer point is measured twice, the second pass in reverse order. The probe is read
    between measurements; its reference is the state most of the run was in
    (:func:`analyzer.timing.probe.reference`). Of a point's measurements, those with the probe in
    that state before and after win and their mean is kept (:func:`typical`); points with
    none are measured again, for up to ``p.retry_seconds``.
    """
    from analyzer.timing.probe import DESCRIPTION, Probe, reference, same_state

    layers = [("layer", q) for q in p.points]
    items: list[tuple[str, Point]] = ([("fusion", q) for q in p.fusion_points]
                                      + [("chain", q) for q in p.chains]
                                      + layers + [(w, q) for w, q in layers[::-1]
                                                  if (p.passes if q.onnx is None
                                                      else p.block_passes) > 1])
    progress = _progress() if show else None
    if progress:
        progress.start()
        task = progress.add_task("calibrating", total=len(items))
    probe = Probe(threads)
    timed: list[_Timed] = []
    try:
        reading = probe.ms()
        for what, point in items:
            if progress:
                progress.update(task, description=point.label[:34])
            m = measure_point(point, threads, p.repeats, wall=what == "chain")
            after = probe.ms()
            timed.append(_Timed(what, point, m, reading, after))
            reading = after
            if progress:
                progress.advance(task)
        readings = [t.probe_before for t in timed] + [reading]
        ref = reference(readings)

        def in_state(t: _Timed) -> bool:
            return same_state(t.probe_before, ref) and same_state(t.probe_after, ref)

        runs: dict[int, list[_Timed]] = {}
        for t in timed:
            if t.what == "layer":
                runs.setdefault(id(t.point), []).append(t)
        retry = [ts[0].point for ts in runs.values() if not any(map(in_state, ts))]
        retried = len(retry)
        deadline = time.monotonic() + p.retry_seconds
        if progress and retry:
            progress.update(task, description=f"again: {len(retry)} in another state")
        while retry and time.monotonic() < deadline:
            point = retry.pop(0)
            before = probe.ms()
            m = measure_point(point, threads, p.repeats)
            t = _Timed("layer", point, m, before, probe.ms())
            runs[id(point)].append(t)
            if not in_state(t):
                retry.append(point)
        best = {key: typical(ts, in_state) for key, ts in runs.items()}
        spread = pass_spread(list(runs.values()))
    finally:
        _LOWERED.clear()
        if progress:
            progress.stop()
    fusions = []
    for t in timed:
        if t.what == "fusion" and len(t.m.layer_ms) < len(t.m.report.layers) - 1:
            kinds = [r.layer.kind for r in t.m.report.layers]  # fewer layers ran a node
            fusions.append([kinds[1], kinds[-1]])
    chains = [t for t in timed if t.what == "chain"]
    chains = [t for t in chains if in_state(t)] or chains
    # near-free nodes: the whole run is the runtime's own per-layer cost (the profiler's
    # µs-granular node times would overstate them); the profiled node times of those nodes
    # sum to more than the whole run: the excess is the profiler's own cost per node
    overheads = [t.m.wall_ms / len(t.m.report.layers) for t in chains]
    profiler = [max(t.m.nodes_ms - t.m.wall_ms, 0.0) / max(t.m.node_count, 1) for t in chains]
    per_node = statistics.median(profiler) if profiler else 0.0
    samples = [s for t in best.values() for s in samples_of(t.m, per_node)]
    seen = [t.m for t in best.values()] + [t.m for t in timed if t.what == "fusion"]
    context = context_tables(seen)
    reorder = reorder_fit(seen, per_node)
    shape_ms = shape_node_ms(seen, per_node)
    state = {
        "net": DESCRIPTION,
        "ms": round(ref, 4),
        "what": "median wall ms of analyzer.timing.probe's net, the machine's state during "
                "calibration; cnnstat measure keeps sessions with the probe within "
                "±15 % of it",
        "readings": len(readings),
        "readings_in_state": sum(same_state(r, ref) for r in readings),
        "points_measured_again": retried,
        "points_out_of_state": sum(not in_state(t) for t in best.values()),
        **spread}
    return {"samples": samples, "fusions": fusions, "profiler_ms_per_node": per_node,
            "context": context, "reorder": reorder, "record": [record(m) for m in seen],
            "shape_node_ms": shape_ms,
            "per_layer_overhead_ms": max(statistics.median(overheads), 0.0) if overheads else 0.0,
            "probe": state}


# points whose layers take less than this (ms) are left out of the pass-to-pass spread: the
# profiler times nodes in whole µs, so a 10 µs point moves 10 % by rounding alone
SPREAD_MIN_MS = 0.1


def pass_spread(runs: Sequence[Sequence[_Timed]]) -> dict[str, Any]:
    """How far this machine's speed moved while it was measured: for each point measured in
    two passes (minutes apart; the second in reverse order) with the same nodes and at least
    :data:`SPREAD_MIN_MS`, |second / first − 1| of its layers' summed time; their median and
    90th percentile (fractions) and how many points. A prediction cannot be steadier than
    the machine it was fitted on."""
    moved = sorted(abs(b / a - 1.0) for a, b in (
        (sum(ts[0].m.layer_ms.values()), sum(ts[1].m.layer_ms.values())) for ts in runs
        if len(ts) > 1 and ts[0].m.layer_ms.keys() == ts[1].m.layer_ms.keys())
        if a >= SPREAD_MIN_MS)
    if not moved:
        return {}
    return {"pass_spread_median": round(statistics.median(moved), 4),
            "pass_spread_p90": round(moved[min(len(moved) - 1, int(0.9 * len(moved)))], 4),
            "pass_spread_points": len(moved)}


def typical(runs: Sequence[_Timed], in_state: Callable[[_Timed], bool]) -> _Timed:
    """What one point typically costs, from its measurements: the mean of those taken in the
    reference state (all of them when none was), so the grid is timed as ``measure`` times
    a net, by a typical run. (Keeping the fastest biased a calibration low by about half the
    run-to-run spread: on a host whose speed wanders by ±20 % from second to second, nets
    measured 5–20 % slower than predicted.) A point that ``streams`` its weights keeps its
    slowest in-state measurement instead (see :class:`Point`), and one whose measurements
    fused its layers differently its fastest, as before (their layer times do not line up)."""
    kept = [t for t in runs if in_state(t)] or list(runs)
    if kept[0].point.streams:
        return max(kept, key=lambda t: sum(t.m.layer_ms.values()))
    if len(kept) == 1 or any(t.m.layer_ms.keys() != kept[0].m.layer_ms.keys() for t in kept):
        return min(kept, key=lambda t: sum(t.m.layer_ms.values()))  # fused differently
    first, mean = kept[0], statistics.fmean
    reorders = {k: (c, mean([t.m.reorders.get(k, (c, ms))[1] for t in kept]))
                for k, (c, ms) in first.m.reorders.items()}
    other = (first.m.other_nodes[0], mean([t.m.other_nodes[1] for t in kept]))
    m = dataclasses.replace(
        first.m, wall_ms=mean([t.m.wall_ms for t in kept]),
        layer_ms={k: mean([t.m.layer_ms[k] for t in kept]) for k in first.m.layer_ms},
        nodes_ms=mean([t.m.nodes_ms for t in kept]), reorders=reorders, other_nodes=other)
    return dataclasses.replace(first, m=m)


def build_profile(name: str, measured: dict[str, Any], threads: int, quick: bool,
                  seconds: float) -> dict[str, Any]:
    """Fit the samples (quality from a fit on 4/5 of them checked on the other 1/5)."""
    import onnxruntime

    from analyzer.timing.profile import CPU_KIND_FORMS, fit_profile

    samples = measured["samples"]
    meta: dict[str, Any] = {
        "name": name,
        "description": "this machine, onnxruntime CPU, measured by cnnstat calibrate",
        "runtime": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, default "
                   "session options (graph optimizations: all)",
        "hardware": hardware(),
        "software": {"onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "threads": threads,
        "threads_note": ("pinned by --threads" if threads else
                         "0 = onnxruntime's default intra-op thread count (one per physical core)"),
        "dtype": "fp32",
        **({"memory_bytes": ram_bytes(),
            "memory_note": "this machine's RAM at calibration, shared with the OS and other "
                           "programs"} if ram_bytes() else {}),
        "per_layer_overhead_ms": round(measured["per_layer_overhead_ms"], 6),
        "profiler_ms_per_node": round(measured.get("profiler_ms_per_node", 0.0), 6),
        "fusions": measured["fusions"],
        **({"context": measured["context"]} if measured.get("context") else {}),
        **({"shape_node_ms": measured["shape_node_ms"]} if measured.get("shape_node_ms")
           else {}),
        **({"probe": measured["probe"]} if "probe" in measured else {}),
        "source": {"tool": "cnnstat calibrate" + (" --quick" if quick else ""),
                   "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "seconds": round(seconds, 1),
                   "grid_points": len({s.net for s in samples})},
    }
    # a fifth of the grid points (whole nets: a block's layers stay together) held out
    held_nets = set(sorted({s.net for s in samples})[::5])
    train = [s for s in samples if s.net not in held_nets]
    held = [s for s in samples if s.net in held_nets]
    check = fit_profile(train, meta, held, CPU_KIND_FORMS) if train and held else {}
    profile = fit_profile(samples, meta, forms=CPU_KIND_FORMS)
    if measured.get("reorder"):
        profile["kinds"]["Reorder"] = measured["reorder"]
    if "quality" in check and "holdout_per_layer" in check["quality"]:
        profile["quality"]["holdout_per_layer"] = check["quality"]["holdout_per_layer"]
        profile["quality"]["holdout_note"] = ("fitted on 4/5 of the grid points, checked on "
                                              "the other fifth (every fifth point by label)")
    if "runtime_memory" in measured:  # analyzer.timing.runtime_memory's fit
        profile["runtime_memory"] = measured["runtime_memory"]
    if "probe" in measured:
        chains = measured["per_layer_overhead_ms"]
        gap = probe_gap_ms(profile, measured["probe"]["ms"])
        profile["per_layer_overhead_ms"] = round(max(chains, gap), 6)
        profile["per_layer_overhead_sources"] = {
            "chains_ms": round(chains, 6), "probe_gap_ms": round(gap, 6),
            "note": "the larger of: a run of near-free nodes per node; what the probe net's "
                    "run costs per layer beyond the sum of its layers' fitted times"}
    return profile


def probe_gap_ms(profile: dict[str, Any], probe_ms: float) -> float:
    """What a run of the probe net (:mod:`analyzer.timing.probe`) costs per layer beyond the sum of
    its layers' times as ``profile`` predicts them (ms; negative when they overshoot): the
    gap between layers of a real chain, as ``caffe time`` shows one per layer on a GPU."""
    from analyzer.timing.probe import probe_net
    from analyzer.timing.profile import Profile, predict_report

    report = predict_report(analyze(probe_net()), Profile("calibrating", "", profile))
    layers_ms = sum(r.time_ms or 0.0 for r in report.layers)
    return (probe_ms - layers_ms) / len(report.layers)


def default_output() -> Path:
    from analyzer.timing.profile import LOCAL_DIR

    return LOCAL_DIR / "this-cpu.json"
