"""`cnnstat report`: one self-contained HTML page.

Structure is checked with html.parser: the sections, one table row per layer whose cells
hold exactly the JSON's values, the plan's rows equal to `cnnstat plan --format json`, and
nothing that would load from elsewhere. A second test renders the page in headless
Chromium (skipped where none is installed): the screenshot is not blank, the charts are
drawn, and the browser's network log shows no request from the page (a control page with
an external image and stylesheet shows that the check catches them).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import CAFFE_CORPUS, MODELS, SHARED, need

from analyzer.api import analyze_file
from analyzer.commands import cli
from analyzer.layers.memory import live_data_bytes
from analyzer.render import count, nbytes
from analyzer.termtable import fold_path

ALEXNET = str(MODELS / "alexnet.prototxt")


class Page(HTMLParser):
    """The parts of the page the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.sections: list[str] = []
        self.rows: dict[str, list[list[tuple[str | None, str]]]] = {}  # table id → cells
        self.scripts: list[str] = []
        self._table: str | None = None
        self._cell: list | None = None
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self.sections.append(a.get("id") or "")
        elif tag == "table":
            self._table = a.get("id") or a.get("class") or ""
            self.rows[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.rows[self._table].append([])
        elif tag == "td" and self._table is not None:
            self._cell = [a.get("data-v"), ""]
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[self._table][-1].append((self._cell[0], self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        if self._in_script:
            self.scripts[-1] += data


def make_page(capsys, tmp_path: Path, *argv: str) -> tuple[str, Page, Path]:
    out = tmp_path / "report.html"
    assert cli.main(["report", *argv, "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    text = out.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    return text, page, out


def run_json(capsys, *argv: str) -> dict:
    assert cli.main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_page_holds_every_layer_with_the_jsons_numbers(capsys, tmp_path):
    text, page, _ = make_page(capsys, tmp_path, ALEXNET, "--device", "jetson-tx1")
    d = run_json(capsys, ALEXNET, "--device", "jetson-tx1")
    assert page.sections == ["totals", "time-share", "memory", "plan", "layers", "warnings"]
    rows = [r for r in page.rows["layer-table"] if r]  # the header row has no td
    assert len(rows) == len(d["layers"])
    for i, (cells, layer) in enumerate(zip(rows, d["layers"]), 1):
        values = [json.loads(v) if v is not None else None for v, _ in cells]
        texts = [t for _, t in cells]
        g = layer["gemm"]
        assert values[0] == i and texts[1] == fold_path(layer["name"])
        assert texts[2] == layer["type"]
        assert values[4:7] == ([g["n"], g["k"], g["m"]] if g else [None, None, None])
        assert values[7:12] == [layer["macs"], layer["flops"], layer["params"],
                                layer["memory"]["data_bytes"],
                                layer["memory"]["workspace_bytes"]]
        assert values[12] == layer["time_ms"] and texts[12] == f"{layer['time_ms']:.3f}"
        assert texts[7] == (count(layer["macs"]) if layer["macs"] else "")
        assert texts[10] == nbytes(layer["memory"]["data_bytes"])
    totals = {a["data-v"] for tag, a in page.tags if tag == "span" and "data-v" in a}
    t = d["totals"]
    for v in (t["macs"], t["flops"], t["params"], t["time_ms"], *t["memory"].values()):
        assert v is None or json.dumps(v) in totals
    # one inline script (the sort), nothing that loads from elsewhere
    assert len(page.scripts) == 1 and "sort" in page.scripts[0]
    for tag, a in page.tags:
        assert not (a.get("src") or a.get("href")), (tag, a)
        assert tag not in ("link", "img", "iframe", "object", "embed", "base")
    for bad in ("http:", "https:", "url(", "@import", "@font-face"):
        assert bad not in text, bad
    assert sum(1 for tag, _ in page.tags if tag == "svg") == 5  # 2 time, memory, 2 plan


def test_plan_section_equals_cnnstat_plan(capsys, tmp_path):
    _, page, _ = make_page(capsys, tmp_path, ALEXNET, "--device", "gtx1080", "--memory",
                           "1GiB")
    plan = run_json(capsys, "plan", ALEXNET, "--device", "gtx1080", "--memory", "1GiB")
    rows = [r for r in page.rows["plan"] if r]
    assert len(rows) == len(plan["rows"])
    for cells, row in zip(rows, plan["rows"]):
        got = [json.loads(v) for v, _ in cells[:5]]
        assert got == [row["batch"], row["time_ms"], row["ms_per_image"], row["images_per_s"],
                       row["memory_bytes"]]
        assert cells[5][1] == ("yes" if row["fits"] else "no")
    marked = [r[0][1] for r in rows if "max batch" in r[6][1]]
    assert marked == [f"{plan['max_batch']:,}"]


def test_memory_chart_names_the_peak_layer(capsys, tmp_path):
    text, _, _ = make_page(capsys, tmp_path, ALEXNET)
    report = analyze_file(ALEXNET)
    live = live_data_bytes(report.net.layers, [r.out_shapes for r in report.layers], 4)
    peak = report.totals.data_peak_bytes
    at = report.layers[live.index(peak)].layer.name
    assert f"peak: {nbytes(peak)} of data at &#x27;{at}&#x27;" in text
    assert 'id="plan"' not in text and "Where the MACs go" in text  # no device: no plan


def test_live_bytes_by_hand(tmp_path):
    """input 1×2×4×4 (128 B) → conv 1×4×4×4 (256 B) → in-place ReLU → pool 1×4×2×2 (64 B)
    → fc 1×3 (12 B): alive while each runs — the input alone; input + conv out; the conv
    out (ReLU writes in place, the input is freed after the conv); conv out + pool out;
    pool out + fc out."""
    net = tmp_path / "tiny.prototxt"
    net.write_text("""
input: "data" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param { num_output: 3 } }
""")
    report = analyze_file(str(net))
    live = live_data_bytes(report.net.layers, [r.out_shapes for r in report.layers], 4)
    assert live == [128, 384, 256, 320, 76]
    assert report.totals.data_peak_bytes == 384


def test_report_refuses_to_overwrite_the_model(capsys, tmp_path):
    model = tmp_path / "net.prototxt"
    model.write_text(Path(ALEXNET).read_text())
    assert cli.main(["report", str(model), "-o", str(model)]) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert model.read_text() == Path(ALEXNET).read_text()


def test_plan_that_cannot_fit_is_a_note_not_a_failure(capsys, tmp_path):
    text, _, _ = make_page(capsys, tmp_path, ALEXNET, "--device", "gtx1080", "--memory",
                           "10MiB")
    assert "No plan: batch 1 does not fit" in text


# ---------------------------------------------------------------------------------------
# In a browser


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat, ihdr = 8, b"", b""
    while i < len(data):
        (n,), kind = struct.unpack(">I", data[i:i + 4]), data[i + 4:i + 8]
        if kind == b"IHDR":
            ihdr = data[i + 8:i + 8 + n]
        elif kind == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert depth == 8 and ctype in (2, 6) and interlace == 0
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
        elif f == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, [bytes(r[x:x + 3] for x in range(0, stride, bpp)) if bpp == 4 else r
                  for r in rows]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium installed (Debian: apt-get install chromium)")


def render(page: Path, tmp: Path) -> tuple[Path, dict]:
    """Screenshot ``page`` at 1280×800 in headless Chromium, with its network log (the
    browser's own background services are in it too, and send nothing: see :func:`browse`)."""
    shot, log = tmp / f"{page.stem}.png", tmp / f"{page.stem}.netlog.json"
    proc = browse(page, tmp, "--hide-scrollbars", "--window-size=1280,800",
                  f"--log-net-log={log}", f"--screenshot={shot}")
    assert shot.exists(), proc.stderr[-2000:]
    return shot, json.loads(log.read_text())


def browse(page: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``page`` with a fresh profile, and without a network: in a
    network namespace of its own where `unshare -n` works, and in any case with every host
    resolving to nothing and every request sent to a closed local port."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp / (page.stem + '-profile')}",
           "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND", *flags,
           page.resolve().as_uri()]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"],
                                                  capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(tmp)})


def page_requests(netlog: dict) -> list[str]:
    """URLs the page asked for (the browser's own background requests, initiated by no
    origin, are left out; so are file: and data: URLs)."""
    names = {v: k for k, v in netlog["constants"]["logEventTypes"].items()}
    urls = []
    for e in netlog["events"]:
        p = e.get("params") or {}
        if names.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in p \
                and p.get("initiator") != "not an origin" \
                and not p["url"].startswith(("file:", "data:")):
            urls.append(p["url"])
    return urls


def test_page_renders_in_chromium_without_a_request(capsys, tmp_path):
    chromium()  # skips here, before any work, where there is none
    model = str(need(CAFFE_CORPUS / "resnet50_deploy.prototxt"))
    _, _, out = make_page(capsys, tmp_path, model, "--device", "jetson-tx1")
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><h1>control</h1>'
                       '<img src="http://127.0.0.1:9/x.png">'
                       '<link rel="stylesheet" href="https://example.invalid/a.css">'
                       '</body></html>')
    shot, log = render(out, tmp_path)
    _, control_log = render(control, tmp_path)
    assert sorted(page_requests(control_log)) == ["http://127.0.0.1:9/x.png",
                                                  "https://example.invalid/a.css"]
    assert page_requests(log) == []
    w, h, rows = png_pixels(shot)
    assert (w, h) == (1280, 800)
    pixels = [r[x:x + 3] for r in rows[::4] for x in range(0, len(r), 12)]
    white = sum(p == b"\xff\xff\xff" for p in pixels)
    assert white < 0.95 * len(pixels)  # not blank
    assert len(set(pixels)) > 50  # text, cards and bars, not one flat colour
    bar = bytes((0x3F, 0x6F, 0xB0))  # the time-share bars' colour: the SVG was drawn
    assert sum(p == bar for p in pixels) > 200


def test_sort_script_orders_the_layer_table_in_chromium(capsys, tmp_path):
    """A click on the MACs heading (twice: then ascending) reorders the rows by MACs,
    ties kept in execution order."""
    chromium()
    text, page, _ = make_page(capsys, tmp_path, ALEXNET)
    heads = [tag for tag, _ in page.tags if tag == "th"]
    assert len(heads) == 12  # '#', layer, type, output, n, k, m, MACs, … (no time column)
    clicks = '<script>const h = document.querySelectorAll("#layer-table th")[7];' \
             'h.click(); h.click();</script></body>'
    clicked = tmp_path / "clicked.html"
    clicked.write_text(text.replace("</body>", clicks), encoding="utf-8")
    dom = browse(clicked, tmp_path, "--dump-dom").stdout
    after = Page()
    after.feed(dom)
    rows = [r for r in after.rows["layer-table"] if r]
    d = run_json(capsys, ALEXNET)
    want = sorted(range(len(d["layers"])), key=lambda i: (d["layers"][i]["macs"], i))
    assert [json.loads(r[0][0]) - 1 for r in rows] == want
    assert 'aria-sort="ascending"' in dom


def test_chart_axes_use_round_steps():
    from analyzer.charts import byte_step, nice_step, ticks

    assert nice_step(23.0) == 5 and nice_step(0.9) == 0.2 and nice_step(1000) == 200
    assert byte_step(9.19 * 2**20) == 2 * 2**20  # the ResNet-50 memory chart: + 2 MiB steps
    assert byte_step(7.06 * 2**30) == 2 * 2**30
    assert byte_step(3000) == 1000  # under 5 KiB a step: plain bytes
    assert ticks(9.19, 2) == [0, 2, 4, 6, 8, 10]


def test_onnx_names_are_short_in_the_page_and_whole_in_their_tooltips(capsys, tmp_path):
    model = str(need(SHARED / "corpus" / "onnx_modern" / "mobilenet_v3_large.onnx"))
    _, page, _ = make_page(capsys, tmp_path, model, "--batch", "1")
    names = [x["name"] for x in run_json(capsys, model, "--batch", "1")["layers"]]
    cells = [a for tag, a in page.tags if tag == "td" and a.get("class") == "name"]
    assert [a["title"] for a in cells] == names
    rows = [r for r in page.rows["layer-table"] if r]
    assert [r[1][1] for r in rows] == [fold_path(n) for n in names]
    assert rows[5][1][1] == "features.1/block.0.1/BatchNormalization"
