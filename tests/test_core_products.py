"""The recurrent product by column blocks (core/products.py): where it applies, and that it
changes nothing but speed."""
import os
import subprocess
import sys

import numpy as np
import pytest

from charrnn import blas
from charrnn.core import cells, layers, model, products
from charrnn.config.model import ModelConfig


def widths(blocks):
    return None if blocks is None else [b.shape[1] for b in blocks]


def test_plan_cuts_the_widest_power_of_two_blocks_within_the_limit():
    W = np.zeros((256, 1024), np.float32)
    lim = 3 << 18  # 786,432
    assert widths(products.plan(W, 16, lim)) == [128] * 8  # 16·256·192 would fit: the power of two below
    assert widths(products.plan(W, 8, lim)) == [256] * 4
    assert widths(products.plan(W, 4, lim)) == [512] * 2
    assert widths(products.plan(np.zeros((1024, 256)), 16, lim)) == [32] * 8  # the backward's Whᵀ
    assert widths(products.plan(np.zeros((768, 256)), 16, lim)) == [64] * 4  # the GRU's
    assert widths(products.plan(np.zeros((256, 1000)), 16, lim)) == [128] * 7 + [104]  # a ragged last block
    assert products.plan(W, 17, lim) is None  # more rows than MAX_ROWS: one packed product
    assert products.plan(W, 1, lim) is None  # one row: a matrix-vector product
    assert products.plan(np.zeros((256, 768)), 4, lim) is None  # 4·256·768 is within the limit: one product
    assert products.plan(np.zeros((2048, 4096)), 1, lim) is None  # one row, even where blocks would fit
    assert products.plan(np.zeros((2048, 512)), 16, lim) is None  # blocks would be 16 wide
    assert products.plan(W, 16, 0) is None and products.plan(W, 16) is None  # 0, the default: one product


def test_blocked_product_equals_the_one_product():
    r = np.random.default_rng(0)
    a, W = r.standard_normal((4, 40)), r.standard_normal((40, 200))
    blocks = products.plan(W, 4, 4 * 40 * 48)
    assert widths(blocks) == [32] * 6 + [8]
    out = np.full((4, 200), np.nan)
    assert products.matmul(a, W, blocks, out) is out
    np.testing.assert_allclose(out, a @ W, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_window_forward_and_backward_by_blocks_equal_them_by_one_product(cell):
    """Both directions of the recurrent product cut in blocks (float64): same loss, gradients
    and carried state as the one-product path the gradient checks prove."""
    H, B, T = 64, 4, 7
    G = cells.get(cell).gates * H
    cfg = ModelConfig(vocab_size=13, cell=cell, layers=2, hidden=H)
    lim = B * G * 32  # the backward's Whᵀ (G,H) in blocks of 32, the forward's Wh in wider ones
    assert products.plan(np.zeros((H, G)), B, lim) is not None and products.plan(np.zeros((G, H)), B, lim) is not None
    r = np.random.default_rng(3)
    params = model.init_params(cfg, r, np.float64)
    x, y = r.integers(0, 13, (T, B)), r.integers(0, 13, (T, B))
    state = [tuple(r.standard_normal((B, H)) for _ in s) for s in model.zero_state(cfg, B, np.float64)]
    blocked = window(params, cfg, x, y, state, block_limit=lim)
    single = window(params, cfg, x, y, state)
    assert blocked[0] == pytest.approx(single[0], rel=1e-13)
    for k in params:
        np.testing.assert_allclose(blocked[1][k], single[1][k], rtol=0, atol=1e-12, err_msg=k)
    for s_b, s_s in zip(blocked[2], single[2]):
        for a, b in zip(s_b, s_s):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cfg", [ModelConfig(vocab_size=13, cell="lstm", layers=2, hidden=64),
                                 ModelConfig(vocab_size=13, cell="gru", layers=2, hidden=64, embed=8),
                                 ModelConfig(vocab_size=13, cell="rnn", layers=2, hidden=64)],
                         ids=["lstm", "gru-embed", "rnn"])
def test_stepping_by_blocks_equals_the_window_forward(cfg):
    B, T = 4, 6
    lim = B * 64 * 32
    r = np.random.default_rng(4)
    params = model.init_params(cfg, r, np.float64)
    ids = r.integers(0, cfg.vocab_size, (T, B))
    state = model.zero_state(cfg, B, np.float64)
    logits, _, _ = model.forward(params, cfg, ids, state, block_limit=lim)
    stepper = model.Stepper(params, cfg, B=B, block_limit=lim)
    assert any(layer.input.blocks is not None for layer in stepper.layers)
    for t in range(T):
        np.testing.assert_allclose(stepper.step(ids[t]), logits[t], rtol=0, atol=1e-12)


def test_blocks_are_on_only_for_openblas_kernels_that_multiply_small_products_unpacked():
    name = blas.corename()
    if name is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS that reports its kernels")
    expected = blas.SMALL_PRODUCT if name.lower() in blas.UNPACKED_CORES else 0
    assert blas.product_limit() == expected
    # OpenBLAS built for many CPUs takes another kernel set when told to: Haswell packs every product
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell")
    out = subprocess.run([sys.executable, "-c", "from charrnn import blas; "
                          "print(blas.corename(), blas.product_limit())"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    if out[0] != "Haswell":
        pytest.skip(f"this OpenBLAS ({out[0]}) has one kernel set")
    assert out == ["Haswell", "0"]


def window(params, cfg, x, y, state, block_limit=0):
    """One window's (loss, grads, state), all B streams in one product each."""
    logits, new_state, cache = model.forward(params, cfg, x, state, None, block_limit)
    loss, dlogits = layers.softmax_cross_entropy(logits, y)
    return (loss, *model.backward(dlogits, cache, cfg)[:1], new_state)
