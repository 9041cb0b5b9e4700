"""Speed of the Caffe path: how long cnnstat takes on every corpus prototxt.

For each net in ``../shared/corpus/caffe`` (and two generated ones) this prints the median
wall time, in milliseconds, of

- **in-process**: load + analyze (``analyzer.commands.options.analyze_path``), the
  interpreter and the imports already warm;
- **python -m**: a whole ``python -m analyzer FILE --format json`` process, output to
  /dev/null — what a user waits for;
- **cnnstat**: the same through the installed console script, when one is on PATH.

The generated nets are 500 Convolution+ReLU pairs (1,001 layers, the target is "well
under a second" as a whole process) and, with ``--huge``, 40,000 pairs (80,001 layers,
10 MB of prototxt). The floor of every process is the interpreter's own start-up, shown
as ``python -c pass`` and ``import analyzer.commands.cli``.

Run from the repository root: ``python benchmarks/bench_caffe.py [--reps 5] [--huge]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzer.commands.cli import build_parser  # noqa: E402
from analyzer.commands.options import analyze_path  # noqa: E402
from analyzer.errors import CnnstatError  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "caffe"

# Nets whose data layers or Python layers leave shapes to run time: the shapes to give.
EXTRA_ARGS = {
    "bvlc_alexnet_train_val": ["--input-shape", "data=256,3,227,227"],
    "lenet_train_test_v1": ["--input-shape", "data=100,1,28,28"],
    "mnist_siamese_train_test": ["--input-shape", "pair_data=64,2,28,28"],
    "nin_imagenet_train_val_v1": ["--input-shape", "data=1,3,224,224"],
    "segnet_inference": ["--input-shape", "data=1,3,360,480", "--input-shape",
                         "label=1,1,360,480"],
    "faster_rcnn_vgg16_voc_test": ["--input-shape", "rois=300,5"],
    "faster_rcnn_vgg_cnn_m_1024_voc_train": [
        "--phase", "train", *[a for s in (
            "data=1,3,600,1000", "im_info=1,3", "gt_boxes=1,5", "rpn_labels=1,1,324,61",
            "rpn_bbox_targets=1,36,36,61", "rpn_bbox_inside_weights=1,36,36,61",
            "rpn_bbox_outside_weights=1,36,36,61", "rpn_rois=2000,5", "rois=128,5",
            "labels=128", "bbox_targets=128,84", "bbox_inside_weights=128,84",
            "bbox_outside_weights=128,84") for a in ("--input-shape", s)]],
}


def conv_relu_net(pairs: int) -> str:
    """A prototxt of ``pairs`` 3×3 Convolution + in-place ReLU pairs on a 1×64×56×56 input,
    written the way Caffe's own files are (one field per line)."""
    parts = [f'name: "conv_relu_{pairs}"',
             'layer {\n  name: "data"\n  type: "Input"\n  top: "data"\n'
             "  input_param { shape { dim: 1 dim: 64 dim: 56 dim: 56 } }\n}"]
    prev = "data"
    for i in range(1, pairs + 1):
        parts.append(f'layer {{\n  name: "conv{i}"\n  type: "Convolution"\n  bottom: "{prev}"\n'
                     f'  top: "conv{i}"\n  convolution_param {{\n    num_output: 64\n'
                     "    kernel_size: 3\n    pad: 1\n  }\n}")
        parts.append(f'layer {{\n  name: "relu{i}"\n  type: "ReLU"\n  bottom: "conv{i}"\n'
                     f'  top: "conv{i}"\n}}')
        prev = f"conv{i}"
    return "\n".join(parts) + "\n"


def median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# Processes compile to a bytecode cache outside the checkout, as an installed package would
# have (this machine sets PYTHONDONTWRITEBYTECODE, which would make every run recompile).
PYCACHE = tempfile.mkdtemp(prefix="cnnstat-bench-pyc-")


def run_process(cmd: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": PYCACHE}
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd=REPO, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.decode().strip()}")


