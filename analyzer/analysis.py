"""The passes over the IR: shapes, then cost and memory per layer, then totals.

:func:`analyze` is the one entry point the CLI, the diff and the time model use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from analyzer.errors import CnnstatError, layer_where
from analyzer.ir import Layer, Net, Shape, Weight
from analyzer.layers import caffe_shapes, limits
from analyzer.layers.cost import Cost, Gemm, ParamBlob
from analyzer.layers.memory import DTYPE_BYTES, peak_data_bytes
from analyzer.layers.registry import UNKNOWN, rule_for
from analyzer.layers.shapes import ShapeError


@dataclass(frozen=True)
class Options:
    """What the user asked for: batch (leading dim of every input), input/blob shapes, dtype."""

    batch: int | None = None
    shapes: Mapping[str, Shape] = field(default_factory=dict)
    dtype: str = "fp32"


@dataclass(frozen=True)
class LayerResult:
    """One analysed layer. Bytes are for the chosen dtype; ``time_ms`` is filled by a device."""

    layer: Layer
    in_shapes: tuple[Shape, ...]
    out_shapes: tuple[Shape, ...]
    gemm: Gemm | None
    macs: int
    flops: int
    params: int  # learnable elements
    stats: int  # stored statistics elements (BatchNorm mean/variance…)
    params_bytes: int
    data_bytes: int  # this layer's tops
    workspace_bytes: int
    costed: bool
    warnings: tuple[str, ...] = ()
    time_ms: float | None = None


@dataclass(frozen=True)
class Totals:
    macs: int
    flops: int
    params: int
    stats: int
    params_bytes: int
    data_bytes: int  # Caffe convention
    data_peak_bytes: int  # liveness peak
    workspace_bytes: int  # Caffe: one buffer per layer, summed
    workspace_shared_bytes: int  # one shared buffer: the largest
    time_ms: float | None = None
    # resident bytes onnxruntime adds to load the net and run it once, predicted by a
    # calibrated CPU profile's memory fit (None: no such profile)
    runtime_peak_bytes: int | None = None

    def data(self, convention: str) -> int:
        """Data bytes: every top (``caffe``) or the liveness peak (``peak``)."""
        return self.data_peak_bytes if _convention(convention) == "peak" else self.data_bytes

    def workspace(self, convention: str) -> int:
        """Workspace bytes: one buffer per conv, summed (``caffe``) or the largest (``peak``)."""
        if _convention(convention) == "peak":
            return self.workspace_shared_bytes
        return self.workspace_bytes

    def memory(self, convention: str) -> int:
        """Params + data + workspace bytes under a convention: what ``check --max-memory``
        and ``plan`` count."""
        return self.params_bytes + self.data(convention) + self.workspace(convention)


MEMORY_CONVENTIONS = ("caffe", "peak")


def _convention(name: str) -> str:
    if name not in MEMORY_CONVENTIONS:
        raise ValueError(f"unknown memory convention {name!r} (use caffe or peak)")
    return name


@dataclass(frozen=True)
class Report:
    net: Net
    inputs: dict[str, Shape]
    batch: int | None
    dtype: str
    layers: tuple[LayerResult, ...]
    totals: Totals
    warnings: tuple[str, ...]
    device: str | None = None


def _where(net: Net, layer: Layer) -> str:
    return layer_where(net.path, layer.name, layer.line)


def _input_shapes(net: Net, layer: Layer, opts: Options) -> list[Shape]:
    shapes = []
    for i, top in enumerate(layer.tops):
        s = opts.shapes.get(top)
        if s is None:
            s = layer.attrs["shapes"][i]
        if s is None:
            why = layer.attr("unknown_reason") or "its shape is not in the file"
            raise CnnstatError(
                f"the shape of '{top}' is unknown ({layer.type} layer: {why}); "
                f"give it with --input-shape {top}=N,C,H,W", _where(net, layer))
        if opts.batch is not None and len(s) >= 1:
            s = (opts.batch, *s[1:])
        if any(d < 0 for d in s) or (0 in s and net.format != "onnx"):  # ONNX: 0 is valid
            raise CnnstatError(f"input '{top}' has a non-positive dim {list(s)}",
                               _where(net, layer))
        shapes.append(tuple(s))
    return shapes


def _params(blobs: tuple[ParamBlob, ...] | tuple[Weight, ...], itemsize: int,
            seen: set[str]) -> tuple[int, int, int]:
    """(learnable elements, statistics elements, bytes); a named blob counts once per net.

    ``blobs`` are the file's own weights (ONNX) or the cost rule's blobs (Caffe): both have
    a name, shape, learnable flag and itemsize (see :func:`layer_blobs`).
    """
    learn = stats = nbytes = 0
    for b in blobs:
        if b.name is not None:
            if b.name in seen:
                continue
            seen.add(b.name)
        count = math.prod(b.shape)
        if b.learnable:
            learn += count
        else:
            stats += count
        nbytes += count * (b.itemsize or itemsize)
    return learn, stats, nbytes


def analyze(net: Net, opts: Options = Options()) -> Report:
    """Shape every layer, then cost and memory; raise CnnstatError naming the layer."""
    if opts.dtype not in DTYPE_BYTES:
        raise CnnstatError(f"unknown dtype '{opts.dtype}' (use fp32 or fp16)")
    itemsize = DTYPE_BYTES[opts.dtype]
    known = {t for layer in net.layers for t in layer.tops}
    for name in opts.shapes:
        if name not in known:
            raise CnnstatError(f"--input-shape names '{name}', which is no blob of this net "
                               f"(inputs: {', '.join(_net_inputs(net)) or 'none'})", net.path)
    blobs: dict[str, Shape] = {}
    inputs: dict[str, Shape] = {}
    results: list[LayerResult] = []
    warnings: list[str] = list(net.warnings)
    seen: set[str] = set()
    for layer in net.layers:
        notes = list(layer.notes)
        ins = []
        for b in layer.bottoms:
            if b not in blobs:
                raise CnnstatError(f"bottom '{b}' is not produced by any earlier layer",
                                   _where(net, layer))
            ins.append(blobs[b])
        rule = rule_for(layer.kind, net.format)
        costed = rule is not None or layer.kind == "Input"
        if layer.kind == "Input":
            outs = _input_shapes(net, layer, opts)
            inputs.update(zip(layer.tops, outs))
            cost = Cost()
        else:
            if rule is None:
                rule = UNKNOWN
                notes.append(f"type '{layer.type}' has no shape or cost rule in cnnstat: "
                             + ("not costed" if layer.shapes_hint is not None else
                                "output assumed to have its input's shape; not costed"))
            given = [opts.shapes.get(t) for t in layer.tops]
            try:
                if all(g is not None for g in given) and given:
                    outs = [tuple(g) for g in given]  # type: ignore[misc]
                    notes.append("output shape given by --input-shape")
                elif layer.shapes_hint is not None and rule is UNKNOWN:
                    outs = [tuple(s) for s in layer.shapes_hint]
                else:
                    outs = rule.shape(layer, ins)
                cost = rule.cost(layer, ins, outs)
            except ShapeError as e:
                said = str(e)
                if "(input " not in said:  # the rule did not name the input itself
                    said += f" (input shapes: {[list(s) for s in ins]})"
                raise CnnstatError(said, _where(net, layer)) from None
            except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as e:
                raise CnnstatError(
                    f"cannot shape {layer.type} layer with inputs {[list(s) for s in ins]} "
                    f"({type(e).__name__}: {e})", _where(net, layer)) from None
            if layer.kind == "DetectionOutput":
                notes.append("row count is decided at run time (up to keep_top_k per image); "
                             "Caffe's static shape [1,1,1,7] is shown")
            if len(outs) != len(layer.tops):
                raise CnnstatError(f"{layer.type} gives {len(outs)} outputs but the layer "
                                   f"names {len(layer.tops)} tops", _where(net, layer))
            for t, s in zip(layer.tops, outs):
                if any(d < 0 for d in s):
                    raise CnnstatError(
                        f"output '{t}' would have a negative dim {list(s)} (input shapes: "
                        f"{[list(x) for x in ins]})", _where(net, layer))
                if 0 in s:
                    notes.append(f"output '{t}' {list(s)} has a zero dim: the layer does no work")
        why = _blob_limit(net, layer, outs, cost, itemsize)
        if why:
            raise CnnstatError(why, _where(net, layer))
        for t, s in zip(layer.tops, outs):
            blobs[t] = s
        # the file's own weights where known, else the cost rule's blobs (as layer_blobs)
        learn, stats, pbytes = _params(
            cost.params if layer.weights is None else layer.weights, itemsize, seen)
        data = sum(math.prod(s) for s in outs) * itemsize
        results.append(LayerResult(
            layer, tuple(ins), tuple(outs), cost.gemm, cost.macs, cost.flops, learn, stats,
            pbytes, data, cost.workspace * itemsize, costed, tuple(notes)))
        if notes:
            warnings.extend(f"layer '{layer.name}': {n}" for n in notes)
    if net.format.startswith("caffe"):
        note = caffe_shapes.placeholder_warning(
            [(r.layer, r.in_shapes[0]) for r in results if r.in_shapes], inputs, opts.shapes)
        if note:
            warnings.append(note)
    peak = peak_data_bytes(net.layers, [r.out_shapes for r in results], itemsize)
    totals = Totals(
        macs=sum(r.macs for r in results), flops=sum(r.flops for r in results),
        params=sum(r.params for r in results), stats=sum(r.stats for r in results),
        params_bytes=sum(r.params_bytes for r in results),
        data_bytes=sum(r.data_bytes for r in results), data_peak_bytes=peak,
        workspace_bytes=sum(r.workspace_bytes for r in results),
        workspace_shared_bytes=max((r.workspace_bytes for r in results), default=0))
    batch = opts.batch
    if batch is None and inputs:
        firsts = {s[0] for s in inputs.values() if s}
        batch = firsts.pop() if len(firsts) == 1 else None
    return Report(net, inputs, batch, opts.dtype, tuple(results), totals, tuple(warnings))


def _blob_limit(net: Net, layer: Layer, outs: list[Shape], cost: Cost,
                itemsize: int) -> str | None:
    """Why the net's own framework could not hold one of this layer's blobs, or None."""
    if net.format.startswith("caffe"):
        return limits.caffe_layer(layer.name, zip(layer.tops, outs),
                                  ((p.role, p.shape) for p in cost.params), cost.workspace)
    if net.format == "onnx":
        for t, s in zip(layer.tops, outs):
            why = limits.int64_tensor(f"tensor '{t}'", s, itemsize)
            if why:
                return why
        for w in layer.weights or ():
            why = limits.int64_tensor(f"initializer '{w.name}'", w.shape, w.itemsize)
            if why:
                return why
    return None


def layer_blobs(layer: Layer, cost: Cost) -> tuple[ParamBlob, ...]:
    """The layer's parameter blobs: the file's own (ONNX) where known, else the cost rule's."""
    if layer.weights is None:
        return cost.params
    return tuple(ParamBlob(w.name, w.shape, w.learnable, w.itemsize, w.name)
                 for w in layer.weights)


def _net_inputs(net: Net) -> list[str]:
    return [t for layer in net.layers if layer.kind == "Input" for t in layer.tops]
