"""ONNX's own operator tests run through cnnstat, in-process, graded by output shape.

The onnx wheel carries the generators of its backend node tests
(``onnx.backend.test.case.node.collect_testcases``): about 1,900 single-operator models, each
with input and expected output tensors. :func:`generate` writes every case out as ONNX's
backend test data is laid out (``<case>/model.onnx``, ``<case>/test_data_set_0/input_<i>.pb``
and ``output_<i>.pb``); :func:`run_case` analyses a case's model with cnnstat, giving every
graph input the shape of its input tensor (``input_shapes``, as ``--input-shape`` does), and
grades it:

- **exact**: every graph output has a shape in the report and it equals the expected tensor's;
- **refused**: cnnstat raised its one-line user error (``CnnstatError``), exit status 2 in the CLI;
- **wrong**: some graph output's shape differs from the expected tensor's, or has no shape;
- **crash**: any other exception, or no answer within :data:`HANG_SECONDS`.

Beside it, :func:`onnx_infers` records whether ONNX's own shape inference
(``infer_shapes(..., data_prop=True)`` on the model with the same input shapes and the
declared output shapes removed) gives every graph output its expected shape.

The cases are generated into a temporary folder and never committed. As a script it prints
the four counts and each case that is not exact::

    python tests/onnx_node_suite.py [--all] [--keep DIR] [NAME_SUBSTRING ...]

:func:`shipped_results` grades the same way the models the wheel ships with their expected
outputs (``onnx/backend/test/data``: PyTorch-converted layers and small real CNNs).
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper, shape_inference

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.api import analyze_file  # noqa: E402
from analyzer.errors import CnnstatError  # noqa: E402

HANG_SECONDS = 10.0  # a case taking longer than this counts as a crash (a hang)
VERDICTS = ("exact", "refused", "wrong", "crash")


@dataclass(frozen=True)
class CaseResult:
    """One case's grade. ``detail``: the refusal line, the differing shapes or the exception."""

    name: str
    ops: str  # the op types of the case's graph, '+'-joined
    verdict: str
    detail: str
    onnx_right: bool  # ONNX shape inference gives every output its expected shape
    tensors_only: bool  # every graph input and output is a tensor (no sequence, optional, map)


def available() -> str | None:
    """None if the onnx wheel has the node-test generators, else why not."""
    try:
        from onnx.backend.test.case.node import collect_testcases  # noqa: F401
    except ImportError as e:
        return f"the installed onnx has no backend test generators ({e})"
    return None


