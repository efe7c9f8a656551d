"""Layers around the cells: embedding, recurrent layer, bidirectional wrapper, dropout, output.

Shapes: T time, B batch, N = T·B rows, D layer input width, E embed, H hidden, V vocab.

Each layer is a pair of pure functions, parameters in a dict ``p``:
    forward(p, x, state, ...) -> out, state, cache
    backward(dout, dstate, cache) -> dx, dstate0, grads      (grads keyed like p)
Every time-independent product runs once over all N rows; only cells loop over time.
"""
from typing import Callable, NamedTuple

import numpy as np

from . import cells


class RecurrentCache(NamedTuple):
    """The layer's input x (token ids or (T,B,D) floats), its Wx, its cell kind (a cells.Cell)
    and the cell's own cache."""
    x: np.ndarray
    Wx: np.ndarray
    kind: cells.Cell
    cell: NamedTuple


class BidirectionalCache(NamedTuple):
    """Each direction's RecurrentCache, the hidden width H, and the time reversal used."""
    fwd: RecurrentCache
    bwd: RecurrentCache
    H: int
    rev: Callable


# --------------------------------------------------------------------------- embedding

def embedding_forward(W, ids):
    """x_t = W[id_t]: a row gather, (T,B) ids -> (T,B,E)."""
    return W[ids]


