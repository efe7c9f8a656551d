"""Recurrent cells over a window of time steps: vanilla RNN, LSTM, GRU.

Shapes: T time, B batch, H hidden, G = k·H fused gate width (k = 1 rnn, 4 lstm, 3 gru).

Every cell takes the time-independent input projection ``xp = x·Wx + b`` already
computed for all T·B rows in one matrix product (see layers.py); only the
recurrent product ``h·Wh`` stays inside the time loop. Arrays are time-major,
so ``hs[t]`` is one contiguous (B, H) block that the matrix product writes into.

    forward(xp, state, p, limit)   -> hs, state, cache     (cache: RNNCache, LSTMCache, GRUCache)
    backward(dhs, dstate, cache)   -> dxp, dstate0, grads  (grads: dWh, and dbh for gru)

The per-step functions are shared by the window forward and by ``step`` (sampling),
so stepping one token at a time computes exactly what the window computes. The recurrent
products go through products.matmul, which at a few rows may cut Wh into column blocks of
at most ``limit`` (products.plan; 0, the default, is one product).
"""
import functools
from typing import NamedTuple

import numpy as np

from . import products


class RNNCache(NamedTuple):
    """What rnn_backward reads: every h_t (T,B,H), h_0 and Wh."""
    act: str
    hs: np.ndarray
    h0: np.ndarray
    Wh: np.ndarray
    limit: int = 0

    cs = None  # no cell state


class LSTMCache(NamedTuple):
    """The activated gates i f g o (T,B,4H), c_t, tanh(c_t), h_t (T,B,H) each, the initial state, Wh."""
    acts: np.ndarray
    cs: np.ndarray
    tcs: np.ndarray
    hs: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    Wh: np.ndarray
    limit: int = 0


class GRUCache(NamedTuple):
    """The gates z r n (T,B,3H), Whn·h + bh and h_t (T,B,H) each, h_0, Wh."""
    acts: np.ndarray
    hns: np.ndarray
    hs: np.ndarray
    h0: np.ndarray
    Wh: np.ndarray
    limit: int = 0

    cs = None  # no cell state

KINDS = ("rnn", "lstm", "gru")
ACTIVATIONS = ("tanh", "relu", "sigmoid")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STATE_NAMES = {"rnn": ("h",), "lstm": ("h", "c"), "gru": ("h",)}


