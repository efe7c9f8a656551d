"""Each cell's forward against its equations written out plainly (float64, one gate at a time).

The gradient checks prove every backward is the derivative of its forward; they cannot see a
forward that is consistently wrong (a swapped gate, a missing bias). These tests compute the
same windows with a loop over time that applies the docstrings' equations literally, with
each gate's own slice of the fused weights and sigmoid as 1/(1 + e^-x), as torch-rnn's
test/LSTM_test.lua does for its LSTM.
"""
import numpy as np
import pytest

from charrnn.config.model import ModelConfig
from charrnn.core import cells, layers, model

from .cell_support import gate, sigmoid
from .gradcheck import cell_cases

T, B, D, H = 6, 3, 5, 4


ACT = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "sigmoid": sigmoid}


def naive_rnn(p, xs, h, act):
    out = []
    for x in xs:
        h = ACT[act](x @ p["Wx"] + h @ p["Wh"] + p["b"])  # h_t = f(Wx·x_t + Wh·h_{t-1} + b)
        out.append(h)
    return np.stack(out), (h,)


def naive_lstm(p, xs, h, c):
    out = []
    for x in xs:
        i = sigmoid(gate(p, 0, x, h))
        f = sigmoid(gate(p, 1, x, h))
        g = np.tanh(gate(p, 2, x, h))
        o = sigmoid(gate(p, 3, x, h))
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out), (h, c)


def naive_gru(p, xs, h):
    out = []
    for x in xs:
        z = sigmoid(gate(p, 0, x, h))
        r = sigmoid(gate(p, 1, x, h))
        n_cols = slice(2 * H, 3 * H)
        n = np.tanh(x @ p["Wx"][:, n_cols] + p["b"][n_cols] + r * (h @ p["Wh"][:, n_cols] + p["bh"]))
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out), (h,)


def params_for(cell, r, D=D):
    """Random parameters of every shape the cell declares (Wh smaller: a tame recurrence)."""
    return {k: r.standard_normal(shape) * (0.5 if k == "Wh" else 1.0)
            for k, shape in cells.get(cell).params(D, H).items()}


NAIVE = {"rnn": lambda act, p, xs, s: naive_rnn(p, xs, s[0], act),
         "lstm": lambda act, p, xs, s: naive_lstm(p, xs, *s),
         "gru": lambda act, p, xs, s: naive_gru(p, xs, s[0])}


def naive(cell, act, p, xs, state):
    return NAIVE[cell](act, p, xs, state)


def cfg_of(cell, act="tanh"):
    return ModelConfig(vocab_size=D, cell=cell, activation=act, hidden=H)


CASES = [(c, a) for c, a in cell_cases() if c in NAIVE]  # a cell's own test module writes out its equations


@pytest.mark.parametrize("cell,act", CASES)
def test_a_recurrent_layer_computes_its_equations(cell, act):
    r = np.random.default_rng(0)
    p = params_for(cell, r)
    xs = r.standard_normal((T, B, D))
    state = tuple(r.standard_normal((B, H)) for _ in cells.get(cell).state)
    hs, final, _ = layers.recurrent_forward(p, xs, state, cfg_of(cell, act))
    want_hs, want_final = naive(cell, act, p, xs, state)
    np.testing.assert_allclose(hs, want_hs, rtol=0, atol=1e-12)
    for a, b in zip(final, want_final):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell,act", CASES)
def test_a_one_hot_layer_reads_rows_of_wx(cell, act):
    """Token ids in: x·Wx is the row of Wx, plus b, as for the one-hot vector of the id."""
    r = np.random.default_rng(1)
    V = 7
    p = params_for(cell, r, D=V)
    ids = r.integers(0, V, (T, B))
    state = tuple(np.zeros((B, H)) for _ in cells.get(cell).state)
    hs, _, _ = layers.recurrent_forward(p, ids, state, cfg_of(cell, act))
    want, _ = naive(cell, act, p, np.eye(V)[ids], state)
    np.testing.assert_allclose(hs, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", list(NAIVE))
def test_a_bidirectional_layer_joins_a_forward_and_a_reversed_pass(cell):
    r = np.random.default_rng(2)
    p = {"fwd": params_for(cell, r), "bwd": params_for(cell, r)}
    xs = r.standard_normal((T, B, D))
    zero = tuple(np.zeros((B, H)) for _ in cells.get(cell).state)
    out, _, _ = layers.bidirectional_forward(p, xs, (zero, zero), cfg_of(cell))
    fwd, _ = naive(cell, "tanh", p["fwd"], xs, zero)
    bwd, _ = naive(cell, "tanh", p["bwd"], xs[::-1], zero)
    np.testing.assert_allclose(out, np.concatenate([fwd, bwd[::-1]], axis=-1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", list(NAIVE))
def test_the_model_is_embedding_then_stacked_layers_then_the_softmax_of_v_h_plus_c(cell):
    """y_t = softmax(V·h_t + c) over a 2-layer stack with an embedding, by the equations."""
    r = np.random.default_rng(3)
    cfg = ModelConfig(vocab_size=9, cell=cell, layers=2, hidden=H, embed=D)
    params = model.init_params(cfg, r, np.float64)
    for k in params:  # no zero biases: a forgotten one must show
        params[k] = params[k] + 0.1 * r.standard_normal(params[k].shape)
    ids = r.integers(0, 9, (T, B))
    logits, _, _ = model.forward(params, cfg, ids, model.zero_state(cfg, B, np.float64))
    x = params["embed.W"][ids]
    for l in range(2):
        p = model.layer_params(params, l, False)
        x, _ = naive(cell, "tanh", p, x, tuple(np.zeros((B, H)) for _ in cells.get(cell).state))
    want = x @ params["out.V"] + params["out.c"]
    np.testing.assert_allclose(logits, want, rtol=0, atol=1e-12)
    probs = np.exp(layers.log_softmax(logits))
    np.testing.assert_allclose(probs, np.exp(want) / np.exp(want).sum(-1, keepdims=True), rtol=1e-12)


def test_every_cell_has_its_equations_written_out():
    """A cell's naive forward is here (NAIVE) or in its own module, tests/test_core_cell_<name>.py."""
    import pathlib
    here = pathlib.Path(__file__).parent
    missing = [k for k in cells.kinds() if k not in NAIVE and not (here / f"test_core_cell_{k}.py").exists()]
    assert not missing, missing
