"""The time model: NNLS, `caffe time` parsing, `cnnstat fit`, prediction, shipped profiles.

Recorded inputs only: the fixtures in tests/data (CK's GTX 1080 AlexNet timings in Caffe's
log format and as a TSV) and, where present, the public CK tables in ../shared.
"""

from __future__ import annotations

import itertools
import json
import statistics

import numpy as np
import pytest
from conftest import CAFFE_CORPUS, MODELS, REPO, TIMINGS, need, read_tsv

from analyzer.analysis import Options, analyze
from analyzer.commands import cli
from analyzer.errors import CnnstatError
from analyzer.frontends.load import load_net
from analyzer.timing.caffe_log import parse_caffe_time, read_caffe_time
from analyzer.timing.fit import (
    analyse_model,
    build_profile,
    ck_runs,
    log_runs,
    overhead_ms,
    tsv_runs,
)
from analyzer.timing.profile import (
    CONV_FORM,
    CONV_WINOGRAD_FORM,
    CPU_KIND_FORMS,
    FEATURES,
    Form,
    Profile,
    Sample,
    choose_form,
    conv_class,
    fit_profile,
    formula,
    is_winograd_shape,
    load_profile,
    net_folds,
    nnls,
    predict_layer,
    predict_report,
    timing_key,
)

DATA = REPO / "tests" / "data"
ALEXNET = str(MODELS / "alexnet.prototxt")
LOGS = [(str(DATA / f"caffe_time_alexnet_b{b}.log"), ALEXNET, b) for b in (2, 8)]


# ---------------------------------------------------------------------------------------
# NNLS


