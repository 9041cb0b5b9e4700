"""The Python API gives the CLI's numbers: analyze_file + report_dict == --format json."""

from __future__ import annotations

import json

import pytest
from conftest import MODELS, ONNX_CORPUS, need

import analyzer
from analyzer.commands.cli import main


def cli_json(capsys, *args: str) -> dict:
    assert main([*args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_analyze_file_equals_the_cli_json_with_a_device(capsys) -> None:
    path = str(MODELS / "alexnet.prototxt")
    report = analyzer.analyze_file(path, batch=4, device="jetson-tx1")
    assert analyzer.report_dict(report) == cli_json(capsys, path, "--batch", "4",
                                                    "--device", "jetson-tx1")
    # AlexNet's published parameter count (with Caffe's biases): 60,965,224
    assert report.totals.params == 60_965_224
    assert report.totals.time_ms == pytest.approx(sum(r.time_ms for r in report.layers), rel=0.2)


def test_analyze_file_takes_input_shapes_and_dtype_like_the_cli(capsys) -> None:
    path = str(need(ONNX_CORPUS / "resnet18.onnx"))
    report = analyzer.analyze_file(path, input_shapes={"input": (2, 3, 160, 160)}, dtype="fp16")
    assert report.inputs == {"input": (2, 3, 160, 160)}
    assert analyzer.report_dict(report) == cli_json(capsys, path, "--input-shape",
                                                    "input=2,3,160,160", "--dtype", "fp16")


def test_user_errors_raise_cnnstat_error_with_the_cli_line(tmp_path, capsys) -> None:
    missing = str(tmp_path / "nope.prototxt")
    with pytest.raises(analyzer.CnnstatError) as e:
        analyzer.analyze_file(missing)
    assert main([missing]) == 2
    assert capsys.readouterr().err.strip() == f"cnnstat: {e.value}"
    with pytest.raises(analyzer.CnnstatError):
        analyzer.analyze_file(str(MODELS / "alexnet.prototxt"), batch=0)
