"""Fitting a device profile from measured layer times (the command is
:mod:`analyzer.commands.fit`).

Three sources of measurements, each naming the model it timed:

- ``--caffe-log LOG --model NET --batch B`` (repeatable triples): ``caffe time`` output;
- ``--tsv FILE``: rows ``net  layer  batch  forward_ms`` (a header line and ``#`` comments
  allowed); ``net`` is a model path (relative to the TSV) or a name given by ``--net NAME=PATH``;
- ``--ck-tsv FILE --experiment-suffix SUFFIX``: the Collective Knowledge ``caffe time``
  tables in ``../shared/validation/public_timings`` (median over repetitions, forward only);
  ``--summary`` gives the per-net totals, ``--holdout NET`` keeps nets out of the fit and
  stores their whole-net and per-layer errors in the profile.

Layer names are matched to the IR's layers (Caffe's auto-inserted Splits included); rows that
match nothing are listed on stderr. Caffe's ``time`` runs the TRAIN phase, so models are read
with phase train. ``-o`` writes the profile JSON, ``--install`` writes it where
``cnnstat devices`` and ``--device NAME`` find local profiles; else it goes to stdout.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.analysis import Options, Report, analyze
from analyzer.errors import CnnstatError
from analyzer.frontends.load import load_net
from analyzer.timing.caffe_log import read_caffe_time
from analyzer.timing.profile import (
    KIND_FORMS,
    Profile,
    Sample,
    fit_profile,
    predict_report,
)

# CK experiment prefix → (short net name, model file in ../shared/corpus/caffe)
CK_NETS = {
    "bvlc-alexnet": ("alexnet", "bvlc_alexnet_deploy.prototxt"),
    "bvlc-googlenet": ("googlenet", "bvlc_googlenet_deploy.prototxt"),
    "deepscale-squeezenet-1.0": ("squeezenet1.0", "squeezenet_v1.0_deploy.prototxt"),
    "deepscale-squeezenet-1.1": ("squeezenet1.1", "squeezenet_v1.1_deploy.prototxt"),
}
SHARE_FLOOR = 0.01  # per-layer errors are reported over layers taking ≥ 1 % of the net's time


@dataclass(frozen=True)
class Run:
    """One timed net at one batch: its analysis, matched samples and measured forward total."""

    net: str
    batch: int
    report: Report
    samples: tuple[Sample, ...]
    total_ms: float | None  # the tool's forward-pass total (ms), when known
    unmatched: tuple[str, ...] = ()


def analyse_model(path: str, batch: int) -> Report:
    """The model at ``batch`` as ``caffe time`` runs it (TRAIN phase)."""
    return analyze(load_net(path, phase="train", batch=batch), Options(batch=batch))


def match_run(net: str, report: Report, times: Sequence[tuple[str, float]],
              total_ms: float | None) -> Run:
    """Pair (layer name, ms) rows with the report's layers by name.

    A row whose name matches no layer is paired by position when it is the first row and
    the first layer is an Input (CK's SqueezeNet 1.0 calls its input layer ``input``).
    """
    by_name = {r.layer.name: r for r in report.layers}
    used: set[str] = set()
    samples: list[Sample] = []
    unmatched: list[str] = []
    for i, (name, ms) in enumerate(times):
        r = by_name.get(name)
        if r is None and i == 0 and report.layers and report.layers[0].layer.kind == "Input":
            r = report.layers[0]
        if r is None or r.layer.name in used:
            unmatched.append(name)
            continue
        used.add(r.layer.name)
        samples.append(Sample(r, ms, net))
    return Run(net, report.batch or 0, report, tuple(samples), total_ms, tuple(unmatched))


def overhead_ms(runs: Sequence[Run]) -> float:
    """Median per-layer gap between the forward total and the sum of the layer times (ms)."""
    gaps = [(r.total_ms - sum(s.ms for s in r.samples)) / len(r.report.layers)
            for r in runs if r.total_ms is not None and r.report.layers]
    return max(statistics.median(gaps), 0.0) if gaps else 0.0


# ---------------------------------------------------------------------------------------
# Sources.


def _tsv_rows(path: str) -> list[dict[str, str]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise CnnstatError(f"cannot read: {e.strerror}", path) from None
    lines = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise CnnstatError("empty table", path)
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


def _need(row: dict[str, str], cols: Sequence[str], path: str) -> None:
    missing = [c for c in cols if c not in row]
    if missing:
        raise CnnstatError(f"missing column(s) {', '.join(missing)}", path)


def ck_runs(per_layer: str, suffix: str, corpus: str, summary: str | None = None) -> list[Run]:
    """Runs of the CK experiments named ``<net>-<suffix>`` (forward, median over reps)."""
    times: dict[tuple[str, int], dict[str, list[float]]] = {}
    rows = _tsv_rows(per_layer)
    if rows:
        _need(rows[0], ("experiment", "batch", "layer_label", "direction", "time_ms"), per_layer)
    for row in rows:
        exp = row["experiment"]
        prefix = exp[: -len(suffix) - 1] if exp.endswith("-" + suffix) else None
        if prefix not in CK_NETS or row["direction"] != "forward":
            continue
        cell = times.setdefault((prefix, int(row["batch"])), {})
        cell.setdefault(row["layer_label"], []).append(float(row["time_ms"]))
    totals: dict[tuple[str, int], list[float]] = {}
    if summary:
        for row in _tsv_rows(summary):
            exp = row["experiment"]
            prefix = exp[: -len(suffix) - 1] if exp.endswith("-" + suffix) else None
            if prefix in CK_NETS and row.get("cmd_key", "time_gpu") == "time_gpu":
                totals.setdefault((prefix, int(row["batch"])), []).append(
                    float(row["time_fw_ms"]))
    if not times:
        raise CnnstatError(f"no forward rows for experiments ending in '-{suffix}'", per_layer)
    runs = []
    for (prefix, batch), labels in sorted(times.items()):
        net, model = CK_NETS[prefix]
        report = analyse_model(str(Path(corpus) / model), batch)
        ordered = sorted(labels.items(), key=lambda kv: int(kv[0].split(":", 1)[0]))
        rows_ms = [(label.split(": ", 1)[1], statistics.median(v)) for label, v in ordered]
        total = totals.get((prefix, batch))
        runs.append(match_run(net, report, rows_ms,
                              statistics.median(total) if total else None))
    return runs


def log_runs(triples: Sequence[tuple[str, str, int]]) -> list[Run]:
    """Runs from ``caffe time`` logs, each with the model it timed and the batch."""
    runs = []
    for log, model, batch in triples:
        t = read_caffe_time(log)
        runs.append(match_run(Path(model).stem, analyse_model(model, batch),
                              list(t.forward_ms.items()), t.forward_total_ms))
    return runs


def tsv_runs(path: str, nets: dict[str, str]) -> list[Run]:
    """Runs from a (net, layer, batch, forward_ms) table."""
    rows = _tsv_rows(path)
    if rows:
        _need(rows[0], ("net", "layer", "batch", "forward_ms"), path)
    groups: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for row in rows:
        try:
            key = (row["net"], int(row["batch"]))
            groups.setdefault(key, []).append((row["layer"], float(row["forward_ms"])))
        except ValueError:
            raise CnnstatError(f"bad number in row {row}", path) from None
    runs = []
    for (net, batch), times in groups.items():
        model = nets.get(net) or str(Path(path).parent / net)
        runs.append(match_run(Path(net).stem if net not in nets else net,
                              analyse_model(model, batch), times, None))
    return runs


# ---------------------------------------------------------------------------------------
# Held-out quality.


def run_quality(profile: Profile | dict, runs: Sequence[Run]) -> dict[str, Any]:
    """Whole-net error per run (vs the measured total), and per-layer error over layers that
    take ≥ 1 % of their run's measured time: pooled over the runs and per run (``per_run``)."""
    prof = profile if isinstance(profile, Profile) else Profile(
        str(profile.get("name", "fitted")), "", profile)
    totals = []
    per_run = []
    layer_errors: list[float] = []
    for run in runs:
        pred = predict_report(run.report, prof)
        by_name = {r.layer.name: r.time_ms or 0.0 for r in pred.layers}
        measured_sum = sum(s.ms for s in run.samples)
        errors = [abs(by_name[s.layer.layer.name] - s.ms) / s.ms for s in run.samples
                  if s.ms >= SHARE_FLOOR * measured_sum]
        layer_errors += errors
        if errors:
            per_run.append({"net": run.net, "batch": run.batch, "points": len(errors),
                            "median_rel_error": round(statistics.median(errors), 4)})
        if run.total_ms is not None:
            p = pred.totals.time_ms or 0.0
            totals.append({"net": run.net, "batch": run.batch,
                           "measured_ms": round(run.total_ms, 4), "predicted_ms": round(p, 4),
                           "rel_error": round((p - run.total_ms) / run.total_ms, 4)})
    out: dict[str, Any] = {"totals": totals}
    if layer_errors:
        out["per_layer_ge_1pct"] = {
            "points": len(layer_errors),
            "median_rel_error": round(statistics.median(layer_errors), 4),
            "mean_rel_error": round(statistics.fmean(layer_errors), 4),
            "per_run": per_run}
    return out


def build_profile(runs: Sequence[Run], holdout: Sequence[str], meta: dict[str, Any],
                  forms: dict | None = None) -> dict[str, Any]:
    """Fit on the runs not held out; store the held-out runs' errors in the profile."""
    unknown = sorted(set(holdout) - {r.net for r in runs})
    if unknown:
        raise CnnstatError(f"--holdout names {', '.join(unknown)}, which no measurement covers "
                           f"(nets: {', '.join(sorted({r.net for r in runs}))})")
    train = [r for r in runs if r.net not in holdout]
    test = [r for r in runs if r.net in holdout]
    if not train:
        raise CnnstatError("every net is held out: nothing left to fit")
    meta = {"per_layer_overhead_ms": round(overhead_ms(train), 6), **meta}
    profile = fit_profile([s for r in train for s in r.samples], meta,
                          [s for r in test for s in r.samples], forms=forms or KIND_FORMS)
    profile["quality"]["in_sample_runs"] = run_quality(profile, train)
    if test:
        profile["quality"]["holdout_runs"] = run_quality(profile, test)
    return profile
