"""The command line on the shipped AlexNet: every output format, the JSON schema of the
README, sorting, files, dtype, phases, ``python -m analyzer`` and ``--version``.

AlexNet's totals are the published figures for the single-tower net with grouped conv2/4/5:
60,965,224 parameters (weights + biases) and 724,406,816 multiply-accumulates per image.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MODELS, REPO

from analyzer import __version__
from analyzer.commands.cli import main

ALEXNET = str(MODELS / "alexnet.prototxt")
ALEXNET_PARAMS = 60_965_224
ALEXNET_MACS = 724_406_816


def run_json(capsys, *args: str) -> dict:
    assert main([ALEXNET, "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------- JSON schema

INT = int
OPT_INT = (int, type(None))
OPT_FLOAT = (float, int, type(None))
LAYER_KEYS = {
    "name": str, "type": str, "kind": str, "bottoms": list, "tops": list,
    "output_shapes": list, "gemm": (dict, type(None)), "macs": INT, "flops": INT,
    "params": INT, "param_stats": INT, "memory": dict, "costed": bool, "time_ms": OPT_FLOAT,
    "warnings": list,
}
LAYER_MEMORY_KEYS = {"params_bytes", "data_bytes", "workspace_bytes"}
TOTAL_MEMORY_KEYS = {"params_bytes", "data_bytes", "data_peak_bytes", "workspace_bytes",
                     "workspace_shared_bytes", "runtime_peak_bytes"}


def test_json_has_every_documented_key_with_its_type(capsys) -> None:
    r = run_json(capsys)
    assert set(r) == {"schema_version", "model", "inputs", "batch", "dtype", "device",
                      "convention", "layers", "totals", "warnings"}
    assert r["schema_version"] == 1
    assert r["model"] == {"path": ALEXNET, "name": "AlexNet", "format": "caffe-v2"}
    assert r["inputs"] == {"data": [1, 3, 227, 227]}
    assert r["batch"] == 1 and r["dtype"] == "fp32" and r["device"] is None
    assert isinstance(r["convention"], str) and "MACs" in r["convention"]
    assert r["warnings"] == []
    for layer in r["layers"]:
        assert set(layer) == set(LAYER_KEYS), layer["name"]
        for key, kind in LAYER_KEYS.items():
            assert isinstance(layer[key], kind), (layer["name"], key)
            assert not isinstance(layer[key], bool) or kind is bool  # a bool is not a count
        assert set(layer["memory"]) == LAYER_MEMORY_KEYS
        assert all(isinstance(v, int) for v in layer["memory"].values())
        assert all(isinstance(d, int) for s in layer["output_shapes"] for d in s)
        assert layer["time_ms"] is None  # no --device
        if layer["gemm"] is not None:
            assert set(layer["gemm"]) == {"n", "k", "m", "groups"}
    t = r["totals"]
    assert set(t) == {"macs", "flops", "params", "param_stats", "memory", "time_ms"}
    assert set(t["memory"]) == TOTAL_MEMORY_KEYS and t["time_ms"] is None
    assert t["memory"]["runtime_peak_bytes"] is None  # only a calibrated CPU profile predicts it
    ints = TOTAL_MEMORY_KEYS - {"runtime_peak_bytes"}
    assert all(isinstance(t["memory"][k], int) for k in ints)


def test_json_alexnet_totals_are_the_published_figures(capsys) -> None:
    r = run_json(capsys)
    t = r["totals"]
    assert t["params"] == ALEXNET_PARAMS
    assert t["macs"] == ALEXNET_MACS
    assert t["param_stats"] == 0
    assert t["memory"]["params_bytes"] == 4 * ALEXNET_PARAMS
    # totals are the sums of the rows; data is every top of every layer (Caffe convention)
    layers = r["layers"]
    assert t["macs"] == sum(x["macs"] for x in layers)
    assert t["flops"] == sum(x["flops"] for x in layers) and t["flops"] > 2 * t["macs"]
    assert t["memory"]["data_bytes"] == 4 * sum(math.prod(s) for x in layers
                                                for s in x["output_shapes"])
    ws = [x["memory"]["workspace_bytes"] for x in layers]
    assert t["memory"]["workspace_bytes"] == sum(ws)
    assert t["memory"]["workspace_shared_bytes"] == max(ws)
    assert 0 < t["memory"]["data_peak_bytes"] < t["memory"]["data_bytes"]


def test_json_conv1_gemm_and_grouped_conv2(capsys) -> None:
    """Lu et al.: n = C_out/group, k = C_in/group·kh·kw, m = H_out·W_out."""
    by_name = {x["name"]: x for x in run_json(capsys)["layers"]}
    c1, c2 = by_name["conv1"], by_name["conv2"]
    assert c1["gemm"] == {"n": 96, "k": 3 * 11 * 11, "m": 55 * 55, "groups": 1}
    assert c1["output_shapes"] == [[1, 96, 55, 55]]
    assert c1["macs"] == 96 * 363 * 3025
    assert c2["gemm"] == {"n": 128, "k": 48 * 5 * 5, "m": 27 * 27, "groups": 2}
    assert c2["macs"] == 2 * 128 * 1200 * 729
    assert c2["params"] == 256 * 48 * 25 + 256
    # im2col buffer: C_in·kh·kw × H_out·W_out elements
    assert c1["memory"]["workspace_bytes"] == 4 * 363 * 3025


def test_batch_scales_work_not_params(capsys) -> None:
    one, eight = run_json(capsys), run_json(capsys, "--batch", "8")
    assert eight["batch"] == 8 and eight["inputs"] == {"data": [8, 3, 227, 227]}
    assert eight["totals"]["macs"] == 8 * one["totals"]["macs"]
    assert eight["totals"]["params"] == one["totals"]["params"]
    assert eight["totals"]["memory"]["data_bytes"] == 8 * one["totals"]["memory"]["data_bytes"]


# --------------------------------------------------------------------------- other formats


def test_csv_parses_and_its_total_row_equals_the_json(capsys) -> None:
    r = run_json(capsys)
    assert main([ALEXNET, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    total = rows[-1]
    assert total["name"] == "TOTAL"
    t = r["totals"]
    assert int(total["macs"]) == t["macs"] == ALEXNET_MACS
    assert int(total["flops"]) == t["flops"]
    assert int(total["params"]) == t["params"] == ALEXNET_PARAMS
    for key in ("params_bytes", "data_bytes", "workspace_bytes"):
        assert int(total[key]) == t["memory"][key], key
    layers = rows[:-1]
    assert [x["name"] for x in layers] == [x["name"] for x in r["layers"]]
    assert [int(x["macs"]) for x in layers] == [x["macs"] for x in r["layers"]]
    conv1 = layers[1]
    assert (conv1["n"], conv1["k"], conv1["m"], conv1["output_shape"]) == (
        "96", "363", "3025", "1×96×55×55")


def test_markdown_is_a_table_with_one_row_per_layer(capsys) -> None:
    n_layers = len(run_json(capsys)["layers"])
    assert main([ALEXNET, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert rows[0] == "| layer | type | output | n | k | m | MACs | params | data | workspace |"
    assert len(rows) == 2 + n_layers + 1  # head, rule, layers, total
    assert rows[3].startswith("| `conv1` | Convolution | 1×96×55×55 | 96 | 363 | 3025 | 105M |")
    assert rows[-1].startswith("| **total** |") and "| 724M | 61M |" in rows[-1]


def test_table_shows_every_column_and_whole_names_when_piped(tmp_path: Path, capsys) -> None:
    """Piped output is not a terminal: nothing is squeezed away, even a long layer name."""
    long_name = "conv1_a_rather_long_layer_name_from_an_automatic_exporter"
    net = tmp_path / "long.prototxt"
    net.write_text(Path(ALEXNET).read_text().replace('"conv1"', f'"{long_name}"'))
    assert main([str(net)]) == 0
    out = capsys.readouterr().out
    header = next(ln for ln in out.splitlines() if ln.lstrip().startswith("layer"))
    assert header.split() == ["layer", "type", "output", "n", "k", "m", "MACs", "params",
                              "data", "workspace"]
    row = next(ln for ln in out.splitlines() if long_name in ln)
    assert row.split()[:6] == [long_name, "Convolution", "1×96×55×55", "96", "363", "3025"]
    assert "…" not in out
    proc = _run([str(net)])  # a real pipe
    assert proc.returncode == 0 and long_name in proc.stdout and "…" not in proc.stdout
    assert "params: 60,965,224 learnable" in proc.stdout.replace("\n", " ")


def test_sort_by_macs_top_3(capsys) -> None:
    full = run_json(capsys)["layers"]
    top = run_json(capsys, "--sort", "macs", "--top", "3")["layers"]
    assert [x["name"] for x in top] == ["conv2", "conv3", "conv4"]
    macs = [x["macs"] for x in top]
    assert macs == sorted(macs, reverse=True)
    rest = [x["macs"] for x in full if x["name"] not in ("conv2", "conv3", "conv4")]
    assert min(macs) > max(rest)


def test_top_keeps_totals_of_the_whole_net(capsys) -> None:
    r = run_json(capsys, "--sort", "params", "--top", "1")
    assert [x["name"] for x in r["layers"]] == ["fc6"]
    assert r["totals"]["params"] == ALEXNET_PARAMS


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "table"])
def test_output_file_holds_what_stdout_would(fmt: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / f"alexnet.{fmt}"
    assert main([ALEXNET, "--format", fmt, "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert main([ALEXNET, "--format", fmt]) == 0
    assert out.read_text(encoding="utf-8") == capsys.readouterr().out


def test_dtype_fp16_halves_every_byte_count(capsys) -> None:
    fp32, fp16 = run_json(capsys), run_json(capsys, "--dtype", "fp16")
    assert fp16["dtype"] == "fp16"
    for key, value in fp32["totals"]["memory"].items():
        if key != "runtime_peak_bytes":  # None without a calibrated CPU profile
            assert fp16["totals"]["memory"][key] * 2 == value, key
    assert fp16["totals"]["memory"]["params_bytes"] == 2 * ALEXNET_PARAMS
    assert fp16["totals"]["macs"] == fp32["totals"]["macs"]


PHASED = """name: "phased"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 10 } shape { dim: 4 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 5 } }
layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" include { phase: TRAIN } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc"
  include { phase: TEST } }
