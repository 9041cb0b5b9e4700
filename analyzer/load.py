"""Pick the frontend for a model file: ONNX by content or extension, else Caffe prototxt."""

from __future__ import annotations

from analyzer.caffe_reader import NetState, read_caffe
from analyzer.errors import CnnstatError
from analyzer.ir import Net


def load_net(source: str, phase: str = "test", stages: tuple[str, ...] = (),
             level: int = 0, batch: int | None = None,
             shapes: dict[str, tuple[int, ...]] | None = None) -> Net:
    """Read ``source`` (a path) into the IR.

    ``batch`` and ``shapes`` (the user's --batch/--input-shape) are passed to frontends
    that need them to resolve symbolic dims while reading (ONNX); the analysis applies
    them again, so a frontend may ignore them.
    """
    if source.lower().endswith(".onnx"):
        try:
            from analyzer.onnx_reader import read_onnx
        except ImportError as e:  # pragma: no cover - onnx is a hard dependency
            raise CnnstatError(f"ONNX support needs the onnx package ({e})", source) from None
        return read_onnx(source, batch=batch, shapes=shapes or {})
    if source.lower().endswith((".caffemodel", ".pb", ".pt", ".pth", ".h5")):
        raise CnnstatError("not a model definition cnnstat reads (use a .prototxt or .onnx)",
                           source)
    return read_caffe(source, NetState(phase.upper(), level, stages))