def embedding_backward(dx, ids, V):
    """Scatter-add: dW[v] = sum of dx over every position whose id is v."""
    E = dx.shape[-1]
    flat = ids.reshape(-1)
    rows = dx.reshape(-1, E)
    # one (V,N)·(N,E) product beats np.add.at when V is small; a sort-and-reduce otherwise
    if V <= 512:
        onehot = np.zeros((V, flat.size), dtype=dx.dtype)  # (V,N)
        onehot[flat, np.arange(flat.size)] = 1
        return onehot @ rows
    order = np.argsort(flat, kind="stable")
    sorted_ids = flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    dW = np.zeros((V, E), dtype=dx.dtype)  # (V,E)
    dW[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return dW


# --------------------------------------------------------------------------- recurrent layer

def recurrent_forward(p, x, state, cfg, block_limit=0):
    """xp = x·Wx + b for all N rows at once, then the cell's time loop (cfg.cell; block_limit:
    core/products.py's column-block limit).

    Any per-column scale the cell wants (its input_scale) is folded into Wx and b here.
    ``x`` is (T,B,D) floats, or (T,B) token ids for a one-hot first layer, where
    x·Wx is the row gather Wx[id] (the rows of Wx act as the embedding).
    """
    kind = cells.get(cfg.cell)
    one_hot = x.dtype.kind in "iu"
    scale = kind.input_scale(p["Wh"].shape[0], p["Wx"].dtype) if kind.input_scale is not None else None
    W, b = cells.folded_input(p, scale, one_hot)
    if one_hot:
        xp = embedding_forward(W, x)  # (T,B,G)
    else:
        T, B, D = x.shape
        xp = (x.reshape(T * B, D) @ W).reshape(T, B, -1)  # (T,B,G)
        xp += b
    hs, state, cell_cache = kind.forward(xp, state, p, cfg, block_limit)
    return hs, state, RecurrentCache(x, p["Wx"], kind, cell_cache)


def recurrent_backward(dhs, dstate, cache):
    """Back through recurrent_forward: (dx, dstate0, grads); dx is None for token ids."""
    dxp, dstate0, grads = cache.kind.backward(dhs, dstate, cache.cell)
    dx, g = input_backward(dxp, cache.x, cache.Wx)
    grads.update(g)
    return dx, dstate0, grads


def recurrent_hidden_grads(dhs, dstate, cache):
    """(dx, dstate0, grads, dL/dh_t for every t): recurrent_backward and the cell's hidden
    gradients, for diagnostics (core/gradflow.py)."""
    dxp, dstate0, grads = cache.kind.backward(dhs, dstate, cache.cell)
    dH = cache.kind.hidden_grads(dhs, dstate, dxp, cache.cell)
    dx, g = input_backward(dxp, cache.x, cache.Wx)
    grads.update(g)
    return dx, dstate0, grads, dH


def input_backward(dxp, x, Wx):
    """Back through xp = x·Wx + b: (dx, {"Wx": dWx, "b": db}); dx is None for token ids."""
    T, B, G = dxp.shape
    rows = dxp.reshape(T * B, G)
    grads = {"b": rows.sum(axis=0)}
    if x.dtype.kind in "iu":
        grads["Wx"] = embedding_backward(dxp, x, Wx.shape[0])
        return None, grads  # token ids have no gradient
    D = x.shape[-1]
    grads["Wx"] = x.reshape(T * B, D).T @ rows
    return (rows @ Wx.T).reshape(T, B, D), grads


# --------------------------------------------------------------------------- bidirectional

def bidirectional_forward(p, x, state, cfg, lengths=None, block_limit=0):
    """out_t = [h→_t ; h←_t]: a forward pass and a pass over the time-reversed input.

    ``p`` holds two parameter dicts, p["fwd"] and p["bwd"]; ``state`` is (state_fwd, state_bwd).
    Only for tasks that see the whole sequence at once: h←_t has read x_t..x_{T-1}.
    lengths (B,): sequences padded at the end; each is reversed within its own length, so
    h← starts at its last real token and the padding stays behind the real steps.
    """
    rev = reversal(x.shape[:2], lengths)
    hf, sf, cf = recurrent_forward(p["fwd"], x, state[0], cfg, block_limit)
    hb, sb, cb = recurrent_forward(p["bwd"], rev(x), state[1], cfg, block_limit)
    out = np.concatenate([hf, rev(hb)], axis=-1)  # (T,B,2H)
    return out, (sf, sb), BidirectionalCache(cf, cb, hf.shape[-1], rev)


def reversal(shape, lengths=None):
    """A function reversing the time axis of (T,B,…) arrays, per sequence when lengths are given.

    rev[t, b] = len_b - 1 - t for t < len_b, else t: its own inverse, so it maps both ways.
    """
    if lengths is None:
        return lambda a: a[::-1]
    T, B = shape
    t = np.arange(T)[:, None]  # (T,1)
    lengths = np.asarray(lengths)[None, :]  # (1,B)
    idx = np.where(t < lengths, lengths - 1 - t, t)  # (T,B)
    cols = np.arange(B)[None, :]  # (1,B)
    return lambda a: a[idx, cols]


def bidirectional_backward(dout, dstate, cache):
    """As recurrent_backward, both directions; dx is None for token ids."""
    H, rev = cache.H, cache.rev
    dsf, dsb = dstate if dstate is not None else (None, None)
    dxf, d0f, gf = recurrent_backward(np.ascontiguousarray(dout[..., :H]), dsf, cache.fwd)
    dxb, d0b, gb = recurrent_backward(np.ascontiguousarray(rev(dout[..., H:])), dsb, cache.bwd)
    dx = None if dxf is None else dxf + rev(dxb)
    return dx, (d0f, d0b), {"fwd": gf, "bwd": gb}


# --------------------------------------------------------------------------- dropout

def dropout_mask(shape, p_drop, rng, dtype=np.float32):
    """Inverted dropout mask: 0 with probability p, else 1/(1-p), so E[mask] = 1."""
    keep = rng.random(shape, dtype=np.float32) >= p_drop  # (…)
    return keep.astype(dtype) * np.dtype(dtype).type(1.0 / (1.0 - p_drop))


def dropout_forward(x, mask):
    """y = x ⊙ mask; mask None means evaluation (identity)."""
    return x if mask is None else x * mask


def dropout_backward(dy, mask):
    return dy if mask is None else dy * mask


# --------------------------------------------------------------------------- output and loss

def output_forward(p, hs):
    """y_t = V·h_t + c for all N rows in one product: (T,B,H) -> (T,B,V) logits."""
    T, B, H = hs.shape
    logits = (hs.reshape(T * B, H) @ p["V"]).reshape(T, B, -1)  # (T,B,V)
    logits += p["c"]
    return logits, hs


def output_backward(dlogits, hs, p):
    T, B, V = dlogits.shape
    H = hs.shape[-1]
    rows = dlogits.reshape(T * B, V)
    grads = {"V": hs.reshape(T * B, H).T @ rows, "c": rows.sum(axis=0)}
    dhs = (rows @ p["V"].T).reshape(T, B, H)
    return dhs, grads


def log_softmax(logits):
    """log softmax over the last axis, stable: subtract the max before exp."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def token_nll(logits, y):
    """-log softmax(z_t)[y_t] for every row: logsumexp(z_t) - z_t[y_t], in the logits' dtype.

    Returns the (N,) NLLs, and exp(z - max) with its (N,1) row sums for a caller that
    goes on to the softmax.
    """
    z = logits.reshape(-1, logits.shape[-1])
    z = z - z.max(axis=1, keepdims=True)  # (N,V)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)  # (N,1)
    return np.log(s[:, 0]) - z[np.arange(z.shape[0]), y.reshape(-1)], e, s


def nll_and_grad(logits, y, weights, scale):
    """(Σ w_t·NLL_t in float64, its gradient times ``scale``) over all positions, NLL_t =
    -log softmax(z_t)[y_t]; w = 1 without weights. A shard of a window (core/shards.py) takes
    the whole window's scale, 1/Σw, so the shards' gradients add up to the window's mean's."""
    N = y.size
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    nll, e, s = token_nll(logits, y)  # (N,), (N,V) exp(z - max), (N,1) its row sums
    y = y.reshape(-1)
    total = float(nll.sum(dtype=np.float64) if w is None else (w * nll).sum())
    e /= s  # softmax
    e[np.arange(N), y] -= 1
    if w is None:
        e *= e.dtype.type(scale)
    else:
        e *= (w * scale).astype(e.dtype)[:, None]
    return total, e.reshape(logits.shape)


def softmax_cross_entropy(logits, y, weights=None):
    """L = -Σ w_t log softmax(z_t)[y_t] / Σ w_t over all T·B positions (w = 1: the plain mean).

    Returns (L, dL/dlogits). Weights let a task count some positions more than others.
    """
    total = float(y.size) if weights is None else float(np.asarray(weights, dtype=np.float64).sum())
    nll, grad = nll_and_grad(logits, y, weights, 1.0 / total)
    return nll / total, grad
