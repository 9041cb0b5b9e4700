"""Our own torchvision exports (tests/data/torchvision, written by tools/export_torchvision.py):
ViT, Swin, MaxViT, ConvNeXt and recent CNNs, TorchScript and dynamo exporters, against the
params and GFLOPS torchvision publishes and the shapes onnxruntime computed for every layer."""

from __future__ import annotations

from functools import cache

import pytest

from analyzer import analyze_file
from analyzer.analysis import Report
from tests.conftest import REPO, read_tsv

TORCHVISION = REPO / "tests" / "data" / "torchvision"
MANIFEST = TORCHVISION / "MANIFEST.tsv"
ROWS = read_tsv(MANIFEST) if MANIFEST.exists() else []
# layers whose output is an activation whatever the graph: onnxruntime recorded its shape
HEAVY = {"Conv", "MatMul", "Gemm", "Softmax", "LayerNormalization"}


def _dims(text: str) -> tuple[int, ...]:
    """``1x3x224x224`` → (1, 3, 224, 224); an empty field is a scalar, ()."""
    return tuple(int(d) for d in text.split("x")) if text else ()


@cache
def _report(file: str) -> Report:
    return analyze_file(str(TORCHVISION / file), batch=1)


def _runtime_shapes(file: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the float node outputs as onnxruntime computed them at batch 1."""
    rows = read_tsv(TORCHVISION / file.replace(".onnx", ".shapes.tsv"))
    return {r["tensor"]: _dims(r["shape"]) for r in rows}


def test_manifest_is_graphs_only() -> None:
    """Every graph is listed once with its shapes, its weights file is gone, and the exported
    instance had torchvision's published parameter count (the figure asserted below)."""
    assert sorted(r["file"] for r in ROWS) == sorted(p.name for p in TORCHVISION.glob("*.onnx"))
    assert len(ROWS) == 11
    assert all((TORCHVISION / r["file"].replace(".onnx", ".shapes.tsv")).exists() for r in ROWS)
    assert not list(TORCHVISION.glob("*.weights"))
    assert [r["file"] for r in ROWS if r["learnable_exported"] != r["num_params"]] == []


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["file"])
def test_params_as_published(row: dict[str, str]) -> None:
    if row["file"] == "swin_t_dynamo.onnx":
        pytest.skip("the dynamo exporter folds Swin's learnable position-bias tables into "
                    "larger constants (MANIFEST.tsv header): the published count is not in "
                    "the graph; its MACs and shapes are still checked")
    r = _report(row["file"])
    assert r.inputs == {"input": _dims(row["input"])}
    assert r.totals.params == int(row["num_params"])


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["file"])
def test_macs_as_published(row: dict[str, str]) -> None:
    published = float(row["gflops_published"]) * 1e9
    macs = _report(row["file"]).totals.macs
    assert abs(macs - published) / published < 0.01, (macs, published)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["file"])
def test_every_layer_shaped_as_onnxruntime(row: dict[str, str]) -> None:
    r = _report(row["file"])
    assert all(x.costed for x in r.layers), [x.layer.name for x in r.layers if not x.costed]
    runtime = _runtime_shapes(row["file"])
    ours = {t: s for x in r.layers for t, s in zip(x.layer.tops, x.out_shapes)}
    heavy = [t for x in r.layers if x.layer.type in HEAVY for t in x.layer.tops]
    assert heavy and set(heavy) <= set(runtime)
    both = [t for t in ours if t in runtime]
    assert {t: ours[t] for t in both} == {t: runtime[t] for t in both}
    assert ours["output"] == runtime["output"] == (1, 1000)
