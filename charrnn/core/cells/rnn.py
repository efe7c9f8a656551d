"""The vanilla RNN: one gate, a nonlinearity of the user's choice.

Shapes: T time, B batch, D input width, H hidden (G = H).

    h_t = act(x_t·Wx + h_{t-1}·Wh + b),   act in {tanh, relu, sigmoid}
"""
from typing import NamedTuple

import numpy as np

from .. import products
from . import Cell, StepInput, Torch, dWh, hidden_grads_through_wh, sigmoid_, standard_init, standard_params


class RNNCache(NamedTuple):
    """What backward reads: every h_t (T,B,H), h_0, Wh, the nonlinearity."""
    act: str
    hs: np.ndarray
    h0: np.ndarray
    Wh: np.ndarray
    block_limit: int = 0

    cs = None  # no cell state


def activate(out, act):
    """In place: out = act(out)."""
    if act == "tanh":
        np.tanh(out, out=out)
    elif act == "relu":
        np.maximum(out, 0, out=out)
    else:
        sigmoid_(out)
    return out


def step(xp_t, h, Wh, act, out, blocks=None):
    """h_t = act(xp_t + h_{t-1}·Wh) into ``out``; xp_t = x_t·Wx + b."""
    products.matmul(h, Wh, blocks, out)
    out += xp_t
    return activate(out, act)


def forward(xp, state, p, cfg, block_limit=0):
    (h0,) = state
    T, B, H = xp.shape
    Wh = p["Wh"]
    hs = np.empty((T, B, H), dtype=xp.dtype)  # (T,B,H)
    h = h0
    blocks = products.plan(Wh, B, block_limit)
    for t in range(T):
        h = step(xp[t], h, Wh, cfg.activation, hs[t], blocks)
    return hs, (h.copy(),), RNNCache(cfg.activation, hs, h0, Wh, block_limit)


def backward(dhs, dstate, cache):
    act, hs, h0, Wh = cache.act, cache.hs, cache.h0, cache.Wh
    T, B, H = hs.shape
    dxp = np.empty_like(hs)  # (T,B,H)
    dh = dstate[0].copy() if dstate is not None else np.zeros_like(h0)  # (B,H) reused every step
    WhT = np.ascontiguousarray(Wh.T)
    blocks = products.plan(WhT, B, cache.block_limit)
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
    return dxp, (dh,), {"Wh": dWh(hs, h0, dxp)}


class LayerStep:
    """A layer of core/model.Stepper: its state updated in place, one token at a time."""

    def __init__(self, p, cfg, one_hot, B, block_limit, start, dtype):
        self.act = cfg.activation
        self.input = StepInput(CELL, p, one_hot, B, block_limit, dtype, stacked=True)
        self.h = self.input.h
        self.h[...] = start[0]
        self.state = (self.h,)
        self.a = np.empty_like(self.h)  # (B,H)

    def step(self, x, ids):
        inp = self.input
        if inp.stacked:  # the whole pre-activation: [x_t, h_{t-1}]·[Wx; Wh] + b
            self.h[...] = activate(inp.pre(x), self.act)
        else:
            self.h[...] = step(inp.xp(x, ids), self.h, inp.Wh, self.act, self.a, inp.blocks)
        return self.h


CELL = Cell(
    name="rnn", rank=0, summary="vanilla RNN: h = act(x·Wx + h·Wh + b), --activation tanh, relu or sigmoid",
    gates=1, state=("h",), options=("activation",),
    params=lambda D, H: standard_params(D, H, 1),
    init=lambda rng, D, H, one_hot, cfg: standard_init(rng, D, H, 1, one_hot),
    forward=forward, backward=backward, hidden_grads=hidden_grads_through_wh, step=LayerStep,
    cache_floats=lambda H: 4 * H,  # h, the layer's input and dropout mask, dxp
    torch=Torch("nn.RNN", order=(0,)),
)
