"""The layer IR every frontend writes and every pass reads.

A :class:`Net` is a list of :class:`Layer` in execution order (Caffe's order, with the
Split layers Caffe inserts and an ``Input`` layer for the network inputs). Layer
parameters are plain Python values under canonical names (``attrs``), so the shape,
cost, memory and render passes never see a protobuf message.

Canonical attrs by kind (frontends fill these; missing optional ones take the default):

- ``Input``: ``shapes`` — one tuple of dims per top, ``None`` where the frontend cannot
  know it (a database-backed data layer); ``source`` — what the layer was.
- ``Convolution`` / ``Deconvolution``: ``num_output``, ``kernel``, ``stride``, ``pad``,
  ``dilation`` (tuples, one per spatial axis or a single value for all), ``group``,
  ``depthwise`` (group = input channels), ``bias``, ``axis``.
- ``Pooling``: ``method`` (MAX/AVE/STOCHASTIC), ``kernel``, ``stride``, ``pad``,
  ``global_pooling``, ``ceil`` (Caffe's default rounding is ceil).
- ``InnerProduct``: ``num_output``, ``bias``, ``axis``.
- Other kinds document their attrs beside their rule in ``shapes.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Weight:
    """A stored parameter tensor whose dims a frontend read from the model file.

    ``learnable`` is False for stored statistics (BatchNorm running mean/variance).
    ``itemsize`` is bytes per element of its stored data type.
    """

    name: str
    shape: Shape
    learnable: bool = True
    itemsize: int = 4


@dataclass(frozen=True)
class Layer:
    """One layer of the net. ``kind`` is canonical; ``type`` is as written in the file."""

    name: str
    kind: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    line: int | None = None
    weights: tuple[Weight, ...] | None = None  # None: derive from shapes (Caffe)
    notes: tuple[str, ...] = ()  # what the frontend assumed while translating
    # Output shapes a frontend already knows (ONNX shape inference). The analysis uses the
    # registry's rule where one exists and the hint where it has none.
    shapes_hint: tuple[Shape, ...] | None = None

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    @property
    def in_place(self) -> bool:
        return len(self.tops) == 1 and len(self.bottoms) >= 1 and self.tops[0] == self.bottoms[0]


@dataclass(frozen=True)
class Net:
    """A whole network. ``format`` is e.g. ``caffe-v2``, ``caffe-v1``, ``caffe-v0``, ``onnx``."""

    name: str
    path: str
    format: str
    layers: tuple[Layer, ...]
    warnings: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # the graph's outputs by name (ONNX); empty for Caffe
    # nodes a runtime still executes that no layer computes: an ONNX graph's shape arithmetic
    # on a symbolic dim (Shape → Gather → Unsqueeze → Concat → Reshape), which cnnstat folds
    # once --batch binds the dim but onnxruntime runs on every call
    shape_nodes: int = 0


def frozen(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only view of an attrs dict, for use in frozen layers."""
    return MappingProxyType(dict(attrs))
