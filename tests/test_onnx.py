"""The ONNX frontend: torchvision graphs against published counts, Caffe parity, symbolic
batch, external data that is never opened, op coverage against onnxruntime, and errors."""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from analyzer.analysis import Options, Report, analyze
from analyzer.commands.cli import main
from analyzer.frontends.caffe import NetState, read_caffe
from analyzer.frontends.onnx import read_onnx
from tests.conftest import MODELS, ONNX_CORPUS, ONNX_MODERN, need, read_tsv

F = TensorProto.FLOAT


def run(path: Path | str, batch: int | None = 1, **shapes: tuple[int, ...]) -> Report:
    return analyze(read_onnx(str(path), batch=batch, shapes=shapes),
                   Options(batch=batch, shapes=shapes))


def init(name: str, *dims: int, dtype: int = F, seed: int = 0) -> TensorProto:
    rng = np.random.default_rng(seed)
    arr = rng.standard_normal(dims).astype(helper.tensor_dtype_to_np_dtype(dtype))
    return numpy_helper.from_array(arr, name)


def dims_only(name: str, *dims: int) -> TensorProto:
    """A float initializer whose data lives in an external file that is not there."""
    t = TensorProto(name=name, dims=dims, data_type=F, data_location=TensorProto.EXTERNAL)
    t.external_data.add(key="location", value="absent.weights")
    return t