def _brute_nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Best least-squares solution over every subset of free columns with all coefs ≥ 0."""
    best, best_err = np.zeros(a.shape[1]), float(np.sum(b ** 2))
    for r in range(1, a.shape[1] + 1):
        for cols in itertools.combinations(range(a.shape[1]), r):
            x = np.zeros(a.shape[1])
            x[list(cols)] = np.linalg.lstsq(a[:, cols], b, rcond=None)[0]
            err = float(np.sum((a @ x - b) ** 2))
            if (x >= 0).all() and err < best_err - 1e-12:
                best, best_err = x, err
    return best


def test_nnls_matches_brute_force_on_random_problems():
    rng = np.random.default_rng(5)
    for _ in range(30):
        a = rng.normal(size=(12, 4))
        b = rng.normal(size=12)
        np.testing.assert_allclose(nnls(a, b), _brute_nnls(a, b), atol=1e-9)


def test_nnls_recovers_exact_nonnegative_coefficients():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, size=(40, 3))
    np.testing.assert_allclose(nnls(a, a @ np.array([2.0, 0.0, 0.5])), [2.0, 0.0, 0.5],
                               atol=1e-10)


# ---------------------------------------------------------------------------------------
# caffe time logs


def test_caffe_log_reads_every_layer_and_the_forward_total():
    t = read_caffe_time(LOGS[0][0])
    assert list(t.forward_ms)[:3] == ["data", "conv1", "relu1"]
    assert len(t.forward_ms) == len(t.backward_ms) == 24
    assert t.forward_ms["conv1"] == 0.156864
    assert t.forward_ms["prob"] == 0.012352 and t.backward_ms["conv1"] == 0.219136
    assert t.forward_total_ms == 2.29418


def test_caffe_log_without_layer_lines_is_a_user_error():
    with pytest.raises(CnnstatError, match="not a 'caffe time' log"):
        parse_caffe_time("I1125 caffe.cpp:404] *** Benchmark begins ***\n", "x.log")


def test_log_layers_match_every_ir_layer_and_overhead_is_the_per_layer_gap():
    runs = log_runs(LOGS)
    for run, (log, _, batch) in zip(runs, LOGS):
        t = read_caffe_time(log)
        assert run.unmatched == ()
        assert [s.layer.layer.name for s in run.samples] == list(t.forward_ms)
        assert run.samples[1].layer.in_shapes[0] == (batch, 3, 227, 227)
    gaps = [(r.total_ms - sum(s.ms for s in r.samples)) / 24 for r in runs]
    assert overhead_ms(runs) == pytest.approx(statistics.median(gaps))
    assert 0.003 < overhead_ms(runs) < 0.010  # GTX 1080: a few µs per layer


def test_tsv_rows_report_the_layer_they_cannot_match():
    (run,) = tsv_runs(str(DATA / "alexnet_gtx1080_b4.tsv"), {"alexnet": ALEXNET})
    assert run.batch == 4 and run.unmatched == ("conv9",)
    assert len(run.samples) == 24 and run.total_ms is None


# ---------------------------------------------------------------------------------------
# Fitting and predicting


def _fixture_profile(**meta) -> dict:
    runs = log_runs(LOGS) + tsv_runs(str(DATA / "alexnet_gtx1080_b4.tsv"),
                                     {"alexnet": ALEXNET})
    return build_profile(runs, [], {"name": "fixture", **meta})


def test_fit_covers_every_kind_and_reproduces_the_measured_layers():
    profile = _fixture_profile()
    assert set(profile["kinds"]) == {"Input", "Convolution", "ReLU", "LRN", "Pooling",
                                     "InnerProduct", "Dropout", "Softmax"}
    assert profile["kinds"]["Convolution"]["points"] == 15  # 5 convs × 3 batches
    assert profile["quality"]["points"] == 72
    for model in profile["kinds"].values():
        assert all(c >= 0 for part in model["coef"].values() for c in part.values())
    # layers taking ≥ 1 % of the time: the fit reproduces them to within 10 % (median)
    assert profile["quality"]["in_sample_runs"]["per_layer_ge_1pct"]["median_rel_error"] < 0.10
    for t in profile["quality"]["in_sample_runs"]["totals"]:
        assert abs(t["rel_error"]) < 0.05


def test_fit_profile_interface_merges_meta_and_scores_holdout():
    runs = log_runs(LOGS)
    profile = fit_profile(list(runs[0].samples), {"name": "x", "hardware": "h"},
                          holdout=list(runs[1].samples))
    assert profile["name"] == "x" and profile["hardware"] == "h"
    assert profile["quality"]["holdout_per_layer"]["points"] == 24
    with pytest.raises(CnnstatError):
        fit_profile([], {"name": "x"})


def test_predict_report_total_is_layers_plus_overhead():
    profile = Profile("fixture", "", _fixture_profile())
    report = predict_report(analyse_model(ALEXNET, 8), profile)
    layer_sum = sum(r.time_ms for r in report.layers)
    assert report.device == "fixture"
    assert report.totals.time_ms == pytest.approx(layer_sum + 24 * profile.overhead_ms)
    measured = read_caffe_time(LOGS[1][0]).forward_total_ms
    assert report.totals.time_ms == pytest.approx(measured, rel=0.05)


def test_fusions_zero_the_consumer_and_say_so():
    data = {**_fixture_profile(), "fusions": [["Convolution", "ReLU"]]}
    plain = predict_report(analyse_model(ALEXNET, 2), Profile("p", "", _fixture_profile()))
    fused = predict_report(analyse_model(ALEXNET, 2), Profile("f", "", data))
    by_name = {r.layer.name: r for r in fused.layers}
    for relu in ("relu1", "relu2", "relu3", "relu4", "relu5"):
        assert by_name[relu].time_ms == 0.0
        assert any("fused into 'conv" in w for w in by_name[relu].warnings)
    assert by_name["relu6"].time_ms > 0  # follows an InnerProduct, not a Convolution
    saved = sum(r.time_ms for r in plain.layers if r.layer.name in
                {"relu1", "relu2", "relu3", "relu4", "relu5"})
    assert fused.totals.time_ms == pytest.approx(plain.totals.time_ms - saved)


def test_fusion_chains_through_a_fused_layer(tmp_path):
    proto = tmp_path / "cbr.prototxt"
    proto.write_text("""
