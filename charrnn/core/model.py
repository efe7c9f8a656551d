"""The language model: (embedding) -> L recurrent layers (dropout between) -> y = V·h + c.

``cfg`` is a config.model.ModelConfig (any object with its fields: cell, activation, layers,
hidden, embed, dropout, bidirectional, forget_bias, vocab_size, labels); the cells are
core/cells/'s, each in its own module.

Shapes: T time, B batch, E embed, H hidden, V vocab, G fused gate width.

Parameters live in one flat dict whose keys are also the checkpoint's array names:
    embed.W (V,E)                       only when embed > 0
    layers.{l}.Wx (D,G)  .Wh (H,G)  .b (G,)  [.bh (H,) gru]
    layers.{l}.fwd.* / layers.{l}.bwd.*  a bidirectional layer
    out.V (H',V)  out.c (V,)                (H',K) and (K,) for a classifier: core/classifier.py
With embed = 0 the first layer reads one-hot tokens: its Wx is (V,G) and x·Wx is a row gather.

Initialisation (documented, deterministic given the Generator; each cell's init, from
core/cells/__init__.standard_init):
    Wx ~ U(-1/√D, 1/√D) for an input of width D; a one-hot first layer's Wx ~ U(-1, 1):
        its rows are the embedding, so its pre-activations get the spread the embedded
        path's have (x ~ N(0,1) of width E through U(-1/√E, 1/√E): variance 1/3, U(-1, 1)'s);
        weaker input weights left a network on the unigram plateau for hundreds of steps
        (docs/recipe.md);
    Wh: each H×H gate block orthogonal (QR of a Gaussian), so early gradients neither
        vanish nor explode through the recurrence; b = 0 (the LSTM's forget gate: forget_bias);
    embed.W ~ N(0, 1); out.V ~ U(-1/√H', 1/√H'); out.c = 0.
"""
from typing import NamedTuple

import numpy as np

from . import cells, layers


# --------------------------------------------------------------------------- parameters

def param_shapes(cfg):
    """Every parameter's shape for ``cfg``, without allocating anything: the one layout that
    init_params makes, count_params counts and a checkpoint is checked against."""
    cell, V, E, H = cells.get(cfg.cell), cfg.vocab_size, cfg.embed, cfg.hidden
    shapes = {"embed.W": (V, E)} if E > 0 else {}
    D = E if E > 0 else V
    for l in range(cfg.layers):
        for d in (("fwd.", "bwd.") if cfg.bidirectional else ("",)):
            shapes.update({f"layers.{l}.{d}{k}": shape for k, shape in cell.params(D, H).items()})
        D = cfg.out_width
    shapes["out.V"] = (cfg.out_width, cfg.out_size)
    shapes["out.c"] = (cfg.out_size,)
    return shapes


def init_params(cfg, rng, dtype=np.float32):
    """A fresh parameter dict for ``cfg``; all randomness comes from ``rng``."""
    cell, params = cells.get(cfg.cell), {}
    V, E, H = cfg.vocab_size, cfg.embed, cfg.hidden
    if E > 0:
        params["embed.W"] = rng.standard_normal((V, E)).astype(dtype)  # (V,E)
    D = E if E > 0 else V
    for l in range(cfg.layers):
        for d in (("fwd.", "bwd.") if cfg.bidirectional else ("",)):
            for k, v in cell.init(rng, D, H, l == 0 and E == 0, cfg).items():
                params[f"layers.{l}.{d}{k}"] = v.astype(dtype)
        D = cfg.out_width
    s = 1.0 / np.sqrt(cfg.out_width)
    params["out.V"] = rng.uniform(-s, s, (cfg.out_width, cfg.out_size)).astype(dtype)  # (H',V) or (H',K)
    params["out.c"] = np.zeros(cfg.out_size, dtype=dtype)  # (V,) or (K,)
    return params


def layer_params(params, l, bidirectional):
    pre = f"layers.{l}."
    if not bidirectional:
        return {k[len(pre):]: v for k, v in params.items() if k.startswith(pre)}
    return {d: {k[len(pre) + 4:]: v for k, v in params.items() if k.startswith(pre + d + ".")}
            for d in ("fwd", "bwd")}


def flatten_grads(l, g, bidirectional):
    pre = f"layers.{l}."
    if not bidirectional:
        return {pre + k: v for k, v in g.items()}
    return {f"{pre}{d}.{k}": v for d in ("fwd", "bwd") for k, v in g[d].items()}


def num_params(params):
    return int(sum(v.size for v in params.values()))


