"""The terminal table at 80–200 columns: run in a real pseudo-terminal of each width, no
row wraps, every number shown is whole (it equals the JSON's figure as the table rounds
it), layer names stay distinct, and warnings take one line per kind.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from functools import cache

import pytest
from conftest import REPO, SHARED, need
from rich.console import Console

from analyzer.api import analyze_file
from analyzer.render import count, nbytes, select, shape_str, to_table
from analyzer.termtable import (
    Column,
    cut_name,
    distinct_width,
    fit,
    fold_path,
    short_names,
)

MOBILENET = SHARED / "corpus" / "onnx_modern" / "mobilenet_v3_large.onnx"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_terminal(argv: list[str], columns: int) -> list[str]:
    """Run ``python -m analyzer ARGV`` with its output on a pseudo-terminal ``columns``
    wide; the lines it shows, without colour codes."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", *argv], stdin=child,
                            stdout=child, stderr=child, cwd=REPO, env=env)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")[-2000:]
    return ANSI.sub("", out.decode()).replace("\r\n", "\n").split("\n")


@cache
def mobilenet():
    return analyze_file(str(need(MOBILENET)), batch=1, device="jetson-tx1")


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_mobilenet_table_fits_the_terminal(columns):
    report = mobilenet()
    lines = in_terminal([str(MOBILENET), "--batch", "1", "--device", "jetson-tx1"], columns)
    assert max(len(ln) for ln in lines) <= columns  # nothing runs past the edge
    head = next(i for i, ln in enumerate(lines) if ln.startswith("layer "))
    rows = lines[head + 1:head + 1 + len(report.layers)]
    total = lines[head + 1 + len(report.layers)]
    assert total.startswith("total ")  # one line per layer: no row wrapped
    shown = lines[head].split()
    names = [r.split()[0] for r in rows]
    assert len(set(names)) == len(report.layers)  # distinguishable
    for name, row, r in zip(names, rows, report.layers):
        want = {"time": f"{r.time_ms:.3f}", "data": nbytes(r.data_bytes)}
        if "MACs" in shown and r.macs:
            want["MACs"] = count(r.macs)
        if "params" in shown and r.params:
            want["params"] = count(r.params)
        if "output" in shown:
            want["output"] = shape_str(r.out_shapes)
        if "n" in shown and r.gemm:
            want.update(n=str(r.gemm.n), k=str(r.gemm.k), m=str(r.gemm.m))
        for what, text in want.items():
            assert re.search(rf"(^|[\s~]){re.escape(text)}(\s|$)", row), (columns, what, row)
        full = fold_path(r.layer.name)
        if "…" not in name:
            assert name == full
        else:  # cut in the middle: the head and the tail are the name's
            first, last = name.split("…")
            assert full.startswith(first) and full.endswith(last)
    t = report.totals
    assert re.search(rf"\s{re.escape(f'{t.time_ms:.3f}')}(\s|$)", total)
    assert f" {nbytes(t.data_bytes)}" in total
    if columns >= 160:
        assert shown == ["layer", "type", "output", "n", "k", "m", "MACs", "params", "data",
                         "workspace", "time", "ms", "share"]
    warned = [ln for ln in lines if ln.startswith("warning:")]
    assert len(warned) == 6  # BatchNorm, HardSwish, Broadcast, HardSigmoid, Flatten, overhead
    assert any(ln.startswith("warning: 46 layers: no 'BatchNorm' timings") for ln in warned)


def test_verbose_names_every_layer_a_warning_applies_to():
    report = mobilenet()
    out = io.StringIO()
    to_table(report, select(report), Console(file=out, width=100, force_terminal=False),
             verbose=True)
    line = next(ln for ln in out.getvalue().replace("\n", " ").split("warning: ")
                if "no 'BatchNorm' timings" in ln)
    bn = [r.layer.name for r in report.layers if r.layer.kind == "BatchNorm"]
    assert len(bn) == 46
    assert all(fold_path(n) in line for n in bn)
    out = io.StringIO()
    to_table(report, select(report), Console(file=out, width=100))
    assert "(+4" in out.getvalue()  # without --verbose: a few names and a count


# ---------------------------------------------------------------------------------------
# The pieces


def test_fold_path_drops_repeated_module_names():
    assert fold_path("/features/features.14/block/block.0/block.0.1/BatchNormalization") \
        == "features.14/block.0.1/BatchNormalization"
    assert fold_path("/features/features.16/features.16.1/BatchNormalization") \
        == "features.16.1/BatchNormalization"
    assert fold_path("/classifier/classifier.3/Gemm") == "classifier.3/Gemm"
    assert fold_path("/layer1/layer1.0/conv1/Conv") == "layer1.0/conv1/Conv"
    assert fold_path("inception_3a/1x1") == "inception_3a/1x1"  # Caffe: nothing repeats
    assert fold_path("conv1") == "conv1"


def test_short_names_keep_names_distinct_and_drop_a_shared_prefix():
    assert short_names(["net/a/x", "net/b/y"]) == ["a/x", "b/y"]
    assert short_names(["net/a", "net"]) == ["net/a", "net"]  # 'net' has no '/' prefix
    # folding would merge two names: they are kept as they are
    assert short_names(["/a/a.1/x", "/a.1/x"]) == ["a/a.1/x", "a.1/x"]


def test_cut_name_cuts_the_longest_segment_first():
    name = "features.1/block.0.1/BatchNormalization"
    assert cut_name(name, 34) == "features.1/block.0.1/Batc…lization"
    assert len(cut_name(name, 34)) == 34
    assert cut_name("inception_4a_output_0_split", 12) == "ince…0_split"
    assert cut_name(name, 100) == name
    names = [f"features.{i}/block.{j}.1/BatchNormalization" for i in range(12)
             for j in range(3)]
    w = distinct_width(names)
    assert len({cut_name(n, w) for n in names}) == len(names)
    assert len({cut_name(n, w - 1) for n in names}) < len(names)


def test_fit_gives_up_columns_in_order_and_never_cuts_numbers():
    cols = [Column("name", ("a_rather_long_layer_name",), cut="name", least=6, prefer=10),
            Column("big", ("123456789",), right=True),
            Column("low", ("xxxxxxxxxx",), drop=1),
            Column("mid", ("yyyyyyyy",), drop=2)]
    assert [c.header for c in fit(cols, 200)] == ["name", "big", "low", "mid"]
    assert fit(cols, 200)[0].width == 24
    narrow = fit(cols, 30)  # 'low' goes; the name keeps what is left
    assert [(c.header, c.width) for c in narrow] == [("name", 11), ("big", 9), ("mid", 8)]
    narrower = fit(cols, 25)  # 'mid' goes too; the name has its preferred 10 and more
    assert [(c.header, c.width) for c in narrower] == [("name", 15), ("big", 9)]
    assert narrower[0].text(0) == "a_rat…ayer_name"  # head 2/5, tail 3/5
    assert [c.width for c in fit(cols, 10)] == [6, 9]  # too narrow: numbers stay whole
