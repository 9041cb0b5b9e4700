"""What Caffe accepts and refuses: its own size arithmetic and its blob limit.

Caffe shapes a net with C++ ``int`` and ``float`` arithmetic and accepts it whenever the sizes
fit its ``Blob`` (BVLC master: ``ConvolutionLayer::compute_output_shape``,
``PoolingLayer::Reshape``, ``Blob::Reshape``). Every expected shape below is written as that
arithmetic, worked by hand:

- convolution: trunc((in + 2·pad − extent) / stride) + 1, C++ division truncating toward 0;
- pooling: ceil(float32(in + 2·pad − kernel) / stride) + 1, then, when the layer has any pad,
  one less on every axis whose last window would start at or past in + pad;
- a blob of more than 2³¹ − 1 elements, or a negative dim, is refused.

The nets are small prototxts written here; ``pose-like`` mimics how OpenPose ships its nets,
with a 1×1 input placeholder that the program resizes at run time.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from analyzer.analysis import Options, analyze
from analyzer.commands.cli import main
from analyzer.frontends.load import load_net
from analyzer.timing.lower import export

INT_MAX = 2**31 - 1


def _trunc_div(a: int, b: int) -> int:
    """C++ int division (written out here so the expectations do not call the code tested)."""
    return int(a / b)


def conv(name: str, bottom: str, extra: str, top: str | None = None) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" '
            f'top: "{top or name}" convolution_param {{ {extra} }} }}\n')


def pool(name: str, bottom: str, extra: str) -> str:
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
            f"pooling_param {{ {extra} }} }}\n")


def relu(name: str, blob: str) -> str:
    return f'layer {{ name: "{name}" type: "ReLU" bottom: "{blob}" top: "{blob}" }}\n'


def inputs(*dims: int, name: str = "data") -> str:
    shape = " ".join(f"dim: {d}" for d in dims)
    return (f'name: "t"\nlayer {{ name: "{name}" type: "Input" top: "{name}" '
            f"input_param {{ shape {{ {shape} }} }} }}\n")


POSE = (
    'name: "pose-like"\n'
    'input: "image"\n'
    "input_dim: 1\n"
    "input_dim: 3\n"
    "input_dim: 1 # set by the program at run time\n"
    "input_dim: 1 # set by the program at run time\n"
    + conv("conv1_1", "image", "num_output: 16 pad: 1 kernel_size: 3") + relu("relu1_1", "conv1_1")
    + pool("pool1", "conv1_1", "pool: MAX kernel_size: 2 stride: 2")
    + conv("conv2_1", "pool1", "num_output: 32 pad: 1 kernel_size: 3") + relu("relu2_1", "conv2_1")
    + pool("pool2", "conv2_1", "pool: MAX kernel_size: 2 stride: 2")
    + conv("feat", "pool2", "num_output: 32 pad: 1 kernel_size: 3")
    + conv("s1_L1", "feat", "num_output: 8 pad: 3 kernel_size: 7")
    + conv("s1_L2", "feat", "num_output: 4 pad: 3 kernel_size: 7")
    + 'layer { name: "concat_s2" type: "Concat" bottom: "s1_L1" bottom: "s1_L2" bottom: "feat" '
    'top: "concat_s2" concat_param { axis: 1 } }\n'
    + conv("s2_L1", "concat_s2", "num_output: 8 pad: 3 kernel_size: 7")
)


def _run_json(path: Path, capsys, *args: str) -> dict:
    assert main([str(path), "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _shapes(report: dict) -> dict[str, list[int]]:
    """Layer name → its first top's shape (Split layers have their own names)."""
    return {r["name"]: r["output_shapes"][0] for r in report["layers"] if r["output_shapes"]}


def _pool_out(size: int, k: int, s: int, p: int = 0) -> int:
    """Caffe's ceil pooling for sizes far below 2²⁴ (where float32 is exact)."""
    out = math.ceil((size + 2 * p - k) / s) + 1
    return out - 1 if p and (out - 1) * s >= size + p else out


