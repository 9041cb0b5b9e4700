"""Frontends: read model files (Caffe prototxt, ONNX) into the layer IR."""
