"""The layer registry: one entry per IR kind, pairing its shape rule with its cost rule.

Adding a layer type means adding one line here (and, if no existing rule fits, a
function in ``shapes.py`` and/or ``cost.py``). A kind not listed is analysed with
:func:`shapes.assumed_same` and no cost, and is flagged in the output.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.layers import caffe_shapes, cost, shapes
from analyzer.layers.cost import CostRule
from analyzer.layers.shapes import ShapeRule


@dataclass(frozen=True)
class Rule:
    shape: ShapeRule
    cost: CostRule


_ACT = cost.elementwise(1)

RULES: dict[str, Rule] = {
    # GEMM layers
    "Convolution": Rule(shapes.convolution, cost.convolution),
    "Deconvolution": Rule(shapes.deconvolution, cost.deconvolution),
    "InnerProduct": Rule(shapes.inner_product, cost.inner_product),
    "LSTM": Rule(shapes.lstm, cost.recurrent),
    "RNN": Rule(shapes.lstm, cost.recurrent),
    "Embed": Rule(shapes.embed, cost.embed),
    # spatial
    "Pooling": Rule(shapes.pooling, cost.pooling),
    "LRN": Rule(shapes.same, cost.lrn),
    "ROIPooling": Rule(shapes.roi_pooling, cost.elementwise(1)),
    "Interp": Rule(shapes.interp, cost.elementwise(4)),
    "Upsample": Rule(shapes.upsample, cost.free),
    # normalisation and learned element-wise
    "BatchNorm": Rule(shapes.batch_norm, cost.batch_norm),
    "BN": Rule(shapes.same, cost.bn),
    "Scale": Rule(shapes.same, cost.scale),
    "Bias": Rule(shapes.same, cost.bias),
    "PReLU": Rule(shapes.same, cost.prelu),
    "Normalize": Rule(shapes.same, cost.normalize),
    "MVN": Rule(shapes.same, cost.elementwise(2)),
    # activations: one FLOP per element
    "ReLU": Rule(shapes.same, _ACT),
    "Sigmoid": Rule(shapes.same, _ACT),
    "TanH": Rule(shapes.same, _ACT),
    "ELU": Rule(shapes.same, _ACT),
    "AbsVal": Rule(shapes.same, _ACT),
    "BNLL": Rule(shapes.same, _ACT),
    "Exp": Rule(shapes.same, _ACT),
    "Log": Rule(shapes.same, _ACT),
    "Power": Rule(shapes.same, _ACT),
    "Threshold": Rule(shapes.same, _ACT),
    "Clip": Rule(shapes.same, _ACT),
    "Swish": Rule(shapes.same, cost.elementwise(2)),
    "Softmax": Rule(shapes.same_on_axis, cost.elementwise(3)),
    # combining
    "Eltwise": Rule(shapes.eltwise, cost.eltwise),
    "Axpy": Rule(shapes.axpy, cost.elementwise(2)),
    "Concat": Rule(shapes.concat, cost.free),
    "Slice": Rule(shapes.slice_, cost.free),
    "Split": Rule(shapes.same, cost.free),
    "Crop": Rule(shapes.crop, cost.free),
    # reshaping
    "Reshape": Rule(shapes.reshape, cost.free),
    "Flatten": Rule(shapes.flatten, cost.free),
    "Permute": Rule(shapes.permute, cost.free),
    "ShuffleChannel": Rule(shapes.same, cost.free),
    "Dropout": Rule(shapes.same, cost.free),
    "Tile": Rule(shapes.tile, cost.free),
    "ArgMax": Rule(shapes.argmax, cost.elementwise(1)),
    "Reduction": Rule(shapes.reduction, cost.free),
    # detection heads
    "PriorBox": Rule(shapes.prior_box, cost.free),
    "DetectionOutput": Rule(shapes.detection_output, cost.free),
    # losses and outputs
    "SoftmaxWithLoss": Rule(shapes.scalar, cost.free),
    "EuclideanLoss": Rule(shapes.scalar, cost.free),
    "ContrastiveLoss": Rule(shapes.scalar, cost.free),
    "SmoothL1Loss": Rule(shapes.scalar, cost.free),
    "HingeLoss": Rule(shapes.scalar, cost.free),
    "InfogainLoss": Rule(shapes.scalar, cost.free),
    "MultinomialLogisticLoss": Rule(shapes.scalar, cost.free),
    "SigmoidCrossEntropyLoss": Rule(shapes.scalar, cost.free),
    "Accuracy": Rule(shapes.scalar, cost.free),
    "Silence": Rule(shapes.nothing, cost.free),
}

# Kinds only the ONNX frontend emits: their rules read attrs (and shape hints) that only
# frontends/onnx.py writes, so the Caffe frontend must not map a fork's type onto them.
ONNX_RULES: dict[str, Rule] = {
    # ONNX-only kinds (frontends/onnx.py). shapes.hinted: the reader's shapes (the op's spec on
    # its constant inputs, else ONNX shape inference).
    "MatMul": Rule(shapes.matmul, cost.matmul),
    "Einsum": Rule(shapes.einsum, cost.einsum),
    "Broadcast": Rule(shapes.broadcast, cost.broadcast),
    "Reduce": Rule(shapes.reduce, cost.reduce),
    "LayerNorm": Rule(shapes.layer_norm, cost.elementwise(6)),
    "InstanceNorm": Rule(shapes.same, cost.elementwise(6)),
    "HardSigmoid": Rule(shapes.same, cost.elementwise(2)),
    "HardSwish": Rule(shapes.same, cost.elementwise(3)),
    "Selu": Rule(shapes.same, cost.elementwise(2)),
    "Softplus": Rule(shapes.same, cost.elementwise(2)),
    "Erf": Rule(shapes.same, _ACT),
    "Gelu": Rule(shapes.same, cost.elementwise(4)),
    "LogSoftmax": Rule(shapes.same, cost.elementwise(4)),
    "Identity": Rule(shapes.same, cost.free),
    "Cast": Rule(shapes.same, cost.free),
    "Resize": Rule(shapes.hinted, cost.resize),
    "StridedSlice": Rule(shapes.hinted, cost.free),
    "Pad": Rule(shapes.hinted, cost.free),
    "Gather": Rule(shapes.hinted, cost.free),
    "Squeeze": Rule(shapes.hinted, cost.free),
    "Unsqueeze": Rule(shapes.hinted, cost.free),
    "Expand": Rule(shapes.hinted, cost.free),
    "ShapedReshape": Rule(shapes.hinted, cost.free),
    "ShapedConcat": Rule(shapes.hinted, cost.free),
    "ShapedSplit": Rule(shapes.hinted, cost.free),
    "ShapedTile": Rule(shapes.hinted, cost.free),
    "Constant": Rule(shapes.hinted, cost.free),  # a folded node that is a graph output
}
ONNX_ONLY_KINDS = frozenset(k for k, r in ONNX_RULES.items() if r.shape is not shapes.same)
RULES.update(ONNX_RULES)

# Caffe's own C++ arithmetic where it differs from the exact integer rules above: it accepts
# a window larger than the padded input (see layers/caffe_shapes.py). For Caffe nets only.
CAFFE_RULES: dict[str, Rule] = {
    "Convolution": Rule(caffe_shapes.convolution, cost.convolution),
    "Pooling": Rule(caffe_shapes.pooling, cost.pooling),
}

UNKNOWN = Rule(shapes.assumed_same, cost.free)


def rule_for(kind: str, fmt: str = "") -> Rule | None:
    """The rule for a kind in a net of format ``fmt`` (``Net.format``), or None where
    cnnstat has none (the caller flags it)."""
    if fmt.startswith("caffe") and kind in CAFFE_RULES:
        return CAFFE_RULES[kind]
    return RULES.get(kind)
