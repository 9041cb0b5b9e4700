"""cnnstat's ONNX analysis against onnx-tool's model profiler, on the torchvision corpus.

For each graph in ``../shared/corpus/onnx`` a copy with random weights stored inline is
written to a temporary folder, so both tools read the same complete file. Printed per model:
median wall time in-process (after imports; cnnstat: ``read_onnx`` + ``analyze``; onnx-tool:
``Model`` + ``graph_reorder_nodes`` + ``shape_infer`` + ``profile``, the steps of its
``model_profile`` without printing) and as a whole process (``python -m analyzer FILE
--format json`` vs ``python -m onnx_tool -i FILE -d input:f32:1x3x224x224``, output to
/dev/null), the ratios, and both tools' MACs as a cross-check.

"floor" is the part of cnnstat's read that protobuf field access sets (loading the
weightless model with onnx's loader and reading each node's fields once): what would remain
if every cnnstat pass took no time.

Every timing is a median of warm runs (one untimed run first). Processes run with Python's
bytecode cache on (in a temporary ``PYTHONPYCACHEPREFIX``), as for any installed package,
even where the environment sets ``PYTHONDONTWRITEBYTECODE``: otherwise cnnstat's own
modules would be compiled from source in every process while onnx-tool's come precompiled.

A second table gives cnnstat's peak resident memory (VmHWM of a child process) for a
synthetic model with ``--rss-mb`` MB of inline weights, next to the file size and to the
same process reading nothing (interpreter + imports): reading must not cost the weights.

A first table times cnnstat alone on two modern graphs, as shipped (graph only, weights never
read): ConvNeXt-Small (``../shared/corpus/onnx_modern``) and ViT-B/16 (the TorchScript export in
``tests/data/torchvision``, or ``--vit PATH``); a graph that is absent is skipped, saying so.

onnx-tool is not a cnnstat dependency: ``pip install onnx-tool`` for the comparison tables.

    python benchmarks/bench_onnx.py [--repeat 11] [--proc-repeat 7] [--rss-mb 500] [--vit PATH]
"""

from __future__ import annotations

import argparse
import os
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
CONVNEXT = REPO.parent / "shared" / "corpus" / "onnx_modern" / "convnext_small.onnx"
VIT = REPO / "tests" / "data" / "torchvision" / "vit_b_16.onnx"
sys.path.insert(0, str(REPO))

from analyzer.analysis import Options, analyze  # noqa: E402
from analyzer.frontends.onnx import read_onnx  # noqa: E402

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


def protobuf_floor(path: Path, repeat: int) -> float:
    """Median seconds of the part no cnnstat pass can avoid while it keeps onnx's loader:
    load the weightless model and read every node's and initializer's fields once."""
    from analyzer.frontends.onnx import _load
    from analyzer.frontends.onnx_ops import Node

    def read_fields() -> None:
        graph = _load(str(path)).graph
        [Node(n) for n in graph.node]
        [(t.name, t.data_type, tuple(t.dims)) for t in graph.initializer]

    return median_time(read_fields, repeat)[0]


def onnx_tool_inproc(path: Path) -> int:
    import onnx_tool

    model = onnx_tool.Model(str(path), {"verbose": False})
    g = model.graph
    g.graph_reorder_nodes()
    g.shape_infer({"input": np.zeros(SHAPE, np.float32)})
    g.profile()
    return int(g.macs[0])


def process_time(cmd: list[str], repeat: int, env: dict[str, str]) -> float:
    """Median seconds of a whole process, after one untimed run (page and bytecode caches)."""
    times = []
    for i in range(repeat + 1):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       cwd=REPO, env=env)
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def bytecode_env(cache_dir: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPYCACHEPREFIX=cache_dir)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# ---------------------------------------------------------------- peak memory (RSS)

# Peak RSS of the child itself. Linux's ru_maxrss survives exec, so a child forked from this
# (large) benchmark process would report the parent's size; VmHWM belongs to the new image.
RSS_CHILD = """
import resource, sys
sys.path.insert(0, {repo!r})
from analyzer.analysis import Options, analyze
from analyzer.frontends.onnx import read_onnx
if sys.argv[1] != "-":
    analyze(read_onnx(sys.argv[1], batch=1), Options(batch=1))
try:
    with open("/proc/self/status") as fh:
        print(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))  # KiB
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
"""


def big_model(path: Path, megabytes: int) -> int:
    """A chain of MatMuls on a [1, 4096] input whose float32 weights total ``megabytes`` MB
    (in 67 MB steps), stored inline; returns the file size."""
    from onnx import helper

    width = 4096
    per = width * width * 4
    count = max(1, round(megabytes * 1e6 / per))
    nodes, inits, x = [], [], "input"
    for i in range(count):
        w = helper.make_tensor(f"w{i}", TensorProto.FLOAT, (width, width), bytes(per), raw=True)
        inits.append(w)
        nodes.append(helper.make_node("MatMul", [x, w.name], [f"y{i}"], name=f"matmul{i}"))
        x = f"y{i}"
    graph = helper.make_graph(
        nodes, "big", [helper.make_tensor_value_info("input", TensorProto.FLOAT, (1, width))],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, (1, width))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())
    return path.stat().st_size


