"""The coupled input-forget gate LSTM (core/cells/cifg.py): its equations written out plainly.

What every cell gets from the registry (tests/test_core_gradients.py's finite differences,
tests/test_core_engine.py's stepping and learning) it gets without a line here; this module holds
what only this cell knows: its equations (its export to nn.LSTM is tests/test_export_pytorch.py's).
"""
import numpy as np
import pytest

from charrnn.config.model import ModelConfig
from charrnn.core import layers, model

from .cell_support import gate, sigmoid

T, B, D, H = 6, 3, 5, 4


def naive_cifg(p, xs, h, c):
    out = []
    for x in xs:
        f = sigmoid(gate(p, 0, x, h))
        g = np.tanh(gate(p, 1, x, h))
        o = sigmoid(gate(p, 2, x, h))
        c = f * c + (1 - f) * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out), (h, c)


def params(r, D=D):
    return {"Wx": r.standard_normal((D, 3 * H)), "Wh": r.standard_normal((H, 3 * H)) * 0.5,
            "b": r.standard_normal(3 * H)}


@pytest.mark.parametrize("one_hot", [False, True])
def test_a_cifg_layer_computes_its_equations(one_hot):
    r = np.random.default_rng(0)
    V = 7
    p = params(r, V if one_hot else D)
    xs = r.integers(0, V, (T, B)) if one_hot else r.standard_normal((T, B, D))
    state = (r.standard_normal((B, H)), r.standard_normal((B, H)))
    cfg = ModelConfig(vocab_size=V, cell="cifg", hidden=H)
    hs, final, _ = layers.recurrent_forward(p, xs, state, cfg)
    want_hs, want_final = naive_cifg(p, np.eye(V)[xs] if one_hot else xs, *state)
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-12)
    for a, b in zip(final, want_final):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_the_forget_bias_opens_the_forget_gate_and_shuts_the_input():
    cfg = ModelConfig(vocab_size=5, cell="cifg", layers=1, hidden=H, forget_bias=1.0)
    p = model.init_params(cfg, np.random.default_rng(1), np.float64)
    assert np.all(p["layers.0.b"][:H] == 1.0) and np.all(p["layers.0.b"][H:] == 0.0)
    assert p["layers.0.Wh"].shape == (H, 3 * H)  # three gate blocks, a quarter less than an LSTM's
