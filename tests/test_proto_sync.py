"""Schema tests: caffe_pb2.py matches caffe.proto, and the schema parses Caffe text.

The generated module is compared byte-for-byte with a fresh protoc run, so any
edit to proto/caffe.proto without `python tools/gen_proto.py` fails here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO_ROOT.parent / "shared" / "corpus" / "caffe"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
caffe_pb2 = importlib.import_module("analyzer.frontends.caffe_pb2")


def _load_gen_proto():
    spec = importlib.util.spec_from_file_location(
        "cnnstat_gen_proto", REPO_ROOT / "tools" / "gen_proto.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(text: str):
    return text_format.Parse(text, caffe_pb2.NetParameter())


# --- generated code is in sync ---------------------------------------------


def test_generated_module_matches_proto(tmp_path):
    try:
        import grpc_tools.protoc  # noqa: F401
    except ImportError:
        pytest.skip(
            "grpc_tools (PyPI: grpcio-tools) is not installed; "
            "cannot regenerate caffe_pb2.py to compare"
        )
    gen_proto = _load_gen_proto()
    fresh = gen_proto.generate(tmp_path)
    committed = REPO_ROOT / "analyzer" / "frontends" / "caffe_pb2.py"
    assert fresh.read_bytes() == committed.read_bytes(), (
        "analyzer/frontends/caffe_pb2.py is stale (or was made with another grpcio-tools "
        "version); run: python tools/gen_proto.py"
    )


# --- the three text formats ------------------------------------------------

V2_NET = """
name: "tiny"
layer {
  name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 224 dim: 224 } }
}
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 }
  convolution_param {
    num_output: 64 kernel_size: 7 stride: 2 pad: 3 bias_term: false
    weight_filler { type: "msra" }
  }
}
layer {
  name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 round_mode: FLOOR }
}
layer {
  name: "acc" type: "Accuracy" bottom: "pool1" top: "acc"
  include { phase: TEST }
}
"""

V1_NET = """
name: "v1"
input: "data"
input_dim: 10 input_dim: 3 input_dim: 227 input_dim: 227
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 96 kernel_size: 11 stride: 4 }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers {
  name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 }
}
"""

V0_NET = """
name: "v0"
input: "data"
input_dim: 10 input_dim: 3 input_dim: 227 input_dim: 227
layers {
  layer {
    name: "conv1" type: "conv" num_output: 96 kernelsize: 11 stride: 4
    weight_filler { type: "gaussian" std: 0.01 }
    blobs_lr: 1. blobs_lr: 2. weight_decay: 1. weight_decay: 0.
  }
  bottom: "data"
  top: "conv1"
}
layers {
  layer { name: "pool1" type: "pool" pool: MAX kernelsize: 3 stride: 2 }
  bottom: "conv1"
  top: "pool1"
}
"""


def test_parse_v2():
    net = _parse(V2_NET)
    assert [lp.name for lp in net.layer] == ["data", "conv1", "pool1", "acc"]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 224, 224]
    conv = net.layer[1].convolution_param
    assert list(conv.kernel_size) == [7]
    assert list(conv.stride) == [2] and list(conv.pad) == [3]
    assert conv.bias_term is False and conv.group == 1  # explicit / default
    assert conv.engine == caffe_pb2.ConvolutionParameter.DEFAULT
    pool = net.layer[2].pooling_param
    assert pool.pool == caffe_pb2.PoolingParameter.AVE
    assert pool.round_mode == caffe_pb2.PoolingParameter.FLOOR
    assert net.layer[3].include[0].phase == caffe_pb2.TEST


def test_parse_v1():
    net = _parse(V1_NET)
    assert len(net.layer) == 0 and len(net.layers) == 3
    assert list(net.input_dim) == [10, 3, 227, 227]
    conv = net.layers[0]
    assert conv.type == caffe_pb2.V1LayerParameter.CONVOLUTION == 4
    assert list(conv.blobs_lr) == [1.0, 2.0]
    assert list(conv.weight_decay) == [1.0, 0.0]
    assert list(conv.convolution_param.kernel_size) == [11]
    assert net.layers[1].type == caffe_pb2.V1LayerParameter.RELU == 18
    assert net.layers[2].pooling_param.pool == caffe_pb2.PoolingParameter.MAX


def test_parse_v0():
    net = _parse(V0_NET)
    assert len(net.layers) == 2
    outer = net.layers[0]
    assert list(outer.bottom) == ["data"] and list(outer.top) == ["conv1"]
    assert not outer.HasField("type")  # V0 keeps the type inside `layer`
    conv = outer.layer
    assert conv.type == "conv"
    assert conv.kernelsize == 11 and conv.stride == 4 and conv.num_output == 96
    assert conv.pad == 0 and conv.biasterm is True  # defaults
    assert list(conv.blobs_lr) == [1.0, 2.0]
    assert conv.weight_filler.std == pytest.approx(0.01)
    pool = net.layers[1].layer
    assert pool.pool == caffe_pb2.V0LayerParameter.MAX and pool.kernelsize == 3


def test_fork_fields():
    net = _parse("""
      layer { name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 3 ceil_mode: false } }
      layer { name: "bn" type: "BN" bn_param { bn_mode: INFERENCE scale_filler { value: 1 } } }
      layer { name: "bn2" type: "BN" bn_param { slope_filler { value: 1 } frozen: true momentum: 0.95 } }
      layer { name: "up" type: "Upsample" upsample_param { scale: 2 upsample_h: 45 upsample_w: 60 } }
      layer { name: "i" type: "Interp" interp_param { zoom_factor: 8 } }
      layer { name: "s" type: "ShuffleChannel" shuffle_channel_param { group: 3 } }
      layer { name: "r" type: "ROIPooling" roi_pooling_param { pooled_h: 7 pooled_w: 7 spatial_scale: 0.0625 } }
      layer { name: "pb" type: "PriorBox" prior_box_param { min_size: 30 aspect_ratio: 2 flip: true } }
      layer { name: "d" type: "DetectionOutput"
              detection_output_param { code_type: CENTER_SIZE keep_top_k: 200 } }
      layers { name: "c" type: CROP }
    """)
    lp = {layer.name: layer for layer in net.layer}
    assert lp["p"].pooling_param.ceil_mode is False
    assert lp["bn"].bn_param.bn_mode == caffe_pb2.BNParameter.INFERENCE
    assert lp["bn2"].bn_param.frozen is True
    assert lp["up"].upsample_param.upsample_h == 45
    assert lp["i"].interp_param.zoom_factor == 8
    assert lp["s"].shuffle_channel_param.group == 3
    assert lp["r"].roi_pooling_param.spatial_scale == pytest.approx(0.0625)
    assert list(lp["pb"].prior_box_param.min_size) == [30.0]
    dop = lp["d"].detection_output_param
    assert dop.code_type == caffe_pb2.PriorBoxParameter.CENTER_SIZE
    assert dop.keep_top_k == 200
    assert net.layers[0].type == caffe_pb2.V1LayerParameter.CROP


def test_bvlc_field_numbers():
    """Spot-check numbers that binary .caffemodel compatibility depends on."""

    def num(msg, field):
        return msg.DESCRIPTOR.fields_by_name[field].number

    assert num(caffe_pb2.NetParameter, "layer") == 100
    assert num(caffe_pb2.NetParameter, "layers") == 2
    assert num(caffe_pb2.LayerParameter, "blobs") == 7
    assert num(caffe_pb2.LayerParameter, "convolution_param") == 106
    assert num(caffe_pb2.LayerParameter, "input_param") == 143
    assert num(caffe_pb2.LayerParameter, "clip_param") == 148
    assert num(caffe_pb2.BlobProto, "shape") == 7
    assert num(caffe_pb2.BlobProto, "data") == 5
    assert num(caffe_pb2.V1LayerParameter, "blobs") == 6
    assert num(caffe_pb2.V1LayerParameter, "layer") == 1
    assert num(caffe_pb2.V0LayerParameter, "blobs") == 50


# --- corpus ----------------------------------------------------------------


def _corpus_files():
    if not CORPUS_DIR.is_dir():
        return []
    return sorted(CORPUS_DIR.glob("*.prototxt"))


@pytest.mark.skipif(
    not CORPUS_DIR.is_dir(), reason=f"corpus folder {CORPUS_DIR} is absent"
)
def test_corpus_is_not_empty():
    assert _corpus_files(), f"no *.prototxt in {CORPUS_DIR}"


@pytest.mark.skipif(
    not CORPUS_DIR.is_dir(), reason=f"corpus folder {CORPUS_DIR} is absent"
)
@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: p.name)
def test_corpus_file_parses(path):
    # Parse() rejects unknown fields and enum values, so this proves the schema
    # knows everything each corpus file uses.
    net = _parse(path.read_text(encoding="utf-8"))
    assert len(net.layer) + len(net.layers) > 0
