"""Predicted vs measured runtime memory of whole nets on this machine (onnxruntime, CPU).

The truth is what onnxruntime adds to a fresh process's resident set to create a session from
the model file (random weights) and run it once (:mod:`analyzer.timing.runtime_memory`),
at batch 1 and 8, for the torchvision graphs of ``../shared/corpus/onnx/`` and
``onnx_modern/`` and the Caffe AlexNet, GoogLeNet, ResNet-50 and MobileNet v1. The
prediction comes from a memory fit on calibration probe nets only:

- ``--device P``: P's ``runtime_memory`` fit (and its fusions);
- ``--device P --refit``: measure the probe nets now (P's fusions) and fit them;
- neither: ``cnnstat calibrate`` (``--quick``: its quick grid) into a temporary profile.

``--record FILE`` writes the probe points and every net's features and readings as JSON
(what ``tests/test_runtime_memory.py`` refits from). ``--repeats N`` measures each net N times
and keeps the median (the resident set of the same session varies by a few % from process to
process).

    python benchmarks/bench_runtime_memory.py [--device P [--refit]] [--repeats 3] [--record F]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzer.analysis import Options, analyze  # noqa: E402
from analyzer.frontends.load import load_net  # noqa: E402
from analyzer.timing import runtime_memory as rm  # noqa: E402
from analyzer.timing.measure import prepare  # noqa: E402

SHARED = REPO.parent / "shared" / "corpus"
CAFFE = ["bvlc_alexnet_deploy", "bvlc_googlenet_deploy", "resnet50_deploy",
         "mobilenet_v1_deploy"]
MIB = 2**20


def nets() -> list[Path]:
    onnx = [p for d in ("onnx", "onnx_modern") for p in sorted((SHARED / d).glob("*.onnx"))]
    return onnx + [SHARED / "caffe" / f"{n}.prototxt" for n in CAFFE]


def _profile(args: argparse.Namespace, tmp: str) -> dict[str, Any]:
    if args.device is None:
        from analyzer.commands.calibrate import main as calibrate

        path = str(Path(tmp) / "bench-cpu.json")
        t0 = time.perf_counter()
        calibrate(["-o", path, "--quick"] if args.quick else ["-o", path])
        print(f"calibration took {time.perf_counter() - t0:.0f} s")
    else:
        path = args.device
    from analyzer.timing.profile import load_profile

    data = dict(load_profile(path).data)
    if args.refit or "runtime_memory" not in data:
        t0 = time.perf_counter()
        data["runtime_memory"] = rm.calibrate(data.get("fusions", ()), args.threads,
                                              args.quick)
        print(f"memory probes took {time.perf_counter() - t0:.0f} s")
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", help="a profile .json (default: calibrate --quick now)")
    ap.add_argument("--refit", action="store_true", help="measure the memory probes again")
    ap.add_argument("--quick", action="store_true",
                    help="as calibrate --quick: 2 runs per probe instead of 3")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per net and batch (median)")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--record", help="write probe points and net readings to this JSON file")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return 0
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        profile = _profile(args, tmp)
        section = profile["runtime_memory"]
        rule, fusions = rm.rule_of(section), profile.get("fusions", ())
        q = section["quality"]
        print(f"memory fit: {len(section['points'])} probe runs; in sample median "
              f"{q['in_sample']['median_rel_error'] * 100:.1f} %, worst "
              f"{q['in_sample']['max_rel_error'] * 100:.1f} %")
        print(f"{'net':<24} {'batch':>5} {'predicted MiB':>14} {'measured MiB':>13} "
              f"{'error %':>8} {'spread %':>9}")
        for path in nets():
            if not path.exists():
                print(f"{path.stem:<24} absent")
                continue
            for batch in batches:
                try:
                    report = analyze(load_net(str(path), batch=batch), Options(batch=batch))
                except Exception as e:  # a graph cnnstat cannot analyse yet: say so, go on
                    print(f"{path.stem:<24} {batch:>5} not analysed: {e}")
                    continue
                f = rm.features(report, rule, fusions)
                predicted = rm.evaluate(section["coef"], f.as_dict())
                with tempfile.TemporaryDirectory() as work:
                    prep = prepare(report, work)
                    runs = [rm.measure_isolated(prep.path, prep.shapes, threads=args.threads)
                            for _ in range(max(args.repeats, 1))]
                measured = statistics.median(r.runtime_bytes for r in runs)
                spread = (max(r.runtime_bytes for r in runs) - min(r.runtime_bytes for r in runs)
                          ) / measured * 100
                err = (predicted - measured) / measured * 100
                rows.append({"net": path.stem, "batch": batch, "features": f.as_dict(),
                             "measured_bytes": int(measured),
                             "readings": [r.__dict__ for r in runs]})
                print(f"{path.stem:<24} {batch:>5} {predicted / MIB:>14.1f} "
                      f"{measured / MIB:>13.1f} {err:>+8.1f} {spread:>9.1f}", flush=True)
    if rows:
        errs = sorted(abs(rm.evaluate(section["coef"], r["features"]) - r["measured_bytes"])
                      / r["measured_bytes"] * 100 for r in rows)
        within = sum(e <= 20 for e in errs)
        print(f"\n{within}/{len(errs)} within ±20 %; median |error| {errs[len(errs) // 2]:.1f} %, "
              f"worst {errs[-1]:.1f} %")
    if args.record:
        import onnxruntime

        from analyzer.timing.calibrate import hardware

        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
        Path(args.record).write_text(json.dumps({
            "what": "runtime memory of onnxruntime (resident growth to create a session from "
                    "a file and run it once): calibration probe points and the shared nets, "
                    "recorded by benchmarks/bench_runtime_memory.py",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
            "hardware": hardware(), "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "fusions": [list(x) for x in fusions],
            "runtime_memory": section, "nets": rows}, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
