"""The calibration grid's blocks and the context table fitted from them (recorded data).

``tests/data/calibrate_quick_record.json`` is what one ``cnnstat calibrate --quick --record``
run measured on every point (this project's 2-core VM, onnxruntime 1.32, under other load:
its times are not asserted). The tests rebuild a profile from it through the current plan,
so a grid class dropped from the plan drops its recorded points too and the structure
predicted for the corpus nets no longer matches what onnxruntime did with them. The node
counts below are onnxruntime's own: the nodes its profile showed for each net (batch 1,
default session options), charged to the net's layers.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import onnx
import pytest
from conftest import CAFFE_CORPUS, ONNX_CORPUS, need

from analyzer.analysis import Options, analyze
from analyzer.frontends.load import load_net
from analyzer.timing import calibrate
from analyzer.timing.blocks import GROUP_WIDTHS, GROUPS, blocks
from analyzer.timing.profile import (
    CPU_KIND_FORMS,
    Profile,
    conv_nchwc,
    fit_profile,
    predict_context,
    timing_key,
)

RECORD = Path(__file__).parent / "data" / "calibrate_quick_record.json"
MODERN = ONNX_CORPUS.parent / "onnx_modern"


def _ops(block) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load_from_string(block.onnx).graph.node)


@pytest.mark.parametrize("quick", [True, False])
def test_blocks_cover_every_class(quick):
    bs = blocks(quick)
    assert {b.group for b in bs} == set(GROUPS)
    labels = " ".join(b.label for b in bs)
    ops = sum((_ops(b) for b in bs), collections.Counter())
    # SE gates, activations, depthwise 3×3/5×5 at stride 1 and 2
    for op in ("GlobalAveragePool", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Relu",
               "LayerNormalization", "Erf", "Softmax", "Transpose", "MatMul", "Slice", "Concat"):
        assert ops[op], op
    for tag in ("k3 s1", "k3 s2", "k5 s1", "k5 s2", "silu", "hardswish"):
        assert tag in labels, tag
    widths = {int(b.label.split(" w")[1].split()[0]) for b in bs if b.group == "grouped"}
    assert widths >= ({4, 8, 16, 24, 56} if quick else set(GROUP_WIDTHS))


def test_attention_block_has_batched_matmuls_of_two_activations():
    block = next(b for b in blocks(True) if b.group == "attention")
    path = Path(__file__).parent / "data"  # not written: read from a temporary copy below
    assert path.is_dir()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "a.onnx"
        f.write_bytes(block.onnx)
        report = analyze(load_net(str(f), batch=1))
    kinds = collections.Counter(r.layer.kind for r in report.layers)
    assert kinds["MatMul"] == 2 and kinds["Softmax"] == 1 and kinds["LayerNorm"] == 2
    assert kinds["InnerProduct"] == 6  # q, k, v, proj and the MLP's two


def _runtime_ops(model: bytes, tmp: Path) -> collections.Counter:
    """The node types onnxruntime runs for ``model`` after its graph optimizations."""
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp / "optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


@pytest.mark.parametrize("group", ["convnext", "attention"])
def test_gelu_blocks_run_what_the_corpus_convnext_runs(group, tmp_path):
    """The corpus graphs have a symbolic batch (torch's dynamic_axes), and so do the blocks:
    onnxruntime then folds a Linear's bias into the GELU after it (BiasGelu) instead of
    making MatMul + Add one Gemm. With static shapes the blocks would time Gemm + Gelu, a
    different (2.5× cheaper) node than the nets run."""
    graph = onnx.load(str(need(MODERN / "convnext_small.onnx")), load_external_data=False)
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    block = next(b for b in blocks(True) if b.group == group)
    ops = _runtime_ops(block.onnx, tmp_path)
    assert ops["BiasGelu"] == 1 and ops["Gelu"] == 0 and ops["MatMul"] >= 2
    if group == "convnext":  # (the attention block's Reshapes to a fixed shape allow a Gemm)
        assert ops["Gemm"] == 0


@pytest.fixture(scope="module")
def replayed():
    data = json.loads(RECORD.read_text())
    plan = calibrate.plan(data["quick"], data["seed"])
    points = [*plan.points, *plan.fusion_points]
    measured = calibrate.replay(points, data["points"])
    assert len(measured) >= 0.9 * len(data["points"])  # the plan still makes the recorded points
    per_node = data["profiler_ms_per_node"]
    samples = [s for m in measured if m.point in plan.points
               for s in calibrate.samples_of(m, per_node)]
    context = calibrate.context_tables(measured)
    meta = {"name": "replayed", "context": context}
    profile = fit_profile(samples, meta, forms=CPU_KIND_FORMS)
    reorder = calibrate.reorder_fit(measured, per_node)
    assert reorder is not None
    profile["kinds"]["Reorder"] = reorder
    return Profile("replayed", "", profile)


def _report(path: Path):
    batch = 1 if path.suffix == ".onnx" else None
    return analyze(load_net(str(need(path)), batch=batch), Options(batch=batch))


def test_replayed_profile_fits_every_class(replayed):
    kinds = set(replayed.kinds)
    for kind in ("Convolution/grouped", "Convolution/grouped-plain", "Convolution/depthwise",
                 "Convolution/1x1", "Broadcast/Mul:bcast", "Broadcast/Mul:same",
                 "Broadcast/Add:same", "Pooling", "LayerNorm", "MatMul", "Softmax", "Permute",
                 "InnerProduct", "Reorder"):
        assert kind in kinds, kind
    runs = replayed.data["context"]["runs"]
    # ConvNeXt's LayerNorm after its depthwise 7×7 (onnxruntime runs no node for the
    # Transpose between them); attention's Softmax after a batched MatMul
    assert any(k.startswith("LayerNorm <- Convolution/depthwise") for k in runs)
    assert any(k.startswith("Softmax <- MatMul") for k in runs)
    layout = replayed.data["context"]["conv_layout"]
    # onnxruntime blocks (NCHWc, 16 on this AVX-512 machine) 16 and 32 channels per group,
    # not 4, 8 or 24 (RegNetY-1.6GF's width: its grouped convs run one GEMM per group)
    assert layout["grouped/16/16"] == 1.0 and layout["grouped/32/32"] == 1.0
    assert layout["grouped/8-/8-"] == 0.0 and layout["grouped/4-/4-"] == 0.0


# (net, nodes onnxruntime ran that a layer computes) — from its profile of each net
NODES = [(MODERN / "regnet_y_1_6gf.onnx", 197), (MODERN / "efficientnet_b1.onnx", 233),
         (MODERN / "efficientnet_v2_s.onnx", 337),
         (MODERN / "mobilenet_v3_large.onnx", 82), (MODERN / "resnext50_32x4d.onnx", 57),
         (MODERN / "densenet169.onnx", 347), (ONNX_CORPUS / "shufflenet_v2_x1_0.onnx", 149),
         (ONNX_CORPUS / "mobilenet_v2.onnx", 55), (ONNX_CORPUS / "googlenet.onnx", 82),
         (CAFFE_CORPUS / "resnet50_deploy.prototxt", 57),
         (CAFFE_CORPUS / "mobilenet_v1_deploy.prototxt", 30)]


@pytest.mark.parametrize("path, nodes", NODES, ids=[p.stem for p, _ in NODES])
def test_predicted_nodes_are_what_onnxruntime_ran(replayed, path, nodes):
    contexts = predict_context(_report(path), replayed)
    assert contexts is not None
    assert sum(c.runs for c in contexts) == nodes


def test_linear_bias_fuses_into_the_gelu_after_it_on_convnext(replayed):
    """What onnxruntime ran on ConvNeXt-Small (its optimized graph: 72 MatMul, 72 Add, 36
    BiasGelu, 36 Mul): the first Linear's bias Add folds into the GELU (timed on its Div),
    the second Linear's runs, as does the layer scale after the Transpose back."""
    report = _report(MODERN / "convnext_small.onnx")
    contexts = predict_context(report, replayed)
    ran = collections.Counter(r.layer.type for r, c in zip(report.layers, contexts) if c.runs)
    assert ran["MatMul"] == 72 and ran["Add"] == 72 and ran["Div"] == 36 and ran["Mul"] == 36
    assert ran["Erf"] == 0


def test_se_block_structure_on_regnet_y(replayed):
    report = _report(MODERN / "regnet_y_1_6gf.onnx")
    contexts = predict_context(report, replayed)
    by_type: dict[str, list[bool]] = collections.defaultdict(list)
    for r, c in zip(report.layers, contexts):
        by_type[r.layer.type].append(c.runs)
    assert all(by_type["Mul"]) and len(by_type["Mul"]) == 27  # the SE's broadcast Mul runs
    assert not any(by_type["Sigmoid"])  # fused into the conv before it
    assert not any(by_type["Add"]) and not any(by_type["BatchNormalization"])
    grouped = [timing_key(r, replayed.kinds, replayed.data["context"]) for r in report.layers
               if r.gemm is not None and r.gemm.groups > 2]
    assert grouped and set(grouped) == {"Convolution/grouped-plain"}  # width 24: not blocked
    # onnxruntime ran 112 reorders in this net; the SE blocks' Mul and the plain grouped
    # convs are where the context table predicts them
    assert 80 <= sum(c.reorders for c in contexts) <= 130


def test_linears_over_tokens_are_timed_apart_from_classifier_heads(replayed):
    """ConvNeXt's Linears (3136 rows at 56²) are compute-bound GEMMs with their own fit;
    its classifier and AlexNet's fc layers at the file's batch of 10 stay with the heads."""
    assert "InnerProduct/tokens" in replayed.kinds and "InnerProduct" in replayed.kinds
    convnext = _report(MODERN / "convnext_small.onnx")
    keys = collections.Counter(timing_key(r, replayed.kinds) for r in convnext.layers
                               if r.layer.kind == "InnerProduct")
    assert keys == {"InnerProduct/tokens": 72, "InnerProduct": 1}
    alexnet = _report(CAFFE_CORPUS / "bvlc_alexnet_deploy.prototxt")
    assert {timing_key(r, replayed.kinds) for r in alexnet.layers
            if r.layer.kind == "InnerProduct"} == {"InnerProduct"}


def test_two_group_convolutions_are_laid_out_by_their_channels_per_group(replayed):
    """Two groups are timed with the dense convolutions while they run blocked (AlexNet's, 48
    and 128 channels per group); RegNetY-1.6GF's first stage has two groups of 24, which
    onnxruntime runs plain like its other 24-channel groups: one GEMM per group."""
    context = replayed.data["context"]
    regnet = _report(MODERN / "regnet_y_1_6gf.onnx")
    two = [r for r in regnet.layers if r.gemm is not None and r.gemm.groups == 2]
    assert len(two) == 2 and not any(conv_nchwc(context, r) for r in two)
    assert {timing_key(r, replayed.kinds, context) for r in two} == {"Convolution/grouped-plain"}
    alexnet = _report(CAFFE_CORPUS / "bvlc_alexnet_deploy.prototxt")
    two = [r for r in alexnet.layers if r.gemm is not None and r.gemm.groups == 2]
    assert len(two) == 3 and all(conv_nchwc(context, r) for r in two)
    assert {timing_key(r, replayed.kinds, context) for r in two} == {"Convolution"}


def test_silu_runs_as_one_node_on_efficientnet(replayed):
    report = _report(MODERN / "efficientnet_b1.onnx")
    contexts = predict_context(report, replayed)
    sig = [(r.layer.type, c.runs, len(r.in_shapes) == 2 and r.in_shapes[0] == r.in_shapes[1])
           for r, c in zip(report.layers, contexts)]
    silu_mul = [runs for t, runs, same in sig if t == "Mul" and same]
    assert len(silu_mul) == 69 and all(silu_mul)  # x · Sigmoid(x): one QuickGelu node each
    assert not any(runs for t, runs, _ in sig if t == "Sigmoid")


def test_shape_arithmetic_is_counted_and_timed(replayed):
    # torch's ShuffleNetV2 export computes its chunk bounds and view sizes from Shape nodes
    # on the symbolic batch: 366 nodes once repeated expressions count once (onnxruntime
    # ran 273 of them after its own eliminations); a net with static reshapes has none
    assert load_net(str(need(ONNX_CORPUS / "shufflenet_v2_x1_0.onnx")), batch=1).shape_nodes == 366
    assert load_net(str(need(ONNX_CORPUS / "resnet18.onnx")), batch=1).shape_nodes == 0
    data = json.loads(RECORD.read_text())
    plan = calibrate.plan(data["quick"], data["seed"])
    measured = calibrate.replay(plan.points, data["points"])
    assert any(m.point.group == "shape" for m in measured)
    per_node = calibrate.shape_node_ms(measured, data["profiler_ms_per_node"])
    assert per_node is not None and 0 < per_node < 0.05
