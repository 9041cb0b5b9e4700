"""Hostile and malformed inputs: every one ends as one line ``cnnstat: <where>: <what>``
and exit status 2 — never a traceback, never a silently wrong number — and the user's
files are never written to.

Each case is a small prototxt written into ``tmp_path``; ``where`` is what must follow the
file's path on the error line (``:line:col`` for a parse error, ``:line: layer 'x'`` for a
layer, nothing for a whole-file problem).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MODELS, REPO

from analyzer.commands.cli import main
from analyzer.errors import CnnstatError

HEAD = (
    'name: "t"\n'
    'layer { name: "data" type: "Input" top: "data" '
    "input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n"
)  # one 1×3×8×8 input on line 2; a case's own layers start on line 3


def conv(extra: str, name: str = "c", bottom: str = "data", top: str = "c") -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}" '
            f"convolution_param {{ {extra} }} }}\n")


V0_HEAD = 'name: "v0"\ninput: "data"\n' + "input_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n"
POOL2 = ('layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
         "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n")  # 1×3×4×4
PROTOBUF_BYTES = b"\x0a\x07AlexNet\x12\x05\x0a\x03fc8\x00\x00\x80\x3f"  # a .caffemodel's start


@dataclass(frozen=True)
class Case:
    id: str
    content: str | bytes | None  # None: the path does not exist
    where: str  # what follows the path on the error line
    fragment: str  # must appear in the message
    name: str = "net.prototxt"


CASES = [
    Case("missing file", None, "", "no such file"),
    Case("empty file", "", "", "no layers found"),
    Case("comments only", "# nothing\nname: \"x\"\n", "", "no layers found"),
    Case("binary garbage", random.Random(7).randbytes(3000), "", "binary file"),
    Case("caffemodel given by mistake", PROTOBUF_BYTES, "", "not a model definition",
         name="bvlc_alexnet.caffemodel"),
    Case("caffemodel renamed .prototxt", PROTOBUF_BYTES, "", "binary file"),
    Case("invalid UTF-8", b'name: "caf\xe9"\n', ":1:11", "not UTF-8 text (byte 0xe9)"),
    Case("unbalanced brace", HEAD + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data"\n',
         ":3:52", 'the file ends inside a { } block (a "}" is missing)'),
    Case("bad enum value", HEAD + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
         "pooling_param { pool: MEDIAN kernel_size: 2 } }\n", ":3:81", "no value named MEDIAN"),
    Case("string where a number goes", HEAD + conv('num_output: "eight" kernel_size: 3'),
         ":3:95", "Couldn't parse integer: \"eight\""),
    Case("negative value in an unsigned field", HEAD + conv("num_output: 8 kernel_size: 3 pad: -5"),
         ":3:117", "Value out of range: -5"),
    Case("JSON instead of prototxt", '{"layer": []}\n', ":1:1", "Expected identifier or number"),
    Case("V1 file with an unknown enum type",
         'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
         'layers { name: "r" type: WIBBLE bottom: "data" top: "data" }\n',
         ":6:26", "no value named WIBBLE"),
    Case("V2 and V1 layers mixed", HEAD + 'layers { name: "r" type: RELU bottom: "data" top: "data" }\n',
         "", "mixes V2 'layer' and V1/V0 'layers'"),
    Case("unknown fields nested 1000 deep",
         HEAD + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" '
         + "deep { " * 1000 + "}" * 1000 + " }\n", ":3:507", "nested more than 64 deep"),
    Case("undefined bottom", HEAD + conv("num_output: 8 kernel_size: 3", bottom="nothere"),
         ":3: layer 'c'", "bottom 'nothere' is not produced by any earlier layer"),
    Case("duplicate top that is not in place",
         HEAD + conv("num_output: 8 kernel_size: 3") + conv("num_output: 8 kernel_size: 3", "c2"),
         ":4: layer 'c2'", "writes top 'c', which an earlier layer already produced"),
    Case("kernel larger than padded input", HEAD + conv("num_output: 8 kernel_size: 11"),
         ":3: layer 'c'", "kernel extent 11 is larger than the padded input 8"),
    Case("kernel_size 0", HEAD + conv("num_output: 8 kernel_size: 0"),
         ":3: layer 'c'", "kernel_size must be positive, got 0"),
    Case("conv stride 0", HEAD + conv("num_output: 8 kernel_size: 3 stride: 0"),
         ":3: layer 'c'", "stride must be positive, got 0"),
    Case("num_output 0", HEAD + conv("num_output: 0 kernel_size: 3"),
         ":3: layer 'c'", "num_output must be positive, got 0"),
    Case("pooling pad not below kernel", HEAD + 'layer { name: "p" type: "Pooling" bottom: "data" '
         'top: "p" pooling_param { pool: MAX kernel_size: 2 pad: 2 } }\n',
         ":3: layer 'p'", "pad 2 must be smaller than kernel 2"),
    Case("pooling stride 0", HEAD + 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
         "pooling_param { kernel_size: 3 stride: 0 } }\n", ":3: layer 'p'",
         "stride must be positive, got 0"),
    Case("group not dividing channels", HEAD + conv("num_output: 8 kernel_size: 3 group: 2"),
         ":3: layer 'c'", "input channels 3 are not divisible by group 2"),
    Case("concat of mismatched shapes", HEAD + POOL2 + 'layer { name: "cat" type: "Concat" '
         'bottom: "data" bottom: "p" top: "cat" }\n', ":4: layer 'cat'",
         "cannot concatenate [1, 3, 8, 8] and [1, 3, 4, 4] on axis 1"),
    Case("eltwise mismatch", HEAD + POOL2 + 'layer { name: "sum" type: "Eltwise" bottom: "data" '
         'bottom: "p" top: "sum" }\n', ":4: layer 'sum'",
         "Eltwise inputs differ: [1, 3, 8, 8] vs [1, 3, 4, 4]"),
    Case("eltwise of one bottom", HEAD + 'layer { name: "sum" type: "Eltwise" bottom: "data" '
         'top: "sum" }\n', ":3: layer 'sum'", "takes at least 2 bottom(s), this one has 1"),
    Case("reshape with impossible -1", HEAD + 'layer { name: "r" type: "Reshape" bottom: "data" '
         "top: \"r\" reshape_param { shape { dim: 0 dim: 5 dim: -1 } } }\n", ":3: layer 'r'",
         "cannot infer -1: 192 elements into [1, 5, -1]"),
    Case("reshape dim below -1", HEAD + 'layer { name: "r" type: "Reshape" bottom: "data" '
         "top: \"r\" reshape_param { shape { dim: -1 dim: -2 } } }\n", ":3: layer 'r'",
         "dims must be ≥ -1, got [-1, -2]"),
    Case("slice point out of range", HEAD + 'layer { name: "s" type: "Slice" bottom: "data" '
         'top: "a" top: "b" slice_param { axis: 1 slice_point: 5 } }\n', ":3: layer 's'",
         "slice points [5] do not fit axis size 3"),
    Case("crop out of range", HEAD + 'layer { name: "small" type: "Input" top: "small" '
         "input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n"
         'layer { name: "cr" type: "Crop" bottom: "small" bottom: "data" top: "cr" '
         "crop_param { axis: 2 offset: 1 } }\n", ":4: layer 'cr'",
         "crop of 8 at offset 1 exceeds size 4 on axis 2"),
    Case("crop with one bottom", HEAD + 'layer { name: "cr" type: "Crop" bottom: "data" '
         'top: "cr" }\n', ":3: layer 'cr'", "takes 2 bottom(s), this one has 1"),
    Case("missing num_output", HEAD + conv("kernel_size: 3"), ":3: layer 'c'",
         "convolution_param needs num_output"),
    Case("missing kernel_size", HEAD + conv("num_output: 8"), ":3: layer 'c'",
         "convolution_param needs kernel_size or kernel_h/kernel_w"),
    Case("kernel_h without kernel_w", HEAD + conv("num_output: 8 kernel_h: 3"), ":3: layer 'c'",
         "both _h and _w must be given"),
    Case("inner product without num_output", HEAD + 'layer { name: "fc" type: "InnerProduct" '
         'bottom: "data" top: "fc" }\n', ":3: layer 'fc'", "inner_product_param needs num_output"),
    Case("input_dim count not a multiple of 4",
         'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\n'
         'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n',
         "", "1 inputs need 4 input_dim values, found 3"),
    Case("input without dims", 'input: "data"\n'
         'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n',
         "", "input 'data' has no input_dim or input_shape; pass --input-shape"),
    Case("non-positive input dim", 'layer { name: "data" type: "Input" top: "data" '
         "input_param { shape { dim: 1 dim: 0 dim: 8 dim: 8 } } }\n", ":1: layer 'data'",
         "input 'data' has a non-positive dim [1, 0, 8, 8]"),
    Case("data layer whose shape only its database knows",
         'layer { name: "data" type: "Data" top: "data" top: "label" '
         'data_param { source: "lmdb" batch_size: 4 } }\n', ":1: layer 'data'",
         "give it with --input-shape data=N,C,H,W"),
    Case("layer with no type", HEAD + 'layer { name: "c" bottom: "data" top: "c" }\n',
         ":3: layer 'c'", "layer has no type"),
    Case("Python layer with several tops", HEAD + 'layer { name: "py" type: "Python" '
         'bottom: "data" top: "a" top: "b" python_param { module: "m" layer: "L" } }\n',
         ":3: layer 'py'", "give it with --input-shape a=d,d,... --input-shape b=d,d,..."),
    Case("deconvolution to a negative size", HEAD + 'layer { name: "d" type: "Deconvolution" '
         'bottom: "data" top: "d" convolution_param { num_output: 3 kernel_size: 1 pad: 9 } }\n',
         ":3: layer 'd'", "output size -10 is not positive"),
    Case("phase rules leave no layer", 'layer { name: "d" type: "Input" top: "d" input_param '
         "{ shape { dim: 1 } } include { phase: TRAIN } }\n", "",
         "leave no layer in the TEST phase"),
    Case("V0 padding layer without a bottom", V0_HEAD
         + 'layers { layer { name: "pad1" type: "padding" pad: 2 } top: "pad1" }\n',
         ":7: layer 'pad1'", "a V0 padding layer needs one bottom and one top"),
    Case("V0 padding read by a ReLU", V0_HEAD
         + 'layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }\n'
         + 'layers { layer { name: "r" type: "relu" } bottom: "pad1" top: "r" }\n',
         ":8: layer 'r'", "reads the V0 padding output 'pad1'; only a conv or pool layer may"),
    Case("unterminated 10 MB string", HEAD + 'layer { name: "' + "x" * 10_000_000 + "\n",
         ":3:15", "String missing ending quote"),
]


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under ``folder``."""
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(err: str, path: str, where: str, fragment: str) -> str:
    """The checks every error shares: one line, the prefix, the place, the words."""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    line = err.rstrip("\n")
    assert line.startswith(f"cnnstat: {path}{where}: "), line
    assert fragment in line, line
    return line


