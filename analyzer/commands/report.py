"""``cnnstat report MODEL [--device D] [-o FILE]``: one self-contained HTML page.

The page (see :mod:`analyzer.html_report`) shows the model's header and totals, where the
time goes, the memory held while the net runs, the sortable per-layer table, and with a
device the batch plan of ``cnnstat plan`` (budget: ``--memory`` or the profile's memory).
Without ``-o`` the HTML goes to stdout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analyzer.commands.check import parse_bytes
from analyzer.commands.options import Parser, add_model_options, analyze_path, write_output
from analyzer.commands.plan import add_plan_options, build_plan, plan_dict
from analyzer.errors import CnnstatError


def build_parser() -> Parser:
    p = Parser(prog="cnnstat report", description=(
        "One self-contained HTML page: totals, time-share and memory charts, the sortable "
        "layer table and, with --device, the batch plan."))
    p.add_argument("model", help="a .prototxt or .onnx file, or REV:path")
    add_model_options(p)
    add_plan_options(p)
    p.add_argument("-o", "--output", help="write the page to this file instead of stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: Sequence[str]) -> int:
    from analyzer.html_report import to_html

    args = build_parser().parse_args(argv)
    if args.output and Path(args.output).exists() and Path(args.model).exists() \
            and Path(args.output).samefile(args.model):
        raise CnnstatError("-o names the model file itself; cnnstat never overwrites a model",
                           args.output)
    if args.memory:
        parse_bytes(args.memory, "--memory")  # a bad size is an error, not a note
    report = analyze_path(args.model, args)
    plan, note = None, None
    if args.device:
        try:
            plan = plan_dict(build_plan(args.model, args, args.convention))
        except CnnstatError as e:
            note = f"No plan: {e.message}"
    write_output(to_html(report, plan, note), args.output)
    return 0