input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "c" type: "Convolution" bottom: "data" top: "c"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" }
layer { name: "r" type: "ReLU" bottom: "c" top: "c" }
""")
    data = {**_fixture_profile(), "fusions": [["Convolution", "BatchNorm"],
                                              ["Convolution", "ReLU"]]}
    report = predict_report(analyze(load_net(str(proto))), Profile("f", "", data))
    times = {r.layer.name: r.time_ms for r in report.layers}
    assert times["bn"] == 0.0 and times["r"] == 0.0 and times["c"] > 0


def test_a_residual_add_fuses_whichever_input_the_conv_feeds(tmp_path):
    proto = tmp_path / "res.prototxt"
    body = """
input: "data" input_shape { dim: 1 dim: 4 dim: 8 dim: 8 }
layer { name: "c" type: "Convolution" bottom: "data" top: "c"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "sum" type: "Eltwise" bottom: BOTTOMS top: "sum" }
"""
    data = {**_fixture_profile(), "fusions": [["Convolution", "Eltwise"]]}
    for bottoms in ('"data" bottom: "c"', '"c" bottom: "data"'):
        proto.write_text(body.replace("BOTTOMS", bottoms))
        report = predict_report(analyze(load_net(str(proto))), Profile("f", "", data))
        assert {r.layer.name: r.time_ms for r in report.layers}["sum"] == 0.0, bottoms
    proto.write_text(body.replace("BOTTOMS", '"data" bottom: "data"'))  # reads no conv
    report = predict_report(analyze(load_net(str(proto))), Profile("f", "", data))
    assert {r.layer.name: r.time_ms for r in report.layers}["sum"] > 0.0


def test_uncovered_kind_gets_a_flagged_fallback(tmp_path):
    proto = tmp_path / "bn.prototxt"
    proto.write_text("""
input: "data" input_shape { dim: 2 dim: 16 dim: 32 dim: 32 }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
layer { name: "up" type: "Deconvolution" bottom: "bn" top: "up"
        convolution_param { num_output: 8 kernel_size: 2 stride: 2 } }
