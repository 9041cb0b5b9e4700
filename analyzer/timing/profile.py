"""Forward-time model: per-kind formulas over a layer's GEMM sizes, MACs and bytes.

Lu et al. (2017, "Modeling the Resource Requirements of Convolutional Neural Networks on
Mobile Devices") model a convolution's forward time as linear in its GEMM size n·k·m and an
inner product's as linear in in·out. This module keeps that idea and adds what measured
``caffe time`` data shows matters (see ``benchmarks/bench_time_ck.py`` for the held-out gain):

- every layer kind has a per-call constant (no GPU kernel launch is free);
- convolution time is linear in input, output and weight bytes (writes cost more) plus a
  roofline ``max(MACs · a, k · b)`` whose k term applies to 1×1 convolutions only (on the
  GTX 1080 cuDNN's 1×1 convolutions with a small output track k, not MACs); a second
  candidate form gives 3×3 stride-1 convolutions (the shapes Winograd's F(m, 3) transforms
  apply to) their own MAC rate and adds the im2col elements a GEMM convolution gathers. Which
  form a device gets is chosen when fitting, by cross-validation over the measured nets
  (:func:`choose_form`): the fit keeps the candidate that best predicts nets it did not see;
- an inner product sits on a roofline: ``c + max(MACs · s_mac, bytes · s_byte)``, since at a
  small batch reading the weight matrix dominates;
- other kinds take a launch floor or their bytes over a bandwidth, whichever is slower,
  plus a FLOPs term.
- a profile may time a kind's classes apart (``Convolution/depthwise``, ``Convolution/1x1``,
  …: :data:`SUBKINDS`, :func:`timing_key`); CPU profiles do for the depthwise, 1×1,
  many-group and first-layer (image) convolutions, as onnxruntime runs each with its own
  kernel (:data:`CPU_KIND_FORMS`). The shipped GPU profiles do not.

Units: times are milliseconds, sizes are MACs, FLOPs and bytes. A device *profile* is a
JSON dict (see ``analyzer/devices/*.json``) holding one entry per kind with the coefficient
of each named feature, the fit quality, a ``fallback`` entry for kinds the data did not
cover, ``per_layer_overhead_ms`` (the gap ``caffe time``'s forward total has beyond the sum
of its layer times, per layer) and optional ``fusions`` (pairs of kinds a runtime merges).
Coefficients are fitted by non-negative least squares on relative error (:func:`nnls`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.analysis import LayerResult, Report
from analyzer.errors import CnnstatError
from analyzer.layers.shapes import conv_geometry
from analyzer.timing.fusions import fused_into
from analyzer.timing.nnls import nnls

DEVICES_DIR = Path(__file__).resolve().parents[1] / "devices"
LOCAL_DIR = Path.home() / ".config" / "cnnstat" / "devices"
SCHEMA = 1

# Relative errors are taken against at least 1 µs, so a layer measured at 0 ms (one a runtime
# folded away) weighs like a 1 µs layer instead of infinitely.
MIN_MS = 0.001
GEMM_KINDS = ("Convolution", "Deconvolution", "InnerProduct", "LSTM", "RNN")


# ---------------------------------------------------------------------------------------
# Features: named numbers computed from one analysed layer.


def _elements(shapes: Sequence[tuple[int, ...]]) -> int:
    return sum(math.prod(s) for s in shapes)


def _itemsize(r: LayerResult) -> int:
    n = _elements(r.out_shapes)
    return r.data_bytes // n if n else 4


def moved_bytes(r: LayerResult) -> int:
    """Bytes a layer reads and writes once: its bottoms, its tops and its parameters."""
    return (_elements(r.in_shapes) + _elements(r.out_shapes)) * _itemsize(r) + r.params_bytes


def _depth(r: LayerResult) -> float:
    """k·groups: the reduction length of the layer's GEMMs (0 without a GEMM)."""
    return float(r.gemm.k * r.gemm.groups) if r.gemm is not None else 0.0


def _is_1x1(r: LayerResult) -> bool:
    kernel = r.layer.attr("kernel")
    dims = kernel if isinstance(kernel, (tuple, list)) else (kernel,)
    return r.layer.kind == "Convolution" and all(d == 1 for d in dims)


def _in_bytes(r: LayerResult) -> float:
    return float(_elements(r.in_shapes) * _itemsize(r))


def is_winograd_shape(r: LayerResult) -> bool:
    """A 2-D 3×3 convolution with stride 1 and dilation 1 that is not depthwise: the shape
    Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray 2016) computes with fewer
    multiplies, which cuDNN 5+ and CPU runtimes may pick. Eligibility, not a claim it is used."""
    if r.layer.kind != "Convolution" or not r.in_shapes:
        return False
    g = conv_geometry(r.layer, r.in_shapes[0])
    return (g["kernel"] == (3, 3) and g["stride"] == (1, 1) and g["dilation"] == (1, 1)
            and g["c_in"] != g["group"])


def _im2col(r: LayerResult) -> float:
    """Elements of a convolution's unrolled input, k·m·groups per image times the batch."""
    if r.layer.kind != "Convolution" or r.gemm is None or not r.in_shapes:
        return 0.0
    return float(r.gemm.k * r.gemm.m * r.gemm.groups * r.in_shapes[0][0])