def _conv_out(size: int, k: int, s: int = 1, p: int = 0) -> int:
    return _trunc_div(size + 2 * p - k, s) + 1


# ------------------------------------------------------------------ the 1×1 placeholder


def test_pose_like_net_with_a_1x1_placeholder_shapes_as_caffe(tmp_path: Path, capsys) -> None:
    """Caffe loads this net: 2×2 stride-2 pooling of a 1×1 map gives ceil((1 − 2)/2) + 1 = 1."""
    path = tmp_path / "pose.prototxt"
    path.write_text(POSE)
    report = _run_json(path, capsys)
    h1 = _conv_out(1, 3, p=1)  # (1 + 2 − 3)/1 + 1 = 1
    p1 = _pool_out(h1, 2, 2)  # ceil(−1/2) + 1 = 0 + 1 = 1
    h2 = _conv_out(p1, 3, p=1)
    p2 = _pool_out(h2, 2, 2)
    f = _conv_out(p2, 3, p=1)
    s1 = _conv_out(f, 7, p=3)  # (1 + 6 − 7)/1 + 1 = 1
    assert (h1, p1, p2, s1) == (1, 1, 1, 1)
    assert _shapes(report) == {
        "input": [1, 3, 1, 1],
        "conv1_1": [1, 16, h1, h1], "relu1_1": [1, 16, h1, h1], "pool1": [1, 16, p1, p1],
        "conv2_1": [1, 32, h2, h2], "relu2_1": [1, 32, h2, h2], "pool2": [1, 32, p2, p2],
        "feat": [1, 32, f, f], "feat_feat_0_split": [1, 32, f, f],
        "s1_L1": [1, 8, s1, s1], "s1_L2": [1, 4, s1, s1], "concat_s2": [1, 8 + 4 + 32, s1, s1],
        "s2_L1": [1, 8, _conv_out(s1, 7, p=3), _conv_out(s1, 7, p=3)],
    }
    # MACs follow the shapes: s2_L1 is 8 filters of 44·7·7 over one output position
    s2 = next(r for r in report["layers"] if r["name"] == "s2_L1")
    assert s2["macs"] == 8 * 44 * 7 * 7 * 1
    [warning] = [w for w in report["warnings"] if "placeholder" in w]
    assert "input 'image' is 1×3×1×1 in the file" in warning
    assert "2 layer(s) (pool1, pool2) have a window larger than their padded input" in warning
    assert warning.endswith("--input-shape image=1,3,H,W")


def test_pose_like_net_at_its_run_time_size_has_no_warning(tmp_path: Path, capsys) -> None:
    path = tmp_path / "pose.prototxt"
    path.write_text(POSE)
    report = _run_json(path, capsys, "--input-shape", "image=1,3,368,368")
    p1 = _pool_out(368, 2, 2)  # ceil(366/2) + 1 = 184
    p2 = _pool_out(p1, 2, 2)  # ceil(182/2) + 1 = 92
    assert (p1, p2) == (184, 92)
    shapes = _shapes(report)
    assert shapes["pool1"] == [1, 16, 184, 184] and shapes["s2_L1"] == [1, 8, 92, 92]
    assert not any("placeholder" in w or "window larger" in w for w in report["warnings"])


def test_a_small_input_given_on_the_command_line(tmp_path: Path, capsys) -> None:
    """4×4 in: every window fits (pool2 sees ceil((4 − 2)/2) + 1 = 2), no warning. 1×1 given
    by the user: not called a placeholder, but the oversized windows are still named."""
    path = tmp_path / "pose.prototxt"
    path.write_text(POSE)
    report = _run_json(path, capsys, "--input-shape", "image=1,3,4,4")
    p1 = _pool_out(4, 2, 2)
    assert (p1, _pool_out(p1, 2, 2)) == (2, 1)
    assert _shapes(report)["pool2"] == [1, 32, 1, 1]
    assert not any("window larger" in w for w in report["warnings"])
    report = _run_json(path, capsys, "--input-shape", "image=1,3,1,1")
    [warning] = [w for w in report["warnings"] if "window larger" in w]
    assert "placeholder" not in warning and warning.startswith("input 'image' is 1×3×1×1; 2 ")


