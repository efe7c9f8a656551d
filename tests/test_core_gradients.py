"""Every backward pass against centred finite differences in float64 (relative error < 1e-6)."""
import numpy as np
import pytest

from charrnn.core import cells, layers, model
from charrnn.config.model import ModelConfig

from .gradcheck import cell_cases, numeric_grad, rel_error

TOL = 1e-6
T, B, D, H = 5, 3, 4, 6


def rng():
    return np.random.default_rng(0)


def cell_params(kind, r):
    """Random parameters of every shape the cell declares: matrices ~ N(0, 0.25), vectors ~ N(0, 0.01)."""
    return {k: r.standard_normal(shape) * (0.5 if len(shape) > 1 else 0.1)
            for k, shape in cells.get(kind).params(D, H).items()}


def random_state(kind, r, B=B):
    return tuple(r.standard_normal((B, H)) * 0.5 for _ in cells.get(kind).state)


def cfg_of(kind, act="tanh"):
    return ModelConfig(vocab_size=D, cell=kind, activation=act, hidden=H)


@pytest.mark.parametrize("kind,act", cell_cases())
def test_recurrent_layer_gradients(kind, act):
    """Every parameter, the input and the initial state, with a loss on outputs and final state."""
    r = rng()
    p, x, s0 = cell_params(kind, r), r.standard_normal((T, B, D)), random_state(kind, r)
    if act == "relu":  # keep pre-activations away from the kink at 0
        p["b"] += 0.3
    dhs = r.standard_normal((T, B, H))
    dsT = tuple(r.standard_normal((B, H)) for _ in s0)

    def loss():
        hs, sT, _ = layers.recurrent_forward(p, x, s0, cfg_of(kind, act))
        return float((hs * dhs).sum() + sum((a * d).sum() for a, d in zip(sT, dsT)))

    _, _, cache = layers.recurrent_forward(p, x, s0, cfg_of(kind, act))
    dx, ds0, grads = layers.recurrent_backward(dhs, dsT, cache)
    for k in p:
        assert rel_error(grads[k], numeric_grad(loss, p[k])) < TOL, k
    assert rel_error(dx, numeric_grad(loss, x)) < TOL
    for a, da in zip(s0, ds0):
        assert rel_error(da, numeric_grad(loss, a)) < TOL


@pytest.mark.parametrize("kind", cells.kinds())
def test_bidirectional_gradients(kind):
    r = rng()
    p = {"fwd": cell_params(kind, r), "bwd": cell_params(kind, r)}
    x = r.standard_normal((T, B, D))
    s0 = (random_state(kind, r), random_state(kind, r))
    dout = r.standard_normal((T, B, 2 * H))

    def loss():
        out, _, _ = layers.bidirectional_forward(p, x, s0, cfg_of(kind))
        return float((out * dout).sum())

    _, _, cache = layers.bidirectional_forward(p, x, s0, cfg_of(kind))
    dx, ds0, grads = layers.bidirectional_backward(dout, None, cache)
    for d in ("fwd", "bwd"):
        for k in p[d]:
            assert rel_error(grads[d][k], numeric_grad(loss, p[d][k])) < TOL, (d, k)
    assert rel_error(dx, numeric_grad(loss, x)) < TOL
    for pair, dpair in zip(s0, ds0):
        for a, da in zip(pair, dpair):
            assert rel_error(da, numeric_grad(loss, a)) < TOL


def test_bidirectional_backward_half_reads_the_future():
    """h←_t depends on x_{t+1}; h→_t does not: the reason a language model must refuse it."""
    r = rng()
    p = {"fwd": cell_params("rnn", r), "bwd": cell_params("rnn", r)}
    x = r.standard_normal((T, B, D))
    s0 = (random_state("rnn", r), random_state("rnn", r))
    out1, _, _ = layers.bidirectional_forward(p, x, s0, cfg_of("rnn"))
    x[3] += 1.0
    out2, _, _ = layers.bidirectional_forward(p, x, s0, cfg_of("rnn"))
    assert np.array_equal(out1[:3, :, :H], out2[:3, :, :H])
    assert not np.allclose(out1[:3, :, H:], out2[:3, :, H:])


@pytest.mark.parametrize("V", [7, 600])  # both scatter-add paths
def test_embedding_gradient(V):
    r = rng()
    W, ids = r.standard_normal((V, 3)), r.integers(0, min(V, 9), (T, B))
    ids[0, 0] = ids[1, 1]  # a repeated id must accumulate
    dout = r.standard_normal((T, B, 3))
    dW = layers.embedding_backward(dout, ids, V)
    num = numeric_grad(lambda: float((layers.embedding_forward(W, ids) * dout).sum()), W)
    assert rel_error(dW, num) < TOL


