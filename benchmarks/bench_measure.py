"""Predicted vs measured forward time of whole nets on this machine (onnxruntime, CPU).

Calibrates this machine first (``cnnstat calibrate``, into a temporary profile) unless
``--device`` names a profile, then runs ``cnnstat measure`` on the torchvision ONNX graphs
of ``../shared/corpus/onnx/`` and ``../shared/corpus/onnx_modern/`` and the Caffe nets
AlexNet, GoogLeNet, ResNet-50 and MobileNet v1 of ``../shared/corpus/caffe/`` (30 nets, none
of them used by the calibration), and prints one row per net: predicted ms,
measured ms, the error in %, the fastest run and the 1-minute load average before the
measurement (other processes on the machine inflate measured times; the fastest run shows
the machine undisturbed).

Every net is measured in ``--rounds`` passes over all the nets (default 3, one fresh
measuring session per net and pass): a net's measured time is its median pass, each pass the
median wall time of ``session.run`` over 2 s. The host of this project's VM has slow and fast
spells lasting minutes (the same net, measured 20 minutes apart, moved by 16 % in the median
over the 30 nets), so sessions run back to back would all fall in one spell.

    python benchmarks/bench_measure.py [--device mycpu.json] [--quick] [--threads N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzer.analysis import Options, analyze  # noqa: E402
from analyzer.commands.calibrate import main as calibrate  # noqa: E402
from analyzer.errors import CnnstatError  # noqa: E402
from analyzer.frontends.load import load_net  # noqa: E402
from analyzer.timing.measure import by_class, compare, to_json  # noqa: E402
from analyzer.timing.profile import load_profile  # noqa: E402

SHARED = REPO.parent / "shared" / "corpus"
CAFFE = ["bvlc_alexnet_deploy", "bvlc_googlenet_deploy", "resnet50_deploy",
         "mobilenet_v1_deploy"]


def nets() -> list[Path]:
    onnx = [p for d in ("onnx", "onnx_modern") for p in sorted((SHARED / d).glob("*.onnx"))]
    return onnx + [SHARED / "caffe" / f"{n}.prototxt" for n in CAFFE]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", help="a profile .json (default: calibrate now)")
    ap.add_argument("--quick", action="store_true", help="calibrate with --quick")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--keep", help="also copy the calibrated profile to this path")
    ap.add_argument("--only", nargs="*", help="only the nets whose file stem contains one of these")
    ap.add_argument("--sessions", type=int, default=1, help="measuring sessions per net and round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="passes over all nets; a net's figure is its median round")
    ap.add_argument("--json", help="also write the comparisons (one per net) to this JSON file")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        device = args.device
        if device is None:
            device = str(Path(tmp) / "bench-cpu.json")
            t0 = time.perf_counter()
            argv = ["-o", device, "--threads", str(args.threads)]
            calibrate(argv + (["--quick"] if args.quick else []))
            print(f"calibration took {time.perf_counter() - t0:.0f} s")
            if args.keep:
                shutil.copy(device, args.keep)
        paths = [p for p in nets() if not args.only or any(o in p.stem for o in args.only)]
        failed: list[str] = [p.stem for p in paths if not p.exists()]
        reports = {}
        for path in paths:
            if not path.exists():
                print(f"{path.name:<28} absent")
                continue
            batch = 1 if path.suffix == ".onnx" else None  # ONNX batch is symbolic; 1 as listed
            try:
                reports[path] = analyze(load_net(str(path), batch=batch), Options(batch=batch))
            except (CnnstatError, KeyError, ValueError) as e:  # a net cnnstat cannot read yet
                print(f"{path.stem:<28} failed: {e}")
                failed.append(path.stem)
        # every net is measured once per round, the rounds one after the other: a net's
        # sessions are minutes apart, so one slow spell of the host does not decide its figure
        measured: dict[Path, list] = {path: [] for path in reports}
        for k in range(args.rounds):
            for path, report in reports.items():
                try:
                    c = compare(report, device, args.threads or None, args.repeats,
                                sessions=args.sessions)
                except CnnstatError as e:
                    print(f"{path.stem:<28} failed: {e}")
                    continue
                measured[path].append(c)
                print(f"round {k + 1}/{args.rounds} {path.stem:<28} {c.measured_ms:>10.2f} ms",
                      file=sys.stderr, flush=True)
        rows, kept = [], []  # the median round of each net; (path, all its rounds)
        print(f"{'net':<28} {'predicted ms':>13} {'measured ms':>12} {'error %':>8} "
              f"{'fastest ms':>11} {'load':>5} {'probe×':>7} {'set aside':>9}  rounds ms")
        for path, cs in measured.items():
            if not cs:
                failed.append(path.stem)
                continue
            c = sorted(cs, key=lambda x: x.measured_ms)[len(cs) // 2]  # the median round
            rows.append(c)
            kept.append((path, cs))
            print(f"{path.stem:<28} {c.predicted_ms:>13.2f} {c.measured_ms:>12.2f} "
                  f"{c.error_pct:>+8.1f} {min(x.measured_min_ms for x in cs):>11.2f} "
                  f"{c.load_average:>5.1f} "
                  f"{c.probe_ms / c.probe_reference_ms if c.probe_reference_ms else 0:>7.2f} "
                  f"{sum(x.sessions_set_aside for x in cs):>9}"
                  f"{'' if c.state_matched else ' state!'}  "
                  + " ".join(f"{x.measured_ms:.2f}" for x in cs))
        if args.json:
            Path(args.json).write_text(json.dumps(
                [{"file": path.name, **json.loads(to_json(c)),
                  "rounds_ms": [x.measured_ms for x in cs]}
                 for c, (path, cs) in zip(rows, kept)]))
        if rows:
            errs = sorted(abs(c.error_pct) for c in rows)
            within = sum(e <= 15 for e in errs)
            sums: dict[str, list[float]] = {}
            for c in rows:
                for x in by_class(c):
                    acc = sums.setdefault(x.timed_as, [0.0, 0.0])
                    acc[0] += x.predicted_ms
                    acc[1] += x.measured_ms
            print(f"\n{'profile entry, over all nets':<58} {'predicted ms':>13} "
                  f"{'measured ms':>12} {'error %':>8}")
            for k, (pr, me) in sorted(sums.items(), key=lambda kv: -kv[1][1]):
                err = f"{100 * (pr - me) / me:+8.1f}" if me else ""
                print(f"{k:<58} {pr:>13.2f} {me:>12.2f} {err:>8}")
            print(f"\n{within}/{len(rows) + len(failed)} nets within ±15 %; median |error| "
                  f"{statistics.median(errs):.1f} %, worst {errs[-1]:.1f} %"
                  + (f"; not measured: {', '.join(failed)}" if failed else ""))
            # the truth's own spread: how far a net's rounds fall from its median round
            moved = sorted(max(abs(x.measured_ms / c.measured_ms - 1.0) for x in cs) * 100
                           for c, (_, cs) in zip(rows, kept) if len(cs) > 1)
            if moved:
                print(f"the machine itself: {sum(m > 15 for m in moved)}/{len(moved)} nets had "
                      f"a round more than 15 % from their median round (median of the "
                      f"largest gaps {statistics.median(moved):.1f} %)")
            state = load_profile(device).data.get("probe", {})
            if "pass_spread_median" in state:
                print(f"the calibration: a point's two passes differed by "
                      f"{state['pass_spread_median'] * 100:.1f} % (median), "
                      f"{state['pass_spread_p90'] * 100:.1f} % (90th percentile)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
