"""Shared fixtures: where ../shared lives, and a skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CAFFE_CORPUS = SHARED / "corpus" / "caffe"
ONNX_CORPUS = SHARED / "corpus" / "onnx"
ONNX_MODERN = SHARED / "corpus" / "onnx_modern"
TIMINGS = SHARED / "validation" / "public_timings"
MODELS = REPO / "models"


def need(path: Path) -> Path:
    """Skip the calling test, naming the path, when a shared data file is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (the ../shared data folder is not beside this checkout)")
    return path


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows of a ../shared TSV (comment lines starting with '#' skipped) as dicts."""
    lines = [ln for ln in need(path).read_text().splitlines() if ln and not ln.startswith("#")]
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]
