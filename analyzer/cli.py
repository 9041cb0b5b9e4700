"""Command line: ``cnnstat MODEL [options]``.

Every user error ends as one line on stderr, ``cnnstat: <where>: <what>``, and exit
status 2. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from analyzer import __version__
from analyzer.analysis import Options, Report, analyze
from analyzer.errors import CnnstatError
from analyzer.memory import DTYPE_BYTES
from analyzer.render import SORT_KEYS, select, to_csv, to_json, to_markdown, to_table
from analyzer.sources import load_source

MAX_MESSAGE = 1000  # characters of an error line (a file may hold a 10 MB layer name)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise CnnstatError(message)


def parse_shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """``data=1,3,224,224`` → ('data', (1, 3, 224, 224)). A 0 dim is valid (an empty tensor,
    as ONNX allows); the Caffe analysis refuses it at the input layer."""
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cnnstat", description=(
        "Per-layer cost of a CNN (Caffe .prototxt or ONNX): shapes, GEMM sizes n/k/m, "
        "MACs, params and memory."))
    p.add_argument("model", help="a .prototxt or .onnx file, or REV:path for the file at a "
                   "git revision (e.g. HEAD~1:models/net.prototxt)")
    add_model_options(p)
    p.add_argument("--format", choices=["table", "json", "csv", "markdown"], default="table")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--sort", choices=sorted(SORT_KEYS), default="order",
                   help="order of the layer rows (default: execution order)")
    p.add_argument("--top", type=int, metavar="N", help="show only the first N rows")
    p.add_argument("--textconv", action="store_true",
                   help="a stable line-per-layer summary for git diff (diff.<x>.textconv)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"cnnstat {__version__}")
    return p


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
        from analyzer.timing import predict_report

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


def run_analyze(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.top is not None and args.top <= 0:
        raise CnnstatError(f"--top must be positive, got {args.top}")
    if args.output and Path(args.output).exists() and Path(args.model).exists() \
            and Path(args.output).samefile(args.model):
        raise CnnstatError("-o names the model file itself; cnnstat never overwrites a model",
                           args.output)
    if args.textconv:
        from analyzer.diff import run_textconv

        return run_textconv(args)
    report = analyze_path(args.model, args)
    rows = select(report, args.sort, args.top)
    if args.format == "json":
        write_output(to_json(report, rows), args.output)
    elif args.format == "csv":
        write_output(to_csv(report, rows), args.output)
    elif args.format == "markdown":
        write_output(to_markdown(report, rows), args.output)
    else:
        from rich.console import Console

        if args.output:
            try:
                with open(args.output, "w", encoding="utf-8") as fh:
                    to_table(report, rows, Console(file=fh, width=200))
            except OSError as e:
                raise CnnstatError(f"cannot write: {e.strerror}", args.output) from None
        else:
            console = Console()
            if not console.is_terminal:  # piped: never squeeze columns away
                console = Console(width=200)
            to_table(report, rows, console)
    return 0


# Subcommands: name -> "module:function" taking argv and returning the exit status.
# Imported only when used, so `cnnstat model.prototxt` starts fast.
COMMANDS = {
    "diff": "analyzer.diff:main",
    "check": "analyzer.check:main",
    "devices": "analyzer.devices_cmd:main",
    "fit": "analyzer.fit:main",
    "calibrate": "analyzer.calibrate:main",
    "measure": "analyzer.measure:main",
}


def _command(name: str):
    import importlib

    module, _, func = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        if argv and argv[0] in COMMANDS:
            return _command(argv[0])(argv[1:])
        if argv and argv[0] == "analyze":
            argv = argv[1:]
        return run_analyze(argv)
    except CnnstatError as e:
        if debug:
            raise
        said = str(e) if len(str(e)) <= MAX_MESSAGE else str(e)[:MAX_MESSAGE] + "… (cut)"
        print(f"cnnstat: {said}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnstat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in cnnstat, not the user's fault: still one line
        if debug:
            raise
        print(f"cnnstat: internal error: {type(e).__name__}: {str(e)[:MAX_MESSAGE]} (run again "
              "with --debug for the traceback, and please report it)", file=sys.stderr)
        return 3