""")
    profile = Profile("fixture", "", _fixture_profile())
    report = analyze(load_net(str(proto)))
    bn, up = report.layers[1], report.layers[2]
    ms, note = predict_layer(profile, bn)
    assert ms > 0 and "fallback" in note
    ms_up, note_up = predict_layer(profile, up)
    assert ms_up > 0 and "Convolution's model" in note_up
    predicted = predict_report(report, profile)
    assert any("fallback" in w for w in predicted.warnings)
    assert predict_layer(profile, report.layers[0])[1] is None  # Input is covered


# ---------------------------------------------------------------------------------------
# Command line


def test_cnnstat_fit_writes_a_profile_and_lists_unmatched_rows(tmp_path, capsys):
    out = tmp_path / "mine.json"
    argv = ["fit", "--name", "mine", "--tsv", str(DATA / "alexnet_gtx1080_b4.tsv"),
            "--net", f"alexnet={ALEXNET}", "--fusion", "Convolution+ReLU", "-o", str(out)]
    for log, model, batch in LOGS:
        argv += ["--caffe-log", log, "--model", model, "--batch", str(batch)]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "alexnet batch 4: 1 row(s) match no layer: conv9" in err
    profile = json.loads(out.read_text())
    assert profile["name"] == "mine" and profile["fusions"] == [["Convolution", "ReLU"]]
    assert profile["quality"]["points"] == 72
    assert load_profile(str(out)).name == "mine"


def test_cnnstat_fit_needs_a_model_per_log(capsys):
    assert cli.main(["fit", "--caffe-log", LOGS[0][0]]) == 2
    assert "--caffe-log LOG --model NET --batch B" in capsys.readouterr().err


def test_device_option_fills_time_in_json(capsys):
    assert cli.main([ALEXNET, "--device", "jetson-tx1", "--batch", "4", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["device"] == "jetson-tx1"
    times = [layer["time_ms"] for layer in doc["layers"]]
    assert all(t is not None and t >= 0 for t in times)
    overhead = load_profile("jetson-tx1").overhead_ms
    assert doc["totals"]["time_ms"] == pytest.approx(sum(times) + len(times) * overhead)


def test_unknown_device_is_one_line_error(capsys):
    assert cli.main([ALEXNET, "--device", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnstat: --device: no device profile named 'nosuch'")
    assert "gtx1080" in err and "\n" not in err


def test_cnnstat_devices_lists_both_shipped_profiles(capsys):
    assert cli.main(["devices", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"gtx1080", "jetson-tx1"} <= set(rows)
    assert rows["gtx1080"]["shipped"] and rows["gtx1080"]["holdout_nets"] == ["googlenet"]
    assert cli.main(["devices", "gtx1080"]) == 0
    assert "Convolution" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# Shipped profiles against the public CK data (GoogLeNet held out)

DEVICES = [("gtx1080", "gtx1080", "cudnn"), ("jetson-tx1", "jetson_tx1", "nvidia-cudnn")]


# Issue 5 targets for held-out GoogLeNet: forward total within ±10 % at every batch, median
# per-layer error (layers ≥ 1 % of the time) ≤ 15 % at every batch. One known gap remains
# (see benchmarks/bench_time_ck.py): the GTX 1080 at batch 16, where GoogLeNet's 3×3 stride-1
# convolutions run faster and its stride-1 poolings slower than anything in the training nets.
LAYER_TARGET = 0.15
KNOWN_GAPS = {("gtx1080", 16): 0.17}


@pytest.mark.parametrize("name", ["gtx1080", "jetson-tx1"])
def test_shipped_profile_stores_heldout_errors_within_targets(name):
    q = load_profile(name).data["quality"]
    assert q["nets"] == ["alexnet", "squeezenet1.0", "squeezenet1.1"]
    totals = q["holdout_runs"]["totals"]
    assert [t["batch"] for t in totals] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert all(t["net"] == "googlenet" and abs(t["rel_error"]) <= 0.10 for t in totals)
    assert q["holdout_runs"]["per_layer_ge_1pct"]["median_rel_error"] <= LAYER_TARGET
    per_run = q["holdout_runs"]["per_layer_ge_1pct"]["per_run"]
    assert [(r["net"], r["batch"]) for r in per_run] == [("googlenet", b) for b in range(2, 17, 2)]
    for r in per_run:
        assert r["points"] >= 20  # GoogLeNet has 20-odd layers taking ≥ 1 % at every batch
        assert r["median_rel_error"] <= KNOWN_GAPS.get((name, r["batch"]), LAYER_TARGET), r
    # the gap is real: were it closed, KNOWN_GAPS must go
    for (dev, batch), bound in KNOWN_GAPS.items():
        if dev == name:
            median = next(r["median_rel_error"] for r in per_run if r["batch"] == batch)
            assert LAYER_TARGET < median <= bound


@pytest.mark.parametrize("name,conv_form", [("gtx1080", CONV_WINOGRAD_FORM),
                                            ("jetson-tx1", CONV_FORM)])
def test_shipped_conv_form_is_the_cross_validation_winner(name, conv_form):
    """Each device's convolution form was picked by leave-one-net-out CV on the training nets
    (GoogLeNet plays no part): the Winograd-shape form on the GTX 1080, the plain one on the TX1."""
    conv = load_profile(name).data["kinds"]["Convolution"]
    assert conv["formula"] == formula(conv_form)
    sel = conv["selection"]
    assert sel["folds"] == [["alexnet"], ["squeezenet1.0"], ["squeezenet1.1"]]
    scores = sel["cv_median_rel_error"]
    assert set(scores) == {formula(CONV_FORM), formula(CONV_WINOGRAD_FORM)}
    assert scores[conv["formula"]] == min(scores.values())


@pytest.mark.parametrize("name,file,suffix", DEVICES)
def test_googlenet_prediction_meets_ck_totals(name, file, suffix):
    summary = read_tsv(need(TIMINGS / f"ck_caffe_{file}_summary.tsv"))
    proto = str(need(CAFFE_CORPUS / "bvlc_googlenet_deploy.prototxt"))
    profile = load_profile(name)
    stored = {t["batch"]: t for t in profile.data["quality"]["holdout_runs"]["totals"]}
    for batch in range(2, 17, 2):
        measured = statistics.median(
            float(r["time_fw_ms"]) for r in summary
            if r["experiment"] == f"bvlc-googlenet-{suffix}" and int(r["batch"]) == batch)
        net = load_net(proto, phase="train")
        predicted = predict_report(analyze(net, Options(batch=batch)), profile).totals.time_ms
        assert predicted == pytest.approx(stored[batch]["predicted_ms"], rel=1e-4)
        assert abs(predicted - measured) / measured <= 0.10, (name, batch)


@pytest.mark.parametrize("name,file,suffix", DEVICES)
def test_shipped_profile_is_what_fit_rebuilds_from_shared(name, file, suffix):
    runs = ck_runs(str(need(TIMINGS / f"ck_caffe_{file}_per_layer.tsv")), suffix,
                   str(CAFFE_CORPUS), str(TIMINGS / f"ck_caffe_{file}_summary.tsv"))
    assert all(r.unmatched == () for r in runs)
    assert {(r.net, r.batch) for r in runs} == {
        (n, b) for n in ("alexnet", "googlenet", "squeezenet1.0", "squeezenet1.1")
        for b in range(2, 17, 2)}
    rebuilt = build_profile(runs, ["googlenet"], {"name": name})
    shipped = load_profile(name).data
    assert rebuilt["per_layer_overhead_ms"] == shipped["per_layer_overhead_ms"]
    assert rebuilt["kinds"] == shipped["kinds"]
    assert rebuilt["quality"]["holdout_runs"] == shipped["quality"]["holdout_runs"]
    # the per-layer overhead CK's totals show: ~5.6 µs on the GTX 1080, ~52 µs on the TX1
    assert {"gtx1080": 0.005, "jetson-tx1": 0.050}[name] < shipped["per_layer_overhead_ms"] \
        < {"gtx1080": 0.007, "jetson-tx1": 0.055}[name]


# ---------------------------------------------------------------------------------------
# Winograd-shape feature and cross-validated form choice


def test_winograd_shape_is_3x3_stride1_undilated_not_depthwise(tmp_path):
    alex = {r.layer.name: r for r in analyse_model(ALEXNET, 2).layers}
    assert [n for n in ("conv1", "conv2", "conv3", "conv4", "conv5")
            if is_winograd_shape(alex[n])] == ["conv3", "conv4", "conv5"]  # conv4/5: group 2
    assert not is_winograd_shape(alex["pool1"])
    proto = tmp_path / "w.prototxt"
    proto.write_text("""