def bench_net(path: Path, extra: list[str], reps: int, script: str | None) -> dict[str, object]:
    args = build_parser().parse_args([str(path), *extra])
    report = analyze_path(str(path), args)  # warm-up, and the layer count
    row: dict[str, object] = {"net": path.stem, "layers": len(report.layers),
                              "KiB": path.stat().st_size / 1024}
    row["in-process"] = median_ms(lambda: analyze_path(str(path), args), reps)
    cli = [str(path), "--format", "json", *extra]
    row["python -m"] = median_ms(lambda: run_process([sys.executable, "-m", "analyzer", *cli]),
                                 reps)
    if script:
        row["cnnstat"] = median_ms(lambda: run_process([script, *cli]), reps)
    return row


def print_table(rows: list[dict[str, object]], script: str | None) -> None:
    cols = ["net", "layers", "KiB", "in-process", "python -m"] + (["cnnstat"] if script else [])
    head = [f"{'net':<40}", f"{'layers':>7}", f"{'KiB':>8}", f"{'in-process ms':>14}",
            f"{'python -m ms':>13}"] + ([f"{'cnnstat ms':>11}"] if script else [])
    print(" ".join(head))
    widths = [40, 7, 8, 14, 13, 11]
    for r in rows:
        cells = []
        for c, w in zip(cols, widths):
            v = r.get(c, "")
            if isinstance(v, float):
                cells.append(f"{v:>{w}.1f}")
            else:
                cells.append(f"{v!s:<{w}}" if c == "net" else f"{v!s:>{w}}")
        print(" ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5, help="runs per measurement (median)")
    ap.add_argument("--huge", action="store_true", help="also the 80,001-layer, 10 MB net")
    ap.add_argument("--only", help="only corpus nets whose name contains this")
    a = ap.parse_args()
    script = shutil.which("cnnstat")
    run_process([sys.executable, "-c", "import analyzer.commands.cli"])  # fill the bytecode cache
    floor = {
        "python -c pass": median_ms(lambda: run_process([sys.executable, "-c", "pass"]),
                                    a.reps),
        "import analyzer.commands.cli": median_ms(
            lambda: run_process([sys.executable, "-c", "import analyzer.commands.cli"]), a.reps),
    }
    print(f"python {sys.version.split()[0]}; median of {a.reps} runs; cnnstat script: "
          f"{script or 'not installed'}")
    print("start-up floor: " + ", ".join(f"{k} {v:.1f} ms" for k, v in floor.items()))
    print()
    rows = []
    nets = sorted(CORPUS.glob("*.prototxt")) if CORPUS.is_dir() else []
    if not nets:
        print(f"{CORPUS} is absent: only the generated nets are timed")
    for path in nets:
        if a.only and a.only not in path.stem:
            continue
        try:
            rows.append(bench_net(path, EXTRA_ARGS.get(path.stem, []), a.reps, script))
        except (CnnstatError, RuntimeError) as e:
            rows.append({"net": path.stem, "layers": f"error: {e}"})
    with tempfile.TemporaryDirectory(prefix="cnnstat-bench-") as tmp:
        sizes = [500] + ([40_000] if a.huge else [])
        for pairs in sizes:
            path = Path(tmp) / f"generated_{2 * pairs + 1}_layers.prototxt"
            path.write_text(conv_relu_net(pairs))
            rows.append(bench_net(path, [], a.reps if pairs <= 500 else 1, script))
            if pairs == 500:
                by_format = {fmt: median_ms(lambda cmd=[sys.executable, "-m", "analyzer", str(
                    path), "--format", fmt]: run_process(cmd), a.reps)
                    for fmt in ("json", "csv", "markdown", "table")}
    print_table(rows, script)
    print()
    print("generated_1001_layers, whole process by --format (ms): "
          + ", ".join(f"{k} {v:.1f}" for k, v in by_format.items()))
    shutil.rmtree(PYCACHE, ignore_errors=True)


if __name__ == "__main__":
    main()