def test_dropout_gradient_with_fixed_mask():
    r = rng()
    x, dout = r.standard_normal((T, B, H)), r.standard_normal((T, B, H))
    mask = layers.dropout_mask((T, B, H), 0.3, r, np.float64)
    assert set(np.unique(mask)) <= {0.0, 1 / 0.7}
    dx = layers.dropout_backward(dout, mask)
    num = numeric_grad(lambda: float((layers.dropout_forward(x, mask) * dout).sum()), x)
    assert rel_error(dx, num) < TOL


def test_output_layer_and_softmax_loss_gradient():
    r = rng()
    V = 5
    p = {"V": r.standard_normal((H, V)), "c": r.standard_normal(V)}
    hs, y = r.standard_normal((T, B, H)), r.integers(0, V, (T, B))

    def loss():
        logits, _ = layers.output_forward(p, hs)
        return layers.softmax_cross_entropy(logits, y)[0]

    logits, cache = layers.output_forward(p, hs)
    _, dlogits = layers.softmax_cross_entropy(logits, y)
    dhs, grads = layers.output_backward(dlogits, cache, p)
    for k in p:
        assert rel_error(grads[k], numeric_grad(loss, p[k])) < TOL, k
    assert rel_error(dhs, numeric_grad(loss, hs)) < TOL


def test_weighted_softmax_cross_entropy_gradient():
    r = rng()
    logits, y = r.standard_normal((T, B, 5)), r.integers(0, 5, (T, B))
    w = r.uniform(0.5, 10.0, (T, B))
    loss, d = layers.softmax_cross_entropy(logits, y, w)
    num = numeric_grad(lambda: layers.softmax_cross_entropy(logits, y, w)[0], logits)
    assert rel_error(d, num) < TOL
    assert abs(layers.softmax_cross_entropy(logits, y, np.ones((T, B)))[0]
               - layers.softmax_cross_entropy(logits, y)[0]) < 1e-12


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[[1e4, 0.0, -1e4]]])
    loss, d = layers.softmax_cross_entropy(logits, np.array([[0]]))
    assert loss == 0.0 and np.all(np.isfinite(d))


@pytest.mark.parametrize("cfg", [
    ModelConfig(vocab_size=7, cell="lstm", layers=2, hidden=5, embed=0),
    ModelConfig(vocab_size=7, cell="gru", layers=2, hidden=5, embed=3),
    ModelConfig(vocab_size=7, cell="rnn", activation="tanh", layers=2, hidden=5, embed=3, dropout=0.25),
    ModelConfig(vocab_size=7, cell="lstm", layers=2, hidden=4, embed=3, bidirectional=True),
], ids=["lstm-2-onehot", "gru-2-embed", "rnn-2-dropout", "lstm-bidir"])
def test_whole_model_gradient_over_a_window_from_a_carried_state(cfg):
    """Two-layer stacks, the full model, a multi-step window, a non-zero carried state."""
    r = rng()
    params = model.init_params(cfg, r, np.float64)
    x, y = r.integers(0, 7, (T, B)), r.integers(0, 7, (T, B))
    state = [tuple(tuple(r.standard_normal((B, cfg.hidden)) for _ in s) for s in pair) if cfg.bidirectional
             else tuple(r.standard_normal((B, cfg.hidden)) for _ in pair)
             for pair in model.zero_state(cfg, B, np.float64)]
    masks = model.make_masks(cfg, T, B, r, np.float64)  # fixed masks: a deterministic function

    def loss():
        logits, _, _ = model.forward(params, cfg, x, state, masks)
        return layers.softmax_cross_entropy(logits, y)[0]

    logits, _, cache = model.forward(params, cfg, x, state, masks)
    _, dlogits = layers.softmax_cross_entropy(logits, y)
    grads, dstate0 = model.backward(dlogits, cache, cfg)
    assert set(grads) == set(params)
    for k in params:
        assert rel_error(grads[k], numeric_grad(loss, params[k])) < TOL, k
    if not cfg.bidirectional:
        for l in range(cfg.layers):
            for a, da in zip(state[l], dstate0[l]):
                assert rel_error(da, numeric_grad(loss, a)) < TOL


# --------------------------------------------------------------------------- gradient flow (diagnose)