# ------------------------------------------------------------------ Caffe's pooling arithmetic


def test_pad_on_one_axis_clips_the_last_window_on_both(tmp_path: Path, capsys) -> None:
    """``if (pad_h || pad_w)`` guards the clip of both axes. 5×5 in, kernel 3×1, stride 3,
    pad 1×0: H: ceil((5 + 2 − 3)/3) + 1 = 3, (3 − 1)·3 = 6 ≥ 5 + 1 → 2;
    W: ceil((5 − 1)/3) + 1 = 3, (3 − 1)·3 = 6 ≥ 5 + 0 → 2 (without the pad on H it stays 3)."""
    path = tmp_path / "clip.prototxt"
    path.write_text(inputs(1, 2, 5, 5) + pool(
        "p", "data", "pool: MAX kernel_h: 3 kernel_w: 1 stride_h: 3 stride_w: 3 pad_h: 1 pad_w: 0"))
    h = math.ceil((5 + 2 - 3) / 3) + 1
    w = math.ceil((5 - 1) / 3) + 1
    assert (h, w) == (3, 3)
    h -= (h - 1) * 3 >= 5 + 1
    w -= (w - 1) * 3 >= 5 + 0
    assert _shapes(_run_json(path, capsys))["p"] == [1, 2, h, w] == [1, 2, 2, 2]


