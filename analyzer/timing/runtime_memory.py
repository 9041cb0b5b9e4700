"""Resident memory onnxruntime adds to load a model and run it once: measured and predicted.

**Truth** (:func:`measure_isolated`): a fresh Python process imports numpy and onnxruntime,
builds the input arrays, resets its peak resident set (``5`` into ``/proc/self/clear_refs``
resets ``VmHWM``), reads ``VmRSS``, creates an ``InferenceSession`` from the model FILE with
default session options and runs it once. The runtime's memory is ``VmHWM − VmRSS before``.

**What onnxruntime holds** (measured on this project's VM, onnxruntime 1.32, glibc 2.36):
its copy of every initializer; while loading, the copies its graph optimizers make (a
Conv+BatchNorm fusion writes new conv weights, the NCHWc transformer a reordered, channel-
padded copy of every convolution it takes, a Gemm/MatMul pre-packs its weights); the
activation arena (a BFC arena that grows by regions of 1, 2, 4, … MiB; in the first run each
tensor is allocated when its node runs and freed after its last reader); and the session's own
overhead (its code pages, thread pool, graph). Freed load-time copies stay resident: glibc's
heap does not shrink, and it takes every block below its mmap threshold (which rises to the
largest block freed, up to 32 MiB), so what a net's weights cost depends on their sizes. A
weight of 32 MiB or more is the exception: its copies are mapped and unmapped on their own,
so after loading it is held once, and only a moment of the load (the largest such weight's
copies) costs more.

**The model** (:data:`FORM`), all features from cnnstat's analysis (:func:`features`)::

    base     = const + a_nchwc·conv_nchwc + a_plain·conv_plain + a_head·conv_head
               + a_fc·fc + 1.0·big
    load     = base + t_conv·big_conv_max + t_fc·big_fc_max
    run      = base + a_arena·arena + a_heap·arena_heap
    runtime  = max(load, run)

``conv_nchwc`` are the (channel-padded) weights of the convolutions the runtime reorders to
its NCHWc layout (the rule is detected per machine: :func:`detect_nchwc`), ``conv_plain`` the
other convolutions' weights, ``conv_head`` the first :data:`CONV_HEAD_BYTES` of those two
(a deep net's many same-sized weights cost less each than a small net's: the heap reuses the
holes their load-time copies leave), ``fc`` the inner products' weights, ``big`` every weight of
32 MiB or more (counted there only, held once), ``*_max`` the largest such weight, and
``arena``/``arena_heap`` the bytes an arena like onnxruntime's touches in one run
(:func:`simulate_arena`: fused layers and element-wise layers whose input dies write in
place, reshapes alias, 4-D tensors are padded to the NCHWc block) in regions glibc maps on
their own and in smaller ones its heap may already hold. The coefficients are fitted by
``cnnstat calibrate`` on small probe nets (:func:`probe_nets`), never on the nets it predicts;
docs/runtime_memory.md has the measurements behind each term and the accuracy.

All sizes are bytes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from analyzer.analysis import LayerResult, Options, Report, analyze
from analyzer.errors import CnnstatError
from analyzer.ir import Layer, Net, Shape, frozen
from analyzer.layers.memory import DTYPE_BYTES
from analyzer.layers.shapes import conv_geometry
from analyzer.timing.fusions import fused_into
from analyzer.timing.nnls import nnls

MIB = 2**20
HEAP_LIMIT_BYTES = 32 * MIB  # glibc's largest mmap threshold on 64-bit: bigger blocks are mapped
# conv weights up to this many bytes cost more each (conv_head): chosen between the largest
# ordinary probe's 40 MiB and the deep probe's 115 MiB, so the fit can tell the two rates apart
CONV_HEAD_BYTES = 64 * MIB
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's first mmap threshold
ARENA_INITIAL_BYTES = MIB  # onnxruntime's BFC arena: first region, then powers of two
ARENA_ROUND_BYTES = 256  # the arena rounds every allocation up to this
ARENA_DEAD_BYTES = 128 * MIB  # the most a chunk may hold beyond its request (BFC default)


# ---------------------------------------------------------------------------------------
# Measuring.


@dataclass(frozen=True)
class MemoryRun:
    """Resident-set readings around one session (bytes, all from the same process).

    ``peak_once`` − ``before`` is the truth: the peak over creating the session and running
    it once. The others split it: the peak while loading (``load_peak``), what stays after
    loading (``loaded``), and the peak over ``runs`` runs (the arena grows again in the
    second run, when onnxruntime allocates the memory pattern it planned in the first).
    """

    before: int  # VmRSS after imports and inputs, before the session
    load_peak: int  # VmHWM after creating the session
    loaded: int  # VmRSS after creating it
    peak_once: int  # VmHWM after the first run
    peak_runs: int  # VmHWM after ``runs`` runs
    runs: int

    @property
    def runtime_bytes(self) -> int:
        """The truth: peak over loading and one run, less the resident set before."""
        return max(self.peak_once - self.before, 0)


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current resident set (Linux ≥ 4.0); False where
    it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_in_process(path: str, shapes: Mapping[str, Sequence[int]],
                       dtypes: Mapping[str, str] | None = None, threads: int = 0,
                       runs: int = 2) -> MemoryRun:
    """Create a session from ``path`` and run it ``runs`` times, reading the resident set.

    Meant for a fresh process (:func:`measure_isolated`): the peak is the process's own.
    The inputs are made before the baseline: they are the caller's, not the runtime's.
    """
    import numpy as np

    from analyzer.timing.runtime import require_ort, rss, session_options

    ort = require_ort()
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape in shapes.items():
        dtype = np.dtype((dtypes or {}).get(name, "float32"))
        # made in their own type: a float64 temporary, freed, would raise glibc's mmap
        # threshold before the session and change what the session's memory costs
        feeds[name] = (rng.standard_normal(tuple(shape), dtype=dtype)
                       if dtype in (np.float32, np.float64) else np.zeros(tuple(shape), dtype))
    so = session_options(ort, threads)
    reset_peak_rss()
    before = rss("VmRSS")
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    load_peak, loaded = rss("VmHWM"), rss("VmRSS")
    session.run(None, feeds)
    once = rss("VmHWM")
    for _ in range(max(runs, 1) - 1):
        session.run(None, feeds)
    return MemoryRun(before, load_peak, loaded, once, rss("VmHWM"), max(runs, 1))


def child_main() -> None:
    """Entry point of the measuring process: a JSON request on stdin, a MemoryRun on stdout."""
    import sys

    req = json.loads(sys.stdin.read())
    run = measure_in_process(req["path"], req["shapes"], req.get("dtypes"), req["threads"],
                             req["runs"])
    sys.stdout.write(json.dumps(asdict(run)))


def input_dtypes(path: str) -> dict[str, str]:
    """NumPy dtype names of the graph inputs of the ONNX file at ``path`` (weights unread)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out = {}
    for inp in model.graph.input:
        if inp.name not in inits:
            elem = inp.type.tensor_type.elem_type
            out[inp.name] = onnx.helper.tensor_dtype_to_np_dtype(elem).name
    return out


