"""The plain pieces a cell's equations are written out with, shared by the forward tests
(tests/test_core_forward.py, and each cell's own module, tests/test_core_cell_<name>.py)."""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def gate(p, k, x, h):
    """Gate k's pre-activation from its own columns: x·Wx_k + h·Wh_k + b_k."""
    H = p["Wh"].shape[0]
    cols = slice(k * H, (k + 1) * H)
    return x @ p["Wx"][:, cols] + h @ p["Wh"][:, cols] + p["b"][cols]
