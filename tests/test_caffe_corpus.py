"""The analysis spine against real, published Caffe nets and what real Caffe printed for them."""

from __future__ import annotations

from collections import defaultdict

import pytest
from conftest import CAFFE_CORPUS, MODELS, TIMINGS, need, read_tsv

from analyzer.analysis import Options, analyze
from analyzer.errors import CnnstatError
from analyzer.frontends.load import load_net


def _report(name: str, **opts):
    return analyze(load_net(str(need(CAFFE_CORPUS / f"{name}.prototxt"))), Options(**opts))


def _caffe_shapes() -> dict[str, list[dict[str, str]]]:
    by_net: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_tsv(CAFFE_CORPUS / "CAFFE_SHAPES.tsv"):
        by_net[row["net"]].append(row)
    return by_net


SHAPE_NETS = sorted(_caffe_shapes()) if (CAFFE_CORPUS / "CAFFE_SHAPES.tsv").exists() else []


@pytest.mark.parametrize("net", SHAPE_NETS)
def test_every_top_shape_and_memory_matches_real_caffe(net: str) -> None:
    """CAFFE_SHAPES.tsv: every layer (Splits included), top and shape, in Caffe's order;
    our Caffe-convention data bytes equal Caffe's 'Memory required for data'."""
    truth = _caffe_shapes()[net]
    report = _report(net)
    got = [(r.layer.name, top, " ".join(map(str, shape)))
           for r in report.layers for top, shape in zip(r.layer.tops, r.out_shapes)]
    want = [(row["layer"], row["top"], row["shape"]) for row in truth]
    assert got == want
    final = int(next(row["memory_required_after_bytes"] for row in reversed(truth)
                     if row["memory_required_after_bytes"]))
    assert report.totals.data_bytes == final


def test_running_memory_after_each_layer() -> None:
    """The running total after every layer equals Caffe's log line (GoogLeNet, with Splits)."""
    truth = _caffe_shapes()["bvlc_googlenet_deploy"]
    report = _report("bvlc_googlenet_deploy")
    after = {row["layer"]: int(row["memory_required_after_bytes"])
             for row in truth if row["memory_required_after_bytes"]}
    running = 0
    checked = 0
    for r in report.layers:
        running += r.data_bytes
        if r.layer.name in after:
            assert running == after[r.layer.name], r.layer.name
            checked += 1
    assert checked > 100


# Published parameter counts (weights + biases), each from an independent source:
# AlexNet 60,965,224 and GoogLeNet 6,998,552: the BVLC model zoo nets (count of the
# released caffemodel blobs); VGG-16 138,357,544: Simonyan & Zisserman 2015 / torchvision;
# SqueezeNet 1.0 1,248,424: the SqueezeNet repo's caffemodel (Iandola et al. 2016).
@pytest.mark.parametrize("net,params", [
    ("bvlc_alexnet_deploy", 60_965_224),
    ("vgg16_deploy_v1", 138_357_544),
    ("bvlc_googlenet_deploy", 6_998_552),
    ("squeezenet_v1.0_deploy", 1_248_424),
])
def test_published_param_counts(net: str, params: int) -> None:
    assert _report(net).totals.params == params


@pytest.mark.parametrize("net,macs", [
    ("bvlc_alexnet_deploy", 724_406_816),
    ("vgg16_deploy_v1", 15_470_264_320),
    ("bvlc_googlenet_deploy", 1_582_671_872),
])
def test_macs_per_image(net: str, macs: int) -> None:
    assert _report(net, batch=1).totals.macs == macs
    assert _report(net, batch=3).totals.macs == 3 * macs


def test_batchnorm_statistics_are_not_params() -> None:
    """ResNet-50 (Caffe): learnable = torchvision's published 25,557,032 + conv1's bias (64,
    Caffe's default bias_term); BatchNorm's mean, variance and scale factor are statistics:
    2·26,560 channels + one factor for each of the 53 BatchNorm layers."""
    t = _report("resnet50_deploy").totals
    assert t.params == 25_557_032 + 64
    assert t.stats == 2 * 26_560 + 53
    assert t.params_bytes == 4 * (t.params + t.stats)


CK_NETS = {
    "bvlc-alexnet-cudnn": "bvlc_alexnet_deploy",
    "bvlc-googlenet-cudnn": "bvlc_googlenet_deploy",
    "deepscale-squeezenet-1.0-cudnn": "squeezenet_v1.0_deploy",
}


