"""The coupled input-forget gate LSTM (CIFG): an LSTM whose input gate is 1 - f, three gate
blocks instead of four, columns ordered f g o.

Shapes: T time, B batch, D input width, H hidden, G = 3H.

    [f g o] = x_t·Wx + h_{t-1}·Wh + b
    f, o = sigmoid(f), sigmoid(o);  g = tanh(g)
    c_t = f ⊙ c_{t-1} + (1 - f) ⊙ g
    h_t = o ⊙ tanh(c_t)

What a cell forgets it makes room for: one gate decides both. Greff et al. ("LSTM: A Search
Space Odyssey", 2017) found this coupling costs the LSTM nothing on their tasks, and it takes a
quarter less of every product and of the gate math a step, so a budget of minutes buys more
steps or a wider network (docs/recipe.md measures it on text). As in lstm.py, the sigmoid
columns arrive halved (input_scale) so that one tanh covers all three blocks.
"""

import numpy as np

from .. import products
from . import (Cell, MemoryStep, Torch, dWh, gate_scales, hidden_grads_through_wh, memory_backward_start, memory_forward, standard_init,
               standard_params)


def _scales(H, dtype):
    return gate_scales(3, 1, H, dtype)  # g, block 1, is a plain tanh


def input_scale(H, dtype):
    """The per-column factor folded into xp = x·Wx + b and Wh: 0.5 on f and o."""
    return _scales(H, np.dtype(dtype))[0]


def activate(a, c, c_out, tc_out, h_out, tmp):
    """The rest of a step once a holds the halved pre-activation: the gates into a, then
    c_t = g + f ⊙ (c_{t-1} - g), tanh(c_t), h_t; h_out may be the h_{t-1} buffer."""
    H = c.shape[-1]
    np.tanh(a, out=a)
    pre, off = _scales(H, a.dtype)
    a *= pre
    a += off
    f, g = a[:, :H], a[:, H:2 * H]
    np.subtract(c, g, out=tmp)
    tmp *= f
    np.add(g, tmp, out=c_out)
    np.tanh(c_out, out=tc_out)
    np.multiply(a[:, 2 * H:], tc_out, out=h_out)
    return h_out, c_out


def step(xps_t, h, c, Whs, a, c_out, tc_out, h_out, tmp, blocks=None):
    """One step: the recurrent product into a (B,3H), then activate."""
    products.matmul(h, Whs, blocks, a)
    a += xps_t
    return activate(a, c, c_out, tc_out, h_out, tmp)


def forward(xps, state, p, cfg, block_limit=0):
    """The window forward; xps = (x·Wx + b) ⊙ input_scale, as the layer computes it."""
    return memory_forward(xps, state, p, block_limit, 3, input_scale, step)


def backward(dhs, dstate, cache):
    """Consumes the cache: each step's gates are overwritten by their pre-activation gradients,
    which become the returned dxp."""
    acts, cs, tcs, hs, h0, c0 = cache.acts, cache.cs, cache.tcs, cache.hs, cache.h0, cache.c0
    T, B, G = acts.shape
    H, K, dh, dc, WhT, blocks = memory_backward_start(cache, dstate, 3)
    raw = np.empty((B, G), dtype=acts.dtype)  # (B,3H) dL/d(gate) after the nonlinearity
    d = np.empty((B, G), dtype=acts.dtype)  # (B,3H) the nonlinearities' derivatives
    tmp = np.empty((B, H), dtype=acts.dtype)  # (B,H)
    for t in reversed(range(T)):
        a = acts[t]  # (B,3H) f g o, read here for the last time
        f, g = a[:, :H], a[:, H:2 * H]
        dh += dhs[t]
        np.multiply(dh, K[t], out=tmp)
        dc += tmp  # dc_t
        np.subtract(cs[t - 1] if t else c0, g, out=raw[:, :H])
        raw[:, :H] *= dc  # df = dc ⊙ (c_{t-1} - g)
        np.subtract(1, f, out=raw[:, H:2 * H])
        raw[:, H:2 * H] *= dc  # dg = dc ⊙ (1 - f)
        np.multiply(dh, tcs[t], out=raw[:, 2 * H:])  # do = dh ⊙ tanh(c_t)
        dc *= f  # carried to t-1 through f
        np.subtract(1, a, out=d)
        d *= a  # sigmoid' = s(1-s)
        dg = d[:, H:2 * H]
        np.multiply(g, g, out=dg)
        np.subtract(1, dg, out=dg)  # tanh' = 1 - g²
        np.multiply(raw, d, out=a)  # dxp_t, where the gates were
        products.matmul(a, WhT, blocks, dh)
    dxp = acts
    return dxp, (dh, dc), {"Wh": dWh(hs, h0, dxp)}


def init(rng, D, H, one_hot, cfg):
    p = standard_init(rng, D, H, 3, one_hot)
    p["b"][:H] = cfg.forget_bias  # above 0: the forget gate starts open (and the input half shut)
    return p


class LayerStep(MemoryStep):
    """A layer of core/model.Stepper: its state updated in place, one token at a time."""
    name, window_step, activate = "cifg", staticmethod(step), staticmethod(activate)


CELL = Cell(
    name="cifg", rank=3, summary="LSTM with coupled input and forget gates (i = 1 - f): three gates f g o",
    gates=3, state=("h", "c"), options=("forget_bias",),
    params=lambda D, H: standard_params(D, H, 3), init=init, input_scale=input_scale,
    forward=forward, backward=backward, hidden_grads=hidden_grads_through_wh, step=LayerStep,
    cache_floats=lambda H: 3 * H + 6 * H,  # the gates, c, tanh(c), h, the input, mask, the backward's K
    torch=Torch("nn.LSTM", order=(0, 0, 1, 2), negated=(0,)),  # torch's i f g o: i = sigmoid(-a_f) = 1 - f
)