def test_pooling_divides_in_single_precision(tmp_path: Path, capsys) -> None:
    """W = 2²⁴ + 3, kernel 2, stride 2: the span 2²⁴ + 1 becomes 2²⁴ as a float32, so Caffe
    gives 2²⁴/2 + 1 = 8,388,609 where exact arithmetic would give ceil((2²⁴ + 1)/2) + 1."""
    width = 2**24 + 3
    path = tmp_path / "wide.prototxt"
    path.write_text(inputs(1, 1, 1, width) + pool(
        "p", "data", "pool: MAX kernel_h: 1 kernel_w: 2 stride_h: 1 stride_w: 2"))
    as_float32 = 2**24  # float32(2**24 + 1): halfway, rounds to the even neighbour
    assert _shapes(_run_json(path, capsys))["p"] == [1, 1, 1, as_float32 // 2 + 1]
    assert as_float32 // 2 + 1 == math.ceil((width - 2) / 2) + 1 - 1


def test_pooling_to_zero_is_accepted_and_a_biased_conv_on_it_refused(tmp_path: Path,
                                                                      capsys) -> None:
    """3×3 stride-2 pooling of 1×1: ceil(−2/2) + 1 = 0. Blob accepts a 0 dim; a 1×1 conv
    without bias then gives trunc(−1/1) + 1 = 0; one with a bias is refused (Caffe fills a
    bias multiplier of the output's spatial size, and an empty blob has no data)."""
    head = inputs(1, 4, 1, 1) + pool("p", "data", "pool: MAX kernel_size: 3 stride: 2")
    assert math.ceil((1 - 3) / 2) + 1 == 0 and _conv_out(0, 1) == 0
    path = tmp_path / "zero.prototxt"
    path.write_text(head + conv("nb", "p", "num_output: 2 kernel_size: 1 bias_term: false"))
    report = _run_json(path, capsys)
    assert _shapes(report)["p"] == [1, 4, 0, 0] and _shapes(report)["nb"] == [1, 2, 0, 0]
    path.write_text(head + conv("b", "p", "num_output: 2 kernel_size: 1"))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:4: layer 'b'" in err
    assert "Caffe refuses a convolution with a bias term and an empty output" in err


def test_pooling_to_a_negative_size_is_refused(tmp_path: Path, capsys) -> None:
    """3×3 stride-1 pooling of 1×1: ceil(−2/1) + 1 = −1 < 0: Blob::Reshape refuses it."""
    path = tmp_path / "neg.prototxt"
    path.write_text(inputs(1, 4, 1, 1) + pool("p", "data", "pool: MAX kernel_size: 3 stride: 1"))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:3: layer 'p'" in err
    assert f"the output size would be {math.ceil((1 - 3) / 1) + 1}, which Caffe refuses" in err


# ------------------------------------------------------------------ Caffe's convolution arithmetic


def test_convolution_truncates_toward_zero(tmp_path: Path, capsys) -> None:
    """A 3×3 stride-2 window over 2×2: trunc((2 − 3)/2) + 1 = 0 + 1 = 1 (floor would give 0);
    then over that 1×1 without bias: trunc((1 − 3)/2) + 1 = −1 + 1 = 0, accepted."""
    path = tmp_path / "trunc.prototxt"
    path.write_text(inputs(1, 3, 2, 2)
                    + conv("c1", "data", "num_output: 4 kernel_size: 3 stride: 2")
                    + conv("c2", "c1", "num_output: 4 kernel_size: 3 stride: 2 bias_term: false"))
    report = _run_json(path, capsys)
    c1, c2 = _conv_out(2, 3, 2), _conv_out(_conv_out(2, 3, 2), 3, 2)
    assert (c1, c2) == (1, 0) and (2 - 3) // 2 + 1 == 0
    assert _shapes(report)["c1"] == [1, 4, c1, c1] and _shapes(report)["c2"] == [1, 4, c2, c2]
    c1_row = next(r for r in report["layers"] if r["name"] == "c1")
    assert c1_row["macs"] == 4 * 3 * 3 * 3 * c1 * c1  # n·k·m as Caffe's GEMM runs it
    [warning] = [w for w in report["warnings"] if "window larger" in w]
    assert "2 layer(s) (c1, c2)" in warning and "input 'data' is 1×3×2×2;" in warning


@pytest.mark.parametrize("size,k,s,why", [
    (8, 11, 1, "kernel extent 11 is larger than the padded input 8: the output size would be -2"),
    (1, 3, 2, "Caffe refuses a convolution with a bias term and an empty output"),
])
def test_convolution_caffe_refuses_is_refused(size, k, s, why, tmp_path, capsys) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text(inputs(1, 3, size, size)
                    + conv("c", "data", f"num_output: 4 kernel_size: {k} stride: {s}"))
    assert _conv_out(size, k, s) <= 0
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:3: layer 'c'" in err and why in err


TRUNC = (inputs(1, 3, 2, 2) + conv("c1", "data", "num_output: 4 kernel_size: 3 stride: 2")
         + conv("c2", "c1", "num_output: 4 kernel_size: 3 stride: 2 pad: 1"))


@pytest.mark.parametrize("text", [POSE, TRUNC], ids=["pose-like", "truncating conv"])
def test_measure_lowering_gives_caffes_shapes_in_onnxruntime(text: str, tmp_path: Path) -> None:
    """``cnnstat measure`` lowers a Caffe net to ONNX; onnxruntime must compute the same shape
    for every top (an end pad stands in for Caffe's truncating division)."""
    ort = pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    report = analyze(load_net(str(path)), Options())
    ex = export(report, all_outputs=True)
    sess = ort.InferenceSession(ex.model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, (v.shape for v in sess.run(
        names, {n: np.ones(s, np.float32) for n, s in ex.inputs.items()}))))
    want = {(r.layer.name, t): tuple(s) for r in report.layers if r.layer.kind != "Input"
            for t, s in zip(r.layer.tops, r.out_shapes)}
    assert {k: tuple(got[t]) for k, t in ex.top_tensor.items() if t in got} == want


# ------------------------------------------------------------------ the blob limit


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def _refused(proc: subprocess.CompletedProcess[str], where: str, *fragments: str) -> None:
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"cnnstat: {where}"), proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_an_input_past_int_max_elements_is_refused_as_caffe_does(tmp_path: Path) -> None:
    path = tmp_path / "big.prototxt"
    path.write_text(inputs(1, 3, 8, 8) + relu("r", "data"))
    side = 2**40
    proc = _cli([str(path), "--input-shape", f"data=1,1,{side},{side}"])
    _refused(proc, f"{path}:2: layer 'data': ", "blob 'data' (1×1×1099511627776×1099511627776)",
             f"has {side * side:,} elements", "more than 2,147,483,647 (2^31 − 1)")