def is_depthwise(r: LayerResult) -> bool:
    """A convolution with one input and one output channel per group (MobileNet's depthwise
    3×3): CPU runtimes compute it with a direct per-channel kernel, not a GEMM."""
    if r.layer.kind != "Convolution" or not r.in_shapes or not r.out_shapes:
        return False
    g = conv_geometry(r.layer, r.in_shapes[0])
    return g["group"] > 1 and g["c_in"] == g["group"] == r.out_shapes[0][1]


# Bytes a layer moves beyond which its data no longer stays in a core's private cache: a CPU
# streams the rest from the shared cache or memory, at a lower rate (measured here, a 3×3 max
# pooling: 0.08 ns per input element at 64×56², 0.09 at 64×112², 0.12 at 10×64×112²).
SPILL_FROM_BYTES = 2**20


# Each feature in its unit: const and floor 1, *macs MACs, flops FLOPs, *bytes bytes, k and
# im2col elements. winograd_macs + direct_macs = macs. spill_bytes: the bytes moved beyond
# SPILL_FROM_BYTES.
FEATURES: dict[str, Callable[[LayerResult], float]] = {
    "const": lambda r: 1.0,
    "floor": lambda r: 1.0,  # a constant inside a roofline max(): a minimum time
    "macs": lambda r: float(r.macs),
    "flops": lambda r: float(r.flops),
    "bytes": lambda r: float(moved_bytes(r)),
    "spill_bytes": lambda r: float(max(moved_bytes(r) - SPILL_FROM_BYTES, 0)),
    "in_bytes": _in_bytes,
    "out_bytes": lambda r: float(r.data_bytes),
    "param_bytes": lambda r: float(r.params_bytes),
    "k": _depth,
    "k_1x1": lambda r: _depth(r) if _is_1x1(r) else 0.0,
    "winograd_macs": lambda r: float(r.macs) if is_winograd_shape(r) else 0.0,
    "direct_macs": lambda r: 0.0 if is_winograd_shape(r) else float(r.macs),
    "im2col": _im2col,
    "groups": lambda r: float(r.gemm.groups * (r.in_shapes[0][0] if r.in_shapes else 1))
    if r.gemm is not None else 0.0,
}


def conv_class(r: LayerResult) -> str:
    """``depthwise``, ``grouped`` (3 or more groups, not depthwise: ResNeXt, ShuffleNet v1),
    ``image`` (reads at most 4 channels: a net's first layer over an RGB image), ``1x1`` or
    ``""`` (any other convolution, AlexNet's two-group ones included): CPU runtimes run them
    with different kernels (onnxruntime's NCHWc path reads an image in plain NCHW), so a CPU
    profile may fit each on its own (see :func:`timing_key`).

    Two groups stay with the dense convolutions: each half is a conv of dense size, and a
    fit on dense points alone predicts AlexNet's conv2/4/5 in onnxruntime within 12 %, while
    the grid's 8- and 32-group points run 0.2–2.4× what that fit says.
    """
    if is_depthwise(r):
        return "depthwise"
    if r.gemm is not None and r.gemm.groups > 2:
        return "grouped"
    if r.in_shapes and len(r.in_shapes[0]) > 1 and r.in_shapes[0][1] <= 4:
        return "image"
    return "1x1" if _is_1x1(r) else ""


# An inner product over at least this many rows (the dims before its axis: tokens, pixels
# of a channels-last map) is a compute-bound GEMM, like a 1×1 convolution, not a classifier
# head streaming its weights once per image.
TOKEN_ROWS = 32


def fc_class(r: LayerResult) -> str:
    """``tokens``: a Linear over a transformer's tokens or a channels-last map (ConvNeXt's
    56² × 96 → 384: 3136 rows); ``""``: a classifier head over a batch of images. One fit over
    both has to choose between a bandwidth-bound and a compute-bound form with a few points of
    each, and a calibration's choice moved ConvNeXt-Small's prediction by a fifth."""
    if not r.in_shapes:
        return ""
    shape = r.in_shapes[0]
    axis = r.layer.attr("axis", 1) % max(len(shape), 1)
    return "tokens" if math.prod(shape[:axis]) >= TOKEN_ROWS else ""


# Kinds whose layers a profile may split into classes, each with its own fit
# ("Convolution/depthwise"); a profile without a class's entry uses the kind's.
def broadcast_class(r: LayerResult) -> str:
    """``Mul:same``, ``Add:bcast``, ``Mul:const``…: the ONNX op and how its operands line up
    (:func:`signature`). ``x · Sigmoid(x)`` runs as one SiLU node timed on its ``Mul``."""
    return signature(r).split("/", 1)[1]


SUBKINDS: dict[str, Callable[[LayerResult], str]] = {"Convolution": conv_class,
                                                     "Broadcast": broadcast_class,
                                                     "InnerProduct": fc_class}


