"""Predicted vs measured forward time, per layer (the command is
:mod:`analyzer.commands.measure`: ``cnnstat measure NET --device PROFILE``).

The truth is a real onnxruntime run. A Caffe net is lowered to ONNX with random weights
(:mod:`analyzer.timing.lower`); an ONNX model runs as it is (random initializers replace
external weights that are absent). The session uses onnxruntime's DEFAULT options (all
graph optimizations, default thread count) unless ``--threads`` pins the count.

- **total**: the plain wall time of one ``run`` call, median of repeats, no profiling.
- **per layer**: onnxruntime's per-node profile (``enable_profiling``), median per node
  over the profiled runs, mapped back to the IR layer each node computes. A node that
  onnxruntime fused (Conv+BatchNorm+ReLU → one node) is charged to the first layer of the
  chain; the others show as fused (0 ms). Runtime-inserted nodes (layout reorders) are
  listed apart.
- **memory**: what onnxruntime adds to the resident set to load the model and run it once,
  in a fresh process (:func:`analyzer.timing.runtime_memory.measure_isolated`: peak RSS
  less RSS before the session), beside the profile's prediction of it (when the profile
  has a memory fit) and cnnstat's params + peak data + shared workspace.

Times are milliseconds, memory bytes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.analysis import Report
from analyzer.timing.runtime import NodeTime, Run, require_ort, time_model_isolated

REORDER_OPS = {"ReorderInput", "ReorderOutput"}  # onnxruntime's NCHWc layout changes
FREE_KINDS = {"Input", "Split", "Dropout"}  # never run as a node
HEAD_KINDS = {"Convolution", "Deconvolution", "InnerProduct", "MatMul"}  # start fused chains
# nodes that compute a fused chain (Conv+BatchNorm+ReLU) and may be named after its last
# output: only these are moved back to the chain's first layer
HEAD_OPS = {"Conv", "FusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
            "NhwcFusedConv"}
# fused nodes onnxruntime names after no node of the graph (the GELU it finds in
# x·0.5·(1+erf(x/√2)) is a node named "Gelu"): charged to the first layer after the node
# before them that has no node of its own, preferring a layer of the types listed
UNNAMED_FUSED_OPS: dict[str, tuple[str, ...]] = {
    "Gelu": ("Div", "Erf", "Gelu"), "BiasGelu": ("Div", "Erf", "Gelu"),
    "FastGelu": ("Div", "Erf", "Gelu", "Tanh"), "QuickGelu": ("Sigmoid",),
    "LayerNormalization": ("ReduceMean", "LayerNormalization"),
    "SkipLayerNormalization": ("Add", "LayerNormalization"), "Softmax": ("Softmax", "Exp"),
    "HardSwish": ("HardSigmoid", "HardSwish"), "Sigmoid": ("Sigmoid",)}




# ---------------------------------------------------------------------------------------
# Mapping executed nodes back to layers.


@dataclass(frozen=True)
class Attribution:
    """Measured ms per IR layer, which layers were fused into which, and the rest."""

    layer_ms: dict[str, float]  # layer name -> ms of the nodes charged to it
    fused_into: dict[str, str]  # layer name -> the layer whose node computes it
    # nodes no layer computes: layout reorders onnxruntime inserts, and an ONNX graph's shape
    # arithmetic (Shape, Gather, Concat on shapes…) that cnnstat folds but the runtime runs
    runtime_ms: dict[str, float] = field(default_factory=dict)
    node_layer: dict[str, str] = field(default_factory=dict)  # executed node -> layer


# "_bn_nchwc": a BatchNormalization onnxruntime runs as a blocked 1×1 depthwise conv
_SUFFIXES = re.compile(r"(_nchwc|_bn|_token_\d+|_kernel_time|_fused|_\d+)$")


def _resolve(name: str, node_layer: Mapping[str, str],
             tensor_layer: Mapping[str, str]) -> str | None:
    """The layer an executed node's name points to: a node we named, or a tensor a layer
    wrote (onnxruntime names fused nodes after their output), its prefixes and suffixes
    (``fused ``, ``_nchwc``, ``_token_3``) stripped."""
    seen = name.removeprefix("fused ")
    while True:
        for table in (node_layer, tensor_layer):
            if seen in table:
                return table[seen]
        stripped = _SUFFIXES.sub("", seen)
        if stripped == seen:
            break
        seen = stripped
    if "/" in name:
        return _resolve(name.rsplit("/", 1)[0], node_layer, tensor_layer)
    return None


def attribute(report: Report, nodes: Sequence[NodeTime], node_layer: Mapping[str, str],
              tensor_layer: Mapping[str, str]) -> Attribution:
    """Charge each executed node to a layer; walk a fused chain back to its first layer.

    A layer that no executed node names was fused into (or folded away by) the nearest
    layer before it in its chain that has a node. ``node_layer`` maps ONNX node names,
    ``tensor_layer`` tensor names, to IR layer names.
    """
    index = {r.layer.name: i for i, r in enumerate(report.layers)}
    producer: dict[str, int] = {}
    bottom_of: list[int | None] = []
    for i, r in enumerate(report.layers):
        src = producer.get(r.layer.bottoms[0]) if r.layer.bottoms else None
        bottom_of.append(src)
        for t in r.layer.tops:
            producer[t] = i
    hits: dict[str, list[NodeTime]] = {}
    runtime: dict[str, float] = {}
    resolved = [_resolve(n.name, node_layer, tensor_layer) if n.op not in REORDER_OPS else None
                for n in nodes]
    resolved = [r if r in index else None for r in resolved]
    named = {r for r in resolved if r is not None}
    last = -1
    for n, name in zip(nodes, resolved):
        if name is None and n.op in UNNAMED_FUSED_OPS:
            free = [r.layer for r in report.layers[last + 1:]
                    if r.layer.name not in named and r.layer.name not in hits
                    and r.layer.kind not in FREE_KINDS | {"Input"}]
            liked = [la for la in free[:8] if la.type in UNNAMED_FUSED_OPS[n.op]]
            name = (liked or free or [None])[0] and (liked or free)[0].name
        if name is None:
            runtime[n.name] = runtime.get(n.name, 0.0) + n.ms
        else:
            hits.setdefault(name, []).append(n)
            last = max(last, index[name])
    owner: dict[str, str] = {}
    for name in list(hits):
        i = index[name]
        if not any(n.op in HEAD_OPS for n in hits[name]):
            owner[name] = name
            continue
        # a fused node named after its chain's last output: move it to the chain's head
        while report.layers[i].layer.kind not in HEAD_KINDS:
            j = bottom_of[i]
            if j is None:
                break
            prev = report.layers[j].layer
            if prev.kind in FREE_KINDS or prev.name in hits or prev.name in owner:
                break
            i = j
        owner[name] = report.layers[i].layer.name
    layer_ms: dict[str, float] = {}
    for name, ns in hits.items():
        head = owner[name]
        layer_ms[head] = layer_ms.get(head, 0.0) + sum(n.ms for n in ns)
    node_map = {n.name: owner[k] for k, ns in hits.items() for n in ns}
    fused: dict[str, str] = {}
    for i, r in enumerate(report.layers):
        name = r.layer.name
        if name in layer_ms or r.layer.kind in FREE_KINDS:
            continue
        j = bottom_of[i]
        while j is not None and report.layers[j].layer.name not in layer_ms:
            j = bottom_of[j]
        if j is not None:
            fused[name] = report.layers[j].layer.name
    return Attribution(layer_ms, fused, runtime, node_map)


def tensor_layers(report: Report) -> dict[str, str]:
    """Blob name -> the layer that last wrote it (ONNX tensors are the IR's blob names)."""
    return {t: r.layer.name for r in report.layers for t in r.layer.tops}


# ---------------------------------------------------------------------------------------
# Preparing a model file to run.


def runnable_onnx(path: str, tmp: str) -> str:
    """``path`` itself, or a copy in ``tmp`` whose absent external weights are random."""
    import onnx
    from onnx import external_data_helper, numpy_helper

    model = onnx.load(path, load_external_data=False)
    base = Path(path).resolve().parent
    rng = np.random.default_rng(0)
    replaced = 0
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in init.external_data}
        if (base / info.get("location", "")).is_file():
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        dims = tuple(init.dims)
        if np.issubdtype(dtype, np.floating):
            value = rng.random(dims, dtype=np.float32)
            value -= 0.5
            value *= 0.1
            value = value.astype(dtype, copy=False)
        else:
            value = np.zeros(dims, dtype)
        new = numpy_helper.from_array(value, init.name)
        init.Clear()
        init.CopyFrom(new)
        replaced += 1
    if not replaced:
        external_data_helper.load_external_data_for_model(model, str(base))
        return path
    out = os.path.join(tmp, Path(path).name)
    onnx.save(model, out)
    return out