def test_the_limit_is_exactly_int_max(tmp_path: Path, capsys) -> None:
    path = tmp_path / "edge.prototxt"
    path.write_text(inputs(1, 3, 8, 8) + relu("r", "data"))
    report = _run_json(path, capsys, "--input-shape", f"data=1,1,1,{INT_MAX}")
    assert report["totals"]["memory"]["data_bytes"] == 2 * INT_MAX * 4  # data and r (in place)
    assert main([str(path), "--input-shape", f"data=1,1,1,{INT_MAX + 1}"]) == 2
    assert f"has {INT_MAX + 1:,} elements" in capsys.readouterr().err


def test_a_weight_blob_past_int_max_is_refused(tmp_path: Path, capsys) -> None:
    """4096 inputs × 524,288 outputs = 2³¹ weights; one output fewer fits."""
    ip = ('layer {{ name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
          "inner_product_param {{ num_output: {} }} }}\n")
    path = tmp_path / "fc.prototxt"
    path.write_text(inputs(1, 4096) + ip.format(524_288))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:3: layer 'fc'" in err
    assert f"parameter blob 'weight' (524288×4096) has {524_288 * 4096:,} elements" in err
    path.write_text(inputs(1, 4096) + ip.format(524_287))
    assert _run_json(path, capsys)["totals"]["params"] == 524_287 * 4096 + 524_287


def test_an_im2col_buffer_past_int_max_is_refused(tmp_path: Path, capsys) -> None:
    """64×2048×2048 in (2²⁸ elements), 3×3 pad 1 to one channel: the top fits, but Caffe's
    column buffer is 64·3·3 × 2048·2048 = 2,415,919,104 elements."""
    path = tmp_path / "col.prototxt"
    path.write_text(inputs(1, 64, 2048, 2048)
                    + conv("c", "data", "num_output: 1 pad: 1 kernel_size: 3"))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:3: layer 'c'" in err
    assert f"the im2col buffer of layer 'c' has {64 * 9 * 2048 * 2048:,} elements" in err


def test_onnx_tensors_past_int64_are_refused(tmp_path: Path) -> None:
    """Element count past 2⁶³ − 1, and (2³⁰·2³¹ = 2⁶¹ elements) a byte size past it at fp32."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    _refused(_cli([str(path), "--input-shape", f"x={2**40},{2**40}"]), f"{path}: ",
             "tensor 'x' (1099511627776×1099511627776)", f"has {2**80:,} elements")
    _refused(_cli([str(path), "--input-shape", f"x={2**30},{2**31}"]), f"{path}: ",
             f"has {2**61:,} elements ({2**63:,} bytes)", "must fit in int64")


# ------------------------------------------------------------------ never a traceback


def test_no_traceback_on_any_net_here(tmp_path: Path) -> None:
    """Every net above through the real process: status 0 or 2, never a traceback."""
    nets = {
        "pose": POSE,
        "neg": inputs(1, 4, 1, 1) + pool("p", "data", "pool: MAX kernel_size: 3 stride: 1"),
        "zero": inputs(1, 4, 1, 1) + pool("p", "data", "pool: AVE kernel_size: 3 stride: 2")
        + conv("b", "p", "num_output: 2 kernel_size: 1"),
        "ip": inputs(1, 4096) + 'layer { name: "fc" type: "InnerProduct" bottom: "data" '
        'top: "fc" inner_product_param { num_output: 524288 } }\n',
    }
    for name, text in nets.items():
        path = tmp_path / f"{name}.prototxt"
        path.write_text(text)
        proc = _cli([str(path), "--format", "json"])
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert proc.returncode == (0 if name == "pose" else 2), (name, proc.stderr)
        if proc.returncode == 2:
            assert proc.stderr.count("\n") == 1