def timing_key(r: LayerResult, keys: Mapping[str, Any],
               context: Mapping[str, Any] | None = None) -> str:
    """The entry of ``keys`` (a profile's kinds, or a forms table) that times ``r``: its
    ``kind/class`` when ``keys`` has one, else its kind. With a measured ``context`` table
    (:func:`conv_nchwc`), a convolution the runtime runs outside its blocked layout is timed
    by the class's ``-plain`` entry when there is one (``Convolution/grouped-plain``:
    onnxruntime runs a grouped convolution of 24 channels per group as one GEMM per group,
    several times slower per MAC than one of 16)."""
    kind = r.layer.kind
    classify = SUBKINDS.get(kind)
    # classify only where ``keys`` splits the kind: a GPU profile's convolutions skip it
    if classify is not None and any(k.startswith(kind + "/") for k in keys):
        sub = classify(r)
        if kind == "Convolution" and context and conv_nchwc(context, r) is False:
            # run plain, two groups are two GEMMs like any grouped convolution's
            base = sub or ("grouped" if r.gemm is not None and r.gemm.groups > 1 else "")
            plain = f"{kind}/{base + '-' if base else ''}plain"
            if plain in keys:
                return plain
        if sub and f"{kind}/{sub}" in keys:
            return f"{kind}/{sub}"
    return kind


# ---------------------------------------------------------------------------------------
# Records.


@dataclass(frozen=True)
class Sample:
    """One measured layer: its analysis and its forward time in milliseconds."""

    layer: LayerResult  # from analysis.analyze(): shapes, gemm, macs, flops, bytes
    ms: float  # measured forward time of that layer, milliseconds
    net: str = ""  # which net/run it came from (for held-out splits and reports)


@dataclass(frozen=True)
class Profile:
    """A loaded device profile: its name, where it came from, and the JSON dict itself."""

    name: str
    path: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> Mapping[str, Any]:
        return self.data.get("kinds", {})

    @property
    def overhead_ms(self) -> float:
        return float(self.data.get("per_layer_overhead_ms", 0.0))

    @property
    def fusions(self) -> set[tuple[str, str]]:
        return {(a, b) for a, b in self.data.get("fusions", [])}


# ---------------------------------------------------------------------------------------
# Fitting.


@dataclass(frozen=True)
class Form:
    """A kind's formula: ``Σ coef·term`` over ``terms`` plus, when ``peak`` names two terms,
    a roofline ``max(a·peak[0], b·peak[1])`` (the slower of two limits)."""

    terms: tuple[str, ...]
    peak: tuple[str, str] | None = None


def _design(layers: Sequence[LayerResult], terms: Sequence[str]) -> np.ndarray:
    return np.array([[FEATURES[t](r) for t in terms] for r in layers], dtype=float)


