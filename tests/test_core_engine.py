"""The engine's behaviour: stepping equals the window, it learns, optimizers and clipping work."""
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from charrnn import blas
from charrnn.core import layers, model, optim, shards

from .gradcheck import cell_cases
from charrnn.config.model import ModelConfig

CONFIGS = [
    ModelConfig(vocab_size=11, cell="rnn", activation="tanh", layers=2, hidden=8),
    ModelConfig(vocab_size=11, cell="rnn", activation="relu", layers=1, hidden=8, embed=4),
    ModelConfig(vocab_size=11, cell="rnn", activation="sigmoid", layers=1, hidden=8),
    ModelConfig(vocab_size=11, cell="lstm", layers=2, hidden=8, embed=5),
    ModelConfig(vocab_size=11, cell="gru", layers=3, hidden=8),
]
IDS = [f"{c.cell}-{c.activation}-{c.layers}x{c.hidden}-e{c.embed}" for c in CONFIGS]


# the Stepper's paths: a one-hot first layer gathers rows, a layer fed by another takes one
# product with the stacked [Wx; Wh], the GRU keeps two products
STEP_CONFIGS = CONFIGS + [ModelConfig(vocab_size=11, cell="lstm", layers=3, hidden=8),
                          ModelConfig(vocab_size=11, cell="gru", layers=2, hidden=8, embed=4)] + [
    ModelConfig(vocab_size=11, cell=c, activation=a, layers=2, hidden=8, embed=e)  # every cell of the registry
    for c, a in cell_cases() for e in (0, 4)]


@pytest.mark.exact
@pytest.mark.parametrize("cfg", STEP_CONFIGS, ids=[f"{c.cell}-{c.activation}-{c.layers}x{c.hidden}-e{c.embed}"
                                                   for c in STEP_CONFIGS])
def test_stepping_one_token_at_a_time_equals_the_window_forward(cfg):
    r = np.random.default_rng(1)
    params = model.init_params(cfg, r, np.float64)
    T, B = 9, 3
    ids = r.integers(0, cfg.vocab_size, (T, B))
    state = [tuple(r.standard_normal((B, cfg.hidden)) for _ in s) for s in model.zero_state(cfg, B, np.float64)]
    logits, final, _ = model.forward(params, cfg, ids, state)
    stepper = model.Stepper(params, cfg, B=B, state=state)
    for t in range(T):
        np.testing.assert_allclose(stepper.step(ids[t]), logits[t], rtol=0, atol=1e-12)
    for s_win, s_step in zip(final, stepper.state):
        for a, b in zip(s_win, s_step):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_blas_threads_sets_the_count_within_the_block_and_restores_it():
    setter = blas._set_local()
    if setter is None:
        pytest.skip("this numpy's BLAS is not an OpenBLAS that can change its thread count")
    with blas.threads(3) as applied:
        assert applied
        assert setter(3) == 3  # the setter answers with the count it replaces
    assert setter(1) == 1  # the count pinned at import (charrnn/__init__.py) is back


