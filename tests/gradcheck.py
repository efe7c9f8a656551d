"""Centred finite differences in float64, and the cells to check, shared by the gradient tests."""
import numpy as np

from charrnn.core import cells


def cell_cases():
    """(cell, activation) for every cell of the registry, each vanilla-RNN nonlinearity apart:
    a cell module added to core/cells/ is checked without a line here."""
    return [(k, act) for k in cells.kinds()
            for act in (cells.ACTIVATIONS if "activation" in cells.get(k).options else ("tanh",))]


def numeric_grad(f, x, eps=1e-6):
    """dF/dx by (f(x+ε) - f(x-ε)) / 2ε for every element of x (x is perturbed in place)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def rel_error(a, b):
    """max |a-b| / max(|a|+|b|) over the array: scale-free, 0 for identical arrays."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-12))