def _weighted_nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NNLS on relative error: rows weighted by 1/y, columns scaled for conditioning."""
    w = 1.0 / np.maximum(y, MIN_MS)
    scale = np.maximum(np.abs(x).max(axis=0), 1e-30)
    return nnls(x / scale * w[:, None], y * w) / scale


def fit_form(layers: Sequence[LayerResult], ms: Sequence[float], form: Form) -> dict[str, Any]:
    """Fitted coefficients (ms per unit, all ≥ 0) of ``form``, minimising squared relative
    error. A roofline pair is fitted by a grid over the ratio of its two slopes."""
    y = np.asarray(ms, dtype=float)
    x = _design(layers, form.terms) if form.terms else np.zeros((len(y), 0))
    if form.peak is None:
        return {"sum": {t: float(c) for t, c in zip(form.terms, _weighted_nnls(x, y))}}
    a, b = (_design(layers, [t])[:, 0] for t in form.peak)
    base = max(float(a.max(initial=0.0)), 1e-30) / max(float(b.max(initial=0.0)), 1e-30)
    best: tuple[float, dict[str, Any]] | None = None
    for ratio in base * np.logspace(-3, 3, 121):
        work = np.maximum(a, b * ratio)
        coef = _weighted_nnls(np.column_stack([x, work]), y)
        pred = np.column_stack([x, work]) @ coef
        err = float(np.sum(((pred - y) / np.maximum(y, MIN_MS)) ** 2))
        if best is None or err < best[0] * (1 - 1e-9):  # near-ties keep the smaller ratio
            best = (err, {"sum": {t: float(c) for t, c in zip(form.terms, coef[:-1])},
                          "max": {form.peak[0]: float(coef[-1]),
                                  form.peak[1]: float(coef[-1] * ratio)}})
    assert best is not None
    return best[1]


def _model_ms(model: Mapping[str, Any], r: LayerResult) -> float:
    coef = model["coef"]
    ms = sum(c * FEATURES[t](r) for t, c in coef.get("sum", {}).items())
    peak = coef.get("max")
    if peak:
        ms += max(c * FEATURES[t](r) for t, c in peak.items())
    return ms


# A convolution's formula. Writes cost more than reads; a 1×1 conv (cuDNN's implicit GEMM) is
# bound by its reduction length k when the output is small, by MACs otherwise.
CONV_FORM = Form(("const", "in_bytes", "out_bytes", "param_bytes", "macs"), ("macs", "k_1x1"))
# The same, with 3×3 stride-1 convolutions at their own MAC rate (a Winograd or other fast
# algorithm) and a term for the im2col elements a GEMM convolution gathers.
CONV_WINOGRAD_FORM = Form(("const", "in_bytes", "out_bytes", "param_bytes", "im2col",
                           "winograd_macs"), ("direct_macs", "k_1x1"))

# Each kind's formula (held-out evidence for each choice: benchmarks/bench_time_ck.py). A tuple
# lists candidates; the fit picks one per device by cross-validation over nets (choose_form).
KIND_FORMS: dict[str, Form | tuple[Form, ...]] = {
    "Convolution": (CONV_FORM, CONV_WINOGRAD_FORM),
    # Memory-bandwidth roofline: reading the weights dominates at a small batch.
    "InnerProduct": Form(("const",), ("macs", "bytes")),
    "Input": Form(("const",)),
    "Split": Form(("const",)),
}
# CPU profiles (``cnnstat calibrate``): onnxruntime runs depthwise, 1×1, many-group, first
# (image) and other convolutions with different kernels (a depthwise 3×3 over 32 channels at
# 112² takes 0.03 ms here, which a form shared with dense convolutions put at 0.07 ms), so
# each class gets its own fit. A dense convolution may also be charged for the im2col
# elements it gathers (CONV_IM2COL_FORM, a candidate). On a CPU an inner product at a small batch
# streams its weights while it multiplies: bytes and MACs may add rather than max().
CONV_IM2COL_FORM = Form(("const", "in_bytes", "out_bytes", "param_bytes", "im2col", "macs"))
FC_SUM_FORM = Form(("const", "bytes", "macs"))
CPU_KIND_FORMS: dict[str, Form | tuple[Form, ...]] = {
    **KIND_FORMS,
    # any kind not listed: as OTHER_FORM, and data spilling out of a core's cache costs more
    "*": Form(("const", "flops", "spill_bytes"), ("floor", "bytes")),
    "Convolution": (CONV_FORM, CONV_WINOGRAD_FORM, CONV_IM2COL_FORM),
    "Convolution/depthwise": Form(("const", "in_bytes", "out_bytes", "macs", "spill_bytes")),
    "Convolution/1x1": Form(("const", "in_bytes", "out_bytes", "param_bytes", "macs")),
    "Convolution/grouped": Form(("const", "in_bytes", "out_bytes", "param_bytes", "macs")),
    "Convolution/image": CONV_IM2COL_FORM,
    # outside onnxruntime's NCHWc layout (channels per group it does not block): an im2col
    # and one GEMM per group, each group paying a call
    "Convolution/plain": (CONV_FORM, CONV_IM2COL_FORM),
    "Convolution/1x1-plain": Form(("const", "in_bytes", "out_bytes", "param_bytes", "macs")),
    "Convolution/grouped-plain": Form(("const", "in_bytes", "out_bytes", "param_bytes", "macs",
                                       "im2col", "groups")),
    "Convolution/depthwise-plain": Form(("const", "in_bytes", "out_bytes", "macs")),
    "InnerProduct": (Form(("const",), ("macs", "bytes")), FC_SUM_FORM),
    "InnerProduct/tokens": Form(("const", "in_bytes", "out_bytes", "param_bytes", "macs")),
    **{f"Broadcast/{op}:{form}": Form(("const", "flops", "spill_bytes"), ("floor", "bytes"))
       for op in ("Add", "Mul", "Div", "Sub") for form in ("same", "bcast", "const")},
}
# Other kinds (a forms table's "*" entry, where it has one): a launch floor or the bytes they
# move, whichever is slower, plus FLOPs.
OTHER_FORM = Form(("const", "flops"), ("floor", "bytes"))
FALLBACK_FORM = Form(("const",), ("floor", "bytes"))
# Lu et al.'s plain form: conv a·(n·k·m·groups·batch) + b, fc a·(in·out·rows) + b.
PAPER_FORMS: dict[str, Form | tuple[Form, ...]] = {
    "Convolution": Form(("const", "macs")),
    "InnerProduct": Form(("const", "macs")),
    "Input": Form(("const",)),
    "Split": Form(("const",)),
}
CV_MAX_FOLDS = 5  # nets are split into at most this many cross-validation folds


def _errors(pred: Sequence[float], ms: Sequence[float]) -> dict[str, float]:
    rel = np.abs(np.asarray(pred) - np.asarray(ms)) / np.maximum(np.asarray(ms), MIN_MS)
    return {"median_rel_error": round(float(np.median(rel)), 4),
            "mean_rel_error": round(float(np.mean(rel)), 4)}


def formula(form: Form) -> str:
    """A form as text, e.g. ``const + macs + max(macs, k_1x1)`` (each term times its coef)."""
    parts = list(form.terms) + ([f"max({form.peak[0]}, {form.peak[1]})"] if form.peak else [])
    return " + ".join(parts)


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def _fit_kind(layers: list[LayerResult], ms: list[float], form: Form) -> dict[str, Any]:
    coef = {part: {t: _sig(c) for t, c in terms.items()}
            for part, terms in fit_form(layers, ms, form).items()}
    model: dict[str, Any] = {"formula": formula(form), "coef": coef, "points": len(layers)}
    model["in_sample"] = _errors([_model_ms(model, r) for r in layers], ms)
    return model


def net_folds(nets: Sequence[str]) -> list[set[str]]:
    """Cross-validation folds over nets: one net per fold, or round-robin into
    :data:`CV_MAX_FOLDS` folds when there are more nets (sorted by name)."""
    names = sorted(set(nets))
    count = min(len(names), CV_MAX_FOLDS)
    return [set(names[i::count]) for i in range(count)]


def cross_validate(samples: Sequence[Sample], form: Form) -> float:
    """Mean over net folds of the median relative error on a fold's layers when ``form`` is
    fitted on the other folds (needs samples of at least two nets)."""
    errors = []
    for fold in net_folds([s.net for s in samples]):
        train = [s for s in samples if s.net not in fold]
        test = [s for s in samples if s.net in fold]
        model = {"coef": fit_form([s.layer for s in train], [s.ms for s in train], form)}
        rel = [abs(_model_ms(model, s.layer) - s.ms) / max(s.ms, MIN_MS) for s in test]
        errors.append(float(np.median(rel)))
    return float(np.mean(errors))


def choose_form(samples: Sequence[Sample],
                candidates: Sequence[Form]) -> tuple[Form, dict[str, Any] | None]:
    """The candidate that best predicts held-out nets (:func:`cross_validate`; ties and
    samples from fewer than two nets keep the first), and the scores that chose it."""
    if len(candidates) == 1 or len({s.net for s in samples}) < 2:
        return candidates[0], None
    scores = [cross_validate(samples, f) for f in candidates]
    best = int(np.argmin(scores))
    folds = net_folds([s.net for s in samples])
    return candidates[best], {
        "by": "cross-validation over nets (fit on the other folds, median relative error "
              "on each fold's layers, mean over folds)",
        "folds": [sorted(f) for f in folds],
        "cv_median_rel_error": {formula(f): round(e, 4) for f, e in zip(candidates, scores)}}


def fit_kinds(samples: Sequence[Sample],
              forms: Mapping[str, Form | tuple[Form, ...]] = KIND_FORMS,
              context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One fitted model per kind the samples cover, plus a ``fallback`` for the rest
    (a floor or bytes over a bandwidth, fitted on every non-GEMM layer together)."""
    by_kind: dict[str, list[Sample]] = {}
    for s in samples:
        by_kind.setdefault(timing_key(s.layer, forms, context), []).append(s)
    kinds: dict[str, Any] = {}
    for kind, group in sorted(by_kind.items()):
        choice = forms.get(kind, forms.get("*", OTHER_FORM))
        form, selection = choose_form(group, choice if isinstance(choice, tuple) else (choice,))
        kinds[kind] = _fit_kind([s.layer for s in group], [s.ms for s in group], form)
        if selection:
            kinds[kind]["selection"] = selection
    non_gemm = [s for s in samples if s.layer.layer.kind not in GEMM_KINDS
                and s.layer.layer.kind not in ("Input", "Split")]
    fallback = (_fit_kind([s.layer for s in non_gemm], [s.ms for s in non_gemm],
                          FALLBACK_FORM) if non_gemm else None)
    return {"kinds": kinds, "fallback": fallback}