def test_truncated_bptt_windows_chain_like_one_long_window():
    """Forward over two windows carrying the state equals forward over the joined window."""
    cfg = CONFIGS[3]
    r = np.random.default_rng(2)
    params = model.init_params(cfg, r, np.float64)
    ids = r.integers(0, cfg.vocab_size, (12, 2))
    s0 = model.zero_state(cfg, 2, np.float64)
    whole, _, _ = model.forward(params, cfg, ids, s0)
    a, s1, _ = model.forward(params, cfg, ids[:5], s0)
    b, _, _ = model.forward(params, cfg, ids[5:], s1)
    np.testing.assert_allclose(np.concatenate([a, b]), whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_initial_loss_is_about_ln_vocab(cfg):
    r = np.random.default_rng(3)
    params = model.init_params(cfg, r)
    x, y = r.integers(0, cfg.vocab_size, (20, 8)), r.integers(0, cfg.vocab_size, (20, 8))
    loss, _, _ = shards.loss_and_grads(params, cfg, x, y, model.zero_state(cfg, 8))
    assert abs(loss - math.log(cfg.vocab_size)) < 0.15 * math.log(cfg.vocab_size)


SENTENCE = "the quick brown fox jumps over the lazy dog. "


def overfit(cfg, steps, lr):
    chars = sorted(set(SENTENCE))
    ids = np.array([chars.index(c) for c in SENTENCE * 3], dtype=np.int32)
    x, y = ids[:-1, None], ids[1:, None]  # (T,1): the whole text as one window
    r = np.random.default_rng(0)
    params = model.init_params(cfg, r)
    opt = optim.make_optimizer("adam")
    st = opt.init_state(params)
    for _ in range(steps):
        loss, grads, _ = shards.loss_and_grads(params, cfg, x, y, model.zero_state(cfg, 1))
        optim.clip_global_norm(grads, 5.0)
        opt.step(params, grads, st, lr)
    return shards.loss_and_grads(params, cfg, x, y, model.zero_state(cfg, 1))[0]


@pytest.mark.parametrize("cell,act", cell_cases())
def test_every_cell_overfits_one_sentence(cell, act):
    V = len(set(SENTENCE))
    cfg = ModelConfig(vocab_size=V, cell=cell, activation=act, layers=1, hidden=64)
    lr = 3e-3 if act == "sigmoid" else 1e-2
    assert overfit(cfg, 300, lr) < 0.05


def quadratic_problem():
    r = np.random.default_rng(4)
    A = r.standard_normal((6, 6))
    target = r.standard_normal(6)
    params = {"w": np.zeros(6), "W": np.zeros((6, 6))}

    def loss_and_grads():
        e = params["W"] @ A[0] + params["w"] - target
        return float(e @ e), {"w": 2 * e, "W": 2 * np.outer(e, A[0])}

    return params, loss_and_grads


@pytest.mark.parametrize("name,lr", [("sgd", 0.01), ("adam", 0.05), ("rmsprop", 0.01), ("adagrad", 0.3)])
def test_every_optimizer_lowers_the_loss(name, lr):
    params, f = quadratic_problem()
    opt = optim.make_optimizer(name)
    state = opt.init_state(params)
    first = f()[0]
    for _ in range(100):
        _, g = f()
        opt.step(params, g, state, lr)
    assert f()[0] < 0.05 * first
    assert int(state["t"]) == 100 and all(isinstance(v, np.ndarray) for v in state.values())


@pytest.mark.parametrize("beta2", [0.999, 0.99])
def test_adam_takes_its_beta2_and_follows_the_equations(beta2):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 4))
    gs = [rng.standard_normal((3, 4)) for _ in range(3)]
    params = {"W": p0.copy()}
    opt = optim.make_optimizer("adam", beta2=beta2)
    state = opt.init_state(params)
    for g in gs:
        opt.step(params, {"W": g.copy()}, state, 1e-2)
    m, v, p = np.zeros_like(p0), np.zeros_like(p0), p0.copy()
    for t, g in enumerate(gs, start=1):  # Kingma & Ba, Algorithm 1
        m = 0.9 * m + 0.1 * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - 1e-2 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + 1e-8)
    np.testing.assert_allclose(params["W"], p, rtol=1e-12, atol=1e-12)


