"""Held-out accuracy of the time model on CK's public `caffe time` data (GoogLeNet held out).

For each device, fits two profiles on the same rows (AlexNet, SqueezeNet 1.0/1.1; forward,
median over 3 repetitions, batch 2..16): cnnstat's model and Lu et al.'s plain linear form
(conv a·n·k·m·groups·batch + b, fc a·in·out·rows + b; every other kind and the per-layer
overhead the same in both). Then prints, per batch, GoogLeNet's measured forward total
(CK's median `time_fw_ms`) against both predictions, and the median per-layer error over the
layers taking ≥ 1 % of the measured time.

    python benchmarks/bench_time_ck.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.fit import build_profile, ck_runs, run_quality  # noqa: E402
from analyzer.timing import KIND_FORMS, PAPER_FORMS  # noqa: E402

DEVICES = [("gtx1080", "gtx1080", "cudnn"), ("jetson-tx1", "jetson_tx1", "nvidia-cudnn")]
HOLDOUT = "googlenet"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = ap.parse_args()
    timings = Path(args.shared) / "validation" / "public_timings"
    corpus = Path(args.shared) / "corpus" / "caffe"
    if not timings.is_dir():
        print(f"skipped: {timings} is absent")
        return 0
    for name, file, suffix in DEVICES:
        runs = ck_runs(str(timings / f"ck_caffe_{file}_per_layer.tsv"), suffix, str(corpus),
                       str(timings / f"ck_caffe_{file}_summary.tsv"))
        ours = build_profile(runs, [HOLDOUT], {"name": name}, KIND_FORMS)
        paper = build_profile(runs, [HOLDOUT], {"name": name + "-paper"}, PAPER_FORMS)
        held = [r for r in runs if r.net == HOLDOUT]
        print(f"\n## {name} ({suffix}): GoogLeNet held out; fit on AlexNet + SqueezeNet 1.0/1.1, "
              f"overhead {ours['per_layer_overhead_ms'] * 1000:.1f} µs/layer\n")
        print("| batch | measured ms | cnnstat ms | err | paper ms | err "
              "| layer median err cnnstat | paper |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        worst = {"ours": 0.0, "paper": 0.0}
        for run in held:
            q = {k: run_quality(p, [run]) for k, p in (("ours", ours), ("paper", paper))}
            t = {k: v["totals"][0] for k, v in q.items()}
            lay = {k: v["per_layer_ge_1pct"]["median_rel_error"] for k, v in q.items()}
            for k in worst:
                worst[k] = max(worst[k], abs(t[k]["rel_error"]))
            print(f"| {run.batch} | {run.total_ms:.3f} | {t['ours']['predicted_ms']:.3f} "
                  f"| {t['ours']['rel_error']:+.1%} | {t['paper']['predicted_ms']:.3f} "
                  f"| {t['paper']['rel_error']:+.1%} | {lay['ours']:.1%} | {lay['paper']:.1%} |")
        hq = {k: run_quality(p, held)["per_layer_ge_1pct"] for k, p in
              (("ours", ours), ("paper", paper))}
        iq = {k: p["quality"]["in_sample_runs"]["per_layer_ge_1pct"] for k, p in
              (("ours", ours), ("paper", paper))}
        print(f"| all | | | max {worst['ours']:.1%} | | max {worst['paper']:.1%} "
              f"| {hq['ours']['median_rel_error']:.1%} | {hq['paper']['median_rel_error']:.1%} |")
        print(f"\nin-sample (training nets) per-layer median error, layers ≥ 1 %: cnnstat "
              f"{iq['ours']['median_rel_error']:.1%}, paper {iq['paper']['median_rel_error']:.1%}"
              f" ({iq['ours']['points']} layer·batch points); held out: "
              f"{hq['ours']['points']} points")
        conv = {k: p["kinds"]["Convolution"]["in_sample"]["median_rel_error"]
                for k, p in (("ours", ours), ("paper", paper))}
        print(f"conv in-sample median error: cnnstat {conv['ours']:.1%}, paper {conv['paper']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
