"""Which layers a runtime fuses into the layer before them (and so cost 0 ms alone)."""

from __future__ import annotations

from collections.abc import Sequence

from analyzer.analysis import LayerResult


def fused_into(results: Sequence[LayerResult], fusions: set[tuple[str, str]]) -> list[int | None]:
    """For each layer, the index of the layer it is fused into (None if it runs alone).

    A layer of kind B directly after a layer of kind A, reading its top as any of its
    inputs, is fused when (A, B) is listed; a chain (Conv → BatchNorm → ReLU) fuses into its
    first layer's kind. Any input: a residual Add reads the shortcut first in torchvision's
    graphs and second in Caffe's ResNets, and onnxruntime fuses both (15 of the 16 in
    ResNet-50, measured).
    """
    owner: list[int | None] = [None] * len(results)
    for i in range(1, len(results)):
        prev, cur = results[i - 1].layer, results[i].layer
        root = owner[i - 1] if owner[i - 1] is not None else i - 1
        pairs = {(results[root].layer.kind, cur.kind), (prev.kind, cur.kind)}
        if pairs & fusions and any(b in prev.tops for b in cur.bottoms):
            owner[i] = root
    return owner