def measure_isolated(path: str, shapes: Mapping[str, Sequence[int]],
                     dtypes: Mapping[str, str] | None = None, threads: int = 0,
                     runs: int = 2) -> MemoryRun:
    """:func:`measure_in_process` in a fresh Python process (the truth's definition)."""
    from analyzer.timing.runtime import run_isolated

    req = {"path": path, "shapes": {k: list(v) for k, v in shapes.items()},
           "dtypes": dict(dtypes if dtypes is not None else input_dtypes(path)),
           "threads": threads, "runs": runs}
    return MemoryRun(**run_isolated("analyzer.timing.runtime_memory:child_main", req, path))


# ---------------------------------------------------------------------------------------
# The NCHWc rule: which convolutions onnxruntime reorders, and to what size.


@dataclass(frozen=True)
class NchwcRule:
    """Which convolutions a CPU runtime runs in its blocked NCHWc layout.

    onnxruntime's NCHWc transformer (its ``all`` optimization level) takes a dense
    convolution reading fewer than ``block`` channels (an image) or a multiple of
    ``channel_multiple``, a depthwise one over a multiple of ``channel_multiple`` channels,
    and a grouped one whose groups read and write multiples of ``block`` channels; it pads
    the channels of what it takes to multiples of ``block``. ``block`` 0: no NCHWc at all.
    Detected per machine by :func:`detect_nchwc` (16 and 4 with AVX-512 here).
    """

    block: int = 0
    channel_multiple: int = 1

    def weight_elements(self, c_in: int, c_out: int, group: int, kernel: int) -> int | None:
        """Elements of the reordered weights (channels padded), or None: not NCHWc."""
        b = self.block
        if b <= 0:
            return None
        if group == 1:
            if c_in >= b and c_in % self.channel_multiple:
                return None
            return _round_up(c_out, b) * (c_in if c_in < b else _round_up(c_in, b)) * kernel
        if c_in == c_out == group:
            return _round_up(c_out, b) * kernel if c_in % self.channel_multiple == 0 else None
        if (c_in // group) % b or (c_out // group) % b:
            return None
        return c_out * (c_in // group) * kernel

    def channels(self, c: int) -> int:
        """A tensor's channels as the runtime stores them (padded to the block)."""
        return _round_up(c, self.block) if self.block > 0 else c


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def detect_nchwc() -> NchwcRule:
    """Ask onnxruntime which 1×1 convolutions it reorders to NCHWc, from the optimized graphs
    it saves (nothing is run): the block is the padded output channels of a 1-channel conv;
    the channel multiple the smallest step above the block it still takes."""
    import tempfile

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from analyzer.timing.runtime import require_ort

    ort = require_ort()
    ort.set_default_logger_severity(3)

    def reordered(c_in: int, c_out: int) -> tuple[int, ...] | None:
        w = numpy_helper.from_array(np.ones((c_out, c_in, 1, 1), np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])], "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 4, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, 4, 4])], [w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        with tempfile.TemporaryDirectory(prefix="cnnstat-nchwc-") as tmp:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
            ort.InferenceSession(model.SerializeToString(), so,
                                 providers=["CPUExecutionProvider"])
            opt = onnx.load(so.optimized_model_filepath)
        conv = next((n for n in opt.graph.node if n.op_type == "Conv"), None)
        if conv is None or conv.domain != "com.microsoft.nchwc":
            return None
        dims = {i.name: tuple(i.dims) for i in opt.graph.initializer}
        return dims.get(conv.input[1])

    first = reordered(1, 1)
    if first is None or first[0] <= 1:
        return NchwcRule(0, 1)
    block = first[0]
    for step in (1, 2, 4, 8):
        if step < block and reordered(block + step, block) is not None:
            return NchwcRule(block, step)
    return NchwcRule(block, block)


# ---------------------------------------------------------------------------------------
# Features.


@dataclass(frozen=True)
class MemoryFeatures:
    """What a net's runtime memory is fitted on (bytes; see the module docstring)."""

    conv_nchwc: int  # reordered, channel-padded weights of NCHWc convs below the heap limit
    conv_plain: int  # weights of the other convolutions below the heap limit
    conv_head: int  # the first CONV_HEAD_BYTES of conv_nchwc + conv_plain
    fc: int  # inner-product weights below the heap limit
    big: int  # every weight of HEAP_LIMIT_BYTES or more (conv or inner product)
    big_conv_max: int  # the largest such convolution weight (0: none)
    big_fc_max: int  # the largest such inner-product weight (0: none)
    arena: int  # bytes one run touches in arena regions glibc maps on their own (simulated)
    arena_heap: int  # bytes it touches in smaller regions, which glibc's heap may hold already

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


BASE_TERMS = ("const", "conv_nchwc", "conv_plain", "conv_head", "fc")
# Terms with a fixed coefficient: a weight above the heap limit is held once after loading
# (measured: a 64 MiB fc and a 36 MiB conv add 1.0× their bytes to the loaded session).
FIXED_TERMS = {"big": 1.0}
LOAD_TERMS = ("big_conv_max", "big_fc_max")
RUN_TERMS = ("arena", "arena_heap")
FORM = ("max(load, run); base = const + conv_nchwc + conv_plain + conv_head + fc + 1.0·big; "
        "load = base + big_conv_max + big_fc_max; run = base + arena + arena_heap "
        "(each term times its coef)")


def _weights(r: LayerResult, itemsize: int, rule: NchwcRule) -> tuple[str, int, int] | None:
    """(class, bytes as stored, bytes as the runtime holds them) of a layer's main weight."""
    kind = r.layer.kind
    if kind in ("Convolution", "Deconvolution") and r.in_shapes:
        g = conv_geometry(r.layer, r.in_shapes[0])
        c_in, c_out, group = int(g["c_in"]), int(g["c_out"]), int(g["group"])
        kernel = math.prod(g["kernel"])  # type: ignore[arg-type]
        raw = c_out * (c_in // group) * kernel * itemsize
        padded = (rule.weight_elements(c_in, c_out, group, kernel)
                  if kind == "Convolution" else None)
        if padded is None:
            return "conv_plain", raw, raw
        return "conv_nchwc", raw, padded * itemsize
    if kind == "InnerProduct" and r.in_shapes:
        shape = r.in_shapes[0]
        axis = r.layer.attr("axis", 1) % len(shape)
        raw = math.prod(shape[axis:]) * int(r.layer.attr("num_output")) * itemsize
        return "fc", raw, raw
    return None


def features(report: Report, rule: NchwcRule = NchwcRule(),
             fusions: Iterable[Sequence[str]] = (),
             heap_limit: int = HEAP_LIMIT_BYTES) -> MemoryFeatures:
    """The memory features of an analysed net (see :class:`MemoryFeatures`)."""
    itemsize = DTYPE_BYTES.get(report.dtype, 4)
    acc = {"conv_nchwc": 0, "conv_plain": 0, "fc": 0, "big": 0, "big_conv_max": 0,
           "big_fc_max": 0}
    largest = 0
    for r in report.layers:
        w = _weights(r, itemsize, rule)
        if w is None:
            continue
        cls, raw, held = w
        largest = max(largest, raw)
        if raw >= heap_limit:
            acc["big"] += raw
            top = "big_fc_max" if cls == "fc" else "big_conv_max"
            acc[top] = max(acc[top], raw)
        else:
            acc[cls] += held
    # glibc maps a block of its mmap threshold or more on its own; the threshold starts at
    # 128 KiB and rises to the largest mapped block freed (up to the heap limit): while
    # loading, a weight's parsed copy
    threshold = min(heap_limit, max(MMAP_THRESHOLD_BYTES, largest))
    mapped, heap = simulate_arena(report, rule, fusions).touched_split(threshold)
    head = min(acc["conv_nchwc"] + acc["conv_plain"], CONV_HEAD_BYTES)
    return MemoryFeatures(**acc, conv_head=head, arena=mapped, arena_heap=heap)


# ---------------------------------------------------------------------------------------
# The activation arena: a simulation of one run.

# Layers whose output is their input's storage in onnxruntime (a view, no copy).
ALIAS_KINDS = {"Split", "Dropout", "Flatten", "Reshape"}
# Element-wise layers onnxruntime may compute in place when an input dies there.
INPLACE_KINDS = {"ReLU", "Sigmoid", "TanH", "Clip", "HardSigmoid", "HardSwish", "BatchNorm",
                 "Scale", "Bias", "Eltwise", "Broadcast", "PReLU", "ELU", "AbsVal", "Exp",
                 "Power", "Swish", "GELU"}


class _Arena:
    """A best-fit arena of regions growing by powers of two (onnxruntime's BFC arena with
    its default ``kNextPowerOfTwo`` strategy): a fresh region is the current size, doubled
    until the request fits; the size doubles after a region that needed no doubling. A
    request takes the smallest free chunk that fits, split when the rest is at least as
    large as the request; freed chunks merge with free neighbours. ``touched`` is, per
    region, the highest byte any tensor wrote."""

    def __init__(self, initial: int = ARENA_INITIAL_BYTES) -> None:
        self.next_region = initial
        self.regions: list[list[list[int]]] = []  # per region: chunks [offset, size, free]
        self.sizes: list[int] = []  # bytes of each region
        self.high: list[int] = []

    def alloc(self, nbytes: int) -> tuple[int, int]:
        n = max(ARENA_ROUND_BYTES, _round_up(nbytes, ARENA_ROUND_BYTES))
        best: tuple[int, int, int] | None = None
        for ri, chunks in enumerate(self.regions):
            for ci, (_, size, free) in enumerate(chunks):
                if free and size >= n and (best is None or size < best[0]):
                    best = (size, ri, ci)
        if best is None:
            grew = False
            while n > self.next_region:
                self.next_region *= 2
                grew = True
            self.regions.append([[0, self.next_region, 1]])
            self.sizes.append(self.next_region)
            self.high.append(0)
            best = (self.next_region, len(self.regions) - 1, 0)
            if not grew:
                self.next_region *= 2
        _, ri, ci = best
        chunks = self.regions[ri]
        offset, size, _ = chunks[ci]
        # BFC splits a chunk only when the rest is as large as the request (or beyond its
        # dead-bytes limit); else the request gets the whole chunk and the rest is idle
        if size >= 2 * n or size - n >= ARENA_DEAD_BYTES:
            chunks[ci] = [offset, n, 0]
            chunks.insert(ci + 1, [offset + n, size - n, 1])
        else:
            chunks[ci] = [offset, size, 0]
        self.high[ri] = max(self.high[ri], offset + n)
        return ri, offset

    def free(self, handle: tuple[int, int]) -> None:
        ri, offset = handle
        chunks = self.regions[ri]
        ci = next(i for i, c in enumerate(chunks) if c[0] == offset)
        chunks[ci][2] = 1
        if ci + 1 < len(chunks) and chunks[ci + 1][2]:
            chunks[ci][1] += chunks.pop(ci + 1)[1]
        if ci > 0 and chunks[ci - 1][2]:
            chunks[ci - 1][1] += chunks.pop(ci)[1]

    @property
    def touched(self) -> int:
        return sum(self.high)

    def touched_split(self, threshold: int) -> tuple[int, int]:
        """Touched bytes in regions of ``threshold`` bytes or more, and in smaller ones."""
        big = sum(h for h, n in zip(self.high, self.sizes) if n >= threshold)
        return big, self.touched - big


def arena_bytes(report: Report, rule: NchwcRule = NchwcRule(),
                fusions: Iterable[Sequence[str]] = ()) -> int:
    """Bytes of activation arena one run of ``report``'s net touches, simulated
    (:func:`simulate_arena`)."""
    return simulate_arena(report, rule, fusions).touched


def simulate_arena(report: Report, rule: NchwcRule = NchwcRule(),
                   fusions: Iterable[Sequence[str]] = ()) -> _Arena:
    """The activation arena after one run of ``report``'s net, simulated.

    Layers run in order; a layer's outputs are allocated before it runs and its inputs freed
    after their last reader. No allocation: the net's inputs (the caller's), a reshape or
    split (a view), a layer fused into the one before it (``fusions``: pairs of kinds, as a
    profile lists them) and an element-wise layer whose same-sized input dies there (in
    place). A non-NCHWc convolution holds its im2col buffer while it runs. 4-D tensors are
    stored with their channels padded to the NCHWc block. Outputs nobody reads stay."""
    layers = report.layers
    itemsize = DTYPE_BYTES.get(report.dtype, 4)
    owner = fused_into(layers, {(a, b) for a, b in fusions})
    last: dict[str, int] = {}
    for i, r in enumerate(layers):
        for b in r.layer.bottoms:
            last[b] = i
    end = len(layers)
    arena = _Arena()
    storage: dict[str, int | None] = {}  # blob -> storage id (None: the caller's input)
    handle: dict[int, tuple[int, int]] = {}
    size: dict[int, int] = {}
    death: dict[int, int] = {}

    def tensor_bytes(shape: Shape) -> int:
        if len(shape) == 4:
            return shape[0] * rule.channels(shape[1]) * shape[2] * shape[3] * itemsize
        return math.prod(shape) * itemsize

    for i, r in enumerate(layers):
        layer = r.layer
        reads = [storage.get(b) for b in layer.bottoms]
        for j, (top, shape) in enumerate(zip(layer.tops, r.out_shapes)):
            nbytes = tensor_bytes(shape)
            dies = last.get(top, end)
            sid: int | None = -1
            if layer.kind == "Input":
                sid = None
            elif top in layer.bottoms:  # Caffe's in-place layers
                sid = storage.get(top)
            elif layer.kind in ALIAS_KINDS and reads:
                sid = reads[0]
            elif j == 0 and (owner[i] is not None or layer.kind in INPLACE_KINDS):
                sid = next((s for s in reads if s is not None and size[s] == nbytes
                            and death[s] == i), -1)
            if sid == -1:
                sid = len(size)
                size[sid] = nbytes
                death[sid] = dies
                handle[sid] = arena.alloc(nbytes)
            elif sid is not None:
                death[sid] = max(death[sid], dies)
            storage[top] = sid
        if layer.kind == "Convolution" and r.workspace_bytes and r.in_shapes:
            g = conv_geometry(layer, r.in_shapes[0])
            if rule.weight_elements(int(g["c_in"]), int(g["c_out"]), int(g["group"]),
                                    math.prod(g["kernel"])) is None:  # type: ignore[arg-type]
                arena.free(arena.alloc(r.workspace_bytes))
        for sid in [s for s, d in death.items() if d <= i and s in handle]:
            arena.free(handle.pop(sid))
    return arena


# ---------------------------------------------------------------------------------------
# Fitting and predicting.


def _term(f: Mapping[str, float], name: str) -> float:
    return 1.0 if name == "const" else float(f[name])


def evaluate(coef: Mapping[str, float], f: Mapping[str, float]) -> float:
    """The model's runtime bytes for features ``f`` (a :class:`MemoryFeatures` dict)."""
    base = sum(coef.get(t, 0.0) * _term(f, t) for t in (*BASE_TERMS, *FIXED_TERMS))
    load = base + sum(coef.get(t, 0.0) * _term(f, t) for t in LOAD_TERMS)
    run = base + sum(coef.get(t, 0.0) * _term(f, t) for t in RUN_TERMS)
    return max(load, run)


def fit(rows: Sequence[tuple[Mapping[str, float], float]], iterations: int = 50
        ) -> dict[str, float]:
    """Coefficients (all ≥ 0) of the max(load, run) model, minimising squared relative error.

    Each row is (features, measured bytes). Which side of the max() a row is on is decided
    by the current fit, and the fit redone, until no row changes side.
    """
    import numpy as np

    if not rows:
        raise CnnstatError("no memory measurements to fit")
    terms = (*BASE_TERMS, *LOAD_TERMS, *RUN_TERMS)
    x = np.array([[_term(f, t) for t in terms] for f, _ in rows])
    measured = np.array([float(m) for _, m in rows])
    y = measured - np.array([sum(c * _term(f, t) for t, c in FIXED_TERMS.items())
                             for f, _ in rows])
    nb, nl = len(BASE_TERMS), len(LOAD_TERMS)
    # start: a row is on the load side when its load-time transients outweigh its arena
    on_load = x[:, nb:nb + nl].sum(axis=1) > x[:, nb + nl:].sum(axis=1)
    coef = np.zeros(len(terms))
    for _ in range(iterations):
        a = x.copy()
        a[~on_load, nb:nb + nl] = 0.0
        a[on_load, nb + nl:] = 0.0
        w = 1.0 / np.maximum(measured, 1.0)
        scale = np.maximum(np.abs(a).max(axis=0), 1e-30)
        coef = nnls(a / scale * w[:, None], y * w) / scale
        load = x[:, :nb + nl] @ coef[:nb + nl]
        run = x[:, :nb] @ coef[:nb] + x[:, nb + nl:] @ coef[nb + nl:]
        side = load > run
        if (side == on_load).all():
            break
        on_load = side
    return {**{t: float(f"{c:.6g}") for t, c in zip(terms, coef)}, **FIXED_TERMS}


def errors(coef: Mapping[str, float], rows: Sequence[tuple[Mapping[str, float], float]]
           ) -> dict[str, float]:
    """Median and largest |relative error| of ``coef`` on (features, measured) rows."""
    rel = sorted(abs(evaluate(coef, f) - m) / m for f, m in rows if m > 0)
    if not rel:
        return {}
    return {"median_rel_error": round(rel[len(rel) // 2], 4),
            "max_rel_error": round(rel[-1], 4), "points": len(rel)}


def rule_of(section: Mapping[str, Any]) -> NchwcRule:
    n = section.get("nchwc") or {}
    return NchwcRule(int(n.get("block", 0)), int(n.get("channel_multiple", 1)))


def predict(report: Report, profile: Mapping[str, Any]) -> int | None:
    """Predicted runtime bytes of ``report``'s net on a profile with a memory fit, else None."""
    section = profile.get("runtime_memory")
    if not isinstance(section, Mapping) or "coef" not in section:
        return None
    f = features(report, rule_of(section), profile.get("fusions", ()),
                 int(section.get("heap_limit_bytes", HEAP_LIMIT_BYTES)))
    return max(int(round(evaluate(section["coef"], f.as_dict()))), 0)


# ---------------------------------------------------------------------------------------
# Probe nets for calibration.


@dataclass(frozen=True)
class Probe:
    """A small net the calibration measures, and the batches it is measured at."""

    label: str
    net: Net
    batches: tuple[int, ...]


class _Builder:
    """A net built layer by layer in the IR (tops named after their layer)."""

    def __init__(self, label: str, shape: Shape) -> None:
        self.label = label
        self.layers: list[Layer] = [Layer("input", "Input", "Input", (), ("data",),
                                          frozen({"shapes": (shape,)}))]
        self.count = 0

    def add(self, kind: str, bottoms: Sequence[str], **attrs: Any) -> str:
        self.count += 1
        name = f"{kind.lower()}{self.count}"
        self.layers.append(Layer(name, kind, kind, tuple(bottoms), (name,), frozen(attrs)))
        return name

    def conv(self, x: str, c_out: int, k: int = 3, s: int = 1, group: int = 1,
             bn: bool = True, act: str | None = "ReLU") -> str:
        y = self.add("Convolution", [x], num_output=c_out, kernel=(k,), stride=(s,),
                     pad=(k // 2,), dilation=(1,), group=group, bias=not bn, axis=1)
        if bn:
            y = self.add("BatchNorm", [y])
        if act == "Clip":
            y = self.add("Clip", [y], min=0.0, max=6.0)
        elif act:
            y = self.add(act, [y])
        return y

    def net(self) -> Net:
        return Net(self.label, f"<calibrate memory {self.label}>", "calibrate",
                   tuple(self.layers))


def _head(b: _Builder, x: str, c: int, classes: int = 1000) -> None:
    y = b.add("Pooling", [x], method="AVE", global_pooling=True, kernel=(1,))
    y = b.add("Flatten", [y], axis=1, end_axis=-1)
    b.add("InnerProduct", [y], num_output=classes, bias=True, axis=1)


def _basic(widths: Sequence[int] = (48, 96, 192, 384), blocks: Sequence[int] = (2, 2, 2, 2)
           ) -> Net:
    """A ResNet-like net of basic blocks (3×3 convs, BatchNorm, residual sums): 0.1–5 MiB
    NCHWc weights, several of each size."""
    b = _Builder("basic", (1, 3, 224, 224))
    x = b.conv("data", widths[0], 7, 2)
    x = b.add("Pooling", [x], method="MAX", kernel=(3,), stride=(2,), pad=(1,))
    c_prev = widths[0]
    for stage, (c, n) in enumerate(zip(widths, blocks)):
        for k in range(n):
            s = 2 if stage and not k else 1
            y = b.conv(x, c, 3, s)
            y = b.conv(y, c, 3, 1, act=None)
            short = x if (c == c_prev and s == 1) else b.conv(x, c, 1, s, act=None)
            x = b.add("ReLU", [b.add("Eltwise", [y, short], operation="SUM", coeff=())])
            c_prev = c
    _head(b, x, c_prev)
    return b.net()


def _bottleneck(widths: Sequence[int] = (256, 512, 1024, 2048),
                blocks: Sequence[int] = (1, 2, 3, 1)) -> Net:
    """A ResNet-50-like net of bottleneck blocks (1×1 and 3×3 convs): many 1×1 weights of
    0.25–4 MiB and 3×3 ones up to 9 MiB."""
    b = _Builder("bottleneck", (1, 3, 224, 224))
    x = b.conv("data", 64, 7, 2)
    x = b.add("Pooling", [x], method="MAX", kernel=(3,), stride=(2,), pad=(1,))
    for stage, (c, n) in enumerate(zip(widths, blocks)):
        for k in range(n):
            s = 2 if stage and not k else 1
            y = b.conv(x, c // 4, 1, 1)
            y = b.conv(y, c // 4, 3, s)
            y = b.conv(y, c, 1, 1, act=None)
            short = b.conv(x, c, 1, s, act=None) if not k else x
            x = b.add("ReLU", [b.add("Eltwise", [y, short], operation="SUM", coeff=())])
    _head(b, x, widths[-1])
    return b.net()


def _deep(blocks: int = 48, width: int = 768) -> Net:
    """A long stack of identical bottleneck blocks (1×1 ``width``→¼, 3×3, 1×1 back; 2.4
    MiB of weights a block, 115 MiB in all) at 14²: the regime of deep nets, where the heap
    reuses the holes that the load-time copies of many same-sized weights leave."""
    b = _Builder("deep", (1, width, 14, 14))
    x = "data"
    for _ in range(blocks):
        y = b.conv(x, width // 4, 1, 1)
        y = b.conv(y, width // 4, 3, 1)
        y = b.conv(y, width, 1, 1, act=None)
        x = b.add("ReLU", [b.add("Eltwise", [y, x], operation="SUM", coeff=())])
    return b.net()


def _mobile() -> Net:
    """A MobileNetV2-like net (1×1 expand, depthwise 3×3, 1×1 project, ReLU6): small
    weights, large activations at 112² and 56²."""
    b = _Builder("mobile", (1, 3, 224, 224))
    x = b.conv("data", 32, 3, 2, act="Clip")
    c_prev = 32
    for c, s, t in ((16, 1, 1), (24, 2, 6), (32, 2, 6), (64, 2, 6), (96, 1, 6), (160, 2, 6),
                    (320, 1, 6)):
        y = b.conv(x, c_prev * t, 1, 1, act="Clip") if t > 1 else x
        y = b.conv(y, c_prev * t, 3, s, group=c_prev * t, act="Clip")
        y = b.conv(y, c, 1, 1, act=None)
        x = b.add("Eltwise", [y, x], operation="SUM", coeff=()) if c == c_prev and s == 1 else y
        c_prev = c
    x = b.conv(x, 1280, 1, 1, act="Clip")
    _head(b, x, 1280)
    return b.net()


def _plain() -> Net:
    """Convolutions onnxruntime keeps in NCHW: channel counts that are no multiple of 4
    (ShuffleNet's 58, 116, …) and ResNeXt-like groups 4 or 8 channels wide."""
    b = _Builder("plain", (1, 58, 28, 28))
    x = b.conv("data", 290, 3, 1)
    x = b.conv(x, 290, 3, 1, group=29)
    x = b.conv(x, 578, 3, 2)
    x = b.conv(x, 578, 3, 1)
    x = b.conv(x, 512, 1, 1)
    x = b.conv(x, 512, 3, 1, group=64)
    _head(b, x, 512)
    return b.net()


def _fc() -> Net:
    """A classifier of inner products below the heap limit (4–16 MiB each)."""
    b = _Builder("fc", (1, 4096))
    x = b.add("InnerProduct", ["data"], num_output=1024, bias=True, axis=1)
    x = b.add("ReLU", [x])
    x = b.add("InnerProduct", [x], num_output=2048, bias=True, axis=1)
    x = b.add("ReLU", [x])
    x = b.add("InnerProduct", [x], num_output=1024, bias=True, axis=1)
    b.add("InnerProduct", [x], num_output=1000, bias=True, axis=1)
    return b.net()


def _big_fc() -> Net:
    """An fc7-like 4096→4096 inner product (64 MiB, above the heap limit) and a small one."""
    b = _Builder("big fc", (1, 4096))
    x = b.add("InnerProduct", ["data"], num_output=4096, bias=True, axis=1)
    x = b.add("ReLU", [x])
    b.add("InnerProduct", [x], num_output=1000, bias=True, axis=1)
    return b.net()


def _big_conv() -> Net:
    """A 1024→1024 3×3 convolution (36 MiB, above the heap limit; Wide ResNet's last stage
    has three) and a small 1×1 one."""
    b = _Builder("big conv", (1, 1024, 7, 7))
    x = b.conv("data", 1024, 3, 1)
    b.conv(x, 256, 1, 1)
    return b.net()


def _overhead() -> Net:
    """One ReLU on a tiny tensor: the session's own overhead."""
    b = _Builder("overhead", (1, 16, 4, 4))
    b.add("ReLU", ["data"])
    return b.net()


def probe_nets() -> list[Probe]:
    """The nets ``cnnstat calibrate`` measures memory on: each feature's class of weights in
    the sizes nets have them, and activations at batch 1 and 8."""
    return [Probe("overhead", _overhead(), (1,)), Probe("basic", _basic(), (1, 8)),
            Probe("bottleneck", _bottleneck(), (1, 8)),
            Probe("mobile", _mobile(), (1, 8)),
            Probe("plain", _plain(), (1, 8)), Probe("fc", _fc(), (1,)),
            Probe("big fc", _big_fc(), (1,)), Probe("big conv", _big_conv(), (1,)),
            Probe("deep", _deep(), (1,))]


def measure_probes(probes: Sequence[Probe], rule: NchwcRule,
                   fusions: Iterable[Sequence[str]], threads: int = 0, parallel: int = 2,
                   heap_limit: int = HEAP_LIMIT_BYTES, repeats: int = 3,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure every probe at each of its batches, ``repeats`` times in fresh processes
    (``parallel`` at a time: memory, unlike time, does not suffer from a neighbour), and keep
    the median: the same session takes a few % more or less from one process to the next
    (address-space randomization changes the order onnxruntime walks its graph in; without
    it every run of a file gives the same bytes). One dict per point: label, batch,
    features, measured bytes (the median) and every reading."""
    import statistics
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from analyzer.timing.lower import export

    fusions = [tuple(f) for f in fusions]
    jobs = []
    with tempfile.TemporaryDirectory(prefix="cnnstat-memory-") as tmp:
        for k, probe in enumerate(probes):
            for batch in probe.batches:
                report = analyze(probe.net, Options(batch=batch))
                ex = export(report)
                path = os.path.join(tmp, f"probe{k}_b{batch}.onnx")
                Path(path).write_bytes(ex.model.SerializeToString())
                f = features(report, rule, fusions, heap_limit)
                jobs.append((probe.label, batch, f, path, dict(ex.inputs)))

        def run(job: tuple[str, int, MemoryFeatures, str, dict[str, Shape]]) -> MemoryRun:
            label, batch, _, path, shapes = job
            m = measure_isolated(path, shapes, {n: "float32" for n in shapes}, threads)
            if progress:
                progress(f"{label} b{batch}")
            return m

        with ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool:
            runs = list(pool.map(run, [job for job in jobs for _ in range(max(repeats, 1))]))
    out = []
    for k, (label, batch, f, _, _) in enumerate(jobs):
        mine = runs[k * max(repeats, 1):(k + 1) * max(repeats, 1)]
        out.append({"label": label, "batch": batch, "features": f.as_dict(),
                    "measured_bytes": int(statistics.median(m.runtime_bytes for m in mine)),
                    "readings": [m.runtime_bytes for m in mine]})
    return out


def points_rows(points: Sequence[Mapping[str, Any]]) -> list[tuple[dict[str, float], float]]:
    return [(p["features"], float(p["measured_bytes"])) for p in points]


def calibrate_section(points: Sequence[Mapping[str, Any]], rule: NchwcRule,
                      heap_limit: int = HEAP_LIMIT_BYTES) -> dict[str, Any]:
    """The profile's ``runtime_memory`` entry from measured probe points."""
    coef = fit(points_rows(points))
    return {
        "what": "resident bytes onnxruntime adds to create a session from a file and run it "
                "once (peak RSS less RSS before), predicted as " + FORM,
        "nchwc": {"block": rule.block, "channel_multiple": rule.channel_multiple},
        "heap_limit_bytes": heap_limit,
        "coef": coef,
        "quality": {"in_sample": errors(coef, points_rows(points)),
                    "note": "fitted and checked on the probe nets; checked on the shared nets "
                            "by benchmarks/bench_runtime_memory.py (docs/runtime_memory.md)"},
        "points": [{k: p[k] for k in ("label", "batch", "features", "measured_bytes",
                                      "readings") if k in p} for p in points],
    }


def calibrate(fusions: Iterable[Sequence[str]], threads: int = 0, quick: bool = False,
              parallel: int = 2, progress: Callable[[str], None] | None = None
              ) -> dict[str, Any]:
    """Detect the NCHWc rule, measure the probe nets (3 runs each, 2 with ``quick``) and fit:
    the profile's ``runtime_memory`` entry."""
    rule = detect_nchwc()
    points = measure_probes(probe_nets(), rule, fusions, threads, parallel,
                            repeats=2 if quick else 3, progress=progress)
    return calibrate_section(points, rule)


FEATURE_NAMES = tuple(f.name for f in fields(MemoryFeatures))