def test_clip_returns_the_exact_pre_clip_norm_and_clips_to_the_threshold():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    norm, clipped = optim.clip_global_norm(g, 1.0)
    assert norm == 5.0 and clipped
    assert math.isclose(optim.global_norm(g), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(g["a"], [0.6, 0.0])
    norm, clipped = optim.clip_global_norm(g, 2.0)
    assert not clipped and math.isclose(norm, 1.0) and math.isclose(optim.global_norm(g), 1.0)
    nan = {"a": np.array([np.nan])}
    norm, clipped = optim.clip_global_norm(nan, 1.0)
    assert math.isnan(norm) and not clipped


def test_clip_values_is_per_element():
    g = {"a": np.array([-7.0, 0.5, 9.0])}
    optim.clip_values(g, 5.0)
    np.testing.assert_array_equal(g["a"], [-5.0, 0.5, 5.0])


def test_learning_rate_schedules():
    lr = optim.learning_rate
    assert lr(1.0, "constant", 0.7, 500) == 1.0
    assert [lr(1.0, "step", p, 500) for p in (0.1, 0.3, 0.6, 0.9)] == [1.0, 0.5, 0.25, 0.125]
    assert lr(1.0, "cosine", 0.0, 500) == 1.0 and abs(lr(1.0, "cosine", 1.0, 500)) < 1e-12
    assert math.isclose(lr(1.0, "cosine", 0.5, 500), 0.5)
    assert lr(1.0, "cosine", 0.0, 0, warmup=10) == 0.1 and lr(1.0, "constant", 0.0, 9, warmup=10) == 1.0


def test_forget_gate_bias_starts_at_forget_bias_and_the_rest_at_zero():
    assert ModelConfig(vocab_size=5).forget_bias == 0.0  # as `charrnn train`'s default
    cfg = ModelConfig(vocab_size=5, cell="lstm", layers=2, hidden=4, forget_bias=1.0)
    p = model.init_params(cfg, np.random.default_rng(0))
    for l in range(2):
        b = p[f"layers.{l}.b"]
        assert np.all(b[4:8] == 1.0) and np.all(b[:4] == 0) and np.all(b[8:] == 0)
        Wh = p[f"layers.{l}.Wh"].astype(np.float64)
        for k in range(4):  # each gate block orthogonal
            blk = Wh[:, 4 * k:4 * k + 4]
            np.testing.assert_allclose(blk.T @ blk, np.eye(4), atol=1e-6)


def test_dropout_is_off_at_evaluation():
    cfg = ModelConfig(vocab_size=5, cell="gru", layers=2, hidden=4, dropout=0.5)
    r = np.random.default_rng(0)
    params = model.init_params(cfg, r)
    ids = r.integers(0, 5, (4, 2))
    a, _, _ = model.forward(params, cfg, ids, model.zero_state(cfg, 2))
    b, _, _ = model.forward(params, cfg, ids, model.zero_state(cfg, 2))
    assert np.array_equal(a, b)
    c, _, _ = model.forward(params, cfg, ids, model.zero_state(cfg, 2), model.make_masks(cfg, 4, 2, r))
    assert not np.allclose(a, c)


def test_the_core_imports_neither_click_nor_rich():
    code = ("import importlib, pkgutil, sys, charrnn.core as core;"
            "names = [m.name for m in pkgutil.iter_modules(core.__path__)];"
            "[importlib.import_module('charrnn.core.' + n) for n in names];"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich', 'tqdm'));"
            "print(len(names), ','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, bad = (out.stdout.split() + [""])[:2]
    assert int(count) >= 9 and bad == ""  # every core module, products.py and sampling.py included


@pytest.mark.exact
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[3], CONFIGS[4]], ids=["rnn", "lstm", "gru"])
def test_data_parallel_workers_give_the_same_loss_gradients_and_state(cfg):
    """Splitting the shards between 1 to 5 threads changes nothing, bit for bit; and the
    sharded window is the plain window's, to float64 rounding."""
    r = np.random.default_rng(5)
    params = model.init_params(cfg, r, np.float64)
    T, B = 7, 40  # three shards: 16, 16 and 8 streams
    x, y = r.integers(0, cfg.vocab_size, (T, B)), r.integers(0, cfg.vocab_size, (T, B))
    state = [tuple(r.standard_normal((B, cfg.hidden)) for _ in s) for s in model.zero_state(cfg, B, np.float64)]
    l1, g1, s1 = shards.loss_and_grads(params, cfg, x, y, state)
    for n in (2, 3, 5):
        ln, gn, sn = shards.loss_and_grads(params, cfg, x, y, state, workers=n)
        assert ln == l1
        for k in g1:
            assert np.array_equal(gn[k], g1[k]), (n, k)
        for a, b in zip(s1, sn):
            for u, v in zip(a, b):
                assert np.array_equal(u, v), n
    logits, s0, cache = model.forward(params, cfg, x, state)
    l0, dlogits = layers.softmax_cross_entropy(logits, y)
    g0, _ = model.backward(dlogits, cache, cfg)
    assert l1 == pytest.approx(l0, rel=1e-13)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], rtol=1e-10, atol=1e-13, err_msg=k)
    for a, b in zip(s0, s1):
        for u, v in zip(a, b):
            np.testing.assert_allclose(v, u, rtol=0, atol=1e-13)


@pytest.mark.parametrize("B,size", [(1, 1), (2, 1), (7, 4), (31, 16), (32, 16), (33, 16), (100, 16)])
def test_a_batch_is_cut_into_shards_by_its_size_alone(B, size):
    cuts = shards.bounds(B)
    assert shards.size(B) == size
    assert cuts[0][0] == 0 and cuts[-1][1] == B
    assert all(hi - lo == size for lo, hi in cuts[:-1]) and 0 < cuts[-1][1] - cuts[-1][0] <= size
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))