def _sigmoid_(a):
    """In place: sigmoid(a) = 0.5·tanh(0.5·a) + 0.5 (one tanh, no exp overflow)."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


# --------------------------------------------------------------------------- vanilla RNN

def rnn_step(xp_t, h, Wh, act, out, blocks=None):
    """h_t = act(Wx·x_t + Wh·h_{t-1} + b), act in {tanh, relu, sigmoid}; xp_t = Wx·x_t + b."""
    products.matmul(h, Wh, blocks, out)
    out += xp_t
    return rnn_activate(out, act)


def rnn_activate(out, act):
    """In place: out = act(out), for a pre-activation summed elsewhere (model.Stepper)."""
    if act == "tanh":
        np.tanh(out, out=out)
    elif act == "relu":
        np.maximum(out, 0, out=out)
    else:
        _sigmoid_(out)
    return out


def rnn_forward(xp, state, p, act="tanh", limit=0):
    (h0,) = state
    T, B, H = xp.shape
    Wh = p["Wh"]
    hs = np.empty((T, B, H), dtype=xp.dtype)  # (T,B,H)
    h = h0
    blocks = products.plan(Wh, B, limit)
    for t in range(T):
        h = rnn_step(xp[t], h, Wh, act, hs[t], blocks)
    return hs, (h.copy(),), RNNCache(act, hs, h0, Wh, limit)


def rnn_backward(dhs, dstate, cache):
    act, hs, h0, Wh = cache.act, cache.hs, cache.h0, cache.Wh
    T, B, H = hs.shape
    dxp = np.empty_like(hs)  # (T,B,H)
    dh = dstate[0].copy() if dstate is not None else np.zeros_like(h0)  # (B,H) reused every step
    WhT = np.ascontiguousarray(Wh.T)
    blocks = products.plan(WhT, B, cache.limit)
    for t in reversed(range(T)):
        dh += dhs[t]
        h = hs[t]
        da = dxp[t]
        if act == "tanh":  # tanh' = 1 - h²
            np.multiply(h, h, out=da)
            np.subtract(1, da, out=da)
            da *= dh
        elif act == "relu":  # relu' = [h > 0]
            np.multiply(dh, h > 0, out=da)
        else:  # sigmoid' = h(1 - h)
            np.subtract(1, h, out=da)
            da *= h
            da *= dh
        products.matmul(da, WhT, blocks, dh)
    return dxp, (dh,), {"Wh": _dWh(hs, h0, dxp)}


# --------------------------------------------------------------------------- LSTM

# The fused columns are ordered i f g o, and sigmoid(x) = 0.5·tanh(0.5·x) + 0.5 lets one tanh
# cover all four blocks, with these per-column scales (×0.5 is exact, so nothing changes
# numerically).
@functools.lru_cache(maxsize=16)
def _lstm_scales(H, dtype):
    pre = np.full(4 * H, 0.5, dtype=dtype)  # (4H,) scale before tanh
    pre[2 * H:3 * H] = 1.0  # g is a plain tanh
    off = np.where(pre == 0.5, 0.5, 0.0).astype(dtype)  # (4H,) offset after tanh
    return pre, off


def input_scale(kind, H, dtype):
    """The per-column factor a cell wants folded into xp = x·Wx + b (LSTM: 0.5 on i f o), or None."""
    return _lstm_scales(H, np.dtype(dtype))[0] if kind == "lstm" else None


def lstm_step(xps_t, h, c, Whs, a, c_out, tc_out, h_out, tmp, blocks=None):
    """One LSTM step, gates fused in one product, columns ordered i f g o:

        [i f g o] = Wx·x_t + Wh·h_{t-1} + b
        i, f, o = sigmoid(i), sigmoid(f), sigmoid(o);  g = tanh(g)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    Takes xps_t and Whs with the sigmoid columns halved (input_scale). Writes the activated gates into
    a (B,4H), and c_t, tanh(c_t), h_t into the out slots; tmp is (B,H) scratch; blocks are
    Whs's (products.plan).
    """
    products.matmul(h, Whs, blocks, a)
    a += xps_t
    return lstm_activate(a, c, c_out, tc_out, h_out, tmp)


def lstm_activate(a, c, c_out, tc_out, h_out, tmp):
    """The rest of lstm_step once a holds the halved pre-activation (model.Stepper sums it in one
    product); h_out may be the h_{t-1} buffer, which the product has already read."""
    H = c.shape[-1]
    np.tanh(a, out=a)
    pre, off = _lstm_scales(H, a.dtype)  # cached: no allocation per step
    a *= pre
    a += off
    np.multiply(a[:, H:2 * H], c, out=c_out)  # f ⊙ c_{t-1}
    np.multiply(a[:, :H], a[:, 2 * H:3 * H], out=tmp)  # i ⊙ g
    c_out += tmp
    np.tanh(c_out, out=tc_out)
    np.multiply(a[:, 3 * H:], tc_out, out=h_out)
    return h_out, c_out


def lstm_forward(xps, state, p, limit=0):
    """The window forward; xps = (x·Wx + b) ⊙ input_scale, as the layer computes it."""
    h0, c0 = state
    T, B, G = xps.shape
    H = G // 4
    Whs = p["Wh"] * input_scale("lstm", H, xps.dtype)
    acts = np.empty((T, B, G), dtype=xps.dtype)  # (T,B,4H) activated gates
    cs = np.empty((T, B, H), dtype=xps.dtype)  # (T,B,H)
    tcs = np.empty((T, B, H), dtype=xps.dtype)  # (T,B,H) tanh(c)
    hs = np.empty((T, B, H), dtype=xps.dtype)  # (T,B,H)
    tmp = np.empty((B, H), dtype=xps.dtype)  # (B,H)
    h, c = h0, c0
    blocks = products.plan(Whs, B, limit)
    for t in range(T):
        h, c = lstm_step(xps[t], h, c, Whs, acts[t], cs[t], tcs[t], hs[t], tmp, blocks)
    return hs, (h.copy(), c.copy()), LSTMCache(acts, cs, tcs, hs, h0, c0, p["Wh"], limit)


def lstm_backward(dhs, dstate, cache):
    """Consumes the cache: each step's activated gates are overwritten by their gradients, which
    become the returned dxp (no (T,B,4H) array is allocated); a cache serves one backward."""
    acts, cs, tcs, hs, h0, c0, Wh = cache.acts, cache.cs, cache.tcs, cache.hs, cache.h0, cache.c0, cache.Wh
    T, B, G = acts.shape
    H = G // 4
    K = np.multiply(tcs, tcs)  # (T,B,H) once over all rows, in place:
    np.subtract(1, K, out=K)
    K *= acts[..., 3 * H:]  # dc_t/dh_t = o ⊙ (1 - tanh²(c_t))
    if dstate is None:
        dh, dc = np.zeros_like(h0), np.zeros_like(c0)  # (B,H) each, reused every step
    else:
        dh, dc = dstate[0].copy(), dstate[1].copy()
    WhT = np.ascontiguousarray(Wh.T)
    blocks = products.plan(WhT, B, cache.limit)
    raw = np.empty((B, 4, H), dtype=acts.dtype)  # (B,4,H) dL/d(gate) after the nonlinearity
    raw2 = raw.reshape(B, G)
    d = np.empty((B, G), dtype=acts.dtype)  # (B,4H) the nonlinearities' derivatives
    tmp = np.empty((B, H), dtype=acts.dtype)  # (B,H)
    for t in reversed(range(T)):
        a = acts[t]  # (B,4H) i f g o, read here for the last time
        dh += dhs[t]
        np.multiply(dh, K[t], out=tmp)
        dc += tmp  # dc_t
        np.multiply(dc, a[:, 2 * H:3 * H], out=raw[:, 0])  # di = dc⊙g
        np.multiply(dc, cs[t - 1] if t else c0, out=raw[:, 1])  # df = dc⊙c_{t-1}
        np.multiply(dc, a[:, :H], out=raw[:, 2])  # dg = dc⊙i
        np.multiply(dh, tcs[t], out=raw[:, 3])  # do = dh⊙tanh(c_t)
        dc *= a[:, H:2 * H]  # carried to t-1 through f
        np.subtract(1, a, out=d)
        d *= a  # sigmoid' = s(1-s)
        dg = d[:, 2 * H:3 * H]
        np.multiply(a[:, 2 * H:3 * H], a[:, 2 * H:3 * H], out=dg)
        np.subtract(1, dg, out=dg)  # tanh' = 1 - g²
        np.multiply(raw2, d, out=a)  # dxp_t = dL/d(pre-activation), where the gates were
        products.matmul(a, WhT, blocks, dh)
    dxp = acts
    return dxp, (dh, dc), {"Wh": _dWh(hs, h0, dxp)}


# --------------------------------------------------------------------------- GRU

def gru_step(xp_t, h, Wh, bh, a, hn_out, h_out, blocks=None):
    """One GRU step in the "reset after" form of PyTorch and cuDNN, gates ordered z r n:

        z = sigmoid(Wxz·x_t + Whz·h_{t-1} + bz)
        r = sigmoid(Wxr·x_t + Whr·h_{t-1} + br)
        n = tanh(Wxn·x_t + bn + r ⊙ (Whn·h_{t-1} + bh))
        h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

    Applying r after the product lets all three recurrent products fuse into one h·Wh.
    Writes [z r n] into a (B,3H), Whn·h + bh into hn_out, h_t into h_out; blocks are Wh's
    (products.plan).
    """
    H = h.shape[-1]
    products.matmul(h, Wh, blocks, a)
    zr, n = a[:, :2 * H], a[:, 2 * H:]
    np.add(n, bh, out=hn_out)
    zr += xp_t[:, :2 * H]
    _sigmoid_(zr)
    z, r = a[:, :H], a[:, H:2 * H]
    np.multiply(r, hn_out, out=n)
    n += xp_t[:, 2 * H:]
    np.tanh(n, out=n)
    # h_t = n + z ⊙ (h_{t-1} - n)
    np.subtract(h, n, out=h_out)
    h_out *= z
    h_out += n
    return h_out


def gru_forward(xp, state, p, limit=0):
    (h0,) = state
    T, B, G = xp.shape
    H = G // 3
    Wh, bh = p["Wh"], p["bh"]
    acts = np.empty((T, B, G), dtype=xp.dtype)  # (T,B,3H) z r n
    hns = np.empty((T, B, H), dtype=xp.dtype)  # (T,B,H) Whn·h + bh
    hs = np.empty((T, B, H), dtype=xp.dtype)  # (T,B,H)
    h = h0
    blocks = products.plan(Wh, B, limit)
    for t in range(T):
        h = gru_step(xp[t], h, Wh, bh, acts[t], hns[t], hs[t], blocks)
    return hs, (h.copy(),), GRUCache(acts, hns, hs, h0, Wh, limit)


def gru_backward(dhs, dstate, cache):
    acts, hns, hs, h0, Wh = cache.acts, cache.hns, cache.hs, cache.h0, cache.Wh
    T, B, G = acts.shape
    H = G // 3
    dxp = np.empty_like(acts)  # (T,B,3H) grads of the input pre-activations
    dhp = np.empty_like(acts)  # (T,B,3H) grads of h·Wh (differs from dxp in the n block)
    dh = dstate[0].copy() if dstate is not None else np.zeros_like(h0)
    WhT = np.ascontiguousarray(Wh.T)
    blocks = products.plan(WhT, B, cache.limit)
    tmp = np.empty((B, H), dtype=acts.dtype)  # (B,H)
    for t in reversed(range(T)):
        dh += dhs[t]
        a, dx, dp = acts[t], dxp[t], dhp[t]
        z, r, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        h_prev = hs[t - 1] if t > 0 else h0
        dz, dr, dn = dx[:, :H], dx[:, H:2 * H], dx[:, 2 * H:]
        # dn = dh ⊙ (1 - z) ⊙ (1 - n²)
        np.multiply(n, n, out=tmp)
        np.subtract(1, tmp, out=tmp)
        np.subtract(1, z, out=dn)
        dn *= dh
        dn *= tmp
        # dz = dh ⊙ (h_{t-1} - n) ⊙ z(1 - z)
        np.subtract(h_prev, n, out=dz)
        dz *= dh
        np.subtract(1, z, out=tmp)
        tmp *= z
        dz *= tmp
        # dr = dn ⊙ hn ⊙ r(1 - r)
        np.multiply(dn, hns[t], out=dr)
        np.subtract(1, r, out=tmp)
        tmp *= r
        dr *= tmp
        dp[:, :2 * H] = dx[:, :2 * H]
        np.multiply(dn, r, out=dp[:, 2 * H:])
        dh *= z  # the direct path h_{t-1} -> h_t
        dh += products.matmul(dp, WhT, blocks, tmp)
    dWh = _dWh(hs, h0, dhp)
    dbh = dhp[:, :, 2 * H:].sum(axis=(0, 1))
    return dxp, (dh,), {"Wh": dWh, "bh": dbh}


# --------------------------------------------------------------------------- dispatch

def _dWh(hs, h0, dxp):
    """dWh = Σ_t h_{t-1}ᵀ·dxp_t as two products, without building the shifted copy of hs."""
    T, B, H = hs.shape
    G = dxp.shape[-1]
    dWh = hs[:-1].reshape((T - 1) * B, H).T @ dxp[1:].reshape((T - 1) * B, G)  # (H,G)
    dWh += h0.T @ dxp[0]
    return dWh


def cell_forward(kind, xp, state, p, act="tanh", limit=0):
    if kind == "lstm":
        return lstm_forward(xp, state, p, limit)
    if kind == "gru":
        return gru_forward(xp, state, p, limit)
    return rnn_forward(xp, state, p, act, limit)


def cell_backward(dhs, dstate, cache):
    if isinstance(cache, LSTMCache):
        return lstm_backward(dhs, dstate, cache)
    if isinstance(cache, GRUCache):
        return gru_backward(dhs, dstate, cache)
    return rnn_backward(dhs, dstate, cache)


def hidden_grads(dhs, dstate, dxp, cache):
    """dL/dh_t for every t of a window (T,B,H), from a finished backward's dxp and its cache.

    h_t reaches the loss through the layer above (dhs[t]) and through step t+1:
        rnn, lstm:  dL/dh_t = dhs_t + dxp_{t+1}·Whᵀ                   (c_t carries its own dc)
        gru:        dL/dh_t = dhs_t + z_{t+1} ⊙ dL/dh_{t+1} + [dz dr r⊙dn]_{t+1}·Whᵀ
    with dstate standing in for step T. For diagnostics only: training never needs it.
    """
    Wh = cache.Wh
    T, B, H = dhs.shape
    dH = np.empty_like(dhs)  # (T,B,H)
    dH[-1] = dhs[-1] if dstate is None else dhs[-1] + dstate[0]
    if not isinstance(cache, GRUCache):
        dH[:-1] = dhs[:-1] + (dxp[1:].reshape((T - 1) * B, -1) @ Wh.T).reshape(T - 1, B, H)
        return dH
    acts = cache.acts
    for t in reversed(range(T - 1)):
        z, r = acts[t + 1, :, :H], acts[t + 1, :, H:2 * H]
        dp = dxp[t + 1].copy()  # (B,3H) the gradient of h·Wh at t+1
        dp[:, 2 * H:] *= r
        dH[t] = dhs[t] + z * dH[t + 1] + dp @ Wh.T
    return dH


def zero_state(kind, B, H, dtype=np.float32):
    return tuple(np.zeros((B, H), dtype=dtype) for _ in STATE_NAMES[kind])  # (B,H) each