def fit_profile(samples: Sequence[Sample], meta: dict, holdout: Sequence[Sample] = (),
                forms: Mapping[str, Form | tuple[Form, ...]] = KIND_FORMS) -> dict:
    """Fit every kind the samples cover; return a JSON-ready profile dict.

    ``meta`` (name, hardware, software, dtype, source/provenance, per_layer_overhead_ms,
    fusions, …) is merged in. Fit quality: points and in-sample error per kind, and the
    per-layer error on ``holdout`` samples (other nets) when given. ``forms`` picks each
    kind's formula or candidates (:data:`KIND_FORMS`; :data:`PAPER_FORMS` is Lu et al.'s plain
    form); a kind with candidates stores the cross-validation scores that chose its form.
    """
    if not samples:
        raise CnnstatError("no measured layers to fit a profile from")
    fitted = fit_kinds(samples, forms, meta.get("context"))
    profile: dict[str, Any] = {"schema": SCHEMA, **meta, **fitted}
    prof = Profile(str(meta.get("name", "fitted")), "", profile)
    nets = sorted({s.net for s in samples})
    quality: dict[str, Any] = {
        "points": len(samples), **({"nets": nets} if len(nets) <= 20 else {"net_count": len(nets)}),
        "in_sample": _errors([predict_layer(prof, s.layer)[0] for s in samples],
                             [s.ms for s in samples])}
    if holdout:
        held = sorted({s.net for s in holdout})
        quality["holdout_per_layer"] = {
            "points": len(holdout),
            **({"nets": held} if len(held) <= 20 else {"net_count": len(held)}),
            **_errors([predict_layer(prof, s.layer)[0] for s in holdout],
                      [s.ms for s in holdout])}
    profile["quality"] = {**quality, **profile.get("quality", {})}
    return profile


# ---------------------------------------------------------------------------------------
# Loading and predicting.


def profile_paths() -> dict[str, Path]:
    """Every profile by name: shipped ones, then local ones (~/.config/cnnstat/devices)."""
    found: dict[str, Path] = {}
    for folder in (DEVICES_DIR, LOCAL_DIR):
        if folder.is_dir():
            for p in sorted(folder.glob("*.json")):
                found[p.stem] = p
    return found


def load_profile(spec: str, where: str = "--device") -> Profile:
    """A shipped or local profile by name (``gtx1080``), or a path to a profile .json."""
    path = Path(spec)
    if not (spec.endswith(".json") or path.is_file()):
        known = profile_paths()
        if spec not in known:
            raise CnnstatError(f"no device profile named '{spec}' "
                               f"(known: {', '.join(sorted(known)) or 'none'}; "
                               "or give a path to a profile .json)", where)
        path = known[spec]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CnnstatError(f"cannot read device profile: {e.strerror}", str(path)) from None
    except json.JSONDecodeError as e:
        raise CnnstatError(f"not a JSON device profile ({e.msg}, line {e.lineno})",
                           str(path)) from None
    if not isinstance(data, dict) or not isinstance(data.get("kinds"), dict):
        raise CnnstatError("not a cnnstat device profile (no 'kinds' table)", str(path))
    return Profile(str(data.get("name", path.stem)), str(path), data)