def generate(dest: Path, only: Sequence[str] = ()) -> list[Path]:
    """Write every node test case (or those whose name holds one of ``only``) under ``dest``."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():  # the generators overflow casts on purpose
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    out = []
    for case in cases:
        if only and not any(s in case.name for s in only):
            continue
        folder = dest / case.name
        data = folder / "test_data_set_0"
        data.mkdir(parents=True, exist_ok=True)
        (folder / "model.onnx").write_bytes(case.model.SerializeToString())
        inputs, outputs = case.data_sets[0]
        for kind, infos, values in (("input", case.model.graph.input, inputs),
                                    ("output", case.model.graph.output, outputs)):
            for j, (info, value) in enumerate(zip(infos, values)):
                (data / f"{kind}_{j}.pb").write_bytes(_serialize(info, value))
        out.append(folder)
    return out


def _serialize(info: onnx.ValueInfoProto, value: object) -> bytes:
    which = info.type.WhichOneof("value")
    if which == "sequence_type":
        return numpy_helper.from_list(value, info.name).SerializeToString()
    if which == "optional_type":
        return numpy_helper.from_optional(value, info.name).SerializeToString()
    if which == "map_type":
        return numpy_helper.from_dict(value, info.name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(np.asarray(value), info.name).SerializeToString()


def _tensor_dims(info: onnx.ValueInfoProto, path: Path) -> tuple[int, ...] | None:
    """The dims of a tensor .pb file, or None when the value is not a tensor."""
    if info.type.WhichOneof("value") != "tensor_type":
        return None
    t = TensorProto()
    t.ParseFromString(path.read_bytes())
    return tuple(t.dims)


def case_shapes(folder: Path, model: onnx.ModelProto
                ) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...] | None]]:
    """(graph input name → dims, graph output name → expected dims or None for non-tensors)."""
    data = folder / "test_data_set_0"
    inits = {t.name for t in model.graph.initializer}  # IR < 4 lists them as inputs too
    ins = {}
    for j, info in enumerate(vi for vi in model.graph.input if vi.name not in inits):
        dims = _tensor_dims(info, data / f"input_{j}.pb")
        if dims is not None:
            ins[info.name] = dims
    outs = {info.name: _tensor_dims(info, data / f"output_{j}.pb")
            for j, info in enumerate(model.graph.output)}
    return ins, outs


class _Hang(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    """Raise _Hang in the main thread after ``seconds`` (no limit off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Hang(f"no answer within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_case(folder: Path) -> CaseResult:
    """Analyse one written case with cnnstat and grade it (see the module docstring)."""
    model = onnx.load(str(folder / "model.onnx"))
    ins, expected = case_shapes(folder, model)
    return grade(folder / "model.onnx", folder.name, model, ins, expected)


def grade(path: Path, case: str, model: onnx.ModelProto, ins: dict[str, tuple[int, ...]],
          expected: dict[str, tuple[int, ...] | None]) -> CaseResult:
    """Analyse ``path`` with the input shapes ``ins`` and grade it against ``expected``."""
    ops = "+".join(dict.fromkeys(n.op_type for n in model.graph.node))
    right = onnx_infers(model, ins, expected)
    tensors = all(vi.type.WhichOneof("value") == "tensor_type"
                  for vi in [*model.graph.input, *model.graph.output])
    try:
        with _time_limit(HANG_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = analyze_file(str(path), input_shapes=ins)
    except CnnstatError as e:
        return CaseResult(case, ops, "refused", str(e), right, tensors)
    except _Hang as e:
        return CaseResult(case, ops, "crash", str(e), right, tensors)
    except Exception as e:  # noqa: BLE001 - grading: anything else is a crash
        return CaseResult(case, ops, "crash", f"{type(e).__name__}: {e}", right, tensors)
    got = {t: s for r in report.layers for t, s in zip(r.layer.tops, r.out_shapes)}
    bad = []
    for name, want in expected.items():
        have = got.get(name)
        if have is None or want is None or tuple(have) != want:
            bad.append(f"'{name}': {list(have) if have is not None else 'no shape'} "
                       f"(expected {list(want) if want is not None else 'a non-tensor'})")
    if bad:
        return CaseResult(case, ops, "wrong", "; ".join(bad), right, tensors)
    return CaseResult(case, ops, "exact", "", right, tensors)


def onnx_infers(model: onnx.ModelProto, ins: dict[str, tuple[int, ...]],
                expected: dict[str, tuple[int, ...] | None]) -> bool:
    """Whether ONNX shape inference (data propagation on) gives every output its shape."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name in ins and vi.type.HasField("tensor_type"):
            shape = vi.type.tensor_type.shape
            shape.Clear()
            for d in ins[vi.name]:
                shape.dim.add().dim_value = d
    for vi in m.graph.output:
        if vi.type.HasField("tensor_type"):
            vi.type.tensor_type.ClearField("shape")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inferred = shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # noqa: BLE001 - onnx raises several types; any is "not right"
        return False
    for vi in inferred.graph.output:
        want = expected.get(vi.name)
        if want is None or not vi.type.HasField("tensor_type"):
            return False
        t = vi.type.tensor_type
        if not t.HasField("shape") or any(not d.HasField("dim_value") for d in t.shape.dim):
            return False
        if tuple(d.dim_value for d in t.shape.dim) != want:
            return False
    return True


def run_suite(dest: Path, only: Sequence[str] = ()) -> list[CaseResult]:
    """Generate the cases under ``dest`` and grade every one."""
    return [run_case(folder) for folder in generate(dest, only)]


def shipped_results() -> list[CaseResult]:
    """The models the onnx wheel ships with expected outputs (``onnx/backend/test/data``):
    ``simple``, ``pytorch-converted``, ``pytorch-operator`` (one folder per case) and ``light``
    (small real CNNs: AlexNet, ResNet-50, DenseNet-121, Inception, ShuffleNet, VGG-19, …, whose
    input shapes are declared in the model). Read in place, never written."""
    root = Path(onnx.__file__).parent / "backend" / "test" / "data"
    out = []
    for kind in ("simple", "pytorch-converted", "pytorch-operator"):
        for folder in sorted((root / kind).glob("*/")):
            if (folder / "model.onnx").exists() and (folder / "test_data_set_0").exists():
                out.append(run_case(folder))
    for path in sorted((root / "light").glob("*.onnx")):
        model = onnx.load(str(path))
        inits = {t.name for t in model.graph.initializer}
        ins = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
               for vi in model.graph.input if vi.name not in inits}
        t = TensorProto()
        t.ParseFromString(path.with_name(path.stem + "_output_0.pb").read_bytes())
        out.append(grade(path, path.stem, model, ins, {model.graph.output[0].name: tuple(t.dims)}))
    return out


def counts(results: Iterable[CaseResult]) -> dict[str, int]:
    c = collections.Counter(r.verdict for r in results)
    return {v: c.get(v, 0) for v in VERDICTS}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("only", nargs="*", help="run only cases whose name contains one of these")
    p.add_argument("--all", action="store_true", help="also list every refused case")
    p.add_argument("--keep", type=Path, help="write the cases here (default: a temp folder)")
    args = p.parse_args(argv)
    why = available()
    if why:
        print(why)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        results = run_suite(args.keep or Path(tmp), args.only)
    n = counts(results)
    right = [r for r in results if r.onnx_right]
    print(f"{len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in n.items()))
    print(f"ONNX shape inference right on {len(right)}; cnnstat exact on "
          f"{sum(r.verdict == 'exact' for r in right)} of those")
    shown = VERDICTS[1:] if args.all else ("wrong", "crash")
    for verdict in shown:
        for r in results:
            if r.verdict == verdict:
                print(f"{verdict:7} {r.name} [{r.ops}]{' (onnx right)' if r.onnx_right else ''}: "
                      f"{r.detail[:300]}")
    for r in right:
        if r.verdict == "refused" and not args.all:
            print(f"refused {r.name} [{r.ops}] (onnx right): {r.detail[:300]}")
    if not args.only:
        shipped = shipped_results()
        print(f"{len(shipped)} models shipped in onnx/backend/test/data: " + ", ".join(
            f"{k} {v}" for k, v in counts(shipped).items()))
        for r in shipped:
            if r.verdict in shown:
                print(f"{r.verdict:7} {r.name} [{r.ops}]: {r.detail[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
