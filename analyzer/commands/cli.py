"""Command line: ``cnnstat MODEL [options]``.

Every user error ends as one line on stderr, ``cnnstat: <where>: <what>``, and exit
status 2. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analyzer import __version__
from analyzer.commands.options import (
    Parser,
    add_model_options,
    analyze_path,
    write_output,
    write_rich,
)
from analyzer.errors import CnnstatError
from analyzer.render import SORT_KEYS, select, to_csv, to_json, to_markdown, to_table

MAX_MESSAGE = 1000  # characters of an error line (a file may hold a 10 MB layer name)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="cnnstat", description=(
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
    p.add_argument("-v", "--verbose", action="store_true",
                   help="table: name every layer a warning applies to")
    p.add_argument("--textconv", action="store_true",
                   help="a stable line-per-layer summary for git diff (diff.<x>.textconv)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"cnnstat {__version__}")
    return p


def run_analyze(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.top is not None and args.top <= 0:
        raise CnnstatError(f"--top must be positive, got {args.top}")
    if args.output and Path(args.output).exists() and Path(args.model).exists() \
            and Path(args.output).samefile(args.model):
        raise CnnstatError("-o names the model file itself; cnnstat never overwrites a model",
                           args.output)
    if args.textconv:
        from analyzer.commands.diff import run_textconv

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
        write_rich(lambda console: to_table(report, rows, console, args.verbose), args.output,
                   width=200)
    return 0


# Subcommands: name -> "module:function" taking argv and returning the exit status.
# Imported only when used, so `cnnstat model.prototxt` starts fast.
COMMANDS = {
    "diff": "analyzer.commands.diff:main",
    "check": "analyzer.commands.check:main",
    "devices": "analyzer.commands.devices:main",
    "fit": "analyzer.commands.fit:main",
    "calibrate": "analyzer.commands.calibrate:main",
    "measure": "analyzer.commands.measure:main",
    "plan": "analyzer.commands.plan:main",
    "report": "analyzer.commands.report:main",
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