# Kinds timed, when a profile has no fit of their own, by the fit of a kind doing the same work:
# a deconvolution is a convolution's GEMM transposed, an ONNX Slice copies as Caffe's does.
STAND_INS = {"Deconvolution": "Convolution", "StridedSlice": "Slice"}


def predict_layer(profile: Profile, layer: LayerResult) -> tuple[float, str | None]:
    """(forward ms, a note when the kind had no fit and a fallback model was used, else None)."""
    kind = layer.layer.kind
    model = profile.kinds.get(timing_key(layer, profile.kinds, profile.data.get("context")))
    if model is not None:
        return max(_model_ms(model, layer), 0.0), None
    stand_in = STAND_INS.get(kind)
    if stand_in in profile.kinds:
        ms = _model_ms(profile.kinds[stand_in], layer)
        return max(ms, 0.0), (f"no '{kind}' timings on {profile.name}: {stand_in}'s model "
                              "used (fallback, marked ~)")
    if layer.macs and "InnerProduct" in profile.kinds:
        ms = _model_ms(profile.kinds["InnerProduct"], layer)
        return max(ms, 0.0), (f"no '{kind}' timings on {profile.name}: InnerProduct's model "
                              "used (fallback, marked ~)")
    fallback = profile.data.get("fallback")
    if fallback:
        ms = _model_ms(fallback, layer)
        return max(ms, 0.0), (f"no '{kind}' timings on {profile.name}: "
                              "estimated from bytes moved (fallback, marked ~)")
    return 0.0, f"no '{kind}' timings on {profile.name} and no fallback: counted as 0 ms"


# ---------------------------------------------------------------------------------------
# Context: what onnxruntime runs as a node, in which layout, with which reorders.
#
# A CPU profile from ``cnnstat calibrate`` holds a ``context`` table measured on its grid
# and blocks (:mod:`analyzer.timing.blocks`): whether a layer ran a node of its own, keyed by
# the layer and the nodes that produce its inputs; whether a convolution ran in
# onnxruntime's blocked NCHWc layout, keyed by its channels per group; and how many layout
# reorders ran just before a layer's node. A prediction looks each layer up by the same
# keys, from the most specific to the least, so fusions follow what the runtime did in that
# context rather than a global list of kind pairs.


def _pow2(x: int, cap: int = 32) -> int:
    """The largest power of two dividing ``x`` (at most ``cap``; ``cap`` for 0)."""
    return cap if x <= 0 else min(x & -x, cap)


def _channels_key(x: int) -> str:
    """Channels as a layout sees them: the power-of-two part, marked ``-`` below 16 (a
    block holds 8 or 16 channels: 8 and 24 both have 8 as their part, but 8 fills no
    16-channel block)."""
    return f"{_pow2(x)}{'-' if x < 16 else ''}"


def conv_layout_key(r: LayerResult) -> str:
    """What decides whether a runtime runs a convolution in a blocked layout: its class and
    its channels per group (``grouped/8/8``, ``1x1/16/32``, :func:`_channels_key`). A
    two-group convolution, timed with the dense ones (:func:`conv_class`), is laid out as
    any grouped one: onnxruntime blocks a grouped convolution by its channels per group
    (RegNetY-1.6GF's first stage, 2 groups of 24, runs plain)."""
    if not r.in_shapes or not r.out_shapes or len(r.in_shapes[0]) < 2:
        return "other"
    g = conv_geometry(r.layer, r.in_shapes[0])
    cls = conv_class(r) or "dense"
    if cls == "depthwise":
        return f"depthwise/{_channels_key(g['c_in'])}"
    if cls == "image":
        return f"image/{_channels_key(r.out_shapes[0][1])}"
    group = max(int(g["group"]), 1)
    if group > 1:
        cls = "grouped"
    return (f"{cls}/{_channels_key(g['c_in'] // group)}/"
            f"{_channels_key(r.out_shapes[0][1] // group)}")


def signature(r: LayerResult, nchwc: bool | None = None) -> str:
    """A layer as the runtime sees it: ``Convolution/<class>[:nchwc|:plain]``,
    ``Broadcast/<op>:<same|bcast|const>`` (operands of one shape, one broadcast, or a
    constant), ``Pooling/global``, else the kind."""
    kind = r.layer.kind
    if kind == "Convolution":
        base = f"Convolution/{conv_class(r) or 'dense'}"
        return base if nchwc is None else base + (":nchwc" if nchwc else ":plain")
    if kind == "Broadcast":
        if len(r.in_shapes) < 2:
            form = "const"
        elif all(tuple(s) == tuple(r.out_shapes[0]) for s in r.in_shapes):
            form = "same"
        else:
            form = "bcast"
        return f"Broadcast/{r.layer.type}:{form}"
    if kind == "Pooling" and r.layer.attr("global_pooling"):
        return "Pooling/global"
    return kind


