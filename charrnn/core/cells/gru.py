"""The GRU in the "reset after" form of PyTorch and cuDNN, gates ordered z r n.

Shapes: T time, B batch, D input width, H hidden, G = 3H.

    z = sigmoid(Wxz·x_t + Whz·h_{t-1} + bz)
    r = sigmoid(Wxr·x_t + Whr·h_{t-1} + br)
    n = tanh(Wxn·x_t + bn + r ⊙ (Whn·h_{t-1} + bh))
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

Applying r after the product lets all three recurrent products fuse into one h·Wh; bh (H) is
the bias inside r ⊙ (·), b (3H) the one outside.
"""
from typing import NamedTuple

import numpy as np

from .. import products
from . import Cell, StepInput, Torch, dWh, sigmoid_, standard_init, standard_params


class GRUCache(NamedTuple):
    """The gates z r n (T,B,3H), Whn·h + bh and h_t (T,B,H) each, h_0, Wh."""
    acts: np.ndarray
    hns: np.ndarray
    hs: np.ndarray
    h0: np.ndarray
    Wh: np.ndarray
    block_limit: int = 0

    cs = None  # no cell state


def step(xp_t, h, Wh, bh, a, hn_out, h_out, blocks=None):
    """One step: [z r n] into a (B,3H), Whn·h + bh into hn_out, h_t into h_out."""
    H = h.shape[-1]
    products.matmul(h, Wh, blocks, a)
    zr, n = a[:, :2 * H], a[:, 2 * H:]
    np.add(n, bh, out=hn_out)
    zr += xp_t[:, :2 * H]
    sigmoid_(zr)
    z, r = a[:, :H], a[:, H:2 * H]
    np.multiply(r, hn_out, out=n)
    n += xp_t[:, 2 * H:]
    np.tanh(n, out=n)
    # h_t = n + z ⊙ (h_{t-1} - n)
    np.subtract(h, n, out=h_out)
    h_out *= z
    h_out += n
    return h_out


def forward(xp, state, p, cfg, block_limit=0):
    (h0,) = state
    T, B, G = xp.shape
    H = G // 3
    Wh, bh = p["Wh"], p["bh"]
    acts = np.empty((T, B, G), dtype=xp.dtype)  # (T,B,3H) z r n
    hns = np.empty((T, B, H), dtype=xp.dtype)  # (T,B,H) Whn·h + bh
    hs = np.empty((T, B, H), dtype=xp.dtype)  # (T,B,H)
    h = h0
    blocks = products.plan(Wh, B, block_limit)
    for t in range(T):
        h = step(xp[t], h, Wh, bh, acts[t], hns[t], hs[t], blocks)
    return hs, (h.copy(),), GRUCache(acts, hns, hs, h0, Wh, block_limit)


def backward(dhs, dstate, cache):
    acts, hns, hs, h0, Wh = cache.acts, cache.hns, cache.hs, cache.h0, cache.Wh
    T, B, G = acts.shape
    H = G // 3
    dxp = np.empty_like(acts)  # (T,B,3H) grads of the input pre-activations
    dhp = np.empty_like(acts)  # (T,B,3H) grads of h·Wh (differs from dxp in the n block)
    dh = dstate[0].copy() if dstate is not None else np.zeros_like(h0)
    WhT = np.ascontiguousarray(Wh.T)
    blocks = products.plan(WhT, B, cache.block_limit)
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
    grad_bh = dhp[:, :, 2 * H:].sum(axis=(0, 1))
    return dxp, (dh,), {"Wh": dWh(hs, h0, dhp), "bh": grad_bh}


def hidden_grads(dhs, dstate, dxp, cache):
    """dL/dh_t for every t of a window (T,B,H): h_t reaches the loss through the layer above
    (dhs[t]) and through step t+1, directly and through h·Wh:
        dL/dh_t = dhs_t + z_{t+1} ⊙ dL/dh_{t+1} + [dz dr r⊙dn]_{t+1}·Whᵀ
    with dstate standing in for step T."""
    Wh, acts = cache.Wh, cache.acts
    T, B, H = dhs.shape
    dH = np.empty_like(dhs)  # (T,B,H)
    dH[-1] = dhs[-1] if dstate is None else dhs[-1] + dstate[0]
    for t in reversed(range(T - 1)):
        z, r = acts[t + 1, :, :H], acts[t + 1, :, H:2 * H]
        dp = dxp[t + 1].copy()  # (B,3H) the gradient of h·Wh at t+1
        dp[:, 2 * H:] *= r
        dH[t] = dhs[t] + z * dH[t + 1] + dp @ Wh.T
    return dH


def params(D, H):
    return {**standard_params(D, H, 3), "bh": (H,)}


def init(rng, D, H, one_hot, cfg):
    return {**standard_init(rng, D, H, 3, one_hot), "bh": np.zeros(H)}  # (H,)


class LayerStep:
    """A layer of core/model.Stepper: its state updated in place, one token at a time. Two
    products a step: the n gate needs Wh·h apart from x·Wx."""

    def __init__(self, p, cfg, one_hot, B, block_limit, start, dtype):
        H = p["Wh"].shape[0]
        self.input = StepInput(CELL, p, one_hot, B, block_limit, dtype, stacked=False)
        self.bh = p["bh"].copy()
        self.h = self.input.h
        self.h[...] = start[0]
        self.state = (self.h,)
        self.a, self.hn = np.empty((B, 3 * H), dtype=dtype), np.empty((B, H), dtype=dtype)

    def step(self, x, ids):
        inp = self.input
        return step(inp.xp(x, ids), self.h, inp.Wh, self.bh, self.a, self.hn, self.h, inp.blocks)


CELL = Cell(
    name="gru", rank=2, summary='GRU (gates z r n, "reset after" as PyTorch and cuDNN)', gates=3, state=("h",),
    params=params, init=init, forward=forward, backward=backward, hidden_grads=hidden_grads, step=LayerStep,
    cache_floats=lambda H: 3 * 3 * H + 4 * H,  # the gates, the backward's dxp and dhp; hn, h, the input, mask
    torch=Torch("nn.GRU", order=(1, 0, 2), bh_blocks=(2,)),  # torch's rows r z n; bh is b_hn
)
