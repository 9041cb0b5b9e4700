"""Held-out accuracy of the time model on CK's public `caffe time` data (GoogLeNet held out).

For each device, fits three profiles on the same rows (AlexNet, SqueezeNet 1.0/1.1; forward,
median over 3 repetitions, batch 2..16): cnnstat's model (the convolution form chosen by
cross-validation over the three training nets), the same with the single convolution form it
had before (``fixed conv``: no Winograd-shape term, no selection) and Lu et al.'s plain linear
form (conv a·n·k·m·groups·batch + b, fc a·in·out·rows + b; every other kind and the per-layer
overhead the same in all). Then prints, per batch, GoogLeNet's measured forward total
(CK's median `time_fw_ms`) against the predictions, and the median per-layer error over the
layers taking ≥ 1 % of the measured time; then the cross-validation scores that chose the
convolution form (GoogLeNet plays no part in them).

    python benchmarks/bench_time_ck.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.timing.fit import build_profile, ck_runs, run_quality  # noqa: E402
from analyzer.timing.profile import CONV_FORM, KIND_FORMS, PAPER_FORMS  # noqa: E402

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
        fixed_forms = {**KIND_FORMS, "Convolution": CONV_FORM}
        models = {"ours": build_profile(runs, [HOLDOUT], {"name": name}, KIND_FORMS),
                  "fixed": build_profile(runs, [HOLDOUT], {"name": name + "-fixed"},
                                         fixed_forms),
                  "paper": build_profile(runs, [HOLDOUT], {"name": name + "-paper"},
                                         PAPER_FORMS)}
        held = [r for r in runs if r.net == HOLDOUT]
        print(f"\n## {name} ({suffix}): GoogLeNet held out; fit on AlexNet + SqueezeNet 1.0/1.1, "
              f"overhead {models['ours']['per_layer_overhead_ms'] * 1000:.1f} µs/layer\n")
        print("| batch | measured ms | cnnstat ms | err | fixed conv ms | err | paper ms | err "
              "| layer median err cnnstat | fixed conv | paper |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        worst = dict.fromkeys(models, 0.0)
        for run in held:
            q = {k: run_quality(p, [run]) for k, p in models.items()}
            t = {k: v["totals"][0] for k, v in q.items()}
            lay = {k: v["per_layer_ge_1pct"]["median_rel_error"] for k, v in q.items()}
            for k in worst:
                worst[k] = max(worst[k], abs(t[k]["rel_error"]))
            cells = " | ".join(f"{t[k]['predicted_ms']:.3f} | {t[k]['rel_error']:+.1%}"
                               for k in models)
            print(f"| {run.batch} | {run.total_ms:.3f} | {cells} | "
                  + " | ".join(f"{lay[k]:.1%}" for k in models) + " |")
        hq = {k: run_quality(p, held)["per_layer_ge_1pct"] for k, p in models.items()}
        iq = {k: p["quality"]["in_sample_runs"]["per_layer_ge_1pct"] for k, p in models.items()}
        print("| all | | " + " | ".join(f"| max {worst[k]:.1%}" for k in models) + " | "
              + " | ".join(f"{hq[k]['median_rel_error']:.1%}" for k in models) + " |")
        print("\nin-sample (training nets) per-layer median error, layers ≥ 1 %: "
              + ", ".join(f"{k} {iq[k]['median_rel_error']:.1%}" for k in models)
              + f" ({iq['ours']['points']} layer·batch points); held out: "
              f"{hq['ours']['points']} points")
        conv = {k: p["kinds"]["Convolution"]["in_sample"]["median_rel_error"]
                for k, p in models.items()}
        print("conv in-sample median error: " + ", ".join(f"{k} {v:.1%}" for k, v in conv.items()))
        chosen = models["ours"]["kinds"]["Convolution"]
        print(f"conv form chosen: {chosen['formula']}")
        for form, err in chosen.get("selection", {}).get("cv_median_rel_error", {}).items():
            print(f"  leave-one-net-out CV median error {err:.1%}: {form}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
