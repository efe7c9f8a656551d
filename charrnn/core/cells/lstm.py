"""The LSTM: four gates fused in one product, columns ordered i f g o.

Shapes: T time, B batch, D input width, H hidden, G = 4H.

    [i f g o] = x_t·Wx + h_{t-1}·Wh + b
    i, f, o = sigmoid(i), sigmoid(f), sigmoid(o);  g = tanh(g)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

sigmoid(x) = 0.5·tanh(0.5·x) + 0.5 lets one tanh cover all four blocks: xp and Wh arrive with
the sigmoid columns halved (``input_scale``; ×0.5 is exact, so nothing changes numerically).
The forget gate's bias starts at ``cfg.forget_bias`` (0 for `charrnn train`: it learns text
faster; 1 keeps the cell remembering from the start, `charrnn classify train`'s default).
"""

import numpy as np

from .. import products
from . import (Cell, MemoryStep, Torch, dWh, gate_scales, hidden_grads_through_wh, memory_backward_start, memory_forward, standard_init,
               standard_params)


def _scales(H, dtype):
    return gate_scales(4, 2, H, dtype)  # g, block 2, is a plain tanh


def input_scale(H, dtype):
    """The per-column factor folded into xp = x·Wx + b and Wh: 0.5 on i f o."""
    return _scales(H, np.dtype(dtype))[0]


def step(xps_t, h, c, Whs, a, c_out, tc_out, h_out, tmp, blocks=None):
    """One step: the activated gates into a (B,4H), c_t, tanh(c_t), h_t into the out slots;
    tmp is (B,H) scratch. xps_t and Whs come with the sigmoid columns halved."""
    products.matmul(h, Whs, blocks, a)
    a += xps_t
    return activate(a, c, c_out, tc_out, h_out, tmp)


def activate(a, c, c_out, tc_out, h_out, tmp):
    """The rest of a step once a holds the halved pre-activation; h_out may be the h_{t-1}
    buffer, which the product has already read."""
    H = c.shape[-1]
    np.tanh(a, out=a)
    pre, off = _scales(H, a.dtype)  # cached: no allocation per step
    a *= pre
    a += off
    np.multiply(a[:, H:2 * H], c, out=c_out)  # f ⊙ c_{t-1}
    np.multiply(a[:, :H], a[:, 2 * H:3 * H], out=tmp)  # i ⊙ g
    c_out += tmp
    np.tanh(c_out, out=tc_out)
    np.multiply(a[:, 3 * H:], tc_out, out=h_out)
    return h_out, c_out


def forward(xps, state, p, cfg, block_limit=0):
    """The window forward; xps = (x·Wx + b) ⊙ input_scale, as the layer computes it."""
    return memory_forward(xps, state, p, block_limit, 4, input_scale, step)


def backward(dhs, dstate, cache):
    """Consumes the cache: each step's activated gates are overwritten by their gradients, which
    become the returned dxp (no (T,B,4H) array is allocated); a cache serves one backward."""
    acts, cs, tcs, hs, h0, c0 = cache.acts, cache.cs, cache.tcs, cache.hs, cache.h0, cache.c0
    T, B, G = acts.shape
    H, K, dh, dc, WhT, blocks = memory_backward_start(cache, dstate, 4)
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
    return dxp, (dh, dc), {"Wh": dWh(hs, h0, dxp)}


def init(rng, D, H, one_hot, cfg):
    p = standard_init(rng, D, H, 4, one_hot)
    p["b"][H:2 * H] = cfg.forget_bias  # above 0: the forget gate starts open
    return p


class LayerStep(MemoryStep):
    """A layer of core/model.Stepper: its state updated in place, one token at a time."""
    name, window_step, activate = "lstm", staticmethod(step), staticmethod(activate)


CELL = Cell(
    name="lstm", rank=1, summary="LSTM (gates i f g o)", gates=4, state=("h", "c"), options=("forget_bias",),
    params=lambda D, H: standard_params(D, H, 4), init=init, input_scale=input_scale,
    forward=forward, backward=backward, hidden_grads=hidden_grads_through_wh, step=LayerStep,
    cache_floats=lambda H: 4 * H + 6 * H,  # the gates, c, tanh(c), h, the input, mask, the backward's K
    torch=Torch("nn.LSTM", order=(0, 1, 2, 3)),
)