def ints(name: str, values: list[int]) -> TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def save(tmp: Path, nodes, inputs, inits, name: str = "m.onnx", opset: int = 17,
         outputs=None) -> Path:
    outs = outputs or [helper.make_tensor_value_info(nodes[-1].output[0], F, None)]
    graph = helper.make_graph(nodes, "g", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp / name
    onnx.save(model, path)
    return path


# ----------------------------------------------------------------------------- corpus


def _learnable_initializer_elements(path: Path) -> int:
    """Independent count: float initializers, minus BatchNormalization's mean/var inputs."""
    m = onnx.load(str(path), load_external_data=False)
    stats = {n.input[i] for n in m.graph.node if n.op_type == "BatchNormalization"
             for i in (3, 4)}
    return sum(math.prod(t.dims) for t in m.graph.initializer
               if t.data_type == F and t.name not in stats)


def _manifest(folder: Path) -> list[dict[str, str]]:
    rows = read_tsv(folder / "MANIFEST.tsv") if (folder / "MANIFEST.tsv").exists() else []
    return [{**r, "folder": str(folder)} for r in rows]


@pytest.mark.parametrize("row", _manifest(ONNX_CORPUS) + _manifest(ONNX_MODERN),
                         ids=lambda r: r["model"])
def test_torchvision_counts(row: dict[str, str]) -> None:
    """The 26 torchvision graphs of ../shared: learnable params exact (the manifest's and an
    independent count of the file's float initializers), MACs within 1 % of torchvision's
    published GFLOPS, every layer costed and shaped, ONNX's own shapes equal cnnstat's."""
    path = need(Path(row["folder"]) / row["file"])
    dims = tuple(int(d) for d in row["input"].split("x"))
    r = run(path, batch=dims[0])
    assert r.inputs == {"input": dims}
    assert r.totals.params == int(row["num_params"]) == _learnable_initializer_elements(path)
    published = float(row["gflops_published"]) * 1e9
    assert abs(r.totals.macs - published) / published < 0.01
    assert all(x.costed for x in r.layers), [x.layer.name for x in r.layers if not x.costed]
    # ONNX shape inference, run first, shapes every layer as cnnstat's own rules do
    onnx_first = read_onnx(str(path), batch=dims[0], onnx_inference="always")
    assert all(la.shapes_hint is not None for la in onnx_first.layers[1:])
    assert [la.shapes_hint for la in onnx_first.layers[1:]] == [x.out_shapes for x in r.layers[1:]]
    assert r.layers[-1].out_shapes[-1] == (dims[0], 1000)


def test_corpus_manifest_present() -> None:
    assert len(read_tsv(ONNX_CORPUS / "MANIFEST.tsv")) == 7
    assert len(read_tsv(ONNX_MODERN / "MANIFEST.tsv")) == 19


def test_shufflenet_shape_chains_are_folded() -> None:
    """Shape→Gather→Div→Cast→Unsqueeze→Concat→Reshape chains resolve and leave no rows."""
    r = run(need(ONNX_CORPUS / "shufflenet_v2_x1_0.onnx"), batch=2)
    types = {x.layer.type for x in r.layers}
    assert not types & {"Shape", "Gather", "Constant", "Unsqueeze", "Cast", "Div"}
    reshapes = [x for x in r.layers if x.layer.type == "Reshape"]
    assert len(reshapes) == 32 and all(x.layer.kind == "Reshape" for x in reshapes)
    assert reshapes[0].out_shapes[0] == (2, 2, 58, 28, 28)  # channel shuffle, groups 2
    assert r.totals.macs == 2 * run(ONNX_CORPUS / "shufflenet_v2_x1_0.onnx").totals.macs


def test_batch_norm_statistics_are_not_params() -> None:
    r = run(need(ONNX_CORPUS / "resnet18.onnx"))
    bn = next(x for x in r.layers if x.layer.type == "BatchNormalization")
    assert (bn.params, bn.stats, bn.params_bytes) == (128, 128, 256 * 4)
    assert r.totals.stats == 2 * sum(x.out_shapes[0][1] for x in r.layers
                                     if x.layer.type == "BatchNormalization")


# ----------------------------------------------------------------------------- Caffe parity


def _alexnet_onnx(tmp: Path) -> Path:
    """models/alexnet.prototxt, node for node, in ONNX (names as in the prototxt)."""
    nodes, inits = [], []
    x = "data"

    def conv(name: str, c_in: int, c_out: int, k: int, s: int = 1, p: int = 0, g: int = 1):
        nonlocal x
        inits.extend([dims_only(f"{name}.w", c_out, c_in // g, k, k),
                      dims_only(f"{name}.b", c_out)])
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name,
                                      kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
                                      group=g))
        x = name

    def op(kind: str, name: str, **attrs):
        nonlocal x
        nodes.append(helper.make_node(kind, [x], [name], name=name, **attrs))
        x = name

    def fc(name: str, c_in: int, c_out: int):
        nonlocal x
        inits.extend([dims_only(f"{name}.w", c_out, c_in), dims_only(f"{name}.b", c_out)])
        nodes.append(helper.make_node("Gemm", [x, f"{name}.w", f"{name}.b"], [name],
                                      name=name, transB=1))
        x = name

    pool = {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}
    conv("conv1", 3, 96, 11, s=4)
    op("Relu", "relu1")
    op("LRN", "norm1", size=5, alpha=1e-4, beta=0.75)
    op("MaxPool", "pool1", **pool)
    conv("conv2", 96, 256, 5, p=2, g=2)
    op("Relu", "relu2")
    op("LRN", "norm2", size=5, alpha=1e-4, beta=0.75)
    op("MaxPool", "pool2", **pool)
    conv("conv3", 256, 384, 3, p=1)
    op("Relu", "relu3")
    conv("conv4", 384, 384, 3, p=1, g=2)
    op("Relu", "relu4")
    conv("conv5", 384, 256, 3, p=1, g=2)
    op("Relu", "relu5")
    op("MaxPool", "pool5", **pool)
    op("Flatten", "flatten")
    for i, (a, b) in enumerate([(9216, 4096), (4096, 4096), (4096, 1000)]):
        fc(f"fc{i + 6}", a, b)
        if i < 2:
            op("Relu", f"relu{i + 6}")
            op("Dropout", f"drop{i + 6}")
    op("Softmax", "prob", axis=1)
    data = helper.make_tensor_value_info("data", F, [1, 3, 227, 227])
    return save(tmp, nodes, [data], inits, "alexnet.onnx")


