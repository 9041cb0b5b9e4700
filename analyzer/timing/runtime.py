"""Running a model in onnxruntime: sessions, random feeds, timed runs, per-node profiles, peak RSS.

Used by calibration (:mod:`analyzer.timing.calibrate`), the machine-state probe
(:mod:`analyzer.timing.probe`) and ``measure`` (:mod:`analyzer.timing.measure`).
onnxruntime is an optional dependency (``pip install 'cnnstat[measure]'``), imported only
through :func:`require_ort`.

Times are milliseconds, memory bytes.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.errors import CnnstatError

MISSING_ORT = ("onnxruntime is not installed; measuring needs it: "
               "pip install 'cnnstat[measure]'")


def require_ort() -> Any:
    """The onnxruntime module, or a one-line CnnstatError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise CnnstatError(MISSING_ORT) from None
    return onnxruntime


@dataclass(frozen=True)
class NodeTime:
    """One executed onnxruntime node: its name, operator and median kernel time (ms)."""

    name: str
    op: str
    ms: float


@dataclass(frozen=True)
class Run:
    """What one timing measurement gave (ms)."""

    wall_ms: float  # median wall time of session.run, no profiling
    wall_all_ms: tuple[float, ...]
    nodes: tuple[NodeTime, ...]  # executed nodes in order, median kernel times
    threads: int  # intra-op threads asked for (0: onnxruntime's default)


def session_options(ort: Any, threads: int = 0, profile_prefix: str | None = None) -> Any:
    """onnxruntime's default SessionOptions; ``threads`` > 0 pins the intra-op count."""
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    so.log_severity_level = 3
    return so


def feeds(session: Any, shapes: Mapping[str, Sequence[int]], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = shapes.get(inp.name)
        if shape is None:
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        if "float" in inp.type:
            dtype = np.float16 if "float16" in inp.type else np.float32
            feeds[inp.name] = rng.standard_normal(tuple(shape)).astype(dtype)
        else:
            feeds[inp.name] = np.zeros(tuple(shape), np.int64)
    return feeds


def rss(field_name: str) -> int:
    """VmRSS or VmHWM of this process in bytes (0 where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def profile_nodes(events: list[dict[str, Any]]) -> list[NodeTime]:
    """Median kernel time per node over every run in an onnxruntime profile (ms)."""
    times: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            times.setdefault(name, []).append(e["dur"] / 1000.0)
            ops[name] = e.get("args", {}).get("op_name", "")
    return [NodeTime(n, ops[n], statistics.median(t)) for n, t in times.items()]


def time_model(model: str | bytes, shapes: Mapping[str, Sequence[int]], threads: int = 0,
               repeats: int = 10, warmup: int = 2, profile_runs: int = 5,
               seed: int = 0, min_seconds: float = 0.0, wall: bool = True) -> Run:
    """Time ``model`` (a path or serialized bytes): wall time, then a profiled session
    (``wall=False``: the profiled session only; the run's wall times are then empty and
    ``wall_ms`` is 0).

    At least ``repeats`` timed runs, and more until ``min_seconds`` have passed (at most
    2000): spreading the runs over time keeps the median clear of a short burst of load
    from other processes. The profiled session runs ``profile_runs`` times, and more until
    half of ``min_seconds`` has passed (at most 100).
    """
    ort = require_ort()
    walls: list[float] = []
    inputs: dict[str, Any] | None = None
    if wall:
        plain = ort.InferenceSession(model, session_options(ort, threads),
                                     providers=["CPUExecutionProvider"])
        inputs = feeds(plain, shapes, seed)
        for _ in range(warmup):
            plain.run(None, inputs)
        start = time.perf_counter()
        while len(walls) < repeats or (time.perf_counter() - start < min_seconds
                                       and len(walls) < 2000):
            t0 = time.perf_counter()
            plain.run(None, inputs)
            walls.append((time.perf_counter() - t0) * 1000.0)
        del plain
    nodes: list[NodeTime] = []
    if profile_runs:
        with tempfile.TemporaryDirectory(prefix="cnnstat-prof-") as tmp:
            prof = ort.InferenceSession(
                model, session_options(ort, threads, os.path.join(tmp, "p")),
                providers=["CPUExecutionProvider"])
            if inputs is None:
                inputs = feeds(prof, shapes, seed)
            for _ in range(warmup):
                prof.run(None, inputs)
            runs, start = 0, time.perf_counter()
            while runs < profile_runs or (time.perf_counter() - start < min_seconds / 2
                                          and runs < 100):
                prof.run(None, inputs)  # the warm-up runs before are dropped by last_runs
                runs += 1
            path = prof.end_profiling()
            events = json.loads(Path(path).read_text())
        nodes = profile_nodes(last_runs(events, runs))
    return Run(statistics.median(walls) if walls else 0.0, tuple(walls), tuple(nodes), threads)


def last_runs(events: list[dict[str, Any]], runs: int) -> list[dict[str, Any]]:
    """The events of the last ``runs`` session runs (the warm-up runs come first)."""
    starts = [e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    if len(starts) < runs:
        return events
    first = sorted(starts)[-runs]
    return [e for e in events if e.get("ts", 0) >= first]


def child_main() -> None:
    """Entry point of the measuring process: a JSON request on stdin, a JSON Run on stdout."""
    import sys

    req = json.loads(sys.stdin.read())
    run = time_model(req["model"], req["shapes"], req["threads"], req["repeats"],
                     min_seconds=req["min_seconds"])
    sys.stdout.write(json.dumps(asdict(run)))


def run_isolated(entry: str, request: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Call ``entry`` (``module:function``, reading a JSON request on stdin and writing a JSON
    answer on stdout) in a fresh Python process of this checkout, so the session it makes
    shares nothing with this one (threads, heap, resident set). A failure is one line naming
    ``path``."""
    import subprocess
    import sys

    module, _, func = entry.partition(":")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, "-c", f"from {module} import {func}; {func}()"],
                          input=json.dumps(request), capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise CnnstatError(f"onnxruntime could not run the model: {why}", path)
    return json.loads(proc.stdout)


def time_model_isolated(path: str, shapes: Mapping[str, Sequence[int]], threads: int = 0,
                        repeats: int = 10, min_seconds: float = 0.0) -> Run:
    """:func:`time_model` in a fresh Python process: each measuring session starts afresh."""
    require_ort()
    data = run_isolated("analyzer.timing.runtime:child_main",
                        {"model": path, "shapes": {k: list(v) for k, v in shapes.items()},
                         "threads": threads, "repeats": repeats, "min_seconds": min_seconds},
                        path)
    data["nodes"] = tuple(NodeTime(**n) for n in data["nodes"])
    data["wall_all_ms"] = tuple(data["wall_all_ms"])
    return Run(**data)
