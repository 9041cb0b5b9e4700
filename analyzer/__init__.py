"""cnnstat: what a CNN costs per layer — shapes, GEMM sizes, MACs, params, memory, time."""

__version__ = "0.1.0"