@given(st.integers(1, 40), st.data())
def test_the_gradient_tree_sums_alike_however_the_shards_are_split(n, data):
    """Any cut of the shards into contiguous runs, each summed as far as it can be and handed
    on, finishes to the same bits as one run holding every shard (float32 sums, whose order
    shows in the last bits)."""
    values = np.random.default_rng(n).standard_normal((n, 5)).astype(np.float32) * \
        np.float32(10.0) ** np.arange(-3, 2, dtype=np.float32)  # (n,5), magnitudes apart
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=n - 1))) if n > 1 else []
    runs = list(zip([0] + cuts, cuts + [n]))

    def add(a, b):
        return a + b

    def run(first, last):
        nodes = []
        for s in range(first, last):
            shards.push(nodes, (0, s, values[s]), n, add)
        assert len(nodes) == shards.node_count(first, last, n)
        return nodes

    one = shards.total([run(0, n)], n, add)
    assert np.array_equal(shards.total([run(*r) for r in runs], n, add), one)
    assert one == pytest.approx(values.sum(axis=0, dtype=np.float64), rel=1e-5)


def test_evaluate_sums_the_negative_log_likelihood():
    cfg = CONFIGS[3]
    r = np.random.default_rng(6)
    params = model.init_params(cfg, r, np.float64)
    x, y = r.integers(0, cfg.vocab_size, (5, 3)), r.integers(0, cfg.vocab_size, (5, 3))
    s0 = model.zero_state(cfg, 3, np.float64)
    nll, _ = model.evaluate(params, cfg, x, y, s0)
    logits, _, _ = model.forward(params, cfg, x, s0)
    lp = layers.log_softmax(logits)
    assert abs(nll + lp[np.arange(5)[:, None], np.arange(3)[None, :], y].sum()) < 1e-10
    mean, _, _ = shards.loss_and_grads(params, cfg, x, y, s0)
    assert abs(nll / 15 - mean) < 1e-12


@pytest.mark.exact
def test_the_validation_figure_is_the_same_for_any_number_of_workers():
    """Validation reads the streams shard by shard and sums in shard order: under MPI rank 0
    validates alone, on one machine every worker helps, and the checkpoints must agree."""
    from charrnn.analysis import likelihood
    cfg = CONFIGS[3]
    params = model.init_params(cfg, np.random.default_rng(8))  # float32, as training validates
    tokens = np.random.default_rng(9).integers(0, cfg.vocab_size, 3001)
    one = likelihood.stream_nll(params, cfg, tokens, batch=40, seq_len=20)
    assert one[1] == 3000
    for n in (2, 3, 4):
        assert likelihood.stream_nll(params, cfg, tokens, batch=40, seq_len=20, workers=n) == one


@pytest.mark.parametrize("n", [2, 3, 17, 101, 250])
def test_stream_nll_scores_every_token_after_the_first(n):
    from charrnn.analysis import likelihood
    cfg = CONFIGS[4]
    r = np.random.default_rng(7)
    params = model.init_params(cfg, r, np.float64)
    tokens = r.integers(0, cfg.vocab_size, n)
    nll, count = likelihood.stream_nll(params, cfg, tokens, batch=4, seq_len=10, workers=2)
    assert count == n - 1
    one, _ = likelihood.stream_nll(params, cfg, tokens, batch=1, seq_len=1000)  # one stream, full context
    assert 0.5 * one < nll < 1.5 * one


def test_sampling_refuses_non_finite_output():
    from charrnn.core.sampling import NonFiniteOutput, Sampler, distribution
    cfg = CONFIGS[3]
    params = model.init_params(cfg, np.random.default_rng(0))
    params["out.c"][0] = np.inf
    s = Sampler(model.Stepper(params, cfg), np.random.default_rng(0))
    s.feed(1)
    with pytest.raises(NonFiniteOutput):
        s.draw()
    with pytest.raises(NonFiniteOutput):
        distribution(np.array([np.nan, 1.0]), top_k=1)


def test_a_sample_without_a_prime_starts_after_a_line_break():
    """`charrnn sample` and the trainer's preview both start here: the zero state after an
    arbitrary token is close to uniform in a trained model, and a rare first draw derails it."""
    from charrnn.core.sampling import start_token
    rng = np.random.default_rng(0)
    assert start_token(["a", "\n", "b"], rng) == 1
    drawn = [start_token(["a", "b", "c"], np.random.default_rng(s)) for s in range(20)]
    assert set(drawn) == {0, 1, 2}  # no line break: a random token
