"""Pick the frontend for a model file: ONNX by content or extension, else Caffe prototxt."""

from __future__ import annotations

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
    if source.lower().endswith(".onnx") or _looks_like_onnx(source):
        try:
            from analyzer.frontends.onnx import read_onnx
        except ImportError as e:  # pragma: no cover - onnx is a hard dependency
            raise CnnstatError(f"ONNX support needs the onnx package ({e})", source) from None
        return read_onnx(source, batch=batch, shapes=shapes or {})
    if source.lower().endswith((".caffemodel", ".pb", ".pt", ".pth", ".h5")):
        raise CnnstatError("not a model definition cnnstat reads (use a .prototxt or .onnx)",
                           source)
    from analyzer.frontends.caffe import NetState, read_caffe  # lazily: ONNX runs skip caffe_pb2

    return read_caffe(source, NetState(phase.upper(), level, stages))


def _looks_like_onnx(source: str) -> bool:
    """A serialized ONNX ModelProto starts with field 1 (ir_version, a varint): byte 0x08.
    No Caffe prototxt (text) starts with that control character."""
    try:
        with open(source, "rb") as fh:
            return fh.read(1) == b"\x08"
    except OSError:
        return False
