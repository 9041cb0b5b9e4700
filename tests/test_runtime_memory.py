"""Runtime memory: features of a net, the arena simulation, the fit, and the recorded check.

The recorded check refits the memory model from the calibration probe points stored in
``tests/data/runtime_memory.json`` (``benchmarks/bench_runtime_memory.py --record``) and
compares its predictions with the resident memory onnxruntime really took for the shared
nets on the same machine, which the fit never saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED, need

from analyzer.analysis import Options, analyze
from analyzer.ir import Layer, Net, frozen
from analyzer.timing import runtime_memory as rm

DATA = Path(__file__).resolve().parent / "data" / "runtime_memory.json"
RULE = rm.NchwcRule(16, 4)  # onnxruntime 1.32 with AVX-512 (detect_nchwc on this project's VM)


def _net(*layers: tuple[str, str, tuple[str, ...], dict]) -> Net:
    built = [Layer("input", "Input", "Input", (), ("data",),
                   frozen({"shapes": ((1, 16, 8, 8),)}))]
    for name, kind, bottoms, attrs in layers:
        built.append(Layer(name, kind, kind, bottoms, (name,), frozen(attrs)))
    return Net("t", "<test>", "test", tuple(built))


def _conv(c_out: int, k: int = 1, group: int = 1) -> dict:
    return {"num_output": c_out, "kernel": (k,), "stride": (1,), "pad": (k // 2,),
            "dilation": (1,), "group": group, "bias": True, "axis": 1}


# ---------------------------------------------------------------------------------------
# Features.


def test_nchwc_rule_pads_what_onnxruntime_reorders_and_leaves_the_rest():
    # dense: fewer input channels than the block, or a multiple of 4, is taken and padded
    assert RULE.weight_elements(3, 64, 1, 9) == 64 * 3 * 9
    assert RULE.weight_elements(8, 8, 1, 1) == 16 * 8
    assert RULE.weight_elements(20, 64, 1, 1) == 64 * 32
    assert RULE.weight_elements(64, 100, 1, 1) == 112 * 64
    assert RULE.weight_elements(58, 116, 1, 1) is None  # 58 is no multiple of 4
    # depthwise: channels a multiple of 4, padded; grouped: groups 16 channels wide only
    assert RULE.weight_elements(40, 40, 40, 9) == 48 * 9
    assert RULE.weight_elements(58, 58, 58, 9) is None
    assert RULE.weight_elements(64, 64, 4, 9) == 64 * 16 * 9
    assert RULE.weight_elements(128, 128, 32, 9) is None  # ResNeXt's 4-wide groups
    assert rm.NchwcRule(0).weight_elements(64, 64, 1, 9) is None  # no NCHWc at all


def test_features_of_a_small_net_are_exact_byte_counts():
    net = _net(("c1", "Convolution", ("data",), _conv(20)),  # 16→20: NCHWc, out padded to 32
               ("c2", "Convolution", ("c1",), _conv(58, 3)),  # 20→58: NCHWc, 32 in, 64 out
               ("c3", "Convolution", ("c2",), _conv(58, 3)),  # 58→58: plain
               ("c4", "Convolution", ("c3",), _conv(64)),  # 58→64: plain
               ("c5", "Convolution", ("c4",), _conv(64)),  # 64→64: NCHWc
               ("c6", "Convolution", ("c5",), _conv(64)),  # 64→64: NCHWc
               ("f", "Flatten", ("c6",), {"axis": 1, "end_axis": -1}),
               ("fc", "InnerProduct", ("f",), {"num_output": 10, "bias": True, "axis": 1}))
    f = rm.features(analyze(net), RULE)
    assert f.conv_nchwc == 4 * (32 * 16 + 64 * 32 * 9 + 64 * 64 + 64 * 64)
    assert f.conv_plain == 4 * (58 * 58 * 9 + 64 * 58)
    assert f.fc == 4 * 64 * 8 * 8 * 10
    assert f.big == f.big_conv_max == f.big_fc_max == 0
    assert f.conv_head == f.conv_nchwc + f.conv_plain  # all of it: under CONV_HEAD_BYTES
    # with an 80 KiB heap limit the 58×58×9 conv weight (121 KB) and the fc weight (164 KB)
    # are "big", at their stored size, and counted there only
    g = rm.features(analyze(net), RULE, heap_limit=80 * 1024)
    assert g.big == 4 * (58 * 58 * 9 + 64 * 8 * 8 * 10)
    assert g.big_conv_max == 4 * 58 * 58 * 9 and g.big_fc_max == 4 * 64 * 8 * 8 * 10
    assert g.conv_nchwc == f.conv_nchwc and g.conv_plain == 4 * 64 * 58 and g.fc == 0


def test_arena_of_a_chain_counts_each_live_tensor_once():
    # 16×8×8 fp32 = 4 KiB per tensor. conv a's output and conv b's are live together; the
    # ReLU after a is fused (in place); b's output overwrites nothing: 8 KiB touched, both
    # in the first 1 MiB region, which splits (its rest is larger than each request)
    net = _net(("a", "Convolution", ("data",), _conv(16)), ("r", "ReLU", ("a",), {}),
               ("b", "Convolution", ("r",), _conv(16)))
    report = analyze(net)
    assert rm.arena_bytes(report, RULE, [("Convolution", "ReLU")]) == 2 * 4096
    # without the fusion the ReLU still runs in place (its input dies there)
    assert rm.arena_bytes(report, RULE, []) == 2 * 4096
    # a third conv reuses a's chunk (freed after b read r): still 8 KiB
    net3 = _net(("a", "Convolution", ("data",), _conv(16)),
                ("b", "Convolution", ("a",), _conv(16)), ("c", "Convolution", ("b",), _conv(16)))
    assert rm.arena_bytes(analyze(net3), RULE) == 2 * 4096


def test_arena_gives_a_whole_chunk_when_splitting_would_leave_less_than_the_request():
    arena = rm._Arena()
    big = arena.alloc(600 * 1024)  # 1 MiB region: 600 KiB leaves 424 KiB < 600: no split
    arena.alloc(100 * 1024)  # so this needs a second region (2 MiB)
    assert len(arena.regions) == 2 and arena.touched == 700 * 1024
    arena.free(big)
    arena.alloc(500 * 1024)  # the freed 1 MiB chunk takes it (best fit), whole again
    assert len(arena.regions) == 2 and arena.touched == 700 * 1024


# ---------------------------------------------------------------------------------------
# Fit and prediction.


def test_fit_recovers_known_coefficients():
    truth = {"const": 9e6, "conv_nchwc": 3.0, "conv_plain": 2.0, "conv_head": 0.6, "fc": 1.5,
             "big_conv_max": 4.0, "big_fc_max": 1.0, "arena": 1.1, "arena_heap": 0.4,
             "big": 1.0}
    rows = []
    # two deep nets' worth of conv weights (beyond CONV_HEAD_BYTES) tell conv_head apart
    for i, nchwc in [(i, 1e6 * i) for i in range(1, 10)] + [(1, 1.2e8), (2, 2.5e8)]:
        f = {"conv_nchwc": nchwc, "conv_plain": 2e5 * (i % 4),
             "fc": 5e5 * (i % 5), "big": 0, "big_conv_max": 0, "big_fc_max": 0,
             "arena": 4e6 * (i % 2) + 1e5 * i, "arena_heap": 2e6 * (i % 3 == 1)}
        f["conv_head"] = min(f["conv_nchwc"] + f["conv_plain"], rm.CONV_HEAD_BYTES)
        rows.append((f, rm.evaluate(truth, f)))
    for size, kind in ((4e7, "big_conv_max"), (7e7, "big_fc_max")):
        f = {"conv_nchwc": 1e6, "conv_plain": 0, "conv_head": 1e6, "fc": 0, "big": size,
             "big_conv_max": 0, "big_fc_max": 0, "arena": 1e5, "arena_heap": 0, kind: size}
        rows.append((f, rm.evaluate(truth, f)))
    coef = rm.fit(rows)
    for name, value in truth.items():
        assert coef[name] == pytest.approx(value, rel=1e-3), name


def test_prediction_needs_a_profile_with_a_memory_fit():
    report = analyze(_net(("a", "Convolution", ("data",), _conv(16))))
    assert rm.predict(report, {"kinds": {}}) is None
    section = {"coef": {"const": 1e7, "conv_nchwc": 3.0, "arena": 1.0, "arena_heap": 0.5,
                        "big": 1.0}, "nchwc": {"block": 16, "channel_multiple": 4}}
    # the conv's 4 KiB output sits in a 1 MiB arena region, above glibc's first mmap
    # threshold (128 KiB): a region glibc maps on its own ("arena", not "arena_heap")
    assert rm.predict(report, {"kinds": {}, "runtime_memory": section}) == \
        int(1e7 + 3.0 * 16 * 16 * 4 + 4096)


# ---------------------------------------------------------------------------------------
# The recorded check: fitted on the probe nets, checked on the shared nets.


def _recorded() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def test_refit_from_recorded_probes_predicts_the_recorded_nets():
    """Fitted on the 13 probe runs only; checked on 30 shared nets × batch 1 and 8 (the
    recording of 2026-12-08: 57 of 60 within ±20 %, worst +29.4 % (bvlc_googlenet b1), median
    4.9 %; EfficientNetV2-S b1 +26.6 % and RegNetY-1.6GF b1 +25.4 % are the other two)."""
    data = _recorded()
    coef = rm.fit(rm.points_rows(data["runtime_memory"]["points"]))
    nets = data["nets"]
    assert len({r["net"] for r in nets}) >= 29 and {r["batch"] for r in nets} == {1, 8}
    errors = {(r["net"], r["batch"]): (rm.evaluate(coef, r["features"]) - r["measured_bytes"])
              / r["measured_bytes"] for r in nets}
    misses = sorted((k for k, e in errors.items() if abs(e) > 0.20), key=str)
    assert len(misses) <= 3, misses
    assert all(abs(e) <= 0.30 for e in errors.values()), max(errors.values(), key=abs)
    assert sorted(abs(e) for e in errors.values())[len(errors) // 2] <= 0.06
    # the fit in the recording is this one: the profile's coefficients are reproducible
    assert coef == data["runtime_memory"]["coef"]


def test_deep_nets_need_the_deep_probe_and_the_conv_head_term():
    """ResNet-101 at batch 8 (170 MiB of conv weights) is within 20 % only when the fit has
    both the deep probe (115 MiB of conv weights) and conv_head: without the probe the head's
    rate is not identified, without the term one rate serves 4 MiB and 170 MiB of weights."""
    data = _recorded()
    points = data["runtime_memory"]["points"]
    net = next(r for r in data["nets"] if (r["net"], r["batch"]) == ("resnet101", 8))

    def error(coef):
        return (rm.evaluate(coef, net["features"]) - net["measured_bytes"]) / net["measured_bytes"]

    assert abs(error(rm.fit(rm.points_rows(points)))) <= 0.20
    # without the probe: −21 % (the head takes 2.5 a byte, the rest 0.8); without the term +23 %
    assert abs(error(rm.fit(rm.points_rows([p for p in points if p["label"] != "deep"])))) > 0.20
    no_head = [({**f, "conv_head": 0}, m) for f, m in rm.points_rows(points)]
    assert abs(error(rm.fit(no_head))) > 0.20


def test_recorded_features_are_what_the_analysis_gives_today():
    """The recorded nets' features, recomputed from ../shared: a change to the features
    needs a new recording (benchmarks/bench_runtime_memory.py --record)."""
    from analyzer.frontends.load import load_net

    data = _recorded()
    rule = rm.rule_of(data["runtime_memory"])
    corpus = SHARED / "corpus"
    for row in data["nets"][::7]:
        path = next((p for p in (corpus / "onnx" / f"{row['net']}.onnx",
                                 corpus / "onnx_modern" / f"{row['net']}.onnx",
                                 corpus / "caffe" / f"{row['net']}.prototxt") if p.exists()),
                    None)
        need(path or corpus / "onnx" / f"{row['net']}.onnx")
        report = analyze(load_net(str(path), batch=row["batch"]), Options(batch=row["batch"]))
        assert rm.features(report, rule, data["fusions"]).as_dict() == row["features"], row["net"]


def test_a_profile_with_a_memory_fit_fills_runtime_peak_bytes_in_the_report(tmp_path):
    from analyzer.render import to_dict
    from analyzer.timing.profile import Profile, predict_report

    data = _recorded()
    report = analyze(_net(("a", "Convolution", ("data",), _conv(64, 3)),
                          ("r", "ReLU", ("a",), {})))
    profile = Profile("cpu", "", {"kinds": {}, "fusions": data["fusions"],
                                  "runtime_memory": data["runtime_memory"]})
    timed = predict_report(report, profile)
    expected = rm.predict(report, profile.data)
    assert expected is not None and expected > data["runtime_memory"]["coef"]["const"]
    assert timed.totals.runtime_peak_bytes == expected
    assert to_dict(timed)["totals"]["memory"]["runtime_peak_bytes"] == expected
    # the three parts keep their meaning
    assert to_dict(timed)["totals"]["memory"]["params_bytes"] == report.totals.params_bytes
    plain = predict_report(report, Profile("gpu", "", {"kinds": {}}))
    assert plain.totals.runtime_peak_bytes is None