def count_params(cfg):
    """The number of parameters ``init_params(cfg)`` makes, without making them."""
    return int(sum(np.prod(shape) for shape in param_shapes(cfg).values()))


def training_bytes(cfg, batch, seq_len, slots=2, workers=1, itemsize=4):
    """What training ``cfg`` holds in memory, in bytes, as {"weights": parameters, gradients
    (one set per worker) and ``slots`` optimizer arrays each, "activations": what one window's
    forward keeps for the backward, over all B·T rows}. An estimate from the shapes, not a
    measurement (docs/speed.md compares the two)."""
    P, cell = count_params(cfg), cells.get(cfg.cell)
    rows = batch * seq_len * (2 if cfg.bidirectional else 1)
    # per layer: what the cell keeps and its backward adds; once: one layer's input projection,
    # the logits, softmax and gradient
    acts = rows * (cfg.layers * cell.cache_floats(cfg.hidden) + cell.gates * cfg.hidden + 3 * cfg.out_size
                   + cfg.embed)
    return {"weights": P * itemsize * (1 + workers + slots), "activations": acts * itemsize}


# --------------------------------------------------------------------------- state

def zero_state(cfg, B, dtype=np.float32):
    """Per layer a tuple of (B,H) arrays (h, or h and c); bidirectional: a pair of those."""
    def one():
        return cells.zero_state(cfg.cell, B, cfg.hidden, dtype)
    return [(one(), one()) if cfg.bidirectional else one() for _ in range(cfg.layers)]


# --------------------------------------------------------------------------- window

class LayerCache(NamedTuple):
    """One layer of the stack: its own cache (layers.RecurrentCache or BidirectionalCache) and
    the dropout mask applied to its output (None: no dropout)."""
    layer: NamedTuple
    mask: np.ndarray | None


class Cache(NamedTuple):
    """What ``forward`` keeps for ``backward``: the token ids, every layer's cache, the output
    layer's weights and its input (the top layer's output after dropout)."""
    ids: np.ndarray
    layers: list
    out: dict
    top: np.ndarray


def stack_forward(params, cfg, x, state, masks=None, lengths=None, block_limit=0):
    """The recurrent layers, dropout between: (top output (T,B,H'), final states, [LayerCache]).

    lengths (B,) are the sequences' own lengths, for a bidirectional stack over padded ones.
    block_limit: core/products.py's column-block limit for the recurrent product (0: one product).
    """
    caches, new_state = [], []
    for l in range(cfg.layers):
        p = layer_params(params, l, cfg.bidirectional)
        if cfg.bidirectional:
            hs, s, c = layers.bidirectional_forward(p, x, state[l], cfg, lengths, block_limit)
        else:
            hs, s, c = layers.recurrent_forward(p, x, state[l], cfg, block_limit)
        mask = masks[l] if masks is not None else None
        x = layers.dropout_forward(hs, mask)
        caches.append(LayerCache(c, mask))
        new_state.append(s)
    return x, new_state, caches


def stack_backward(dx, caches, cfg, dstate=None):
    """Back through stack_forward: (dx of its input, [dstate0 per layer], grads)."""
    grads, dstate0 = {}, [None] * cfg.layers
    back = layers.bidirectional_backward if cfg.bidirectional else layers.recurrent_backward
    for l in reversed(range(cfg.layers)):
        c = caches[l]
        dhs = layers.dropout_backward(dx, c.mask)
        dx, dstate0[l], g = back(dhs, None if dstate is None else dstate[l], c.layer)
        grads.update(flatten_grads(l, g, cfg.bidirectional))
    return dx, dstate0, grads


def forward(params, cfg, ids, state, masks=None, block_limit=0):
    """Logits for every position of a (T,B) window of token ids, from a carried state.

    masks: optional dropout masks, one (T,B,H') array per layer output (None = no dropout).
    block_limit: the recurrent product's column-block limit (core/products.py; 0 = one product).
    Returns logits (T,B,V), the final state, and the Cache for ``backward``.
    """
    x = layers.embedding_forward(params["embed.W"], ids) if cfg.embed > 0 else ids
    top, new_state, caches = stack_forward(params, cfg, x, state, masks, block_limit=block_limit)
    out = {"V": params["out.V"], "c": params["out.c"]}
    logits, _ = layers.output_forward(out, top)
    return logits, new_state, Cache(ids, caches, out, top)


