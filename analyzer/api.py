"""The Python API: analyse a model file as the CLI does, in-process.

Public names (also importable from :mod:`analyzer`):

- :func:`analyze_file` — read a ``.prototxt``/``.onnx`` (or ``REV:path``) and return the
  :class:`~analyzer.analysis.Report`, with predicted times when ``device`` is given.
- :func:`report_dict` — the report as the dict ``cnnstat --format json`` prints.
- :class:`~analyzer.analysis.Report`, :class:`~analyzer.analysis.LayerResult`,
  :class:`~analyzer.analysis.Totals` — the frozen records a report is made of.
- :class:`~analyzer.errors.CnnstatError` — raised for every user error (bad file,
  unknown device, …); ``str(e)`` is the one line the CLI prints.

Everything else in the package is internal and may change between versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analyzer.analysis import Options, Report, analyze
from analyzer.errors import CnnstatError
from analyzer.frontends.sources import load_source
from analyzer.render import to_dict


def analyze_file(path: str, *, batch: int | None = None,
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 phase: str = "test", stages: Sequence[str] = (), level: int = 0,
                 dtype: str = "fp32", device: str | None = None) -> Report:
    """Analyse one model file; the keyword arguments are the CLI's options.

    ``batch`` binds the leading dim of every input (``--batch``); ``input_shapes`` maps a
    blob name to its dims (``--input-shape``); ``phase``/``stages``/``level`` are Caffe's
    NetState; ``dtype`` is ``fp32`` or ``fp16``; ``device`` is a profile name or a profile
    ``.json`` path (``--device``), which fills ``time_ms`` on every layer and the totals.
    """
    if batch is not None and batch <= 0:
        raise CnnstatError(f"batch must be positive, got {batch}")
    shapes = {name: tuple(int(d) for d in dims) for name, dims in (input_shapes or {}).items()}
    opts = Options(batch=batch, shapes=shapes, dtype=dtype)
    net = load_source(path, phase=phase, stages=tuple(stages), level=level,
                      batch=batch, shapes=dict(shapes))
    report = analyze(net, opts)
    if device:
        from analyzer.timing.profile import predict_report

        report = predict_report(report, device)
    return report


def report_dict(report: Report) -> dict[str, Any]:
    """The report as ``cnnstat --format json`` prints it (every layer, execution order)."""
    return to_dict(report)
