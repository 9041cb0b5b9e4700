"""IR → ONNX export, node → layer mapping, calibrate's grid, and measure's error paths.

Shapes are checked against what onnxruntime itself computes when it runs the exported
graph; no test asserts on a timing value.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import CAFFE_CORPUS, MODELS, ONNX_CORPUS, need

from analyzer.analysis import Options, analyze
from analyzer.commands import cli
from analyzer.errors import CnnstatError
from analyzer.frontends.load import load_net
from analyzer.timing import calibrate, grid
from analyzer.timing.lower import export
from analyzer.timing.measure import _resolve, attribute, prepare
from analyzer.timing.runtime import NodeTime, time_model

ort = pytest.importorskip("onnxruntime")

# Every lowering, with Caffe's pooling rounding in its three forms: ceil (default) where
# it differs from floor (56, k3 s2 → 28, floor 27), a padded ceil window that Caffe drops
# (13, k2 s2 p1: ceil gives 8, the 8th window starts in the pad → 7), and ceil_mode: false.
ALL_KINDS = """
name: "kinds"
input: "data" input_shape { dim: 2 dim: 8 dim: 56 dim: 56 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool_ceil" type: "Pooling" bottom: "conv" top: "p1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "pool_floor" type: "Pooling" bottom: "conv" top: "p2"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 ceil_mode: false } }
layer { name: "dw" type: "Convolution" bottom: "p1" top: "dw"
  convolution_param { num_output: 16 group: 16 kernel_size: 3 stride: 2 } }
layer { name: "pool_pad" type: "Pooling" bottom: "dw" top: "p3"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "prelu" type: "PReLU" bottom: "p3" top: "p3" }
layer { name: "lrn" type: "LRN" bottom: "p2" top: "lrn" lrn_param { local_size: 5 } }
layer { name: "deconv" type: "Deconvolution" bottom: "p3" top: "up"
  convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 } }
layer { name: "sig" type: "Sigmoid" bottom: "up" top: "up" }
layer { name: "tanh" type: "TanH" bottom: "lrn" top: "t" }
layer { name: "slice" type: "Slice" bottom: "t" top: "s1" top: "s2"
  slice_param { axis: 1 slice_point: 6 } }
layer { name: "cat" type: "Concat" bottom: "s2" bottom: "s1" top: "cat" }
layer { name: "sum" type: "Eltwise" bottom: "cat" bottom: "t" top: "sum"
  eltwise_param { operation: SUM coeff: 1 coeff: -1 } }
layer { name: "prod" type: "Eltwise" bottom: "sum" bottom: "t" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "drop" type: "Dropout" bottom: "prod" top: "prod" }
layer { name: "perm" type: "Permute" bottom: "prod" top: "perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "flat" type: "Flatten" bottom: "perm" top: "flat" }
layer { name: "fc" type: "InnerProduct" bottom: "flat" top: "fc" inner_product_param { num_output: 10 } }
layer { name: "fc4d" type: "InnerProduct" bottom: "up" top: "fc4d" inner_product_param { num_output: 3 } }
layer { name: "resh" type: "Reshape" bottom: "fc" top: "resh" reshape_param { shape { dim: 0 dim: 2 dim: -1 } } }
layer { name: "prob" type: "Softmax" bottom: "resh" top: "prob" softmax_param { axis: 2 } }
"""


def _ort_shapes(report) -> dict[tuple[str, str], tuple[int, ...]]:
    """Every top's shape as onnxruntime computes it running the exported graph."""
    ex = export(report, all_outputs=True)
    sess = ort.InferenceSession(ex.model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {n: np.ones(s, np.float32) for n, s in ex.inputs.items()}
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, (v.shape for v in sess.run(names, feeds))))
    return {key: tuple(got[t]) for key, t in ex.top_tensor.items() if t in got}


def _ir_shapes(report) -> dict[tuple[str, str], tuple[int, ...]]:
    return {(r.layer.name, t): tuple(s) for r in report.layers if r.layer.kind != "Input"
            for t, s in zip(r.layer.tops, r.out_shapes)}


def test_alexnet_export_shapes_equal_ir():
    report = analyze(load_net(str(MODELS / "alexnet.prototxt")))
    ir = _ir_shapes(report)
    assert _ort_shapes(report) == ir
    assert ir[("pool2", "pool2")] == (1, 256, 13, 13)  # 27, k3 s2: ceil 13 (floor too)


