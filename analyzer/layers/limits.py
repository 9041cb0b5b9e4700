"""The largest blob each framework can hold, checked per layer by the analysis.

- **Caffe** (``Blob::Reshape``): a blob's element count is an ``int``; a shape whose count
  exceeds 2³¹ − 1 stops Caffe with "blob size exceeds INT_MAX". That holds for every top, every
  parameter blob and a convolution's im2col buffer (a blob too). Every filler also refuses an
  empty parameter blob.
- **ONNX**: dims and sizes are int64; a tensor whose element count or byte size exceeds
  2⁶³ − 1 cannot exist in any runtime.

Each check returns a sentence for the caller to raise (naming the layer), or None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from analyzer.ir import Shape

CAFFE_MAX_COUNT = 2**31 - 1  # INT_MAX: Caffe's Blob counts elements in an int
INT64_MAX = 2**63 - 1


def _dims(shape: Shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def caffe_blob(what: str, shape: Shape) -> str | None:
    """Why Caffe refuses a blob of this shape (``what`` names it), or None."""
    count = math.prod(shape)
    if count > CAFFE_MAX_COUNT or any(d > CAFFE_MAX_COUNT for d in shape):
        return (f"{what} ({_dims(shape)}) has {count:,} elements; Caffe refuses a blob of "
                f"more than {CAFFE_MAX_COUNT:,} (2^31 − 1) elements "
                "(Blob::Reshape: blob size exceeds INT_MAX)")
    return None


def caffe_layer(name: str, tops: Iterable[tuple[str, Shape]],
                params: Iterable[tuple[str, Shape]], workspace: int) -> str | None:
    """The first blob of a Caffe layer that Caffe would refuse, in its set-up order:
    parameter blobs (LayerSetUp), then tops and the im2col buffer (Reshape)."""
    for role, shape in params:
        if 0 in shape:
            return (f"parameter blob '{role}' ({_dims(shape)}) is empty; Caffe's fillers "
                    "refuse an empty blob")
        why = caffe_blob(f"parameter blob '{role}'", shape)
        if why:
            return why
    for top, shape in tops:
        why = caffe_blob(f"blob '{top}'", shape)
        if why:
            return why
    if workspace > CAFFE_MAX_COUNT:
        return (f"the im2col buffer of layer '{name}' has {workspace:,} elements; Caffe "
                f"refuses a blob of more than {CAFFE_MAX_COUNT:,} (2^31 − 1) elements "
                "(Blob::Reshape: blob size exceeds INT_MAX)")
    return None


def int64_tensor(what: str, shape: Shape, itemsize: int) -> str | None:
    """Why no ONNX runtime can hold this tensor (count or bytes past int64), or None."""
    count = math.prod(shape)
    if count > INT64_MAX or count * itemsize > INT64_MAX:
        return (f"{what} ({_dims(shape)}) has {count:,} elements ({count * itemsize:,} bytes); "
                f"a tensor's element count and byte size must fit in int64 "
                f"(at most {INT64_MAX:,})")
    return None
