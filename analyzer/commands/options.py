"""Option parsing every command shares: the model options, loading and analysing a model
as they say (:func:`analyze_path`), and writing the output."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from analyzer.analysis import Options, Report, analyze
from analyzer.errors import CnnstatError
from analyzer.frontends.sources import load_source
from analyzer.layers.memory import DTYPE_BYTES


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line CnnstatErrors (exit status 2)."""

    def error(self, message: str) -> None:  # one line, exit 2
        raise CnnstatError(message)


def parse_shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """``data=1,3,224,224`` → ('data', (1, 3, 224, 224))."""
    name, sep, dims = text.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d < 0 for d in shape):
        raise CnnstatError(f"--input-shape wants NAME=d,d,... with dims ≥ 0, got '{text}'")
    return name, shape


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that analyses a model."""
    p.add_argument("--batch", type=int, help="batch size: the leading dim of every input")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=d,d,...",
                   help="shape of an input (or of a blob cnnstat cannot shape); repeatable")
    p.add_argument("--phase", choices=["test", "train"], default="test",
                   help="Caffe phase for include/exclude rules (default test)")
    p.add_argument("--stage", action="append", default=[], help="Caffe NetState stage")
    p.add_argument("--level", type=int, default=0, help="Caffe NetState level")
    p.add_argument("--dtype", choices=sorted(DTYPE_BYTES), default="fp32",
                   help="element type for bytes (default fp32)")
    p.add_argument("--device", help="predict time with this device profile "
                   "(a name from 'cnnstat devices' or a profile .json)")


def options_from(args: argparse.Namespace) -> Options:
    if args.batch is not None and args.batch <= 0:
        raise CnnstatError(f"--batch must be positive, got {args.batch}")
    shapes = dict(parse_shape_arg(s) for s in args.input_shape)
    return Options(batch=args.batch, shapes=shapes, dtype=args.dtype)


def analyze_path(source: str, args: argparse.Namespace, own_shapes_only: bool = False) -> Report:
    """Load and analyse one model as the options say; with --device, predict time too.

    With ``own_shapes_only``, an --input-shape naming no blob of this net is left to the
    other net of a diff instead of being an error (the caller checks that some net has it).
    """
    opts = options_from(args)
    net = load_source(source, phase=args.phase, stages=tuple(args.stage), level=args.level,
                      batch=opts.batch, shapes=dict(opts.shapes))
    if own_shapes_only:
        tops = {t for layer in net.layers for t in layer.tops}
        opts = replace(opts, shapes={k: v for k, v in opts.shapes.items() if k in tops})
    report = analyze(net, opts)
    if getattr(args, "device", None):
        from analyzer.timing.profile import predict_report

        report = predict_report(report, args.device)
    return report


def write_output(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise CnnstatError(f"cannot write: {e.strerror}", output) from None
    else:
        sys.stdout.write(text)


def write_rich(draw: Callable[[Any], None], output: str | None, width: int = 160) -> None:
    """Call ``draw(console)`` with a rich Console on ``-o FILE`` or stdout. A file, or stdout
    piped elsewhere than a terminal, gets ``width`` columns, so nothing is squeezed away."""
    from rich.console import Console

    if output:
        try:
            with open(output, "w", encoding="utf-8") as fh:
                draw(Console(file=fh, width=width))
        except OSError as e:
            raise CnnstatError(f"cannot write: {e.strerror}", output) from None
    else:
        console = Console()
        draw(console if console.is_terminal else Console(width=width))
