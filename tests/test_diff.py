"""`cnnstat diff`, REV:path sources and --textconv, on real git repositories built in a temp dir.

Every expected figure is derived by hand in a comment from the layer sizes of
models/alexnet.prototxt (227×227 input; conv3/conv4 outputs are 13×13, so H·W = 169).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CAFFE_CORPUS, MODELS, ONNX_CORPUS, REPO, need, read_tsv

from analyzer.commands.cli import main
from analyzer.frontends.sources import RevSource, load_source, parse_source

ALEXNET = (MODELS / "alexnet.prototxt").read_text()
CONV4 = 'top: "conv4"\n  convolution_param {\n    num_output: 384'
NORM2 = ('layer {\n  name: "norm2"\n  type: "LRN"\n  bottom: "conv2"\n  top: "norm2"\n'
         '  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }\n}\n')
FC9 = ('layer { name: "fc9" type: "InnerProduct" bottom: "fc8" top: "fc9" '
       'inner_product_param { num_output: 10 } }\n')


def edit(text: str, old: str, new: str, times: int = 1) -> str:
    assert text.count(old) == times, old
    return text.replace(old, new)


def widened(text: str = ALEXNET) -> str:
    """conv4 of AlexNet with 512 outputs instead of 384."""
    return edit(text, CONV4, CONV4.replace("384", "512"))


def changed_alexnet() -> str:
    """conv4 widened, conv1 renamed (layer and blob) to conv1r, norm2 removed, fc9 added."""
    text = widened()
    text = edit(text, '"conv1"', '"conv1r"', times=5)  # name, top, relu1 bottom+top, norm1
    text = edit(text, NORM2, "")
    text = edit(text, 'bottom: "norm2"', 'bottom: "conv2"')  # pool2 now reads conv2
    return text + FC9  # fc8 now has two readers: Caffe inserts a Split


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repo with models/net.prototxt: commit 1 AlexNet, commit 2 changed_alexnet()."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    git(root, "init", "-q")
    net = root / "models" / "net.prototxt"
    net.write_text(ALEXNET)
    git(root, "add", ".")
    git(root, "commit", "-qm", "AlexNet")
    net.write_text(changed_alexnet())
    git(root, "commit", "-qam", "widen conv4, rename conv1, drop norm2, add fc9")
    monkeypatch.chdir(root)
    return root


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["diff", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def rows_by_name(doc: dict) -> dict[str, dict]:
    return {(r["new"] or r["old"])["name"]: r for r in doc["layers"]}


def test_diff_between_two_revisions_gives_each_delta(repo, capsys):
    doc = run_json(capsys, "HEAD~1:models/net.prototxt", "HEAD:models/net.prototxt")
    assert doc["old"]["path"] == "HEAD~1:models/net.prototxt"
    assert doc["matching"] == "name"
    rows = rows_by_name(doc)
    # conv4 (group 2, 3×3 on 384 channels: 192 per group): weights out·(192·9) + bias out.
    # 384 → 512 outputs: Δparams = 128·192·9 + 128 = 221,312; ΔMACs = 128·192·9·169 =
    # 37,380,096; Δdata = 128·169·4 B = 86,528; its im2col (input side) is unchanged.
    conv4 = rows["conv4"]
    assert conv4["status"] == "changed"
    assert conv4["delta"]["params"] == 221_312
    assert conv4["delta"]["macs"] == 37_380_096
    assert conv4["delta"]["data_bytes"] == 86_528
    assert conv4["delta"]["workspace_bytes"] == 0
    assert conv4["delta"]["params_bytes"] == 4 * 221_312
    changes = {c["field"]: (c["old"], c["new"]) for c in conv4["changes"]}
    assert changes["num_output"] == (384, 512)
    assert changes["n"] == (192, 256)
    assert changes["output shape"] == ([[1, 384, 13, 13]], [[1, 512, 13, 13]])
    # relu4 works in place on conv4's top: the same 86,528 B more (Caffe counts every top).
    assert rows["relu4"]["delta"]["data_bytes"] == 86_528
    # conv5 reads 512 channels: k = 256·9 = 2304 (was 192·9 = 1728); 256 outputs in 2 groups:
    # Δparams = 256·64·9 = 147,456; ΔMACs = 128·576·169·2 = 24,920,064;
    # Δworkspace = 128·9·169·4 B = 778,752.
    conv5 = {c["field"]: (c["old"], c["new"]) for c in rows["conv5"]["changes"]}
    assert conv5["k"] == (1728, 2304)
    assert rows["conv5"]["delta"]["params"] == 147_456
    assert rows["conv5"]["delta"]["macs"] == 24_920_064
    assert rows["conv5"]["delta"]["workspace_bytes"] == 778_752
    # norm2 removed: its top 256·27·27·4 B = 746,496; LRN FLOPs (2·5+3)·186,624 = 2,426,112.
    norm2 = rows["norm2"]
    assert norm2["status"] == "removed" and norm2["new"] is None
    assert norm2["delta"]["data_bytes"] == -746_496
    assert norm2["delta"]["flops"] == -2_426_112
    # pool2 now reads conv2 directly: an input change, no cost change.
    assert rows["pool2"]["status"] == "changed"
    assert rows["pool2"]["changes"] == [
        {"field": "inputs", "old": ["norm2"], "new": ["conv2"]}]
    assert all(v == 0 for v in rows["pool2"]["delta"].values() if v is not None)
    # fc9: 1000 → 10: params 10·1000 + 10 = 10,010; MACs 10,000; data 10·4 = 40 B.
    fc9 = rows["fc9"]
    assert fc9["status"] == "added" and fc9["old"] is None
    assert (fc9["delta"]["params"], fc9["delta"]["macs"], fc9["delta"]["data_bytes"]) == \
        (10_010, 10_000, 40)
    # fc8 is read twice now: Caffe's Split, two 1000-float tops = 8,000 B.
    split = rows["fc8_fc8_0_split"]
    assert split["status"] == "added" and split["delta"]["data_bytes"] == 8_000
    # conv1 renamed to conv1r (layer and blob): paired, no cost change; relu1/norm1 and
    # prob (which now reads the Split's top) are unchanged and folded away.
    assert rows["conv1r"]["status"] == "renamed"
    assert rows["conv1r"]["old"]["name"] == "conv1"
    assert rows["conv1r"]["matched_by"] == "rename"
    assert not {"relu1", "norm1", "prob", "conv3"} & set(rows)
    # Totals: the sums of the rows above.
    d = doc["totals"]["delta"]
    assert d["params"] == 221_312 + 147_456 + 10_010 == 378_778
    assert d["macs"] == 37_380_096 + 24_920_064 + 10_000 == 62_310_160
    assert d["data_bytes"] == 2 * 86_528 - 746_496 + 40 + 8_000 == -565_400
    assert d["workspace_bytes"] == 778_752
    assert d["params_bytes"] == 4 * 378_778
    assert d["time_ms"] is None
    assert doc["totals"]["old"]["params"] == 60_965_224  # BVLC AlexNet's published count
    # 24 layers before; 25 after (+fc9 +Split −norm2); 23 pairs of which 5 differ.
    assert doc["counts"] == {"changed": 4, "added": 2, "removed": 1, "renamed": 1,
                             "unchanged": 18}
    assert doc["cost_changed"] is True


def test_rows_follow_execution_order_with_removed_layers_in_place(repo, capsys):
    doc = run_json(capsys, "HEAD~1:models/net.prototxt", "HEAD:models/net.prototxt")
    order = [(r["new"] or r["old"])["name"] for r in doc["layers"]]
    assert order == ["conv1r", "norm2", "pool2", "conv4", "relu4", "conv5",
                     "fc8_fc8_0_split", "fc9"]


def test_time_deltas_on_a_device_profile(repo, tmp_path, capsys):
    # Toy device: conv and fc cost 1 ns per MAC, other kinds 0, 1 µs per layer overhead.
    profile = tmp_path / "toy.json"
    profile.write_text(json.dumps({
        "name": "toy", "per_layer_overhead_ms": 0.001,
        "kinds": {"Convolution": {"coef": {"sum": {"macs": 1e-6}}},
                  "InnerProduct": {"coef": {"sum": {"macs": 1e-6}}}},
        "fallback": {"coef": {"sum": {"const": 0.0}}}}))
    doc = run_json(capsys, "HEAD~1:models/net.prototxt", "HEAD:models/net.prototxt",
                   "--device", str(profile))
    rows = rows_by_name(doc)
    assert doc["device"] == "toy"
    assert rows["conv4"]["delta"]["time_ms"] == pytest.approx(37_380_096e-6)
    assert rows["fc9"]["delta"]["time_ms"] == pytest.approx(10_000e-6)
    assert rows["norm2"]["delta"]["time_ms"] == 0
    # Σ ΔMACs · 1e-6 ms, plus one more layer's overhead (25 layers instead of 24).
    assert doc["totals"]["delta"]["time_ms"] == pytest.approx(62_310_160e-6 + 0.001)
    md_code = main(["diff", "HEAD~1:models/net.prototxt", "models/net.prototxt",
                    "--device", str(profile), "--format", "markdown"])
    md = capsys.readouterr().out
    assert md_code == 0
    assert "time +62.311 ms" in md
    assert "| time (ms) |" in md


def test_markdown_puts_the_summary_before_collapsed_details(repo, capsys):
    assert main(["diff", "HEAD~1:models/net.prototxt", "HEAD:models/net.prototxt",
                 "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    head, _, details = md.partition("<details>")
    assert head.index("**MACs +62.3M (+8.6%) · params +379K (+0.62%)") < head.index("| MACs |")
    assert "layers: 4 changed, 2 added, 1 removed, 1 renamed**" in head
    assert "Largest changes: `conv4` (changed) +37.4M MACs" in head
    assert "| params | 61M | 61.3M | +379K | +0.62% |" in head
    assert "8 layer(s) differ (18 unchanged not shown)" in details
    assert "| `conv1 → conv1r` | Convolution | renamed | renamed |" in details
    assert "| `norm2` | LRN | removed | removed (was 1×256×27×27) |" in details
    assert details.rstrip().endswith("</details>")


def test_no_cost_change_is_said_plainly(repo, capsys):
    (repo / "models" / "net.prototxt").write_text("# a comment only\n" + changed_alexnet())
    assert main(["diff", "HEAD:models/net.prototxt", "models/net.prototxt",
                 "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "**No cost change; the layers are the same.**" in md
    assert "<details>" not in md
    assert main(["diff", "HEAD:models/net.prototxt", "models/net.prototxt"]) == 0
    assert "No cost change" in capsys.readouterr().out


def test_a_rename_alone_is_no_cost_change(tmp_path, capsys):
    a, b = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
    a.write_text(ALEXNET)
    b.write_text(edit(ALEXNET, 'name: "fc6"', 'name: "fc6_new"'))  # blob keeps its name
    doc = run_json(capsys, str(a), str(b))
    assert doc["cost_changed"] is False
    assert doc["counts"]["renamed"] == 1
    assert [r["status"] for r in doc["layers"]] == ["renamed"]


def test_match_by_order_pairs_layers_whose_names_all_differ(tmp_path, capsys):
    # Every layer and blob renamed with a prefix, and conv4 widened: names say nothing, but the
    # i-th Convolution is still the i-th Convolution.
    a, b = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
    a.write_text(ALEXNET)
    text = widened()
    for name in ("data", "conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2",
                 "pool2", "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5",
                 "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", "prob"):
        text = text.replace(f'"{name}"', f'"x_{name}"')
    b.write_text(text)
    doc = run_json(capsys, str(a), str(b), "--match", "order")
    rows = {r["old"]["name"]: r for r in doc["layers"] if r["old"]}
    assert doc["matching"] == "name+order"
    assert rows["conv4"]["new"]["name"] == "x_conv4"
    assert rows["conv4"]["delta"]["params"] == 221_312
    assert rows["conv5"]["delta"]["macs"] == 24_920_064
    assert doc["counts"]["added"] == doc["counts"]["removed"] == 0
    assert doc["counts"]["changed"] == 3  # conv4, relu4, conv5
    # By name and renames only: data … relu3 pair as a renamed chain (same kind, attrs and
    # translated inputs); conv4's attrs differ, so it and the 12 layers after it do not pair.
    doc = run_json(capsys, str(a), str(b), "--match", "name")
    counts = doc["counts"]
    assert (counts["renamed"], counts["removed"], counts["added"]) == (11, 13, 13)


TINY = """name: "Tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc" inner_product_param { num_output: 10 } }
"""


def tiny_onnx(path: Path, conv_out: int = 4) -> None:
    """The TINY net as torchvision would export it: path-like node names, an explicit Flatten."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in (
        ("w1", (conv_out, 3, 3, 3)), ("b1", (conv_out,)), ("w2", (10, conv_out * 16)),
        ("b2", (10,)))]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="/features/0/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="/features/1/Relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="/features/2/MaxPool",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="/classifier/Gemm", transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_prototxt_against_onnx_pairs_by_order_within_kind(tmp_path, capsys):
    proto, onnx_path = tmp_path / "tiny.prototxt", tmp_path / "tiny.onnx"
    proto.write_text(TINY)
    tiny_onnx(onnx_path, conv_out=8)
    doc = run_json(capsys, str(proto), str(onnx_path))
    assert doc["matching"] == "name+order"  # different frontends: order within kind
    rows = {r["old"]["name"] if r["old"] else r["new"]["name"]: r for r in doc["layers"]}
    # conv1 4 → 8 outputs: Δparams 4·27 + 4 = 112; ΔMACs 4·27·64 = 6,912.
    assert rows["conv1"]["new"]["name"] == "/features/0/Conv"
    assert rows["conv1"]["matched_by"] == "order"
    assert (rows["conv1"]["delta"]["params"], rows["conv1"]["delta"]["macs"]) == (112, 6_912)
    # fc reads 8·4·4 = 128 features instead of 64: Δparams = ΔMACs = 10·64 = 640.
    assert rows["fc"]["new"]["name"] == "/classifier/Gemm"
    assert (rows["fc"]["delta"]["params"], rows["fc"]["delta"]["macs"]) == (640, 640)
    # ONNX flattens in a node of its own; Caffe's InnerProduct flattens implicitly.
    assert rows["/Flatten"]["status"] == "added"
    assert rows["/Flatten"]["delta"]["data_bytes"] == 128 * 4
    assert doc["totals"]["delta"]["params"] == 112 + 640


