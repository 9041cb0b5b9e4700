"""``cnnstat fit``: fit a device time profile from ``caffe time`` logs or per-layer tables."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analyzer.commands.check import parse_bytes
from analyzer.commands.options import Parser
from analyzer.errors import CnnstatError
from analyzer.timing.fit import Run, build_profile, ck_runs, log_runs, tsv_runs
from analyzer.timing.profile import LOCAL_DIR


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="cnnstat fit", description="Fit a device time profile from measurements.")
    p.add_argument("--caffe-log", action="append", default=[], help="a 'caffe time' log")
    p.add_argument("--model", action="append", default=[], help="the model each log timed")
    p.add_argument("--batch", action="append", type=int, default=[],
                   help="the batch each log ran")
    p.add_argument("--tsv", help="rows of net, layer, batch, forward_ms")
    p.add_argument("--net", action="append", default=[], metavar="NAME=PATH",
                   help="the model file of a net named in --tsv")
    p.add_argument("--ck-tsv", help="a CK per-layer table (../shared/validation/public_timings)")
    p.add_argument("--summary", help="the CK summary table (per-net forward totals)")
    p.add_argument("--experiment-suffix", help="CK library tag, e.g. cudnn or nvidia-cudnn")
    p.add_argument("--corpus", default="../shared/corpus/caffe",
                   help="folder of the CK nets' prototxt files")
    p.add_argument("--holdout", action="append", default=[], metavar="NET",
                   help="keep this net out of the fit and report its errors")
    p.add_argument("--name", default="fitted", help="profile name")
    p.add_argument("--hardware", default="", help="what was measured")
    p.add_argument("--software", default="", help="framework and libraries")
    p.add_argument("--source", default="", help="provenance of the measurements")
    p.add_argument("--memory", metavar="SIZE", help="the device's memory, e.g. 8GiB: the "
                   "budget 'cnnstat plan' uses for this profile")
    p.add_argument("--memory-note", default="", help="what that memory is (e.g. shared with "
                   "the system)")
    p.add_argument("--fusion", action="append", default=[], metavar="PRODUCER+CONSUMER",
                   help="a kind pair the runtime fuses (consumer costs 0 ms)")
    p.add_argument("-o", "--output", help="write the profile JSON here")
    p.add_argument("--install", action="store_true",
                   help="write it as a local profile (~/.config/cnnstat/devices/NAME.json), "
                        "usable as --device NAME")
    p.add_argument("--debug", action="store_true")
    return p


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    runs: list[Run] = []
    if args.caffe_log:
        if not (len(args.caffe_log) == len(args.model) == len(args.batch)):
            raise CnnstatError("give --caffe-log LOG --model NET --batch B for every log")
        runs += log_runs(list(zip(args.caffe_log, args.model, args.batch)))
    if args.tsv:
        nets = dict(s.split("=", 1) for s in args.net if "=" in s)
        runs += tsv_runs(args.tsv, nets)
    if args.ck_tsv:
        if not args.experiment_suffix:
            raise CnnstatError("--ck-tsv needs --experiment-suffix (e.g. cudnn)")
        runs += ck_runs(args.ck_tsv, args.experiment_suffix, args.corpus, args.summary)
    if not runs:
        raise CnnstatError("nothing to fit: give --caffe-log/--model/--batch, --tsv or --ck-tsv")
    for r in runs:
        if r.unmatched:
            print(f"cnnstat fit: {r.net} batch {r.batch}: {len(r.unmatched)} row(s) match no "
                  f"layer: {', '.join(r.unmatched)}", file=sys.stderr)
    fusions = [f.split("+", 1) for f in args.fusion]
    if any(len(f) != 2 for f in fusions):
        raise CnnstatError("--fusion wants PRODUCER+CONSUMER, e.g. Convolution+ReLU")
    meta: dict[str, Any] = {"name": args.name, "hardware": args.hardware,
                            "software": args.software, "dtype": "fp32",
                            "source": args.source or ", ".join(
                                x for x in (args.ck_tsv, args.tsv, *args.caffe_log) if x),
                            "command": "cnnstat fit " + shlex.join(argv)}
    if fusions:
        meta["fusions"] = fusions
    if args.memory:
        meta["memory_bytes"] = parse_bytes(args.memory, "--memory")
        if args.memory_note:
            meta["memory_note"] = args.memory_note
    profile = build_profile(runs, args.holdout, meta)
    text = json.dumps(profile, indent=1) + "\n"
    if args.install and not args.output:
        LOCAL_DIR.mkdir(parents=True, exist_ok=True)
        args.output = str(LOCAL_DIR / f"{args.name}.json")
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise CnnstatError(f"cannot write: {e.strerror}", args.output) from None
        q = profile["quality"]
        nets = ", ".join(q.get("nets", [])) or f"{q.get('net_count')} nets"
        print(f"wrote {args.output}: {q['points']} layer timings from {nets}; "
              f"in-sample median error "
              f"{q['in_sample']['median_rel_error']:.1%}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