input: "data" input_shape { dim: 1 dim: 8 dim: 16 dim: 16 }
layer { name: "s2" type: "Convolution" bottom: "data" top: "s2"
        convolution_param { num_output: 8 kernel_size: 3 stride: 2 } }
layer { name: "dil" type: "Convolution" bottom: "data" top: "dil"
        convolution_param { num_output: 8 kernel_size: 3 dilation: 2 } }
layer { name: "dw" type: "Convolution" bottom: "data" top: "dw"
        convolution_param { num_output: 8 kernel_size: 3 group: 8 } }
layer { name: "w" type: "Convolution" bottom: "data" top: "w"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
""")
    layers = {r.layer.name: r for r in analyze(load_net(str(proto))).layers}
    assert {n: is_winograd_shape(r) for n, r in layers.items()
            if r.layer.kind == "Convolution"} == {
        "s2": False, "dil": False, "dw": False, "w": True}
    w = layers["w"]  # 1×4×16×16 output, k = 8·9: MACs split, im2col = k·m
    assert FEATURES["winograd_macs"](w) == w.macs == 4 * 16 * 16 * 72
    assert FEATURES["direct_macs"](w) == 0 and FEATURES["direct_macs"](layers["s2"]) > 0
    assert FEATURES["im2col"](w) == 72 * 16 * 16


def test_net_folds_are_one_per_net_up_to_five():
    assert net_folds(["b", "a", "b"]) == [{"a"}, {"b"}]
    folds = net_folds([f"n{i}" for i in range(12)])
    assert len(folds) == 5 and set().union(*folds) == {f"n{i}" for i in range(12)}
    assert sorted(len(f) for f in folds) == [2, 2, 2, 3, 3]


def _conv_samples(ms_of) -> list[Sample]:
    """AlexNet's convolutions at batch 2, 4, 8 (one "net" per batch) timed by ``ms_of``."""
    return [Sample(r, ms_of(r), f"alexnet-b{b}") for b in (2, 4, 8)
            for r in analyse_model(ALEXNET, b).layers if r.layer.kind == "Convolution"]


def test_cross_validation_picks_the_form_that_generated_the_times():
    def winograd_ms(r):  # a device where 3×3 stride-1 MACs run 4× faster than the others
        return (0.03 + 1e-10 * FEATURES["winograd_macs"](r) + 4e-10 * FEATURES["direct_macs"](r)
                + 2e-9 * FEATURES["im2col"](r))

    form, sel = choose_form(_conv_samples(winograd_ms), (CONV_FORM, CONV_WINOGRAD_FORM))
    assert form == CONV_WINOGRAD_FORM
    scores = sel["cv_median_rel_error"]
    assert scores[formula(CONV_WINOGRAD_FORM)] < 0.01 < scores[formula(CONV_FORM)]
    assert len(sel["folds"]) == 3
    # times linear in MACs alone: both forms fit them, the tie keeps the first (simpler) one
    form, _ = choose_form(_conv_samples(lambda r: 0.02 + 3e-10 * r.macs),
                          (CONV_FORM, CONV_WINOGRAD_FORM))
    assert form == CONV_FORM


def test_fit_of_one_net_keeps_the_first_form_and_stores_no_selection():
    profile = fit_profile(list(log_runs(LOGS)[0].samples), {"name": "one"})
    conv = profile["kinds"]["Convolution"]
    assert conv["formula"] == formula(CONV_FORM) and "selection" not in conv


def test_samples_carry_their_net_for_holdout_splits():
    run = log_runs(LOGS[:1])[0]
    assert all(isinstance(s, Sample) and s.net == "alexnet" for s in run.samples)


def test_zero_ms_samples_do_not_swamp_the_fit():
    """A runtime may fold a layer away (0 ms): weighted as 1 µs, not infinitely."""
    run = log_runs(LOGS[:1])[0]
    zeroed = [Sample(s.layer, 0.0 if s.layer.layer.kind == "Dropout" else s.ms, s.net)
              for s in run.samples]
    profile = fit_profile(zeroed, {"name": "z"})
    dropout = next(s.layer for s in zeroed if s.layer.layer.kind == "Dropout")
    assert predict_layer(Profile("z", "", profile), dropout)[0] == pytest.approx(0.0, abs=1e-9)
    assert profile["quality"]["in_sample"]["median_rel_error"] < 0.2
    assert np.isfinite(profile["quality"]["in_sample"]["mean_rel_error"])


def test_holdout_of_an_unmeasured_net_is_a_user_error():
    with pytest.raises(CnnstatError, match="--holdout names vgg16"):
        build_profile(log_runs(LOGS), ["vgg16"], {"name": "x"})


CLASSES = """
input: "data" input_shape { dim: 1 dim: 32 dim: 16 dim: 16 }
layer { name: "dw" type: "Convolution" bottom: "data" top: "dw"
        convolution_param { num_output: 32 kernel_size: 3 pad: 1 group: 32 } }
layer { name: "g4" type: "Convolution" bottom: "data" top: "g4"
        convolution_param { num_output: 32 kernel_size: 1 group: 4 } }
layer { name: "pw" type: "Convolution" bottom: "data" top: "pw"
        convolution_param { num_output: 16 kernel_size: 1 } }
layer { name: "k3" type: "Convolution" bottom: "data" top: "k3"
        convolution_param { num_output: 16 kernel_size: 3 } }
layer { name: "mult" type: "Convolution" bottom: "data" top: "mult"
        convolution_param { num_output: 64 kernel_size: 3 group: 32 } }
layer { name: "g2" type: "Convolution" bottom: "data" top: "g2"
        convolution_param { num_output: 32 kernel_size: 3 group: 2 } }
"""


def test_conv_classes_and_which_profile_entry_times_a_layer(tmp_path):
    proto = tmp_path / "classes.prototxt"
    proto.write_text(CLASSES)
    layers = {r.layer.name: r for r in analyze(load_net(str(proto))).layers}
    # a depthwise multiplier of 2 (64 outputs from 32 groups) is grouped, not depthwise;
    # AlexNet's two groups are dense
    assert {n: conv_class(r) for n, r in layers.items() if r.layer.kind == "Convolution"} == {
        "dw": "depthwise", "g4": "grouped", "pw": "1x1", "k3": "", "mult": "grouped", "g2": ""}
    # a GPU profile has one Convolution entry; a CPU one a class's entry where it has one
    assert timing_key(layers["dw"], {"Convolution": {}}) == "Convolution"
    assert timing_key(layers["dw"], CPU_KIND_FORMS) == "Convolution/depthwise"
    assert timing_key(layers["k3"], CPU_KIND_FORMS) == "Convolution"
    assert timing_key(layers["g4"], CPU_KIND_FORMS) == "Convolution/grouped"
    assert timing_key(layers["g2"], CPU_KIND_FORMS) == "Convolution"
    assert timing_key(layers["g4"], {"Convolution": {}, "Convolution/1x1": {}}) == "Convolution"
    alexnet = {r.layer.name: conv_class(r) for r in analyze(load_net(ALEXNET)).layers
               if r.layer.kind == "Convolution"}
    # conv1 reads the RGB image; conv2, 4, 5 have two groups and stay dense
    assert alexnet == {"conv1": "image", "conv2": "", "conv3": "", "conv4": "", "conv5": ""}
    assert timing_key(layers["k3"], {"Convolution": {}, "Convolution/image": {}}) == "Convolution"
    assert timing_key(layers["pw"], {"Convolution": {}, "Convolution/depthwise": {}}) == (
        "Convolution")


def test_each_conv_class_gets_its_own_fit_when_the_forms_name_it(tmp_path):
    """Times where depthwise MACs cost 20× dense ones: one shared fit cannot follow both,
    a fit per class reproduces each."""
    proto = tmp_path / "classes.prototxt"
    samples = []
    for size in (8, 12, 16, 24, 32):
        proto.write_text(CLASSES.replace("dim: 16 dim: 16", f"dim: {size} dim: {size}"))
        for r in analyze(load_net(str(proto))).layers:
            if r.layer.kind == "Convolution":
                rate = 2e-8 if conv_class(r) == "depthwise" else 1e-9
                samples.append(Sample(r, 0.005 + rate * r.macs, f"s{size}"))
    forms = {"Convolution": CONV_FORM, "Convolution/depthwise": Form(("const", "macs"))}
    profile = Profile("c", "", fit_profile(samples, {"name": "c"}, forms=forms))
    assert set(profile.kinds) == {"Convolution", "Convolution/depthwise"}
    assert profile.kinds["Convolution/depthwise"]["points"] == 5
    for s in samples:
        assert predict_layer(profile, s.layer)[0] == pytest.approx(s.ms, rel=0.02)
    shared = Profile("s", "", fit_profile(samples, {"name": "s"}, forms={"Convolution": CONV_FORM}))
    worst = max(abs(predict_layer(shared, s.layer)[0] / s.ms - 1) for s in samples)
    assert worst > 0.2


def test_onnx_slice_is_timed_by_the_slice_fit_and_flagged(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])
    consts = [helper.make_tensor(n, TensorProto.INT64, [1], [v])
              for n, v in (("starts", 0), ("ends", 4), ("axes", 1))]
    graph = helper.make_graph([helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"],
                                                name="half")], "g", [x], [y], consts)
    path = tmp_path / "slice.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    layer = next(r for r in analyze(load_net(str(path))).layers if r.layer.name == "half")
    assert layer.layer.kind == "StridedSlice" and layer.out_shapes == ((1, 4, 4, 4),)
    profile = Profile("s", "", {"kinds": {"Slice": {"coef": {"sum": {"const": 0.004}}}}})
    ms, note = predict_layer(profile, layer)
    assert ms == pytest.approx(0.004) and "Slice's model used" in note