@dataclass(frozen=True)
class LayerContext:
    """One layer in its context: its signature, its keys (most specific first), whether it
    runs a node of its own, the layer whose node computes it, and its reorders."""

    sig: str
    keys: tuple[str, ...]
    runs: bool
    root: int
    reorders: float = 0.0  # layout reorder nodes run just before its node
    # the layout of the nearest convolution upstream ("n": NCHWc, "p": plain, "": none): a
    # pooling or element-wise node reads what that convolution wrote, in its layout
    layout: str = ""
    inputs: tuple[str, ...] = ()  # the layout each input was written in, one per bottom
    # the most specific key: the signature, its first input's node and the signatures of the
    # layers reading its output (a MatMul's bias Add folds into a GELU after it, not into
    # a layer-scale Mul: onnxruntime's BiasGelu)
    ahead: str = ""

    def moved(self, r: LayerResult) -> float:
        """Bytes of the inputs a reorder before this layer's node converts: for a
        convolution those written in the other layout, for any other node those written
        blocked (it reads plain NCHW); the smallest input when none qualifies."""
        conv = r.layer.kind == "Convolution"
        sizes = [math.prod(s) * _itemsize(r) for s in r.in_shapes]
        picked = [b for b, lay in zip(sizes, self.inputs)
                  if (lay != self.layout if conv else lay == "n")]
        return float(sum(picked) if picked else min(sizes, default=0))


def producers(report: Report) -> tuple[list[list[int]], list[int]]:
    """For each layer, the layers that wrote its bottoms (the latest writer of each), and
    for each layer the number of later layers that read what it wrote."""
    writer: dict[str, int] = {}
    prods: list[list[int]] = []
    readers = [0] * len(report.layers)
    for i, r in enumerate(report.layers):
        ps = [writer[b] for b in r.layer.bottoms if b in writer]
        prods.append(ps)
        for p in set(ps):
            readers[p] += 1
        for t in r.layer.tops:
            writer[t] = i
    return prods, readers


def walk_context(report: Report, nchwc: Callable[[int, LayerResult], bool | None],
                 decide: Callable[[int, str, tuple[str, ...]], tuple[bool, int | None]]
                 ) -> list[LayerContext]:
    """Each layer's context in execution order. ``nchwc(i, r)`` tells a convolution's
    layout; ``decide(i, sig, keys)`` whether layer ``i`` runs a node and, if not, the layer
    it is computed by (None: its first producer's node). Keys, most specific first: the
    signature with its first input's producing node and the signatures of the layers
    reading its output (``ahead``, passed to ``decide`` first), with every input's producing
    node (``*``: read by other layers too), with the first input's producing node, with that
    node's kind, and the signature alone."""
    prods, readers = producers(report)
    out: list[LayerContext] = []
    layouts = [nchwc(i, r) if r.layer.kind == "Convolution" else None
               for i, r in enumerate(report.layers)]
    sigs = [signature(r, b) for r, b in zip(report.layers, layouts)]
    reads: list[set[str]] = [set() for _ in report.layers]
    for j, ps in enumerate(prods):
        for p in ps:
            reads[p].add(sigs[j])

    def node(p: int) -> str:  # what produces a layer's input: its node, with its layout
        c = out[out[p].root]
        return c.sig if c.sig.startswith("Convolution") or not c.layout else f"{c.sig}~{c.layout}"

    for i, r in enumerate(report.layers):
        blocked, sig = layouts[i], sigs[i]
        if blocked is not None:
            layout = "n" if blocked else "p"
        else:
            layout = out[out[prods[i][0]].root].layout if prods[i] else ""
        parts = [node(p) + ("*" if readers[p] > 1 else "") for p in prods[i]]
        head = node(prods[i][0]) if prods[i] else ""
        first = (f"{sig} <- {'|'.join(sorted(parts))}", f"{sig} <- {head}",
                 f"{sig} <- {head.split('/')[0].split(':')[0].split('~')[0]}")
        keys = (*dict.fromkeys(first), sig)
        if r.layer.kind == "Input":
            out.append(LayerContext(sig, keys, False, i))
            continue
        ahead = f"{first[1]} -> {'|'.join(sorted(reads[i]))}"
        runs, into = decide(i, sig, (ahead, *keys))
        root = i if runs else (into if into is not None else
                               (out[prods[i][0]].root if prods[i] else i))
        out.append(LayerContext(sig, keys, runs, root, layout=layout,
                                inputs=tuple(out[out[p].root].layout or "p" for p in prods[i]),
                                ahead=ahead))
    return out