def test_caffe_squeezenet_against_torchvisions_onnx(capsys):
    # The same architecture written twice: BVLC's SqueezeNet 1.1 prototxt (227×227 input) and
    # torchvision's squeezenet1_1 exported to ONNX (224×224). Their names share nothing.
    proto = need(CAFFE_CORPUS / "squeezenet_v1.1_deploy.prototxt")
    onnx_path = need(ONNX_CORPUS / "squeezenet1_1.onnx")
    published = {r["file"]: r for r in read_tsv(ONNX_CORPUS / "MANIFEST.tsv")}["squeezenet1_1.onnx"]
    doc = run_json(capsys, str(proto), str(onnx_path), "--batch", "1")
    assert doc["matching"] == "name+order"
    # Same weights: torchvision's published count, and Δ 0.
    assert doc["totals"]["old"]["params"] == doc["totals"]["new"]["params"] == \
        int(published["num_params"]) == 1_235_496
    # torchvision publishes 0.349 GMACs at 224×224 (three digits).
    assert round(doc["totals"]["new"]["macs"] / 1e9, 3) == float(published["gflops_published"])
    convs = [r for r in doc["layers"] if (r["old"] or r["new"])["kind"] == "Convolution"]
    assert len(convs) == 26 and all(r["matched_by"] == "order" for r in convs)
    # Every conv pairs with its twin: same n and k, only the spatial size m differs.
    assert all({c["field"] for c in r["changes"]} <= {"input shape", "output shape", "m"}
               for r in convs)
    # conv10 (1000 outputs, k = 512): 14×14 → 13×13 outputs, ΔMACs = 1000·512·(169 − 196).
    conv10 = next(r for r in convs if r["old"]["name"] == "conv10")
    assert conv10["new"]["name"] == "/classifier/classifier.1/Conv"
    assert conv10["delta"]["macs"] == 1000 * 512 * (169 - 196)
    # Caffe-only: 8 Splits, drop9 and prob; ONNX-only: the Flatten before the output.
    removed = sorted(r["old"]["kind"] for r in doc["layers"] if r["status"] == "removed")
    assert removed == ["Dropout", "Softmax"] + ["Split"] * 8
    assert [r["new"]["kind"] for r in doc["layers"] if r["status"] == "added"] == ["Flatten"]