def test_every_lowering_keeps_caffe_shapes(tmp_path):
    path = tmp_path / "kinds.prototxt"
    path.write_text(ALL_KINDS)
    report = analyze(load_net(str(path)))
    ir = _ir_shapes(report)
    assert ir[("pool_ceil", "p1")] == (2, 16, 28, 28)  # ceil; floor would give 27
    assert ir[("pool_floor", "p2")] == (2, 16, 27, 27)
    assert ir[("pool_pad", "p3")] == (2, 16, 7, 7)
    assert _ort_shapes(report) == ir


def test_cannot_lower_names_the_layer(tmp_path):
    path = tmp_path / "py.prototxt"
    path.write_text('input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
                    'layer { name: "odd" type: "Python" bottom: "data" top: "out" }\n')
    with pytest.raises(CnnstatError) as e:
        export(analyze(load_net(str(path))))
    assert "layer 'odd'" in str(e.value) and "cannot lower a Python layer" in str(e.value)


def test_resolve_fused_and_layout_node_names():
    nodes = {"fc6": "fc6", "fc6/flatten": "fc6", "conv1": "conv1"}
    tensors = {"conv1": "conv1", "conv1#1": "relu1"}
    assert _resolve("fused fc6", nodes, tensors) == "fc6"
    assert _resolve("conv1#1_nchwc", nodes, tensors) == "relu1"
    assert _resolve("fc6/flatten", nodes, tensors) == "fc6"
    assert _resolve("ReorderOutput_token_15", nodes, tensors) is None


def _covered(report, att) -> list[str]:
    """Layers with neither a measured node nor a layer they were fused into."""
    return [r.layer.name for r in report.layers if r.layer.kind not in ("Input", "Split",
            "Dropout") and r.layer.name not in att.layer_ms and r.layer.name not in att.fused_into]


def test_node_to_layer_mapping_covers_every_layer(tmp_path):
    report = analyze(load_net(str(MODELS / "five_conv.prototxt")))
    prep = prepare(report, str(tmp_path))
    run = time_model(prep.path, prep.shapes, repeats=1, warmup=0, profile_runs=1)
    att = attribute(report, run.nodes, prep.node_layer, prep.tensor_layer)
    assert _covered(report, att) == []
    convs = [r.layer.name for r in report.layers if r.layer.kind == "Convolution"]
    assert set(att.layer_ms) >= set(convs)  # every conv runs a node of its own
    assert att.fused_into["relu1"] == "conv1"  # onnxruntime fuses Conv+ReLU


def test_fused_chain_is_charged_to_its_head():
    """A fused node named after the chain's last tensor is charged to the conv at its head."""
    report = analyze(load_net(str(CAFFE_CORPUS / "resnet50_deploy.prototxt")
                              if CAFFE_CORPUS.exists() else str(MODELS / "alexnet.prototxt")))
    names = {r.layer.name: r.layer.name for r in report.layers}
    tensors = {t: r.layer.name for r in report.layers for t in r.layer.tops}
    first_conv = next(r for r in report.layers if r.layer.kind == "Convolution")
    relu = next(r for r in report.layers if r.layer.kind == "ReLU")
    att = attribute(report, [NodeTime(f"{relu.layer.tops[0]}#x_nchwc", "Conv", 2.0)],
                    names, tensors | {f"{relu.layer.tops[0]}#x": relu.layer.name})
    assert att.layer_ms == {first_conv.layer.name: 2.0}
    assert att.fused_into[relu.layer.name] == first_conv.layer.name


def test_onnx_corpus_graph_runs_with_random_initializers(tmp_path):
    path = need(ONNX_CORPUS / "squeezenet1_1.onnx")
    report = analyze(load_net(str(path), batch=1), Options(batch=1))
    prep = prepare(report, str(tmp_path))
    assert prep.path.startswith(str(tmp_path))  # weights are external and absent: a copy
    run = time_model(prep.path, prep.shapes, repeats=1, warmup=0, profile_runs=1)
    att = attribute(report, run.nodes, prep.node_layer, prep.tensor_layer)
    assert _covered(report, att) == []


