"""Frontends: read a model file into the layer IR (:mod:`analyzer.ir`), and nothing else.

- :mod:`.load` picks the frontend by content or extension; :mod:`.sources` resolves
  ``REV:path`` (a file at a git revision) into a file to read.
- :mod:`.caffe` reads Caffe prototxt (V2, V1, V0) through the generated :mod:`.caffe_pb2`
  (``python tools/gen_proto.py`` regenerates it from ``proto/caffe.proto``).
- :mod:`.onnx` reads ONNX graphs.

May import: :mod:`analyzer.ir`, :mod:`analyzer.errors`, and :mod:`analyzer.layers` (the ONNX
reader shapes nodes with the registry's rules while folding constants). Never the analysis,
timing or commands.
"""