def _lookup(table: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for k in keys:
        if k in table:
            return table[k]
    return None


def conv_nchwc(context: Mapping[str, Any], r: LayerResult) -> bool | None:
    """Whether the profile's runtime runs this convolution in its blocked layout (None:
    the profile has no layout table)."""
    layout = context.get("conv_layout")
    if not layout:
        return None
    key = conv_layout_key(r)
    if key in layout:
        return bool(layout[key] >= 0.5)
    # an unmeasured key: the same channels per group in the other classes, else the class
    cls, _, channels = key.partition("/")
    same = ([v for k, v in layout.items() if k.partition("/")[2] == channels]
            or [v for k, v in layout.items() if k.partition("/")[0] == cls])
    return bool(same) and statistics.fmean(same) >= 0.5


def predict_context(report: Report, profile: Profile) -> list[LayerContext] | None:
    """Each layer's predicted context from the profile's measured ``context`` table, or
    None when the profile has none (a GPU profile: its ``fusions`` pairs apply)."""
    context = profile.data.get("context")
    if not isinstance(context, Mapping) or "runs" not in context:
        return None
    runs_table = context.get("runs", {})
    reorders = context.get("reorders", {})

    def decide(i: int, sig: str, keys: tuple[str, ...]) -> tuple[bool, int | None]:
        seen = _lookup(runs_table, keys)
        return (True if seen is None else seen >= 0.5), None

    walked = walk_context(report, lambda i, r: conv_nchwc(context, r), decide)
    # the count most layers of the key had (a key seen with a reorder in a few contexts only,
    # a graph input's, predicts none)
    return [replace(c, reorders=float(math.floor((_lookup(reorders, c.keys[:2]) or 0.0) + 0.5))
                    if c.runs else 0.0) for c in walked]


def reorder_ms(profile: Profile, r: LayerResult, c: LayerContext) -> float:
    """Predicted time (ms) of the layout reorders before a layer's node (the profile's
    ``Reorder`` fit over their count and the bytes they convert, :meth:`LayerContext.moved`)."""
    model = profile.kinds.get("Reorder")
    if not c.reorders or not model:
        return 0.0
    coef = model["coef"].get("sum", {})
    return max(c.reorders * coef.get("count", 0.0) + c.moved(r) * coef.get("moved_bytes", 0.0),
               0.0)


def runtime_nodes_ms(report: Report, profile: Profile) -> float:
    """Predicted ms of the nodes no layer computes: layout reorders before layers
    (:func:`predict_context`) and the graph's shape arithmetic (``Net.shape_nodes``)."""
    contexts = predict_context(report, profile)
    reorders = 0.0 if contexts is None else sum(
        reorder_ms(profile, r, c) for r, c in zip(report.layers, contexts) if c.runs)
    return reorders + report.net.shape_nodes * float(profile.data.get("shape_node_ms", 0.0))


def predict_report(report: Report, spec: str | Profile) -> Report:
    """The report with ``time_ms`` per layer and in total on a device profile.

    The total adds ``per_layer_overhead_ms`` once per layer. Fused layers cost 0 ms; fallback
    estimates and fusions are stated in the layer's warnings.
    """
    profile = spec if isinstance(spec, Profile) else load_profile(spec)
    contexts = predict_context(report, profile)
    if contexts is None:
        owner = fused_into(report.layers, profile.fusions)
    else:
        owner = [None if c.runs or report.layers[i].layer.kind == "Input" else c.root
                 for i, c in enumerate(contexts)]
    layers: list[LayerResult] = []
    grouped: dict[str, list[str]] = {}  # report-level note → the layers it applies to
    reorder_notes: list[tuple[str, float]] = []
    for r, own in zip(report.layers, owner):
        if own is not None:
            producer = report.layers[own].layer
            note: str | None = f"fused into '{producer.name}' on {profile.name}: 0 ms"
            summary = (f"{r.layer.kind} fused into the {producer.kind} before it "
                       f"on {profile.name}: 0 ms")
            ms = 0.0
        elif not r.costed:
            ms, note = 0.0, f"not costed: no time predicted on {profile.name}"
            summary = note
        else:
            ms, note = predict_layer(profile, r)
            summary = note or ""
            extra = reorder_ms(profile, r, contexts[len(layers)]) if contexts is not None else 0.0
            if extra:
                reorder_notes.append((r.layer.name, extra))
        if note:
            grouped.setdefault(summary, []).append(r.layer.name)
        layers.append(replace(r, time_ms=ms, warnings=r.warnings + ((note,) if note else ())))
    warnings = list(report.warnings)
    for summary, names in grouped.items():
        some = ", ".join(f"'{n}'" for n in names[:3]) + (", …" if len(names) > 3 else "")
        warnings.append(f"{len(names)} layer(s) ({some}): {summary}")
    total_reorder = sum(ms for _, ms in reorder_notes)
    if reorder_notes:
        warnings.append(f"total time includes the layout reorders {profile.name}'s runtime "
                        f"runs before {len(reorder_notes)} layer(s): {total_reorder:.3f} ms")
    shape_nodes = report.net.shape_nodes if "shape_node_ms" in profile.data else 0
    shape_ms = shape_nodes * float(profile.data.get("shape_node_ms", 0.0))
    if shape_ms:
        warnings.append(f"total time includes {shape_nodes} node(s) of shape arithmetic on "
                        f"the graph's symbolic dims that {profile.name}'s runtime runs on every "
                        f"call: {shape_ms:.3f} ms")
    # the runtime's own cost per node: per layer, or per node the context says runs
    nodes = (len(layers) if contexts is None else
             sum(c.runs for c in contexts) + round(sum(c.reorders for c in contexts))
             + shape_nodes)
    overhead = profile.overhead_ms * nodes
    total = sum(r.time_ms or 0.0 for r in layers) + overhead + shape_ms + total_reorder
    if overhead:
        what = "layer" if contexts is None else "node (layers that run one, and reorders)"
        warnings.append(f"total time includes {nodes} × {profile.overhead_ms * 1000:.1f} µs "
                        f"per-{what} overhead of {profile.name}")
    runtime = None
    if "runtime_memory" in profile.data:  # a calibrated CPU's memory fit; GPU profiles have none
        from analyzer.timing.runtime_memory import predict as predict_memory

        runtime = predict_memory(report, profile.data)
    return replace(report, layers=tuple(layers),
                   totals=replace(report.totals, time_ms=total, runtime_peak_bytes=runtime),
                   warnings=tuple(warnings), device=profile.name)