def test_data_memory_equals_caffe_at_every_ck_batch() -> None:
    """ck_caffe_gtx1080_summary.tsv memory_bytes: real Caffe at batch 2…16."""
    rows = read_tsv(TIMINGS / "ck_caffe_gtx1080_summary.tsv")
    checked = 0
    for exp, net in CK_NETS.items():
        per_batch = {int(r["batch"]): int(r["memory_bytes"]) for r in rows if r["experiment"] == exp}
        assert len(per_batch) >= 8
        for batch, want in sorted(per_batch.items()):
            assert _report(net, batch=batch).totals.data_bytes == want, (net, batch)
            checked += 1
    assert checked >= 24


def test_workspace_is_im2col_except_1x1() -> None:
    """AlexNet conv1: 3·11·11 × 55·55 floats; SqueezeNet's 1×1 squeeze layers need none."""
    r = {x.layer.name: x for x in _report("bvlc_alexnet_deploy").layers}
    assert r["conv1"].workspace_bytes == 3 * 11 * 11 * 55 * 55 * 4
    assert r["conv2"].workspace_bytes == 96 * 5 * 5 * 27 * 27 * 4  # grouped: C_in·k·k
    s = {x.layer.name: x for x in _report("squeezenet_v1.0_deploy").layers}
    assert s["fire2/squeeze1x1"].workspace_bytes == 0
    assert s["fire2/expand3x3"].workspace_bytes == 16 * 9 * 55 * 55 * 4


def test_gemm_sizes_follow_the_paper() -> None:
    r = {x.layer.name: x for x in _report("bvlc_alexnet_deploy").layers}
    g = r["conv2"].gemm
    assert (g.n, g.k, g.m, g.groups) == (128, 48 * 25, 27 * 27, 2)
    g = r["fc6"].gemm
    assert (g.n, g.k, g.m) == (4096, 256 * 6 * 6, 10)


def test_fp16_halves_bytes() -> None:
    a = _report("bvlc_alexnet_deploy").totals
    b = _report("bvlc_alexnet_deploy", dtype="fp16").totals
    assert (b.data_bytes * 2, b.params_bytes * 2) == (a.data_bytes, a.params_bytes)


# Files Caffe itself cannot shape without running: data layers that read a database or run
# Python. Each must give its specific message; every other corpus file analyses fully.
NEEDS_SHAPE = {
    "bvlc_alexnet_train_val": "data",
    "lenet_train_test_v1": "data",
    "mnist_siamese_train_test": "pair_data",
    "nin_imagenet_train_val_v1": "data",
    "segnet_inference": "data",
    "faster_rcnn_vgg_cnn_m_1024_voc_train": "data",
    "faster_rcnn_vgg16_voc_test": "rois",  # the Python proposal layer's output
}


def _corpus_files() -> list[str]:
    return sorted(p.stem for p in CAFFE_CORPUS.glob("*.prototxt")) if CAFFE_CORPUS.exists() else []


@pytest.mark.parametrize("net", _corpus_files())
def test_every_corpus_file_is_analysed(net: str) -> None:
    if net in NEEDS_SHAPE:
        with pytest.raises(CnnstatError) as e:
            _report(net)
        assert f"--input-shape {NEEDS_SHAPE[net]}=" in str(e.value)
    else:
        report = _report(net)
        assert report.totals.params > 0 and report.layers


def test_needed_shapes_can_be_given() -> None:
    """With the shape the message asks for, the same files analyse."""
    r = _report("bvlc_alexnet_train_val", shapes={"data": (50, 3, 227, 227)})
    assert r.totals.params == 60_965_224
    r = _report("faster_rcnn_vgg16_voc_test", shapes={"rois": (300, 5)})
    fc6 = next(x for x in r.layers if x.layer.name == "fc6")
    assert fc6.out_shapes == ((300, 4096),)


def test_train_phase_keeps_train_layers() -> None:
    net = str(need(CAFFE_CORPUS / "lenet_train_test_v1.prototxt"))
    shapes = {"data": (64, 1, 28, 28)}
    test = analyze(load_net(net), Options(shapes=shapes))
    train = analyze(load_net(net, phase="train"), Options(shapes=shapes))
    assert "accuracy" in [r.layer.name for r in test.layers]
    assert "accuracy" not in [r.layer.name for r in train.layers]


def test_shipped_alexnet_is_the_published_one() -> None:
    r = analyze(load_net(str(MODELS / "alexnet.prototxt")))
    assert (r.totals.params, r.totals.macs) == (60_965_224, 724_406_816)