def test_same_net_as_prototxt_and_onnx(tmp_path: Path) -> None:
    caffe = analyze(read_caffe(str(MODELS / "alexnet.prototxt"), NetState("TEST", 0, ())))
    onnx_r = run(_alexnet_onnx(tmp_path), batch=None)
    by_name = {x.layer.name: x for x in onnx_r.layers}
    compared = 0
    for c in caffe.layers:
        o = by_name.get(c.layer.name)
        if o is None:
            continue
        compared += 1
        assert o.out_shapes == c.out_shapes, c.layer.name
        assert (o.gemm, o.macs, o.params, o.workspace_bytes) == (
            c.gemm, c.macs, c.params, c.workspace_bytes), c.layer.name
        if c.layer.kind != "ReLU":  # Caffe's in-place ReLU shares its blob
            assert o.flops == c.flops, c.layer.name
    assert compared == len(caffe.layers)  # every Caffe layer has its ONNX twin
    assert (onnx_r.totals.macs, onnx_r.totals.params) == (caffe.totals.macs,
                                                          caffe.totals.params)
    # Sze et al., "Efficient Processing of Deep Neural Networks" (2017), Table: AlexNet 724M MACs
    assert round(caffe.totals.macs / 1e6) == 724


# ----------------------------------------------------------------------------- symbolic batch


