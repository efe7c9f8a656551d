"""Recurrent cells: one module each, found here by the ``CELL`` it defines.

Shapes: T time, B batch, D input width, H hidden, G = k·H the fused gate width (k gates).

Every cell takes the time-independent input projection ``xp = x·Wx + b`` already computed for
all T·B rows in one matrix product (core/layers.py); only the recurrent part stays inside the
time loop. Arrays are time-major, so ``hs[t]`` is one contiguous (B,H) block. A cell module
declares everything the rest of charrnn needs to know about it, in one ``Cell``:

    name, rank, summary      its --cell name, its place in lists, one line of help
    gates, state             k, and the names of its state tensors: ("h",) or ("h", "c")
    params(D, H)             {name: shape} of a layer's parameters (Wx (D,G) and b (G,) always)
    init(rng, D, H, one_hot, cfg)          a layer's parameters, float64, from the Generator
    input_scale(H, dtype)    a per-column factor folded into xp (LSTM: 0.5 on i f o), or None
    forward(xp, state, p, cfg, block_limit) -> hs, state, cache
    backward(dhs, dstate, cache) -> dxp, dstate0, grads
    hidden_grads(dhs, dstate, dxp, cache) -> dL/dh_t for every t (diagnostics)
    step(xp_t, state, p, buffers, blocks)  one step in place, as the window's loop takes it
    activate(a, state, buffers)            the rest of a step from the whole pre-activation
                                           [x, h]·[Wx; Wh] + b (core/model.Stepper), or None
    cache_floats(H)          floats a window row keeps for the backward, per layer (memory estimate)
    torch                    how PyTorch holds it (export/pytorch.py), or None: not exported

``block_limit`` is core/products.py's column-block limit for the recurrent product (0: one
product), ``blocks`` a weight's blocks planned from it.
"""
import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

ACTIVATIONS = ("tanh", "relu", "sigmoid")  # the vanilla RNN's nonlinearities


@dataclass(frozen=True)
class Torch:
    """A cell as PyTorch holds it: the nn module, the order of torch's gate blocks as blocks of
    charrnn's columns, which of torch's b_hh blocks carry charrnn's bh (the others are 0), and
    which of torch's blocks hold their charrnn block negated (sigmoid(-a) = 1 - sigmoid(a))."""
    module: str
    order: tuple
    bh_blocks: tuple = ()
    negated: tuple = ()


@dataclass(frozen=True)
class Cell:
    name: str
    rank: int
    summary: str
    gates: int
    state: tuple
    params: Callable
    init: Callable
    forward: Callable
    backward: Callable
    hidden_grads: Callable
    step: Callable
    cache_floats: Callable
    activate: Callable | None = None
    input_scale: Callable | None = None
    torch: Torch | None = None
    options: tuple = ()  # the model options it reads beyond the shape: "activation", "forget_bias"


@functools.lru_cache(maxsize=1)
def registry():
    """{name: Cell} of every module in this package that defines CELL, by rank."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        cell = getattr(importlib.import_module(f"{__name__}.{info.name}"), "CELL", None)
        if isinstance(cell, Cell):
            found.append(cell)
    return {c.name: c for c in sorted(found, key=lambda c: (c.rank, c.name))}


def kinds():
    """The cells' names, in order."""
    return tuple(registry())


def get(name):
    """The Cell called ``name``; ValueError naming the cells there are."""
    try:
        return registry()[name]
    except KeyError:
        raise ValueError(f"cell must be one of {', '.join(kinds())}, not {name!r}") from None


# --------------------------------------------------------------------------- what cells share