def backward(dlogits, cache, cfg, dstate=None):
    """Gradients of every parameter (keys as in params) and of the initial state: (grads,
    dstate0). dstate: the gradient flowing into the final state (None for truncated BPTT, where
    the carried state is treated as a constant)."""
    dx, g = layers.output_backward(dlogits, cache.top, cache.out)
    dx, dstate0, grads = stack_backward(dx, cache.layers, cfg, dstate)
    return _with_output_grads(grads, g, dx, cache, cfg), dstate0


def hidden_grads(dlogits, cache, cfg):
    """For diagnostics (core/gradflow.py): (grads, dstate0, dH) where dH is dL/dh_t of every
    layer, a list of (T,B,H), bottom first. Unidirectional models only."""
    if cfg.bidirectional:
        raise ValueError("hidden-state gradients are measured for unidirectional layers only")
    dx, g = layers.output_backward(dlogits, cache.top, cache.out)
    grads, dstate0, dH = {}, [None] * cfg.layers, [None] * cfg.layers
    for l in reversed(range(cfg.layers)):
        c = cache.layers[l]
        dx, dstate0[l], gl, dH[l] = layers.recurrent_hidden_grads(layers.dropout_backward(dx, c.mask), None, c.layer)
        grads.update(flatten_grads(l, gl, False))
    return _with_output_grads(grads, g, dx, cache, cfg), dstate0, dH


def _with_output_grads(grads, g, dx, cache, cfg):
    grads["out.V"], grads["out.c"] = g["V"], g["c"]
    if cfg.embed > 0:
        grads["embed.W"] = layers.embedding_backward(dx, cache.ids, cfg.vocab_size)
    return grads


def layer_states(cache):
    """Per layer (hs, cs): the states a window forward stored, (T,B,H) each; cs is None but for
    the LSTM. Unidirectional models only."""
    return [(c.layer.cell.hs, c.layer.cell.cs) for c in cache.layers]


def make_masks(cfg, T, B, rng, dtype=np.float32):
    """Fresh inverted-dropout masks for one training window, or None when dropout is 0."""
    if cfg.dropout <= 0:
        return None
    return [layers.dropout_mask((T, B, cfg.out_width), cfg.dropout, rng, dtype) for _ in range(cfg.layers)]


def evaluate(params, cfg, x, y, state, block_limit=0):
    """Summed negative log-likelihood (nats) of a (T,B) window, and the carried state.

    -log p(y_t) = logsumexp(z_t) - z_t[y_t], row by row in the logits' own dtype (no
    float64 copy of the (T,B,V) logits); the sum over rows is taken in float64.
    """
    logits, new_state, _ = forward(params, cfg, x, state, block_limit=block_limit)
    nll, _, _ = layers.token_nll(logits, y)
    return float(nll.sum(dtype=np.float64)), new_state


# --------------------------------------------------------------------------- one step

class Stepper:
    """One token at a time for sampling: each cell's own step (its LayerStep, core/cells/) on
    reused buffers.

    ``step(ids (B,)) -> logits (B,V)`` equals row t of the window forward's logits, to rounding
    (a layer fed by another may take its pre-activation from one product with the stacked
    [Wx; Wh], which sums in another order: 1e-12 apart in float64). The bias (and a cell's
    input scale) is folded into per-layer copies of the weights once, and every state is
    updated in place, so a step is few numpy calls. Those copies are a snapshot: build a new
    Stepper after changing the parameters. Unidirectional models only (a bidirectional layer
    needs the whole sequence).
    """

    def __init__(self, params, cfg, B=1, state=None, block_limit=0):
        if cfg.bidirectional:
            raise ValueError("a bidirectional model cannot be stepped one token at a time")
        self.params, self.cfg = params, cfg
        dtype = params["out.V"].dtype
        start = state or zero_state(cfg, B, dtype)
        cell = cells.get(cfg.cell)
        self.layers = [cell.step(layer_params(params, l, False), cfg, l == 0 and cfg.embed == 0, B, block_limit,
                                 start[l], dtype) for l in range(cfg.layers)]
        self.logits = np.empty((B, cfg.out_size), dtype=dtype)  # (B,V)

    @property
    def state(self):
        """Per layer the tuple of (B,H) state arrays, updated in place at each step."""
        return [layer.state for layer in self.layers]

    def step(self, ids):
        P = self.params
        x = P["embed.W"][ids] if self.cfg.embed > 0 else None
        for layer in self.layers:
            x = layer.step(x, ids)
        np.matmul(x, P["out.V"], out=self.logits)
        self.logits += P["out.c"]
        return self.logits  # (B,V), overwritten by the next step