@pytest.mark.parametrize("kind", cells.kinds())
@pytest.mark.parametrize("L", [1, 2])
def test_hidden_grads_equal_the_initial_state_gradient_of_the_rest_of_the_window(kind, L):
    """dL/dh_t from one backward pass (the cell's hidden_grads, via gradflow) against an independent
    computation: the window cut after t, and the gradient of the second part's initial state."""
    from charrnn.core import gradflow
    r = np.random.default_rng(5)
    cfg = ModelConfig(vocab_size=11, cell=kind, layers=L, hidden=7)
    params = model.init_params(cfg, r, np.float64)
    T, B = 12, 3
    ids, y = r.integers(0, 11, (T, B)), r.integers(0, 11, B)
    got = gradflow.gradient_flow(params, cfg, ids, y)["norms"][-1]  # (D,) the top layer
    s0 = model.zero_state(cfg, B, np.float64)
    for t in range(T - 1):
        _, s1, _ = model.forward(params, cfg, ids[:t + 1], s0)
        logits, _, cache = model.forward(params, cfg, ids[t + 1:], s1)
        _, dstate = model.backward(gradflow.last_step_dlogits(logits, y), cache, cfg)
        want = np.exp(np.log(np.linalg.norm(dstate[-1][0], axis=1)).mean())
        assert got[T - 1 - t] == pytest.approx(want, rel=1e-10), t


@pytest.mark.parametrize("kind", cells.kinds())
def test_gradient_flow_against_finite_differences_of_the_carried_state(kind):
    """‖dL/dh_0‖ of a 1-layer model, where h_0 is perturbed as the state the second step reads."""
    from charrnn.core import gradflow
    r = np.random.default_rng(9)
    cfg = ModelConfig(vocab_size=5, cell=kind, layers=1, hidden=4)
    params = model.init_params(cfg, r, np.float64)
    T = 6
    ids, y = r.integers(0, 5, (T, 1)), r.integers(0, 5, 1)
    got = gradflow.gradient_flow(params, cfg, ids, y)["norms"][0][T - 1]  # distance T-1: h_0
    _, s1, _ = model.forward(params, cfg, ids[:1], model.zero_state(cfg, 1, np.float64))

    h = s1[0][0].reshape(-1).copy()

    def loss():
        logits, _, _ = model.forward(params, cfg, ids[1:], [(h.reshape(1, -1), *s1[0][1:])])
        z = logits[-1, 0]
        return float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[y[0]])

    num = numeric_grad(loss, h)
    assert got == pytest.approx(np.linalg.norm(num), rel=1e-6)


# --------------------------------------------------------------------------- sequence classifier

@pytest.mark.parametrize("cfg", [
    ModelConfig(vocab_size=6, labels=3, cell="lstm", layers=2, hidden=4, bidirectional=True),
    ModelConfig(vocab_size=6, labels=3, cell="gru", layers=2, hidden=3, embed=4, bidirectional=True, dropout=0.3),
    ModelConfig(vocab_size=6, labels=2, cell="rnn", activation="relu", layers=1, hidden=5, embed=3),
], ids=["lstm-bidir-onehot", "gru-bidir-embed-dropout", "rnn-uni"])
def test_classifier_gradient_with_sequences_of_different_lengths(cfg):
    from charrnn.core import classifier
    r = np.random.default_rng(3)
    params = model.init_params(cfg, r, np.float64)
    ids, lengths = classifier.pad([r.integers(0, 6, n) for n in (5, 1, 3, 5)])
    y = r.integers(0, cfg.labels, 4)
    masks = model.make_masks(cfg, *ids.shape, r, np.float64)

    def loss():
        logits, _ = classifier.forward(params, cfg, ids, lengths, masks)
        return layers.softmax_cross_entropy(logits, y)[0]

    logits, cache = classifier.forward(params, cfg, ids, lengths, masks)
    grads = classifier.backward(layers.softmax_cross_entropy(logits, y)[1], cache, cfg, params)
    assert set(grads) == set(params)
    for k in params:
        assert rel_error(grads[k], numeric_grad(loss, params[k])) < TOL, k


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_sequence_is_classified_the_same_alone_or_padded_beside_longer_ones(bidirectional):
    """Padding never reaches the features: each direction reads only the sequence's own tokens."""
    from charrnn.core import classifier
    cfg = ModelConfig(vocab_size=9, labels=4, cell="gru", layers=2, hidden=6, bidirectional=bidirectional)
    r = np.random.default_rng(4)
    params = model.init_params(cfg, r, np.float64)
    seqs = [r.integers(0, 9, n) for n in (3, 8, 1, 5)]
    together = classifier.predict_proba(params, cfg, *classifier.pad(seqs, pad_id=7))
    for b, s in enumerate(seqs):
        alone = classifier.predict_proba(params, cfg, *classifier.pad([s]))
        np.testing.assert_allclose(together[b], alone[0], rtol=1e-12)
    # and the backward direction matters: reversing a sequence changes a bidirectional model's view
    flipped = classifier.predict_proba(params, cfg, *classifier.pad([seqs[1][::-1]]))
    assert not np.allclose(flipped[0], together[1])