def peak_rss_kib(model: str, env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD.format(repo=str(REPO)), model],
                         capture_output=True, text=True, check=True, cwd=REPO, env=env)
    return int(out.stdout.split()[-1])


def rss_table(tmp: str, megabytes: int, env: dict[str, str]) -> None:
    path = Path(tmp) / "big.onnx"
    size = big_model(path, megabytes)
    peak_rss_kib(str(path), env)  # warm: the file is in the page cache for the timed reads
    base = min(peak_rss_kib("-", env) for _ in range(3))
    peak = min(peak_rss_kib(str(path), env) for _ in range(3))
    print()
    print("| model | file MB | peak RSS, imports only MB | peak RSS, read + analyze MB "
          "| added by reading MB | added / file |")
    print("|---|---:|---:|---:|---:|---:|")
    added = (peak - base) * 1024
    print(f"| {megabytes} MB synthetic MatMul chain | {size / 1e6:.0f} | {base / 1024:.0f} "
          f"| {peak / 1024:.0f} | {added / 1e6:.1f} | {added / size:.3f} |", flush=True)
    path.unlink()


def modern_table(vit: Path, repeat: int, proc_repeat: int, env: dict[str, str]) -> None:
    """cnnstat alone on ConvNeXt-Small and ViT-B/16: in-process and whole-process time."""
    print("| model | nodes | cnnstat ms (read + analyze) | cnnstat proc s | GMACs | params |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, path in (("ConvNeXt-Small", CONVNEXT), ("ViT-B/16", vit)):
        if not path.exists():
            print(f"| {name} | {path} is absent: skipped | | | | |", flush=True)
            continue
        nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
        cnnstat_inproc(path)
        ours, _ = median_time(lambda p=path: cnnstat_inproc(p), repeat)
        read, passes = cnnstat_split(path, repeat)
        report = analyze(read_onnx(str(path), batch=1), Options(batch=1))
        proc = process_time([sys.executable, "-m", "analyzer", str(path), "--batch", "1",
                             "--format", "json"], proc_repeat, env)
        print(f"| {name} | {nodes} | {ours * 1e3:.1f} ({read * 1e3:.1f} + {passes * 1e3:.1f}) "
              f"| {proc:.2f} | {report.totals.macs / 1e9:.3f} | {report.totals.params:,} |",
              flush=True)
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=11, help="in-process runs per model")
    ap.add_argument("--proc-repeat", type=int, default=7, help="process runs per model")
    ap.add_argument("--rss-mb", type=int, default=500,
                    help="MB of weights in the peak-memory model (0: skip that table)")
    ap.add_argument("--vit", type=Path, default=VIT, help="the ViT-B/16 graph to time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        modern_table(args.vit, args.repeat, args.proc_repeat,
                     bytecode_env(str(Path(tmp) / "pycache")))
    try:
        import onnx_tool  # noqa: F401
    except ImportError:
        sys.exit("onnx-tool is not installed (pip install onnx-tool): comparison skipped")
    files = sorted(CORPUS.glob("*.onnx"))
    if not files:
        sys.exit(f"no ONNX graphs in {CORPUS}")
    rng = np.random.default_rng(0)
    shape = "x".join(map(str, SHAPE))
    print("| model | file MB | cnnstat ms (read + analyze) | of which floor ms | onnx-tool ms "
          "| in-process × | cnnstat proc s | onnx-tool proc s | process × | cnnstat GMACs "
          "| onnx-tool GMACs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        env = bytecode_env(str(Path(tmp) / "pycache"))
        for src in files:
            path = Path(tmp) / src.name
            size = inline_copy(src, path, rng)
            cnnstat_inproc(path)  # warm caches: both tools then read a file in page cache
            ours, our_macs = median_time(lambda p=path: cnnstat_inproc(p), args.repeat)
            theirs, their_macs = median_time(lambda p=path: onnx_tool_inproc(p), args.repeat)
            read, passes = cnnstat_split(path, args.repeat)
            floor = protobuf_floor(path, args.repeat)
            our_proc = process_time([sys.executable, "-m", "analyzer", str(path), "--batch",
                                     "1", "--format", "json"], args.proc_repeat, env)
            their_proc = process_time([sys.executable, "-m", "onnx_tool", "-i", str(path),
                                       "-d", f"input:f32:{shape}"], args.proc_repeat, env)
            print(f"| {src.stem} | {size / 1e6:.1f} | {ours * 1e3:.1f} ({read * 1e3:.1f} + "
                  f"{passes * 1e3:.1f}) | {floor * 1e3:.2f} | {theirs * 1e3:.1f} "
                  f"| {theirs / ours:.1f} | {our_proc:.2f} | {their_proc:.2f} "
                  f"| {their_proc / our_proc:.1f} | {our_macs / 1e9:.3f} "
                  f"| {their_macs / 1e9:.3f} |", flush=True)
            path.unlink()
        if args.rss_mb:
            rss_table(tmp, args.rss_mb, env)


if __name__ == "__main__":
    main()