def sigmoid_(a):
    """In place: sigmoid(a) = 0.5·tanh(0.5·a) + 0.5 (one tanh, no exp overflow)."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def orthogonal(rng, n):
    """An n×n orthogonal matrix, uniformly distributed (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def standard_params(D, H, k):
    """Wx (D,G), Wh (H,G), b (G,): the layer every cell has, G = k·H."""
    return {"Wx": (D, k * H), "Wh": (H, k * H), "b": (k * H,)}


def standard_init(rng, D, H, k, one_hot):
    """Wx ~ U(-1/√D, 1/√D), or U(-1, 1) when its rows are a one-hot layer's embedding (core/model.py
    says why); Wh: each H×H gate block orthogonal, so early gradients neither vanish nor
    explode through the recurrence; b = 0. float64."""
    scale = 1.0 if one_hot else 1.0 / np.sqrt(D)
    return {"Wx": rng.uniform(-scale, scale, (D, k * H)),  # (D,G)
            "Wh": np.concatenate([orthogonal(rng, H) for _ in range(k)], axis=1),  # (H,G)
            "b": np.zeros(k * H)}  # (G,)


def dWh(hs, h0, dxp):
    """dWh = Σ_t h_{t-1}ᵀ·dxp_t as two products, without building the shifted copy of hs."""
    T, B, H = hs.shape
    G = dxp.shape[-1]
    grad = hs[:-1].reshape((T - 1) * B, H).T @ dxp[1:].reshape((T - 1) * B, G)  # (H,G)
    grad += h0.T @ dxp[0]
    return grad


def hidden_grads_through_wh(dhs, dstate, dxp, cache):
    """dL/dh_t for every t of a window (T,B,H), for a cell whose h_{t-1} reaches step t only
    through h·Wh (rnn, lstm: c carries its own dc):
        dL/dh_t = dhs_t + dxp_{t+1}·Whᵀ,   dstate standing in for step T."""
    T, B, H = dhs.shape
    dH = np.empty_like(dhs)  # (T,B,H)
    dH[-1] = dhs[-1] if dstate is None else dhs[-1] + dstate[0]
    dH[:-1] = dhs[:-1] + (dxp[1:].reshape((T - 1) * B, -1) @ cache.Wh.T).reshape(T - 1, B, H)
    return dH


def zero_state(kind, B, H, dtype=np.float32):
    return tuple(np.zeros((B, H), dtype=dtype) for _ in get(kind).state)  # (B,H) each


# --------------------------------------------------------------------------- one step at a time

def folded_input(p, scale, one_hot):
    """(W, b) giving a cell's xp as x·W + b with its input scale folded in (one pass fewer).

    For one-hot input the bias rides along in W's rows, (Wx + b)[id] = Wx[id] + b, and b is
    None. Used by the window forward (core/layers.py) and by the stepper, so both compute the
    same values.
    """
    if one_hot:
        table = p["Wx"] + p["b"]  # (V,G) small
        return (table if scale is None else table * scale), None
    if scale is None:
        return p["Wx"], p["b"]
    return p["Wx"] * scale, p["b"] * scale


def _own(a, p):
    """``a``, copied if it is one of the arrays of ``p`` (folded_input passes some through): a
    stepper holds a snapshot, never the parameters themselves."""
    return a.copy() if a is not None and any(a is v for v in p.values()) else a


class StepInput:
    """A layer's input to one step of model.Stepper, for B streams: ``xp(x, ids)`` is x_t·Wx + b
    (a row of the folded table for a one-hot layer) with the cell's input scale folded in.

    With ``stacked`` (a cell whose whole pre-activation is x·Wx + h·Wh + b, fed by another
    layer) the layer keeps h_{t-1} beside its input in one (B, D+H) buffer [x_t, h_{t-1}] and
    ``pre(x)`` is the whole pre-activation from one product with the stacked [Wx; Wh]: one call
    instead of two, on a matrix large enough that a multi-threaded BLAS splits it across
    cores, each core's share of the weights staying in its own cache. ``h`` is then a view
    into that buffer, which the product reads in place.
    """

    def __init__(self, cell, p, one_hot, B, block_limit, dtype, stacked):
        from .. import products
        H = p["Wh"].shape[0]
        scale = cell.input_scale(H, dtype) if cell.input_scale is not None else None
        Wx, b = folded_input(p, scale, one_hot)
        Wh = p["Wh"] if scale is None else p["Wh"] * scale
        self.stacked, self.b = stacked and not one_hot, _own(b, p)
        self.out = np.empty((B, cell.gates * H), dtype=dtype)  # (B,G) the pre-activation
        if self.stacked:
            self.D = Wx.shape[0]
            self.W = np.concatenate([Wx, Wh])  # (D+H,G) [Wx; Wh]
            self.xh = np.empty((B, self.D + H), dtype=dtype)  # (B,D+H) [x_t, h_{t-1}]
            self.h = self.xh[:, self.D:]
            self.blocks = products.plan(self.W, B, block_limit)
        else:
            self.Wx, self.Wh = _own(Wx, p), _own(Wh, p)
            self.h = np.empty((B, H), dtype=dtype)  # (B,H)
            self.blocks = products.plan(self.Wh, B, block_limit)

    def xp(self, x, ids):
        if x is None:  # one-hot: a row of (Wx + b)
            return np.take(self.Wx, ids, axis=0, out=self.out)
        np.matmul(x, self.Wx, out=self.out)
        self.out += self.b
        return self.out

    def pre(self, x):
        from .. import products
        self.xh[:, :self.D] = x
        products.matmul(self.xh, self.W, self.blocks, self.out)
        self.out += self.b
        return self.out


class MemoryCache(NamedTuple):
    """A (h, c) cell's window (lstm, cifg): its activated gates (T,B,G) in the cell's order,
    c_t, tanh(c_t), h_t (T,B,H) each, the initial state, Wh, the product's block limit."""
    acts: np.ndarray
    cs: np.ndarray
    tcs: np.ndarray
    hs: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    Wh: np.ndarray
    block_limit: int = 0


@functools.lru_cache(maxsize=32)
def gate_scales(gates, tanh_at, H, dtype):
    """(pre, off) (G,) each for gates computed as sigmoid(x) = 0.5·tanh(x/2) + 0.5 in one tanh
    over all G columns: x halved and the result halved and lifted, except in block ``tanh_at``
    (the candidate g, a plain tanh). Cached: a step allocates nothing."""
    dtype = np.dtype(dtype)
    pre = np.full(gates * H, 0.5, dtype=dtype)  # (G,) scale before tanh
    pre[tanh_at * H:(tanh_at + 1) * H] = 1.0
    off = np.where(pre == 0.5, 0.5, 0.0).astype(dtype)  # (G,) offset after tanh
    return pre, off


def memory_forward(xps, state, p, block_limit, gates, input_scale, step):
    """The window forward of a (h, c) cell: ``step`` at each t into preallocated arrays; xps =
    (x·Wx + b) ⊙ input_scale, as the layer computes it. (hs, (h_T, c_T), MemoryCache)."""
    from .. import products
    h0, c0 = state
    T, B, G = xps.shape
    H = G // gates
    Whs = p["Wh"] * input_scale(H, xps.dtype)
    acts = np.empty((T, B, G), dtype=xps.dtype)  # (T,B,G) activated gates
    cs, tcs, hs = (np.empty((T, B, H), dtype=xps.dtype) for _ in range(3))  # (T,B,H) each: c, tanh(c), h
    tmp = np.empty((B, H), dtype=xps.dtype)  # (B,H)
    h, c = h0, c0
    blocks = products.plan(Whs, B, block_limit)
    for t in range(T):
        h, c = step(xps[t], h, c, Whs, acts[t], cs[t], tcs[t], hs[t], tmp, blocks)
    return hs, (h.copy(), c.copy()), MemoryCache(acts, cs, tcs, hs, h0, c0, p["Wh"], block_limit)


def memory_backward_start(cache, dstate, gates):
    """What a (h, c) cell's window backward starts from: H; K = dc_t/dh_t = o ⊙ (1 - tanh²(c_t))
    (T,B,H) once over all rows (o is the last gate block); dh, dc (B,H) from dstate, or zeros,
    reused every step; W_h^T and its product's plan."""
    from .. import products
    acts, tcs, h0, c0 = cache.acts, cache.tcs, cache.h0, cache.c0
    T, B, G = acts.shape
    H = G // gates
    K = np.multiply(tcs, tcs)  # (T,B,H)
    np.subtract(1, K, out=K)
    K *= acts[..., (gates - 1) * H:]
    if dstate is None:
        dh, dc = np.zeros_like(h0), np.zeros_like(c0)  # (B,H) each
    else:
        dh, dc = dstate[0].copy(), dstate[1].copy()
    WhT = np.ascontiguousarray(cache.Wh.T)
    return H, K, dh, dc, WhT, products.plan(WhT, B, cache.block_limit)


class MemoryStep:
    """A layer of core/model.Stepper for a cell with state (h, c), updated in place one token at
    a time: the LSTM's and the CIFG's. A subclass names its Cell (``name``) and its module's
    ``window_step`` (x_t·Wx + b given: the recurrent product, then the gates) and ``activate``
    (the whole pre-activation given: the gates)."""
    name: str
    window_step: Callable
    activate: Callable

    def __init__(self, p, cfg, one_hot, B, block_limit, start, dtype):
        H = p["Wh"].shape[0]
        self.input = StepInput(get(self.name), p, one_hot, B, block_limit, dtype, stacked=True)
        self.h, self.c = self.input.h, start[1].copy()
        self.h[...] = start[0]
        self.state = (self.h, self.c)
        self.a = np.empty((B, get(self.name).gates * H), dtype=dtype)  # (B,G)
        self.tc, self.tmp = np.empty((B, H), dtype=dtype), np.empty((B, H), dtype=dtype)  # (B,H) each

    def step(self, x, ids):
        inp = self.input
        if inp.stacked:  # the whole pre-activation: [x_t, h_{t-1}]·[Wx; Wh] + b, then h_t over h_{t-1}
            type(self).activate(inp.pre(x), self.c, self.c, self.tc, self.h, self.tmp)
        else:
            type(self).window_step(inp.xp(x, ids), self.h, self.c, inp.Wh, self.a, self.c, self.tc, self.h,
                                   self.tmp, inp.blocks)
        return self.h