def test_each_side_of_a_cross_format_diff_takes_its_own_input_shape(capsys):
    # Caffe names SqueezeNet's input 'data' (227×227 in the file), torchvision 'input' (N×3×224×224):
    # one --input-shape per side puts both at 224×224, and then only the layers differ.
    proto = need(CAFFE_CORPUS / "squeezenet_v1.1_deploy.prototxt")
    onnx_path = need(ONNX_CORPUS / "squeezenet1_1.onnx")
    doc = run_json(capsys, str(proto), str(onnx_path), "--input-shape", "data=1,3,224,224",
                   "--input-shape", "input=1,3,224,224")
    assert doc["old"]["inputs"] == {"data": [1, 3, 224, 224]}
    assert doc["new"]["inputs"] == {"input": [1, 3, 224, 224]}
    assert doc["totals"]["old"]["macs"] == doc["totals"]["new"]["macs"] == 349_151_936
    # no layer changed: left are the Caffe-only Splits, drop9 and prob, and ONNX's Flatten
    assert doc["counts"] == {"changed": 0, "added": 1, "removed": 10, "renamed": 0,
                             "unchanged": 65}
    assert main(["diff", str(proto), str(onnx_path), "--input-shape", "image=1,3,224,224",
                 "--batch", "1"]) == 2
    err = capsys.readouterr().err
    assert "--input-shape names 'image', a blob of neither version (inputs: data before, " \
        "input after)" in err and err.count("\n") == 1, err


