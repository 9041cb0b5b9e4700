"""Non-negative least squares, the solver every fit of a profile uses."""

from __future__ import annotations

import numpy as np


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Non-negative least squares min ||a·x − b|| with x ≥ 0 (Lawson–Hanson active set)."""
    rows, cols = a.shape
    x = np.zeros(cols)
    passive = np.zeros(cols, dtype=bool)
    grad = a.T @ (b - a @ x)
    tol = 1e-12 * max(1.0, float(np.abs(grad).max(initial=0.0)))
    for _ in range(max_iter):
        if passive.all() or grad[~passive].max(initial=-1.0) <= tol:
            break
        cand = np.where(~passive, grad, -np.inf)
        passive[int(np.argmax(cand))] = True
        while True:
            z = np.zeros(cols)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
        grad = a.T @ (b - a @ x)
    return x
