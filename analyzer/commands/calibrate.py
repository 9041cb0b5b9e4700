"""``cnnstat calibrate``: measure this machine with onnxruntime and write a device profile."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from analyzer.commands.options import Parser
from analyzer.errors import CnnstatError
from analyzer.timing.calibrate import build_profile, default_output, plan, run_plan
from analyzer.timing.runtime import require_ort
from analyzer.timing.runtime_memory import calibrate as calibrate_memory

# a median pass-to-pass spread above this is worth a warning: a calibration whose points
# move this much between two readings predicts no better than that
SPREAD_WARN = 0.05


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="cnnstat calibrate", description=(
        "Measure this machine with onnxruntime (one-layer nets with random weights, "
        "default session options) and write a device profile for --device."))
    p.add_argument("-o", "--output", help="profile .json to write (default: "
                   "~/.config/cnnstat/devices/this-cpu.json, usable as --device this-cpu)")
    p.add_argument("--quick", action="store_true", help="a smaller grid (70–90 s on 2 cores)")
    p.add_argument("--threads", type=int, default=0,
                   help="pin onnxruntime's intra-op thread count (default: its own choice)")
    p.add_argument("--seed", type=int, default=0, help="grid sampling seed")
    p.add_argument("--record", help="also write what was measured on every point to this "
                   "JSON file (to fit again without measuring: tests)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 0:
        raise CnnstatError(f"--threads must be ≥ 0, got {args.threads}")
    require_ort()
    out = Path(args.output) if args.output else default_output()
    name = out.stem
    start = time.perf_counter()
    measured = run_plan(plan(args.quick, args.seed), args.threads)
    measured["runtime_memory"] = calibrate_memory(measured["fusions"], args.threads,
                                                  args.quick)
    if args.record:
        try:
            Path(args.record).write_text(json.dumps(
                {"quick": args.quick, "seed": args.seed, "profiler_ms_per_node":
                 measured["profiler_ms_per_node"], "points": measured["record"]},
                separators=(",", ":")) + "\n", encoding="utf-8")
        except OSError as e:
            raise CnnstatError(f"cannot write: {e.strerror}", args.record) from None
    profile = build_profile(name, measured, args.threads, args.quick,
                            time.perf_counter() - start)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    except OSError as e:
        raise CnnstatError(f"cannot write: {e.strerror}", str(out)) from None
    q = profile["quality"]
    held = q.get("holdout_per_layer", {})
    context = profile.get("context", {})
    fused = sum(1 for k, v in context.get("runs", {}).items() if "<-" in k and v < 0.5)
    print(f"wrote {out} ({q['points']} timed layers in "
          f"{profile['source']['seconds']:.0f} s; context: {len(context.get('runs', {}))} "
          f"layer keys, {fused} of them fused into another node; per-layer overhead "
          f"{profile['per_layer_overhead_ms'] * 1000:.1f} µs; held-out median error "
          f"{held.get('median_rel_error', float('nan')) * 100:.1f} %)")
    memory = profile.get("runtime_memory", {}).get("quality", {}).get("in_sample", {})
    if memory:
        print(f"runtime memory: fitted on {memory['points']} probe runs; median error "
              f"{memory['median_rel_error'] * 100:.1f} %, worst "
              f"{memory['max_rel_error'] * 100:.1f} %")
    state = profile.get("probe", {})
    if state:
        print(f"machine state: probe {state['ms']:.3f} ms; {state['readings_in_state']} of "
              f"{state['readings']} probe readings in that state; "
              f"{state['points_measured_again']} point(s) measured again, "
              f"{state['points_out_of_state']} never in that state")
    if "pass_spread_median" in state:
        median, p90 = state["pass_spread_median"] * 100, state["pass_spread_p90"] * 100
        print(f"repeatability: a point's two passes differed by {median:.1f} % (median), "
              f"{p90:.1f} % (90th percentile) over {state['pass_spread_points']} points")
        if median > SPREAD_WARN * 100:
            print(f"warning: this machine's speed moved by more than {SPREAD_WARN:.0%} while "
                  "it was measured (another program, or a shared host); predictions from "
                  "this profile inherit that error — calibrate again when it is idle")
    return 0