def _hide_onnxruntime(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError


@pytest.mark.parametrize("argv", [["measure", str(MODELS / "alexnet.prototxt"),
                                   "--device", "x.json"], ["calibrate", "--quick"]])
def test_missing_onnxruntime_is_one_line(monkeypatch, capsys, argv):
    _hide_onnxruntime(monkeypatch)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("cnnstat: onnxruntime is not installed")
    assert "pip install 'cnnstat[measure]'" in err


def test_quick_grid_covers_the_kinds_and_conv_axes():
    p = calibrate.plan(quick=True)
    kinds = {r.layer.kind for q in p.points for r in analyze(q.net).layers}
    assert kinds >= {"Convolution", "InnerProduct", "Pooling", "ReLU", "LRN", "BatchNorm",
                     "Scale", "Eltwise", "Concat", "Softmax", "Split", "Dropout", "Input"}
    convs = calibrate.conv_points(400, np.random.default_rng(0))
    layers = [q.net.layers[1] for q in convs]
    assert {lyr.attr("kernel")[0] for lyr in layers} == {1, 3, 5, 7, 11}
    assert {lyr.attr("stride")[0] for lyr in layers} >= {1, 2}
    depthwise = [q for q in convs
                 if q.net.layers[1].attr("group") == q.net.layers[0].attrs["shapes"][0][1]]
    assert depthwise
    r = analyze(depthwise[0].net).layers[1]
    assert r.gemm.groups == r.in_shapes[0][1] and r.gemm.n == 1  # one filter per channel


def test_first_layer_points_read_rgb_into_real_filter_counts():
    points = calibrate.first_points(quick=False)
    assert len(points) == 20 and len(calibrate.first_points(quick=True)) == 7
    shapes = {}
    for q in points:
        r = analyze(q.net).layers[1]
        assert r.in_shapes == ((1, 3, 224, 224),) and r.gemm.k == 3 * r.layer.attr("kernel")[0] ** 2
        shapes[q.label] = r.out_shapes[0]
    # ResNet's conv1 (7×7 s2 pad 3) gives 112²; 11×11 s4 pad 5: (224 + 10 − 11) // 4 + 1 = 56
    assert shapes["conv 3→64 224² k7 s2 g1"] == (1, 64, 112, 112)
    assert shapes["conv 3→96 224² k11 s4 g1"] == (1, 96, 56, 56)
    assert shapes["conv 3→32 224² k3 s2 g1"] == (1, 32, 112, 112)
    assert {s[1] for s in shapes.values()} == {16, 32, 64, 96}


def test_layout_points_are_shufflenet_moves_with_exact_shapes():
    points = calibrate.layout_points((1, 116, 28, 28))
    shapes = {p.label.split(" 116")[0]: analyze(p.net).layers[-1].out_shapes for p in points}
    assert shapes == {"permute nhwc": ((1, 28, 28, 116),),
                      "slice 2": ((1, 58, 28, 28), (1, 58, 28, 28)),
                      "concat 2": ((1, 232, 28, 28),),
                      "reshape groups": ((1, 2, 58, 28, 28),),
                      "permute shuffle": ((1, 58, 2, 28, 28),)}
    for p in points:
        export(analyze(p.net))  # every one lowers to ONNX
    assert len(calibrate.layout_points((1, 7, 4, 4))) == 3  # odd channels: no 2-group shuffle


def _tiny_plan() -> calibrate.Plan:
    return calibrate.Plan(
        points=(calibrate.aliases(),
                calibrate.single("conv", "Convolution", [(1, 8, 16, 16)],
                                 **grid.conv_attrs(8, 3, 1, 1))),
        fusion_points=(calibrate.pair("Convolution", "ReLU"),),
        chains=(calibrate.chain("chain 2", 2, (1, 8, 16, 16)),), repeats=1, passes=1)


def test_calibrate_tiny_plan_builds_samples_and_profile():
    """A two-point plan runs end to end; the profile holds the measured facts, not values."""
    measured = calibrate.run_plan(_tiny_plan(), threads=1, show=False)
    by_kind = {s.layer.layer.kind: s for s in measured["samples"]}
    assert set(by_kind) == {"Input", "Dropout", "Split", "Eltwise", "Convolution"}
    assert by_kind["Split"].ms == 0.0 and by_kind["Dropout"].ms == 0.0  # no node runs
    assert by_kind["Convolution"].layer.gemm.k == 8 * 9
    assert measured["fusions"] == [["Convolution", "ReLU"]]
    profile = calibrate.build_profile("tiny", measured, 1, True, 0.5)
    json.dumps(profile)
    assert profile["threads"] == 1 and profile["fusions"] == [["Convolution", "ReLU"]]
    assert profile["hardware"]["logical_cores"] >= 1
    assert profile["software"]["onnxruntime"] == ort.__version__
    assert "Convolution" in profile["kinds"]
    src = profile["per_layer_overhead_sources"]
    assert src["probe_gap_ms"] == round(calibrate.probe_gap_ms(profile, measured["probe"]["ms"]),
                                        6)
    assert profile["per_layer_overhead_ms"] == max(src["chains_ms"], src["probe_gap_ms"])


def test_devices_shows_a_calibrated_profiles_grid_check(tmp_path, capsys):
    profile = calibrate.build_profile("tiny", calibrate.run_plan(_tiny_plan(), 1, False), 1,
                                      True, 0.5)
    held = profile["quality"]["holdout_per_layer"]
    device = tmp_path / "tiny.json"
    device.write_text(json.dumps(profile))
    assert cli.main(["devices", str(device)]) == 0
    out = capsys.readouterr().out
    assert (f"fitted on 4/5 of the grid points, checked on the other fifth (every fifth point by label): per-layer median "
            f"{held['median_rel_error']:.1%} over {held['points']} layers") in out
    assert "Convolution" in out and "machine state at calibration: probe" in out


def test_measure_needs_a_device(capsys):
    assert cli.main(["measure", str(MODELS / "alexnet.prototxt")]) == 2
    assert "measure needs --device" in capsys.readouterr().err


def test_measure_json_compares_every_layer(tmp_path, capsys):
    """End to end through the CLI with a profile from the tiny plan (values not asserted)."""
    profile = calibrate.build_profile("tiny", calibrate.run_plan(_tiny_plan(), 1, False), 1,
                                      True, 0.5)
    device = tmp_path / "tiny.json"
    device.write_text(json.dumps(profile))
    net = MODELS / "five_conv.prototxt"
    assert cli.main(["measure", str(net), "--device", str(device), "--format", "json",
                     "--repeats", "2", "--seconds", "0", "--wait", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    report = analyze(load_net(str(net)))
    assert [r["name"] for r in out["rows"]] == [r.layer.name for r in report.layers]
    assert out["threads"] == 1  # the profile's pinned count is used for measuring too
    notes = {r["name"]: r["note"] for r in out["rows"]}
    assert notes["relu1"] == "fused into conv1"
    t = report.totals
    assert out["predicted_memory_bytes"] == (t.params_bytes + t.data_peak_bytes
                                             + t.workspace_shared_bytes)
    assert out["runs"] == 2
    assert out["measured_ms"] > 0 and out["peak_rss_bytes"] > out["measured_rss_bytes"] > 0
    # every row names the profile entry that timed it; by_class adds them up per entry
    for r in out["rows"]:
        assert r["timed_as"] in profile["kinds"] or r["timed_as"] == r["kind"] + " (fallback)"
    sums = {x["timed_as"]: x for x in out["by_class"]}
    convs = [r for r in out["rows"] if r["kind"] == "Convolution"]
    entry = sums[convs[0]["timed_as"]]
    same = [r for r in out["rows"] if r["timed_as"] == entry["timed_as"]]
    assert entry["layers"] == len(same) == 5
    assert entry["measured_ms"] == pytest.approx(sum(r["measured_ms"] for r in same))
    assert entry["predicted_ms"] == pytest.approx(sum(r["predicted_ms"] for r in same))
    # plus one entry for the nodes no layer computes (the reorders around the graph's ends)
    assert sum(x["measured_ms"] for x in out["by_class"]) == pytest.approx(
        sum(r["measured_ms"] or 0.0 for r in out["rows"]) + out["runtime_nodes_ms"])


# ---------------------------------------------------------------------------------------
# The machine-state probe: calibrate and measure keep what ran in the calibration's state.


def test_probe_net_is_ten_pointwise_depthwise_blocks():
    from analyzer.timing.probe import probe_net

    report = analyze(probe_net())
    convs = [r for r in report.layers if r.layer.kind == "Convolution"]
    assert len(convs) == 20 and all(r.out_shapes == ((1, 32, 28, 28),) for r in convs)
    assert [r.gemm.groups for r in convs] == [1, 32] * 10
    # 1×1: 32·32·784 MACs; depthwise 3×3: 32·9·784
    assert report.totals.macs == 10 * (32 * 32 * 784 + 32 * 9 * 784)


def test_probe_reference_and_state():
    from analyzer.timing.probe import reference, same_state

    assert reference([0.2] * 15 + [0.08] * 5) == 0.2  # the state most readings were in
    assert reference([0.2] * 5 + [0.08] * 15) == 0.08
    assert same_state(0.114, 0.1) and same_state(0.086, 0.1)
    assert not same_state(0.116, 0.1) and not same_state(0.084, 0.1)
    assert not same_state(0.1, 0.0)


class _ScriptedProbe:
    """A stand-in for analyzer.timing.probe.Probe whose readings follow a script."""

    def __init__(self, readings):
        self.readings = iter(readings)

    def __call__(self, threads=0):
        return self

    def ms(self, seconds=0.0):
        return next(self.readings)


def _fake_measured(point, ms):
    report = analyze(point.net)
    names = [r.layer.name for r in report.layers if r.layer.kind != "Input"]
    return calibrate.Measured(point, report, ms, dict.fromkeys(names, ms), {}, ms,
                              dict.fromkeys(names, 1), len(names))


def _one_conv_plan(retry_seconds):
    conv = calibrate.single("conv", "Convolution", [(1, 8, 16, 16)],
                            **grid.conv_attrs(8, 3, 1, 1))
    return calibrate.Plan(points=(conv,), fusion_points=(), chains=(), repeats=1, passes=2,
                          retry_seconds=retry_seconds)


@pytest.mark.parametrize("readings, times, kept, again", [
    # pass 1 in state (probe 1.0 before and after) but slower than pass 2, which ended in
    # another state (1.6): the in-state measurement is kept
    ([1.0, 1.0, 1.6], [5.0, 3.0], 5.0, 0),
    # both passes touch the other state: measured again once the probe is back at 1.0
    ([1.0, 1.6, 1.0, 1.0, 1.0], [5.0, 3.0, 7.0], 7.0, 1),
])
def test_calibrate_keeps_points_measured_in_its_state(monkeypatch, readings, times, kept,
                                                      again):
    from analyzer.timing import probe

    monkeypatch.setattr(probe, "Probe", _ScriptedProbe(readings))
    script = iter(times)
    monkeypatch.setattr(calibrate, "measure_point", lambda point, threads, repeats, wall=False:
                        _fake_measured(point, next(script)))
    measured = calibrate.run_plan(_one_conv_plan(retry_seconds=5.0), 1, show=False)
    assert [s.ms for s in measured["samples"]] == [kept]
    assert measured["probe"]["ms"] == 1.0
    assert measured["probe"]["points_measured_again"] == again
    assert measured["probe"]["points_out_of_state"] == 0


# two passes in state, 5 and 3 ms: a point is timed by their mean, one that streams its
# weights by the slower
@pytest.mark.parametrize("streams, kept", [(False, 4.0), (True, 5.0)])
def test_calibrate_keeps_the_mean_reading_or_a_streaming_points_slower(monkeypatch, streams,
                                                                        kept):
    from analyzer.timing import probe

    monkeypatch.setattr(probe, "Probe", _ScriptedProbe([1.0] * 3))  # both passes in state
    script = iter([5.0, 3.0])
    monkeypatch.setattr(calibrate, "measure_point", lambda point, threads, repeats, wall=False:
                        _fake_measured(point, next(script)))
    fc = calibrate.single("fc", "InnerProduct", [(1, 64)], num_output=8, bias=True, axis=1,
                          streams=streams)
    plan = calibrate.Plan(points=(fc,), fusion_points=(), chains=(), repeats=1, passes=2)
    measured = calibrate.run_plan(plan, 1, show=False)
    assert [s.ms for s in measured["samples"]] == [kept]
    # the machine's own repeatability: the second pass took 3/5 of the first
    assert measured["probe"]["pass_spread_median"] == 0.4
    assert measured["probe"]["pass_spread_points"] == 1


def test_pass_spread_leaves_out_points_the_profiler_rounds():
    def timed(ms):
        point = calibrate.single("relu", "ReLU", [(1, 8, 4, 4)])
        return calibrate._Timed("layer", point, _fake_measured(point, ms), 1.0, 1.0)

    runs = [[timed(0.5), timed(0.55)], [timed(0.02), timed(0.01)], [timed(2.0)]]
    assert calibrate.pass_spread(runs) == {"pass_spread_median": 0.1, "pass_spread_p90": 0.1,
                                           "pass_spread_points": 1}
    assert calibrate.pass_spread(runs[1:]) == {}


def test_batch1_fc_points_stream_a_quarter_gib_of_weights(monkeypatch):
    monkeypatch.setattr(calibrate, "stream_bytes", lambda: 256 * 2**20)
    points = {q.label: q for q in calibrate.fc_points(quick=False)}
    copies = {label: len(q.net.layers) - 1 for label, q in points.items()}
    streams = {label for label, q in points.items() if q.streams}
    assert streams == {"fc 4096→4096 b1", "fc 9216→4096 b1", "fc 2048→1000 b1",
                       "fc 4096→1000 b1", "fc 1024→1000 b1", "fc 1280→1000 b1",
                       "fc 512→1000 b1"}
    # 4096·4096·4 B = 64 MiB: four copies; 9216→4096 (144 MiB): two; 4096→1000: 17
    assert copies["fc 4096→4096 b1"] == 4 and copies["fc 9216→4096 b1"] == 2
    assert copies["fc 4096→1000 b1"] == 17 and copies["fc 512→1000 b1"] == 64
    assert copies["fc 4096→4096 b10"] == 2 and copies["fc 256→10 b1"] == 12  # 96 MiB rule


def _state_profile(tmp_path, probe_ms):
    from analyzer.timing.probe import DESCRIPTION

    path = tmp_path / "state.json"
    path.write_text(json.dumps({"name": "state", "kinds": {}, "threads": 1,
                                "probe": {"ms": probe_ms, "net": DESCRIPTION}}))
    return str(path)


@pytest.mark.parametrize("readings, wait, wall, aside, matched", [
    # first session in another state (probe 1.5 after it): set aside, two more run
    ([1.0, 1.5, 1.0, 1.0, 1.0, 1.0], 60.0, 12.0, 1, True),
    # never in the calibration's state and no time to wait: all three count, flagged
    ([1.5] * 6, 0.0, 11.0, 0, False),
])
def test_measure_sets_aside_sessions_run_in_another_state(monkeypatch, tmp_path, readings,
                                                          wait, wall, aside, matched):
    from analyzer.timing import measure, probe

    monkeypatch.setattr(probe, "Probe", _ScriptedProbe(readings))
    walls = iter([10.0, 11.0, 12.0, 13.0])
    monkeypatch.setattr(measure, "time_model_isolated", lambda *a, **k: measure.Run(
        next(walls), (1.0,), (), 1))
    report = analyze(load_net(str(MODELS / "five_conv.prototxt")))
    c = measure.compare(report, _state_profile(tmp_path, 1.0), sessions=2 if matched else 3,
                        wait_seconds=wait)
    assert c.measured_ms == wall  # the median kept session (12: of 11 and 12 once 10 is aside)
    assert c.sessions_set_aside == aside and c.state_matched is matched
    assert c.probe_reference_ms == 1.0 and c.probe_ms == (1.0 if matched else 1.5)


def test_probe_gap_is_the_probe_run_beyond_its_layers():
    """A profile timing every convolution at 5 µs: the probe's 20 convolutions sum to 0.1 ms,
    so a 0.163 ms probe run leaves 0.063 ms over its 21 layers (input included)."""
    profile = {"kinds": {"Convolution": {"coef": {"sum": {"const": 0.005}}}}}
    assert calibrate.probe_gap_ms(profile, 0.163) == pytest.approx(0.003)
    assert calibrate.probe_gap_ms(profile, 0.079) == pytest.approx(-0.001)


def test_profile_without_this_probe_is_not_gated():
    from analyzer.timing.probe import DESCRIPTION, profile_reference

    assert profile_reference({"probe": {"ms": 0.2, "net": DESCRIPTION}}) == 0.2
    assert profile_reference({"probe": {"ms": 0.2, "net": "3 × 3×3 conv"}}) == 0.0
    assert profile_reference({"kinds": {}}) == 0.0  # shipped GPU profiles have none