def _write(case: Case, folder: Path) -> Path:
    path = folder / case.name
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    elif case.content is not None:
        path.write_text(case.content, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_file_is_one_line_and_status_2(case: Case, tmp_path: Path, capsys) -> None:
    path = _write(case, tmp_path)
    before = _snapshot(tmp_path)
    assert main([str(path), "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = _one_error_line(err, str(path), case.where, case.fragment)
    assert len(line) <= 1100  # a 10 MB token is not echoed whole
    assert _snapshot(tmp_path) == before  # the user's files are untouched


def test_a_directory(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path)]) == 2
    _one_error_line(capsys.readouterr().err, str(tmp_path), "", "is a directory")


def test_dev_zero_is_refused_without_reading_it_all(capsys) -> None:
    """An endless binary stream fails on its first 4 KiB instead of filling memory."""
    if not Path("/dev/zero").exists():
        pytest.skip("/dev/zero is absent on this system")
    assert main(["/dev/zero"]) == 2
    _one_error_line(capsys.readouterr().err, "/dev/zero", "", "binary file")


ALEXNET = str(MODELS / "alexnet.prototxt")


@pytest.mark.parametrize(("args", "start", "fragment"), [
    (["--input-shape", "data"], "--input-shape", "wants NAME=d,d,..."),
    (["--input-shape", "data=1,x,227,227"], "--input-shape", "got 'data=1,x,227,227'"),
    (["--input-shape", "data=1,-1,227,227"], "--input-shape", "dims ≥ 0"),
    (["--input-shape", "data=1,0,227,227"], f"{ALEXNET}:5: layer 'data'",
     "input 'data' has a non-positive dim [1, 0, 227, 227]"),  # ONNX takes a 0, Caffe not
    (["--input-shape", "nosuch=1,3,227,227"], f"{ALEXNET}: --input-shape",
     "names 'nosuch', which is no blob of this net (inputs: data)"),
    (["--batch", "0"], "--batch", "must be positive, got 0"),
    (["--batch", "two"], "argument --batch", "invalid int value: 'two'"),
    (["--top", "0"], "--top", "must be positive, got 0"),
    (["--format", "xml"], "argument --format", "invalid choice: 'xml'"),
    (["--dtype", "int8"], "argument --dtype", "invalid choice: 'int8'"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_flags(args: list[str], start: str, fragment: str, capsys) -> None:
    assert main([ALEXNET, *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"cnnstat: {start}") and fragment in err, err


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_output_into_a_missing_directory(fmt: str, tmp_path: Path, capsys) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out.txt"
    assert main([ALEXNET, "--format", fmt, "-o", str(target)]) == 2
    _one_error_line(capsys.readouterr().err, str(target), "", "cannot write: No such file")
    assert not target.parent.exists()


def test_output_onto_the_model_itself_is_refused(tmp_path: Path, capsys) -> None:
    model = tmp_path / "alexnet.prototxt"
    model.write_bytes(Path(ALEXNET).read_bytes())
    before = _snapshot(tmp_path)
    alias = str(tmp_path / "." / "alexnet.prototxt")
    assert main([str(model), "--format", "json", "-o", alias]) == 2
    _one_error_line(capsys.readouterr().err, alias, "", "never overwrites a model")
    assert _snapshot(tmp_path) == before


def test_a_good_run_leaves_the_model_untouched(tmp_path: Path, capsys) -> None:
    model = tmp_path / "alexnet.prototxt"
    model.write_bytes(Path(ALEXNET).read_bytes())
    before = _snapshot(tmp_path)
    for fmt in ("json", "csv", "markdown", "table"):
        assert main([str(model), "--format", fmt, "-o", str(tmp_path / f"out.{fmt}")]) == 0
    after = _snapshot(tmp_path)
    assert after[str(model)] == before[str(model)]
    assert len(after) == 5


def test_unknown_field_warns_with_name_and_place(tmp_path: Path, capsys) -> None:
    """A fork's field cnnstat does not know is skipped with a warning, not an error."""
    path = tmp_path / "net.prototxt"
    path.write_text(HEAD + conv("num_output: 8 kernel_size: 3 fancy_knob: 7"))
    assert main([str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["warnings"] == [
        f"{path}:3:112: field 'fancy_knob' is not in cnnstat's caffe.proto "
        "(caffe.ConvolutionParameter); skipped"]
    assert report["totals"]["macs"] == 8 * 27 * 36  # the conv is still costed: n·k·m
    assert main([str(path)]) == 0
    assert "warning:" in capsys.readouterr().out


def test_nested_unknown_fields_warn_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(HEAD + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" '
                    "fork_param { a: 1 inner { b: 2 } } }\n")
    assert main([str(path), "--format", "json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert len(warnings) == 1 and "field 'fork_param'" in warnings[0]


def test_byte_order_mark_and_crlf_are_read(tmp_path: Path, capsys) -> None:
    """Files saved by Windows editors parse as the same net."""
    text = HEAD + conv("num_output: 8 kernel_size: 3")
    plain, windows = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
    plain.write_text(text)
    windows.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    totals = []
    for p in (plain, windows):
        assert main([str(p), "--format", "json"]) == 0
        totals.append(json.loads(capsys.readouterr().out)["totals"])
    assert totals[0] == totals[1] and totals[0]["macs"] == 8 * 27 * 36


def test_zero_size_output_is_flagged_not_silent(tmp_path: Path, capsys) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(HEAD + 'layer { name: "up" type: "Interp" bottom: "data" top: "up" '
                    "interp_param { height: 0 width: 0 } }\n")
    assert main([str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layers"][1]["output_shapes"] == [[1, 3, 0, 0]]
    assert any("has a zero dim" in w for w in report["warnings"])


def test_v0_padding_layer_pads_the_conv_that_reads_it(tmp_path: Path, capsys) -> None:
    """V0's separate ``padding`` layer becomes the conv's pad, as Caffe's upgrade does:
    8×8 padded by 2, a 5×5 kernel → 8×8 out (it was once dropped, giving 4×4)."""
    path = tmp_path / "v0.prototxt"
    path.write_text(V0_HEAD
                    + 'layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" '
                    'top: "pad1" }\nlayers { layer { name: "conv1" type: "conv" num_output: 4 '
                    'kernelsize: 5 } bottom: "pad1" top: "conv1" }\n')
    assert main([str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["format"] == "caffe-v0"
    assert [x["name"] for x in report["layers"]] == ["input", "conv1"]
    conv1 = report["layers"][1]
    assert conv1["bottoms"] == ["data"] and conv1["output_shapes"] == [[1, 4, 8, 8]]
    assert conv1["macs"] == 4 * (3 * 25) * 64


def test_python_layer_shaped_by_the_user(tmp_path: Path, capsys) -> None:
    """The fix the Python-layer message asks for works."""
    path = tmp_path / "net.prototxt"
    path.write_text(HEAD + 'layer { name: "py" type: "Python" bottom: "data" top: "a" top: "b" '
                    'python_param { module: "m" layer: "L" } }\n')
    assert main([str(path), "--format", "json", "--input-shape", "a=1,2,3,3",
                 "--input-shape", "b=1,4"]) == 0
    layer = json.loads(capsys.readouterr().out)["layers"][1]
    assert layer["output_shapes"] == [[1, 2, 3, 3], [1, 4]]


def test_many_layers_do_not_crash(tmp_path: Path, capsys) -> None:
    """4,001 layers (0.4 MB; 2,000 conv+ReLU pairs): every layer analysed, exact totals.
    The 10 MB, 80,000-layer case is in benchmarks/bench_caffe.py (it takes seconds)."""
    pairs = 2000
    body = "".join(conv("num_output: 3 kernel_size: 3 pad: 1", f"c{i}",
                        "data" if i == 0 else f"c{i - 1}", f"c{i}")
                   + f'layer {{ name: "r{i}" type: "ReLU" bottom: "c{i}" top: "c{i}" }}\n'
                   for i in range(pairs))
    path = tmp_path / "deep.prototxt"
    path.write_text(HEAD + body)
    assert path.stat().st_size > 300_000
    assert main([str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["layers"]) == 1 + 2 * pairs
    assert report["totals"]["macs"] == pairs * 3 * 27 * 64
    assert report["totals"]["params"] == pairs * (3 * 27 + 3)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(HEAD + conv("num_output: 8 kernel_size: 11"))
    with pytest.raises(CnnstatError, match="kernel extent 11"):
        main([str(path), "--debug"])
    proc = _run([str(path), "--debug"])
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "CnnstatError" in proc.stderr


def test_a_bug_is_one_line_with_status_3(monkeypatch, capsys) -> None:
    """An exception that is not the user's fault still gives one line (status 3), and
    --debug shows it."""
    import analyzer.commands.cli

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'dims'")

    monkeypatch.setattr(analyzer.commands.cli, "analyze_path", broken)
    assert main([ALEXNET]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("cnnstat: internal error: AttributeError: 'NoneType' object has no ")
    assert "--debug" in err
    with pytest.raises(AttributeError):
        main([ALEXNET, "--debug"])


def _mutants(text: str, rng: random.Random, n: int) -> list[str]:
    """``n`` damaged copies of a prototxt: a line deleted, duplicated or cut short, a number
    set to 0/1/-1/huge, a blob name or a layer type replaced."""
    from analyzer.layers.registry import RULES

    lines = text.split("\n")
    out = []
    for _ in range(n):
        ls = list(lines)
        i = rng.randrange(len(ls))
        op = rng.choice(["delete", "duplicate", "cut", "number", "number", "name", "type"])
        if op == "delete":
            del ls[i]
        elif op == "duplicate":
            ls.insert(i, ls[i])
        elif op == "cut":
            ls = ls[:i]
        else:
            pattern = {"number": r"(?<![\w.])\d+(?![\w.])", "name": r'"[^"]*"',
                       "type": r'type: *"[^"]*"'}[op]
            hits = [(j, m) for j, ln in enumerate(ls) for m in re.finditer(pattern, ln)]
            j, m = rng.choice(hits)
            new = {"number": rng.choice(["0", "1", "-1", "4294967295", "100000"]),
                   "name": f'"x{rng.randrange(3)}"',
                   "type": f'type: "{rng.choice(sorted(RULES))}"'}[op]
            ls[j] = ls[j][: m.start()] + new + ls[j][m.end():]
        out.append("\n".join(ls))
    return out


@pytest.mark.parametrize("model", ["alexnet", "five_conv"])
def test_damaged_copies_never_crash(model: str, tmp_path: Path, capsys) -> None:
    """120 seeded random damages of a shipped net: each one either analyses (status 0)
    or is one error line (status 2) — no traceback, no internal error."""
    path = tmp_path / "damaged.prototxt"
    for k, text in enumerate(_mutants((MODELS / f"{model}.prototxt").read_text(),
                                      random.Random(2026), 120)):
        path.write_text(text)
        status = main([str(path), "--format", "json"])
        out, err = capsys.readouterr()
        assert status in (0, 2), (k, err)
        if status == 2:
            assert out == "" and err.count("\n") == 1 and err.startswith(f"cnnstat: {path}"), err
        else:
            assert json.loads(out)["schema_version"] == 1


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in (
    "missing file", "bad enum value", "kernel larger than padded input", "binary garbage")],
    ids=lambda c: c.id)
def test_real_process(case: Case, tmp_path: Path) -> None:
    """The same through ``python -m analyzer``: status 2, one line, nothing on stdout."""
    path = _write(case, tmp_path)
    proc = _run([str(path)])
    assert proc.returncode == 2 and proc.stdout == ""
    _one_error_line(proc.stderr, str(path), case.where, case.fragment)


def test_fork_type_named_like_an_onnx_only_kind_is_an_unknown_type(tmp_path, capsys) -> None:
    """A Caffe fork's "MatMul" is not ONNX's MatMul: it is shaped as unknown and flagged."""
    path = tmp_path / "mm.prototxt"
    path.write_text(HEAD + 'layer { name: "mm" type: "MatMul" bottom: "data" top: "mm" }\n')
    assert main([str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    mm = out["layers"][-1]
    assert (mm["type"], mm["costed"]) == ("MatMul", False)
    assert mm["output_shapes"] == out["layers"][0]["output_shapes"]
    assert any("type 'MatMul' has no shape or cost rule" in w for w in out["warnings"])


@pytest.mark.parametrize("layer,fragment", [
    ('layer { name: "sm" type: "Softmax" bottom: "data" top: "sm" softmax_param { axis: 9 } }',
     "axis 9 is out of range"),
    ('layer { name: "up" type: "Upsample" bottom: "data" top: "up" upsample_param { scale: 0 } }',
     "upsampled size 0×0 is not positive"),
])
def test_layer_parameter_that_cannot_fit_its_input(tmp_path, capsys, layer: str,
                                                    fragment: str) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text(HEAD + layer + "\n")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}:3: layer '" in err[0] and fragment in err[0]