@dataclass(frozen=True)
class Prepared:
    """A model file ready for onnxruntime and the maps from its nodes back to layers."""

    path: str
    shapes: dict[str, tuple[int, ...]]
    node_layer: dict[str, str]
    tensor_layer: dict[str, str]


def prepare(report: Report, tmp: str, seed: int = 0) -> Prepared:
    """Write a runnable ONNX file for ``report``'s net into ``tmp``."""
    if report.net.format == "onnx":
        path = runnable_onnx(report.net.path, tmp)
        names = {r.layer.name: r.layer.name for r in report.layers}
        return Prepared(path, dict(report.inputs), names, tensor_layers(report))
    from analyzer.timing.lower import export

    ex = export(report, seed=seed)
    path = os.path.join(tmp, "net.onnx")
    Path(path).write_bytes(ex.model.SerializeToString())
    tensors = {t: layer for (layer, _), t in ex.top_tensor.items()}
    return Prepared(path, dict(ex.inputs), ex.node_layer, tensors)


# ---------------------------------------------------------------------------------------
# The command.


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    predicted_ms: float
    measured_ms: float | None  # None: fused into another layer or not run
    note: str = ""
    timed_as: str = ""  # the profile entry that timed it ("Convolution/1x1"; "X (fallback)")


@dataclass(frozen=True)
class Comparison:
    """Predicted vs measured for one net. Times ms, memory bytes."""

    net: str
    device: str
    threads: int
    rows: tuple[LayerRow, ...]
    predicted_ms: float
    measured_ms: float
    measured_layers_ms: float  # sum of profiled node times
    runtime_nodes_ms: float  # profiled nodes no layer computes (reorders, shape arithmetic)
    predicted_runtime_nodes_ms: float  # reorders and shape arithmetic, as predicted
    predicted_memory_bytes: int  # params + peak data + shared workspace
    measured_rss_bytes: int  # peak RSS growth to create the session from the file, run once
    peak_rss_bytes: int  # that process's peak RSS
    load_average: float = 0.0  # 1-minute load average before measuring (other processes)
    runs: int = 0  # timed runs behind the measured median
    measured_min_ms: float = 0.0  # the fastest run: the machine undisturbed by others
    probe_reference_ms: float = 0.0  # the probe at calibration (0: the profile has none)
    probe_ms: float = 0.0  # the probe around the kept session (analyzer.timing.probe)
    sessions_set_aside: int = 0  # sessions run while the probe showed another state
    state_matched: bool = True  # False: no session ran in the calibration's state
    predicted_runtime_bytes: int | None = None  # the profile's memory fit (None: it has none)

    @property
    def memory_error_pct(self) -> float | None:
        if self.predicted_runtime_bytes is None or not self.measured_rss_bytes:
            return None
        return 100.0 * (self.predicted_runtime_bytes - self.measured_rss_bytes) / \
            self.measured_rss_bytes

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms


def compare(report: Report, device: str, threads: int | None = None,
            repeats: int = 10, min_seconds: float = 2.0, sessions: int = 3,
            wait_seconds: float = 60.0) -> Comparison:
    """Predict ``report`` on ``device`` and measure it with onnxruntime.

    The model runs in ``sessions`` fresh processes and the session with the median wall
    time is kept: on a small machine a session's thread placement can settle in a slow
    or a fast mode for its whole life, so one session is not a measurement. When the
    profile stores a probe time (:mod:`analyzer.timing.probe`), only sessions with the probe in the
    calibration's state just before and just after count; others are set aside and run
    again for up to ``wait_seconds``. If none matched by then, every session counts and the
    comparison says the state differed.
    """
    from analyzer.timing.probe import Probe, profile_reference, same_state
    from analyzer.timing.profile import load_profile, predict_report, runtime_nodes_ms, timing_key
    from analyzer.timing.runtime_memory import measure_isolated

    require_ort()
    profile = load_profile(device)
    if threads is None:
        threads = int(profile.data.get("threads") or 0)
    predicted = predict_report(report, profile)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    ref = profile_reference(profile.data)
    probe = Probe(threads) if ref > 0 else None
    kept: list[tuple[Run, float]] = []
    aside: list[tuple[Run, float]] = []
    with tempfile.TemporaryDirectory(prefix="cnnstat-measure-") as tmp:
        prep = prepare(report, tmp)
        deadline = time.monotonic() + wait_seconds
        while len(kept) < max(sessions, 1):
            before = probe.ms() if probe else 0.0
            run = time_model_isolated(prep.path, prep.shapes, threads, repeats, min_seconds)
            after = probe.ms() if probe else 0.0
            worse = max(before, after, key=lambda p: abs(p / ref - 1.0)) if probe else 0.0
            if probe is None or (same_state(before, ref) and same_state(after, ref)):
                kept.append((run, worse))
            else:
                aside.append((run, worse))
                if time.monotonic() > deadline and len(aside) >= sessions:
                    break
        memory = measure_isolated(prep.path, prep.shapes, threads=threads)
    matched = bool(kept)
    chosen = sorted(kept or aside, key=lambda rp: rp[0].wall_ms)
    run, probe_ms = chosen[len(chosen) // 2]
    att = attribute(report, run.nodes, prep.node_layer, prep.tensor_layer)
    rows = []
    for r in predicted.layers:
        name = r.layer.name
        if name in att.layer_ms:
            measured, note = att.layer_ms[name], ""
        elif name in att.fused_into:
            measured, note = None, f"fused into {att.fused_into[name]}"
        else:
            measured, note = None, "not run"
        key = timing_key(r, profile.kinds, profile.data.get("context"))
        rows.append(LayerRow(name, r.layer.kind, r.time_ms or 0.0, measured, note,
                             key if key in profile.kinds else f"{key} (fallback)"))
    t = report.totals
    return Comparison(
        report.net.name, profile.name, threads, tuple(rows), predicted.totals.time_ms or 0.0,
        run.wall_ms, sum(att.layer_ms.values()), sum(att.runtime_ms.values()),
        runtime_nodes_ms(report, profile),
        t.params_bytes + t.data_peak_bytes + t.workspace_shared_bytes,
        memory.runtime_bytes, memory.peak_once, load,
        len(run.wall_all_ms), min(run.wall_all_ms), ref, probe_ms,
        len(aside) if matched else 0, matched, predicted.totals.runtime_peak_bytes)


def _pct(pred: float, meas: float | None) -> str:
    if not meas:
        return ""
    return f"{100.0 * (pred - meas) / meas:+.1f}%"


@dataclass(frozen=True)
class ClassSum:
    """Predicted and measured ms of the layers one profile entry times (a fused chain's
    work is measured on its head, as in the per-layer rows)."""

    timed_as: str
    layers: int
    predicted_ms: float
    measured_ms: float


def by_class(c: Comparison) -> list[ClassSum]:
    """Per profile entry, most measured time first: where a net's error comes from."""
    sums: dict[str, list[float]] = {}
    for row in c.rows:
        if row.measured_ms is None and not row.predicted_ms:
            continue
        acc = sums.setdefault(row.timed_as or row.kind, [0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += row.predicted_ms
        acc[2] += row.measured_ms or 0.0
    out = [ClassSum(k, int(n), p, m) for k, (n, p, m) in sums.items()]
    if c.runtime_nodes_ms or c.predicted_runtime_nodes_ms:
        out.append(ClassSum(RUNTIME_ENTRY, 0, c.predicted_runtime_nodes_ms, c.runtime_nodes_ms))
    return sorted(out, key=lambda x: (-x.measured_ms, x.timed_as))


RUNTIME_ENTRY = "(nodes no layer computes: reorders, shape arithmetic)"


def to_json(c: Comparison) -> str:
    data = asdict(c)
    data["error_pct"] = round(c.error_pct, 2)
    mem = c.memory_error_pct
    data["memory_error_pct"] = None if mem is None else round(mem, 2)
    data["by_class"] = [asdict(x) for x in by_class(c)]
    return json.dumps(data, indent=1) + "\n"


def print_table(c: Comparison, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{c.net} on {c.device} (onnxruntime, threads: "
                        f"{c.threads or 'default'})")
    for col in ("layer", "kind", "predicted ms", "measured ms", "error", "note"):
        table.add_column(col, justify="right" if "ms" in col or col == "error" else "left")
    for row in c.rows:
        if row.kind in FREE_KINDS and row.measured_ms is None and not row.predicted_ms:
            continue
        meas = f"{row.measured_ms:.3f}" if row.measured_ms is not None else "–"
        table.add_row(row.name, row.kind, f"{row.predicted_ms:.3f}", meas,
                      _pct(row.predicted_ms, row.measured_ms), row.note)
    table.add_section()
    table.add_row("total", "", f"{c.predicted_ms:.3f}", f"{c.measured_ms:.3f}",
                  _pct(c.predicted_ms, c.measured_ms), f"measured: wall time, median of {c.runs}")
    console.print(table)
    classes = Table(title="by profile entry (where the error comes from)")
    for col in ("timed as", "layers", "predicted ms", "measured ms", "error"):
        classes.add_column(col, justify="left" if col == "timed as" else "right")
    for x in by_class(c):
        classes.add_row(x.timed_as, str(x.layers), f"{x.predicted_ms:.3f}",
                        f"{x.measured_ms:.3f}", _pct(x.predicted_ms, x.measured_ms))
    console.print(classes)
    mib = 1024 * 1024
    console.print(f"profiled nodes {c.measured_layers_ms:.3f} ms (+ {c.runtime_nodes_ms:.3f} ms "
                  f"in nodes no layer computes: layout reorders, shape arithmetic)")
    if c.predicted_runtime_bytes is None:
        said = f"not predicted ({c.device} has no memory fit: run cnnstat calibrate)"
    else:
        said = (f"predicted {c.predicted_runtime_bytes / mib:.1f} MiB, measured "
                f"{c.measured_rss_bytes / mib:.1f} MiB "
                f"({_pct(c.predicted_runtime_bytes, c.measured_rss_bytes)})")
    console.print(f"runtime memory (onnxruntime's resident growth to load the model and run "
                  f"it once): {said}; cnnstat's params + peak data + shared workspace: "
                  f"{c.predicted_memory_bytes / mib:.1f} MiB")
    if c.probe_reference_ms:
        ratio = c.probe_ms / c.probe_reference_ms
        state = (f"machine state: probe {c.probe_ms:.3f} ms vs {c.probe_reference_ms:.3f} ms at "
                 f"calibration ({ratio:.2f}×)")
        if c.sessions_set_aside:
            state += (f"; {c.sessions_set_aside} session(s) set aside, run while the probe "
                      "showed another state")
        console.print(state)
        if not c.state_matched:
            console.print(f"warning: the machine never came back to its calibration state "
                          f"(probe {ratio:.2f}× calibration) while measuring: the measured "
                          "times are from another state than the profile's")
    cores = os.cpu_count() or 1
    if c.load_average > 0.5 * cores:
        console.print(f"note: the 1-minute load average was {c.load_average:.1f} on {cores} "
                      "cores; other processes were running, so the measured times may be "
                      "inflated")
