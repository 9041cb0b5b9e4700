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
    storage_of: dict[str, int] = {}  # blob name -> storage id (current producer)
    size: dict[int, int] = {}
    steps: list[tuple[list[int], list[int]]] = []  # (reads, new allocations) per layer
    for layer, shapes in zip(layers, tops):
        reads = [storage_of[b] for b in layer.bottoms if b in storage_of]
        new = []
        for j, (t, s) in enumerate(zip(layer.tops, shapes)):
            if layer.kind == "Split" and reads:
                storage_of[t] = reads[0]
            elif j < len(layer.bottoms) and layer.bottoms[j] == t and t in storage_of:
                pass  # in place: same storage
            else:
                sid = len(size)
                size[sid] = math.prod(s) * itemsize
                storage_of[t] = sid
                new.append(sid)
        steps.append((reads, new))
    last_read: dict[int, int] = {}
    for i, (reads, _) in enumerate(steps):
        for sid in reads:
            last_read[sid] = i
    frees: dict[int, list[int]] = {}
    for sid, i in last_read.items():
        frees.setdefault(i, []).append(sid)
    live = peak = 0
    for i, (_, new) in enumerate(steps):
        live += sum(size[s] for s in new)
        peak = max(peak, live)
        live -= sum(size[s] for s in frees.get(i, ()))
    return peak
