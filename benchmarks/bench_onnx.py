"""cnnstat's ONNX analysis against onnx-tool's model profiler, on the torchvision corpus.

For each graph in ``../shared/corpus/onnx`` a copy with random weights stored inline is
written to a temporary folder, so both tools read the same complete file. Printed per model:
median wall time in-process (after imports; cnnstat: ``read_onnx`` + ``analyze``; onnx-tool:
``Model`` + ``graph_reorder_nodes`` + ``shape_infer`` + ``profile``, the steps of its
``model_profile`` without printing) and as a whole process (``python -m analyzer FILE
--format json`` vs ``python -m onnx_tool -i FILE -d input:f32:1x3x224x224``, output to
/dev/null), the ratios, and both tools' MACs as a cross-check.

onnx-tool is not a cnnstat dependency: ``pip install onnx-tool`` to run this.

    python benchmarks/bench_onnx.py [--repeat 11] [--proc-repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "onnx"
sys.path.insert(0, str(REPO))

from analyzer.analysis import Options, analyze  # noqa: E402
from analyzer.onnx_reader import read_onnx  # noqa: E402

SHAPE = (1, 3, 224, 224)


def inline_copy(src: Path, dst: Path, rng: np.random.Generator) -> int:
    """Write ``src`` with random float32 weights inline; returns the file size in bytes."""
    m = onnx.load(str(src), load_external_data=False)
    for i, t in enumerate(m.graph.initializer):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
        if np.issubdtype(dtype, np.floating):
            arr = rng.random(tuple(t.dims), dtype=np.float32).astype(dtype)
        else:
            arr = np.ones(tuple(t.dims), dtype=dtype)
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))
    onnx.save(m, str(dst))
    return dst.stat().st_size


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def cnnstat_inproc(path: Path) -> int:
    return analyze(read_onnx(str(path), batch=1), Options(batch=1)).totals.macs


def cnnstat_split(path: Path, repeat: int) -> tuple[float, float]:
    """Median seconds of the two halves: reading into the IR, and the analysis."""
    read, passes = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        net = read_onnx(str(path), batch=1)
        t1 = time.perf_counter()
        analyze(net, Options(batch=1))
        read.append(t1 - t0)
        passes.append(time.perf_counter() - t1)
    return statistics.median(read), statistics.median(passes)


def onnx_tool_inproc(path: Path) -> int:
    import onnx_tool

    model = onnx_tool.Model(str(path), {"verbose": False})
    g = model.graph
    g.graph_reorder_nodes()
    g.shape_infer({"input": np.zeros(SHAPE, np.float32)})
    g.profile()
    return int(g.macs[0])


def process_time(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       cwd=REPO)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=11, help="in-process runs per model")
    ap.add_argument("--proc-repeat", type=int, default=7, help="process runs per model")
    args = ap.parse_args()
    try:
        import onnx_tool  # noqa: F401
    except ImportError:
        sys.exit("onnx-tool is not installed: pip install onnx-tool")
    files = sorted(CORPUS.glob("*.onnx"))
    if not files:
        sys.exit(f"no ONNX graphs in {CORPUS}")
    rng = np.random.default_rng(0)
    shape = "x".join(map(str, SHAPE))
    print("| model | file MB | cnnstat ms (read + analyze) | onnx-tool ms | in-process × "
          "| cnnstat proc s | onnx-tool proc s | process × | cnnstat GMACs | onnx-tool GMACs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for src in files:
            path = Path(tmp) / src.name
            size = inline_copy(src, path, rng)
            cnnstat_inproc(path)  # warm caches: both tools then read a file in page cache
            ours, our_macs = median_time(lambda p=path: cnnstat_inproc(p), args.repeat)
            theirs, their_macs = median_time(lambda p=path: onnx_tool_inproc(p), args.repeat)
            read, passes = cnnstat_split(path, args.repeat)
            our_proc = process_time([sys.executable, "-m", "analyzer", str(path), "--batch",
                                     "1", "--format", "json"], args.proc_repeat)
            their_proc = process_time([sys.executable, "-m", "onnx_tool", "-i", str(path),
                                       "-d", f"input:f32:{shape}"], args.proc_repeat)
            print(f"| {src.stem} | {size / 1e6:.1f} | {ours * 1e3:.1f} ({read * 1e3:.1f} + "
                  f"{passes * 1e3:.1f}) | {theirs * 1e3:.1f} "
                  f"| {theirs / ours:.1f} | {our_proc:.2f} | {their_proc:.2f} "
                  f"| {their_proc / our_proc:.1f} | {our_macs / 1e9:.3f} "
                  f"| {their_macs / 1e9:.3f} |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