# --------------------------------------------------------------------------- sources


def test_rev_sources_leave_the_working_tree_alone(repo, capsys):
    net = repo / "models" / "net.prototxt"
    net.write_text("garbage that is not a prototxt {")
    before = git(repo, "status", "--porcelain")
    doc = run_json(capsys, "HEAD~1:models/net.prototxt", "HEAD:models/net.prototxt")
    assert doc["totals"]["delta"]["macs"] == 62_310_160
    assert net.read_text() == "garbage that is not a prototxt {"
    assert git(repo, "status", "--porcelain") == before == " M models/net.prototxt\n"
    # git's own './' form: relative to the current directory.
    os.chdir(repo / "models")
    net_at = load_source("HEAD~1:./net.prototxt")
    assert net_at.path == "HEAD~1:./net.prototxt" and net_at.name == "AlexNet"


def test_rev_source_errors_are_one_line(repo, tmp_path, capsys, monkeypatch):
    cases = [
        ("HEAD:models/nope.prototxt",
         "cnnstat: HEAD:models/nope.prototxt: 'models/nope.prototxt' does not exist at HEAD"),
        ("v9:models/net.prototxt",
         "cnnstat: v9:models/net.prototxt: no revision 'v9' in this repository"),
        ("HEAD:models", "cnnstat: HEAD:models: is a tree, not a file"),
    ]
    for source, message in cases:
        assert main([source]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert main(["diff", "HEAD:models/net.prototxt", "x.prototxt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnstat: HEAD:models/net.prototxt: not inside a git repository")


def test_errors_inside_a_revision_name_the_source(repo, capsys):
    (repo / "models" / "net.prototxt").write_text(ALEXNET.replace("num_output: 96", "num_ouput: 96"))
    git(repo, "commit", "-qam", "typo")
    assert main(["HEAD:models/net.prototxt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnstat: HEAD:models/net.prototxt:") and "cnnstat-" not in err


def test_an_existing_file_with_a_colon_is_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("v1:net.prototxt").write_text(ALEXNET)
    assert parse_source("v1:net.prototxt") is None
    assert load_source("v1:net.prototxt").path == "v1:net.prototxt"
    assert parse_source("v2:net.prototxt") == RevSource("v2", "net.prototxt")
    assert parse_source("plain.prototxt") is None
    assert parse_source("C:\\nets\\net.prototxt") is None  # a Windows drive, not a revision


# --------------------------------------------------------------------------- textconv


def test_textconv_is_stable_and_line_per_layer(tmp_path, capsys):
    net = tmp_path / "a.prototxt"
    net.write_text(ALEXNET)
    assert main([str(net), "--textconv"]) == 0
    first = capsys.readouterr().out
    copy = tmp_path / "other_name.prototxt"
    copy.write_text(ALEXNET)
    assert main([str(copy), "--textconv"]) == 0
    assert capsys.readouterr().out == first  # no path, date or version in it
    lines = first.splitlines()
    assert len(lines) == 1 + 24 + 1  # header, one per layer, TOTAL
    conv4 = next(ln for ln in lines if ln.startswith("conv4  "))
    # 192 outputs per group, k = 192·9, m = 169; MACs 384·1728·169 = 112,140,288.
    assert "gemm=192x1728x169/2" in conv4 and "macs=112140288" in conv4
    assert lines[-1].startswith("TOTAL  macs=724406816  flops=")
    assert "params=60965224" in lines[-1]


def test_textconv_prints_the_reason_and_the_text_for_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer { name: 'x' type: 'Convolution' }\n")
    assert main([str(bad), "--textconv"]) == 0  # a failing textconv would abort git diff
    out = capsys.readouterr().out
    assert out.startswith("# cnnstat cannot analyse this version: ")
    assert out.endswith("layer { name: 'x' type: 'Convolution' }\n")


def test_git_diff_uses_the_textconv(repo):
    (repo / ".gitattributes").write_text("*.prototxt diff=cnnstat\n")
    cmd = f"env PYTHONPATH={REPO} {sys.executable} -m analyzer --textconv"
    git(repo, "config", "diff.cnnstat.textconv", cmd)
    out = git(repo, "diff", "HEAD~1", "HEAD", "--", "models/net.prototxt")
    minus = [ln for ln in out.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln for ln in out.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    assert any(ln.startswith("-conv4  Convolution  out=1x384x13x13") for ln in minus)
    assert any(ln.startswith("+conv4  Convolution  out=1x512x13x13") for ln in plus)
    assert any(ln.startswith("-norm2  LRN") for ln in minus)
    assert any(ln.startswith("+fc9  InnerProduct") for ln in plus)
    assert any(ln.startswith("+TOTAL  macs=786716976") for ln in plus)  # 724,406,816 + 62,310,160


def test_cost_moved_between_layers_is_not_no_change(tmp_path, capsys):
    two = """name: "Two"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "data" top: "b" convolution_param { num_output: 8 kernel_size: 1 } }
"""
    a, b = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
    a.write_text(two)
    b.write_text(two.replace("num_output: 4", "num_output: X").replace("num_output: 8", "num_output: 4")
                 .replace("num_output: X", "num_output: 8"))
    doc = run_json(capsys, str(a), str(b))
    assert all(v in (0, None) for v in doc["totals"]["delta"].values())
    assert doc["cost_changed"] is True
    # 1×1 conv on 3 channels: params 3·out + out, so a: 16 → 32 and b: 32 → 16.
    assert [(r["new"]["name"], r["delta"]["params"]) for r in doc["layers"]] == [("a", 16), ("b", -16)]
    assert main(["diff", str(a), str(b), "--format", "markdown"]) == 0
    assert "**Totals unchanged, but cost moved between layers — layers: 2 changed**" in \
        capsys.readouterr().out


def test_layers_without_a_cost_rule_are_named(tmp_path, capsys):
    a, b = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
    a.write_text(TINY)
    b.write_text(TINY + 'layer { name: "mine" type: "MyFancyOp" bottom: "fc" top: "out" }\n')
    assert main(["diff", str(a), str(b), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "⚠ not costed (no rule for their type, counted as 0): mine (B)" in md
    # its output (10 floats = 40 B) is still data, the only Δ: 40 of 768 + 1024 + 1024 + 256 + 40
    assert "**data memory +40 B (+1.3%); MACs, params, params memory, workspace unchanged" in md
