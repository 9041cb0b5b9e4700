"""Memory conventions over a shaped net (all figures in bytes).

- **data, Caffe convention**: every top of every layer, the input, in-place and Split
  tops included — what Caffe logs as "Memory required for data".
- **data, liveness peak**: what a runtime that allocates a blob when it is first written
  and frees it after its last reader needs at most; in-place layers and Split layers
  reuse their input's storage; outputs nobody reads stay alive to the end.
- **workspace**: Caffe allocates one im2col buffer per conv layer (summed); a runtime
  sharing one buffer needs only the largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from analyzer.ir import Layer, Shape

DTYPE_BYTES = {"fp32": 4, "fp16": 2}


def peak_data_bytes(layers: Sequence[Layer], tops: Sequence[Sequence[Shape]],
                    itemsize: int) -> int:
    """Peak bytes of live blobs while running ``layers`` in order."""
    return max(live_data_bytes(layers, tops, itemsize), default=0)


def live_data_bytes(layers: Sequence[Layer], tops: Sequence[Sequence[Shape]],
                    itemsize: int) -> list[int]:
    """Bytes of live blobs while each layer runs: its inputs, its outputs and every blob
    a later layer still reads (one figure per layer, in order; the peak is their max)."""
    storage_of: dict[str, int] = {}  # blob name -> storage id (current producer)
    size: list[int] = []  # bytes of each storage, by id
    allocated: list[list[int]] = []  # storage ids each layer allocates
    last_read: dict[int, int] = {}  # storage id -> index of the last layer reading it
    for i, (layer, shapes) in enumerate(zip(layers, tops)):
        reads = [storage_of[b] for b in layer.bottoms if b in storage_of]
        for sid in reads:
            last_read[sid] = i
        new = []
        for j, (t, s) in enumerate(zip(layer.tops, shapes)):
            if layer.kind == "Split" and reads:
                storage_of[t] = reads[0]
            elif j < len(layer.bottoms) and layer.bottoms[j] == t and t in storage_of:
                pass  # in place: same storage
            else:
                storage_of[t] = len(size)
                new.append(len(size))
                size.append(math.prod(s) * itemsize)
        allocated.append(new)
    frees: dict[int, list[int]] = {}
    for sid, i in last_read.items():
        frees.setdefault(i, []).append(sid)
    live, during = 0, []
    for i, new in enumerate(allocated):
        for sid in new:
            live += size[sid]
        during.append(live)
        for sid in frees.get(i, ()):
            live -= size[sid]
    return during
