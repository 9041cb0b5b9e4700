"""cnnstat: what a CNN costs per layer — shapes, GEMM sizes, MACs, params, memory, time.

The public Python API is :mod:`analyzer.api` (``analyze_file``, ``report_dict``); its names
are re-exported here on first use, so ``import analyzer`` stays cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["CnnstatError", "LayerResult", "Report", "Totals", "analyze_file", "report_dict"]


def __getattr__(name: str) -> Any:
    if name in ("analyze_file", "report_dict"):
        from analyzer import api

        return getattr(api, name)
    if name in ("Report", "LayerResult", "Totals"):
        from analyzer import analysis

        return getattr(analysis, name)
    if name == "CnnstatError":
        from analyzer.errors import CnnstatError

        return CnnstatError
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
