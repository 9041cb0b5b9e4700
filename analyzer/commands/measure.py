"""``cnnstat measure NET --device PROFILE``: predicted vs measured time, per layer and in total."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from analyzer.commands.options import (
    Parser,
    add_model_options,
    analyze_path,
    write_output,
    write_rich,
)
from analyzer.errors import CnnstatError
from analyzer.timing.measure import compare, print_table, to_json
from analyzer.timing.runtime import require_ort


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="cnnstat measure", description=(
        "Run the net with onnxruntime (random weights) and compare its measured time with "
        "the device profile's prediction, per layer and in total."))
    p.add_argument("model", help="a .prototxt or .onnx file")
    add_model_options(p)
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads (default: the profile's, else onnxruntime's)")
    p.add_argument("--repeats", type=int, default=10,
                   help="timed runs at least (median; default 10)")
    p.add_argument("--seconds", type=float, default=2.0,
                   help="keep timing runs for at least this long (default 2)")
    p.add_argument("--sessions", type=int, default=3,
                   help="fresh onnxruntime sessions; the median one is kept (default 3)")
    p.add_argument("--wait", type=float, default=60.0,
                   help="seconds to keep running sessions again while the machine is in "
                        "another state than at calibration (default 60)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.device:
        raise CnnstatError("measure needs --device (a profile from 'cnnstat calibrate')")
    if args.threads is not None and args.threads < 0:
        raise CnnstatError(f"--threads must be ≥ 0, got {args.threads}")
    if args.repeats < 1:
        raise CnnstatError(f"--repeats must be positive, got {args.repeats}")
    require_ort()
    device, args.device = args.device, None
    report = analyze_path(args.model, args)
    if args.sessions < 1:
        raise CnnstatError(f"--sessions must be positive, got {args.sessions}")
    if args.wait < 0:
        raise CnnstatError(f"--wait must be ≥ 0, got {args.wait}")
    c = compare(report, device, args.threads, args.repeats, max(args.seconds, 0.0),
                args.sessions, args.wait)
    if args.format == "json":
        write_output(to_json(c), args.output)
        return 0
    write_rich(lambda console: print_table(c, console), args.output)
    return 0