layer { name: "extra" type: "ReLU" bottom: "fc" top: "extra" exclude { phase: TEST } }
"""


def test_phase_rules(tmp_path: Path, capsys) -> None:
    net = tmp_path / "phased.prototxt"
    net.write_text(PHASED)
    names = {}
    for phase in ("test", "train"):
        assert main([str(net), "--format", "json", "--phase", phase]) == 0
        names[phase] = [x["name"] for x in json.loads(capsys.readouterr().out)["layers"]
                        if x["type"] != "Split"]
    assert names["test"] == ["data", "fc", "loss", "acc"]
    assert names["train"] == ["data", "fc", "drop", "loss", "extra"]


# --------------------------------------------------------------------------- processes


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_python_dash_m_gives_the_same_json(capsys) -> None:
    proc = _run([ALEXNET, "--format", "json"])
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout) == run_json(capsys)


def test_json_on_a_prototxt_imports_no_heavy_package(tmp_path: Path) -> None:
    """Start-up stays short: rich, onnx, numpy and onnxruntime are not imported for
    ``--format json`` on a prototxt (rich only for the table, onnx only for .onnx)."""
    code = ("import sys; from analyzer.commands.cli import main; "
            f"status = main([{ALEXNET!r}, '--format', 'json', '-o', {str(tmp_path / 'r.json')!r}]); "
            "print(status, sorted({m.split('.')[0] for m in sys.modules} "
            "& {'rich', 'onnx', 'numpy', 'onnxruntime', 'scipy'}))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.stdout == "0 []\n", proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["totals"]["macs"] == ALEXNET_MACS


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"cnnstat {__version__}\n"
    proc = _run(["--version"])
    assert proc.returncode == 0 and proc.stdout == f"cnnstat {__version__}\n"