def _symbolic(tmp: Path) -> Path:
    """A conv net with a 'B' batch, a Shape-driven Reshape and an activation×activation MatMul."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),  # a scalar index
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["seq"]),  # B × 16 × 64
        helper.make_node("Transpose", ["seq"], ["seqT"], perm=[0, 2, 1]),  # B × 64 × 16
        helper.make_node("MatMul", ["seq", "seqT"], ["gram"]),  # B × 16 × 16
        helper.make_node("MatMul", ["gram", "proj"], ["y"]),  # fc 16 → 10
    ]
    inits = [init("w", 16, 3, 3, 3), init("b", 16), ints("ax0", [0]), ints("tail", [16, 64]),
             init("proj", 16, 10), numpy_helper.from_array(np.array(0, dtype=np.int64), "i0")]
    x = helper.make_tensor_value_info("x", F, ["B", 3, 8, 8])
    return save(tmp, nodes, [x], inits)


def test_symbolic_batch_scales_exactly(tmp_path: Path) -> None:
    path = _symbolic(tmp_path)
    one, eight = run(path, batch=1), run(path, batch=8)
    assert eight.totals.macs == 8 * one.totals.macs
    kinds = [x.layer.kind for x in one.layers]
    assert kinds == ["Input", "Convolution", "ReLU", "Reshape", "Permute", "MatMul",
                     "InnerProduct"]
    gram = one.layers[5]
    assert gram.out_shapes == ((1, 16, 16),) and gram.macs == 16 * 16 * 64
    assert (gram.gemm.n, gram.gemm.k, gram.gemm.m) == (16, 64, 16)
    assert eight.layers[-1].out_shapes == ((8, 16, 10),)
    assert one.totals.macs == 16 * 27 * 64 + 16 * 16 * 64 + 16 * 16 * 10
    assert one.totals.params == 16 * 27 + 16 + 16 * 10  # int shape constants are no params


def test_symbolic_batch_without_batch_is_one_error(tmp_path: Path, capsys) -> None:
    assert main([str(_symbolic(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'x' [B,3,8,8]" in err and "--batch" in err
    assert main([str(_symbolic(tmp_path)), "--input-shape", "x=2,3,8,8",
                 "--format", "json"]) == 0


# ----------------------------------------------------------------------------- external data


def _external(tmp: Path) -> tuple[Path, Report]:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    inits = [init("w", 8, 3, 3, 3), init("fc", 10, 8 * 6 * 6), init("fcb", 10)]
    x = helper.make_tensor_value_info("x", F, [1, 3, 8, 8])
    graph = helper.make_graph(nodes, "ext", [x], [helper.make_tensor_value_info("y", F, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.weights", size_threshold=0)
    assert (tmp / "ext.weights").stat().st_size == 4 * (8 * 27 + 10 * 288 + 10)
    return path, run(path)


def _figures(r: Report) -> list:
    return [(x.layer.name, x.out_shapes, x.gemm, x.macs, x.params, x.params_bytes,
             x.data_bytes, x.workspace_bytes) for x in r.layers]


def _relocate(path: Path, location: str) -> None:
    m = onnx.load(str(path), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(m, str(path))


def test_external_data_present_absent_hostile(tmp_path: Path) -> None:
    path, present = _external(tmp_path)
    assert present.totals.params == 8 * 27 + 10 * 288 + 10
    (tmp_path / "ext.weights").unlink()
    assert _figures(run(path)) == _figures(present)
    _relocate(path, "../../../../etc/passwd")
    assert _figures(run(path)) == _figures(present)


_OPENED: list[str] | None = None  # paths Python opened while a test listens


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


def test_external_data_file_is_never_opened(tmp_path: Path) -> None:
    """The weights 'file' is a FIFO: opening it for reading blocks until a writer comes
    (permissions would not stop root), and onnx's own loader refuses it with an error; an
    audit hook records every open() from Python. The analysis must touch it in no way."""
    global _OPENED
    path, present = _external(tmp_path)
    (tmp_path / "ext.weights").unlink()
    os.mkfifo(tmp_path / "ext.weights")
    done: dict[str, Report] = {}
    _OPENED = []
    try:
        worker = threading.Thread(target=lambda: done.update(r=run(path)), daemon=True)
        worker.start()
        worker.join(20)
        blocked = worker.is_alive()
        if blocked:  # release the reader so the thread ends: a writer opens and closes
            os.close(os.open(tmp_path / "ext.weights", os.O_WRONLY | os.O_NONBLOCK))
            worker.join(5)
        opened = [p for p in _OPENED if "ext.weights" in p]
    finally:
        _OPENED = None
    assert not blocked and not opened, "the analysis opened the external data file"
    assert _figures(done["r"]) == _figures(present)


# ----------------------------------------------------------------------------- op coverage


def _zoo(tmp: Path) -> Path:
    """Many ops at once; every intermediate is a graph output so onnxruntime reports it."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[0, 1, 2, 1], strides=[2, 2]),
        n("Conv", ["c1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], auto_pad="SAME_UPPER",
          strides=[2, 2], group=4),
        n("BatchNormalization", ["c2", "g", "be", "mu", "var"], ["bn"]),
        n("HardSwish", ["bn"], ["hs"]),
        n("AveragePool", ["hs"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
          pads=[1, 0, 1, 0], count_include_pad=1),  # 9×8 → 5×4 (floor would give 5×3)
        n("MaxPool", ["hs"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
        n("Add", ["ap", "mp"], ["sum"]),
        n("Mul", ["sum", "scale"], ["scaled"]),
        n("ConvTranspose", ["scaled", "wt"], ["up"], kernel_shape=[4, 4], strides=[2, 2],
          pads=[1, 1, 1, 1]),
        n("Resize", ["up", "", "scales"], ["rs"], mode="linear"),
        n("Pad", ["rs", "pads"], ["pd"]),
        n("Slice", ["pd", "st", "en", "axs", "stp"], ["sl"]),
        n("Split", ["sl", "sp"], ["s1", "s2"], axis=1),
        n("Concat", ["s2", "s1"], ["cat"], axis=1),
        n("ReduceMean", ["cat", "rax"], ["gap"], keepdims=0),
        n("LayerNormalization", ["gap", "lg", "lb"], ["ln"], axis=-1),
        n("Unsqueeze", ["ln", "uax"], ["u"]),
        n("Expand", ["u", "eshape"], ["ex"]),
        n("Gelu", ["ex"], ["ge"]),
        n("Transpose", ["ge"], ["tr"], perm=[0, 2, 1]),
        n("Squeeze", ["tr", "sqax"], ["sq"]),
        n("Gemm", ["sq", "fw", "fb"], ["fc"]),
        n("Softmax", ["fc"], ["y"], axis=-1),
        n("Hardmax", ["fc"], ["odd"], axis=-1),  # outside cnnstat's list
        # ceil_mode with a last window starting past the input: onnxruntime drops it (2×2),
        # ONNX shape inference does not (3×3); cnnstat follows the runtime
        n("MaxPool", ["x"], ["sparse"], kernel_shape=[1, 1], strides=[17, 16], ceil_mode=1),
    ]
    f = np.float32
    inits = [
        init("w1", 8, 3, 3, 3), init("w2", 8, 2, 3, 3), init("b2", 8),
        init("g", 8), init("be", 8), numpy_helper.from_array(np.ones(8, f), "var"),
        init("mu", 8), init("scale", 8, 1, 1), init("wt", 8, 4, 4, 4),
        numpy_helper.from_array(np.array([1, 1, 1.5, 1.5], f), "scales"),
        ints("pads", [0, 0, 1, 2, 0, 0, 3, 0]), ints("st", [1, -9]), ints("en", [-1, 100]),
        ints("axs", [2, 3]), ints("stp", [2, 3]), ints("sp", [1, 3]), init("lg", 4),
        init("lb", 4), ints("uax", [1]), ints("rax", [2, 3]), ints("eshape", [1, 5, 1]), ints("sqax", [0]),
        init("fw", 5, 6), init("fb", 6),
    ]
    inputs = [helper.make_tensor_value_info("x", F, [1, 3, 33, 31])]
    names = [o for node in nodes for o in node.output]
    outputs = [helper.make_tensor_value_info(o, F, None) for o in names]
    return save(tmp, nodes, inputs, inits, "zoo.onnx", opset=20, outputs=outputs)


def test_op_shapes_match_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = _zoo(tmp_path)
    r = run(path, batch=None)
    ours = {t: s for x in r.layers for t, s in zip(x.layer.tops, x.out_shapes)}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, 3, 33, 31)).astype(np.float32)
    real = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
    for name, value in real.items():
        assert ours[name] == value.shape, name
    by_type: dict = {}
    for x in r.layers:
        by_type.setdefault(x.layer.type, x)  # the first of each type
    assert not by_type["Hardmax"].costed
    assert any("Hardmax" in w and "not costed" in w for w in r.warnings)
    c1 = by_type["Conv"]  # asymmetric pads: (33+0+2−3)/2+1 and (31+1+1−3)/2+1
    assert c1.out_shapes == ((1, 8, 17, 16),) and c1.workspace_bytes == 4 * 27 * 17 * 16
    assert by_type["ConvTranspose"].macs == 8 * 4 * 16 * 5 * 4  # C_in·C_out·k²·H_in·W_in
    assert by_type["Mul"].params == 8  # a learned per-channel scale is a parameter
    assert by_type["BatchNormalization"].stats == 16
    assert by_type["Gemm"].params == 5 * 6 + 6
    assert ours["sparse"] == (1, 3, 2, 2)


def test_shared_initializer_counts_once_and_dtype_bytes(tmp_path: Path) -> None:
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["a", "w"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Mul", ["b", "h"], ["y"])]
    inits = [init("w", 4, 4, 1, 1), init("h", 4, 1, 1, dtype=TensorProto.FLOAT16)]
    x = helper.make_tensor_value_info("x", F, [1, 4, 5, 5])
    r = run(save(tmp_path, nodes, [x], inits))
    assert r.totals.params == 16 + 4
    assert r.totals.params_bytes == 16 * 4 + 4 * 2
    assert r.totals.macs == 2 * 16 * 25


# ----------------------------------------------------------------------------- errors


def _error(capsys, path: Path, *args: str) -> str:
    assert main([str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnstat: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_errors_are_one_line(tmp_path: Path, capsys) -> None:
    text = tmp_path / "text.onnx"
    text.write_text('name: "AlexNet"\nlayer { }\n')
    assert "not an ONNX model" in _error(capsys, text)

    good = _external(tmp_path)[0]
    _relocate(good, "w")
    blob = good.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(blob[: len(blob) // 2])
    assert "not an ONNX model" in _error(capsys, cut)

    x = helper.make_tensor_value_info("x", F, [1, 3])
    cyc = save(tmp_path, [helper.make_node("Relu", ["x2"], ["x1"], name="r1"),
                          helper.make_node("Add", ["x", "x1"], ["x2"], name="a1")], [x], [],
               "cycle.onnx", outputs=[helper.make_tensor_value_info("x2", F, None)])
    assert "cycle" in _error(capsys, cyc)

    miss = save(tmp_path, [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")], [x],
                [], "miss.onnx")
    assert "'ghost'" in _error(capsys, miss)

    future = save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [x], [], "future.onnx",
                  opset=99)
    assert "opset 99" in _error(capsys, future)

    assert "no such file" in _error(capsys, tmp_path / "absent.onnx")


def test_caffe_path_does_not_import_onnx() -> None:
    import subprocess
    import sys

    code = ("import sys; from analyzer.commands.cli import main; "
            f"main([{str(MODELS / 'alexnet.prototxt')!r}, '--format', 'json', '-o', "
            "'/dev/null']); print('onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=MODELS.parent, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- ONNX semantics


def test_zero_sized_dims_are_valid(tmp_path: Path, capsys) -> None:
    """ONNX allows empty tensors: --input-shape x=2,0,4 is taken, shapes follow the spec."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("ReduceSum", ["r", "ax"], ["y"], keepdims=0)]
    x = helper.make_tensor_value_info("x", F, ["N", "M", 4])
    path = save(tmp_path, nodes, [x], [ints("ax", [2])], opset=18)
    assert main([str(path), "--input-shape", "x=2,0,4", "--format", "json"]) == 0
    r = run(path, batch=None, x=(2, 0, 4))
    assert [x.out_shapes for x in r.layers] == [((2, 0, 4),), ((2, 0, 4),), ((2, 0),)]
    assert r.totals.flops == 0


def test_shape_from_graph_input_values_is_refused_naming_it(tmp_path: Path, capsys) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "target"], ["y"], name="flat")]
    inputs = [helper.make_tensor_value_info("x", F, [2, 3, 4]),
              helper.make_tensor_value_info("target", TensorProto.INT64, [2])]
    err = _error(capsys, save(tmp_path, nodes, inputs, []))
    assert "node 'flat' (Reshape)" in err and "values of graph input 'target'" in err


def test_graph_outputs_all_have_a_row(tmp_path: Path) -> None:
    """A folded node that is a graph output (Shape with start/end) keeps a row with its shape;
    Net.outputs names the graph outputs; LayerNormalization's Mean is per row."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1, end=-1),
             helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean"], axis=2)]
    x = helper.make_tensor_value_info("x", F, [2, 3, 5])
    outs = [helper.make_tensor_value_info(n, F, None) for n in ("s", "y", "mean")]
    path = save(tmp_path, nodes, [x], [init("g", 5), init("b", 5)], outputs=outs)
    net = read_onnx(str(path))
    assert net.outputs == ("s", "y", "mean")
    r = run(path, batch=None)
    got = {t: s for x in r.layers for t, s in zip(x.layer.tops, x.out_shapes)}
    assert (got["s"], got["y"], got["mean"]) == ((1,), (2, 3, 5), (2, 3, 1))


def test_matmul_and_einsum_of_two_activations_are_batched_gemms(tmp_path: Path) -> None:
    """Attention as MatMul of two activations [.., n, k]·[.., k, m]: a batched GEMM with
    MACs = batch·n·k·m, the GEMM columns holding n (rows of the first), k, m (columns of the
    second) and the batch count; the same product as an Einsum (MaxViT) costs the same; a
    MatMul with a constant weight is an inner product ([m × k]·[k × n], m the rows)."""
    b, h, t, d = 2, 3, 5, 4  # scores [b,h,t,t] · values [b,h,t,d] → [b,h,t,d]
    nodes = [helper.make_node("Transpose", ["q"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("MatMul", ["scores", "q"], ["ctx"]),
             helper.make_node("Einsum", ["scores", "q"], ["ctx2"], equation="bhij,bhjd->bhid"),
             helper.make_node("MatMul", ["ctx", "w"], ["proj"])]
    q = helper.make_tensor_value_info("q", F, [b, h, t, d])
    outs = [helper.make_tensor_value_info(o, F, None) for o in ("ctx2", "proj")]
    r = run(save(tmp_path, nodes, [q], [init("w", d, 7)], outputs=outs), batch=None)
    qk, av, fc = [x for x in r.layers if x.layer.type == "MatMul"]
    es = next(x for x in r.layers if x.layer.type == "Einsum")
    assert qk.layer.kind == av.layer.kind == "MatMul" and av.out_shapes == ((b, h, t, d),)
    assert qk.macs == b * h * t * d * t and av.macs == b * h * t * t * d
    assert (av.gemm.n, av.gemm.k, av.gemm.m, av.gemm.groups) == (t, t, d, b * h)
    assert es.costed and es.out_shapes == av.out_shapes and es.macs == av.macs
    assert (es.gemm.n, es.gemm.k, es.gemm.m, es.gemm.groups) == (t, t, d, b * h)
    assert fc.layer.kind == "InnerProduct" and fc.params == d * 7
    assert fc.macs == b * h * t * d * 7 and (fc.gemm.n, fc.gemm.k, fc.gemm.m) == (7, d, b * h * t)
