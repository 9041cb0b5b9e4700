"""Layer rules: what each layer kind's output shape is and what it costs.

This is where a newcomer adds a layer kind: one entry in :mod:`.registry` pairing a shape
rule (:mod:`.shapes`) with a cost rule (:mod:`.cost`: GEMM sizes, MACs, FLOPs, params);
:mod:`.memory` holds the byte conventions (dtype sizes, liveness peak of the data).

May import: :mod:`analyzer.ir` and :mod:`analyzer.errors` only.
"""
