"""The language model: (embedding) -> L recurrent layers (dropout between) -> y = V·h + c.

Shapes: T time, B batch, E embed, H hidden, V vocab, G fused gate width.

Parameters live in one flat dict whose keys are also the checkpoint's array names:
    embed.W (V,E)                       only when embed > 0
    layers.{l}.Wx (D,G)  .Wh (H,G)  .b (G,)  [.bh (H,) gru]
    layers.{l}.fwd.* / layers.{l}.bwd.*  a bidirectional layer
    out.V (H',V)  out.c (V,)                (H',K) and (K,) for a classifier: core/classifier.py
With embed = 0 the first layer reads one-hot tokens: its Wx is (V,G) and x·Wx is a row gather.

Initialisation (documented, deterministic given the Generator):
    Wx ~ U(-1/√D, 1/√D) for an input of width D; a one-hot first layer's Wx ~ U(-1, 1):
        its rows are the embedding, so its pre-activations get the spread the embedded
        path's have (x ~ N(0,1) of width E through U(-1/√E, 1/√E): variance 1/3, U(-1, 1)'s).
        At the earlier U(±1/√H), a 2×256 LSTM on tinyshakespeare sat on the
        unigram plateau (3.3 nats) for 100–250 steps, by seed; at U(-1, 1) three seeds
        were at 2.03–2.07 by step 100;
    Wh: each H×H gate block orthogonal (QR of a Gaussian), so early gradients neither
        vanish nor explode through the recurrence; b = 0, except the LSTM forget gate
        b_f = forget_bias (0 by default, as `charrnn train`: it learns text faster; 1 keeps
        the cell remembering from the start, `charrnn classify train`'s default); GRU bh = 0;
    embed.W ~ N(0, 1); out.V ~ U(-1/√H', 1/√H'); out.c = 0.
"""
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from . import cells, layers, products


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape; mirrors the CLI's model options one to one."""

    vocab_size: int
    cell: str = "lstm"  # lstm | gru | rnn
    activation: str = "tanh"  # rnn only: tanh | relu | sigmoid
    layers: int = 2
    hidden: int = 256
    embed: int = 0  # 0: one-hot input, the first layer's Wx rows are the embedding
    dropout: float = 0.0
    bidirectional: bool = False
    forget_bias: float = 0.0  # lstm only: initial b_f (see the module docstring)
    labels: int = 0  # 0: a language model (outputs over the vocabulary); K: a classifier over K labels

    def __post_init__(self):
        if self.cell not in cells.KINDS:
            raise ValueError(f"cell must be one of {', '.join(cells.KINDS)}, not {self.cell!r}")
        if self.activation not in cells.ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(cells.ACTIVATIONS)}")
        for name in ("vocab_size", "layers", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.embed < 0:
            raise ValueError("embed must be 0 (one-hot) or positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if not -10.0 <= self.forget_bias <= 10.0:
            raise ValueError("forget_bias must be in [-10, 10]")
        if self.labels < 0:
            raise ValueError("labels must be 0 (a language model) or positive")

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, d):
        return cls(**d)

    @property
    def out_width(self):
        return self.hidden * (2 if self.bidirectional else 1)

    @property
    def out_size(self):
        """What the output layer scores: the next token (V) or the label (K)."""
        return self.labels or self.vocab_size


# --------------------------------------------------------------------------- parameters

def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # sign fix makes it uniformly distributed


def _init_recurrent(rng, cfg, D, one_hot, dtype):
    H, k = cfg.hidden, cells.GATES[cfg.cell]
    scale = 1.0 if one_hot else 1.0 / np.sqrt(D)  # one-hot: as strong as an embedding row (docstring)
    p = {
        "Wx": rng.uniform(-scale, scale, (D, k * H)),  # (D,G)
        "Wh": np.concatenate([_orthogonal(rng, H) for _ in range(k)], axis=1),  # (H,G)
        "b": np.zeros(k * H),  # (G,)
    }
    if cfg.cell == "lstm":
        p["b"][H:2 * H] = cfg.forget_bias  # above 0: the forget gate starts open
    if cfg.cell == "gru":
        p["bh"] = np.zeros(H)  # (H,)
    return {k_: v.astype(dtype) for k_, v in p.items()}


def init_params(cfg, rng, dtype=np.float32):
    """A fresh parameter dict for ``cfg``; all randomness comes from ``rng``."""
    params = {}
    V, E = cfg.vocab_size, cfg.embed
    if E > 0:
        params["embed.W"] = rng.standard_normal((V, E)).astype(dtype)  # (V,E)
    D = E if E > 0 else V
    for l in range(cfg.layers):
        one_hot = l == 0 and E == 0
        dirs = ("fwd", "bwd") if cfg.bidirectional else ("",)
        for d in dirs:
            prefix = f"layers.{l}." + (f"{d}." if d else "")
            for k, v in _init_recurrent(rng, cfg, D, one_hot, dtype).items():
                params[prefix + k] = v
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
    G, H, E = cells.GATES[cfg.cell] * cfg.hidden, cfg.hidden, cfg.embed
    n = cfg.vocab_size * E
    D = E if E > 0 else cfg.vocab_size
    for _ in range(cfg.layers):
        n += (2 if cfg.bidirectional else 1) * (D * G + H * G + G + (H if cfg.cell == "gru" else 0))
        D = cfg.out_width
    return n + cfg.out_width * cfg.out_size + cfg.out_size


def training_bytes(cfg, batch, seq_len, slots=2, workers=1, itemsize=4):
    """What training ``cfg`` holds in memory, in bytes, as {"weights": parameters, gradients
    (one set per worker) and ``slots`` optimizer arrays each, "activations": what one window's
    forward keeps for the backward, over all B·T rows}. An estimate from the shapes, not a
    measurement (README "Speed" compares the two)."""
    P, H, G = count_params(cfg), cfg.hidden, cells.GATES[cfg.cell] * cfg.hidden
    rows = batch * seq_len * (2 if cfg.bidirectional else 1)
    # per layer: the cell's cache (its gates and states), the layer's input and dropout mask, and
    # what the backward adds; once: one layer's input projection, the logits, softmax and gradient
    per_layer = {"lstm": G + 6 * H, "gru": 3 * G + 4 * H, "rnn": 4 * H}[cfg.cell]
    acts = rows * (cfg.layers * per_layer + G + 3 * cfg.out_size + cfg.embed)
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


def stack_forward(params, cfg, x, state, masks=None, lengths=None, limit=0):
    """The recurrent layers, dropout between: (top output (T,B,H'), final states, [LayerCache]).

    lengths (B,) are the sequences' own lengths, for a bidirectional stack over padded ones.
    """
    caches, new_state = [], []
    for l in range(cfg.layers):
        p = layer_params(params, l, cfg.bidirectional)
        if cfg.bidirectional:
            hs, s, c = layers.bidirectional_forward(p, x, state[l], cfg.cell, cfg.activation, lengths, limit)
        else:
            hs, s, c = layers.recurrent_forward(p, x, state[l], cfg.cell, cfg.activation, limit)
        mask = masks[l] if masks is not None else None
        x = layers.dropout_forward(hs, mask)
        caches.append(LayerCache(c, mask))
        new_state.append(s)
    return x, new_state, caches


def stack_backward(dx, caches, cfg, dstate=None, hidden=False):
    """Back through stack_forward: (dx of its input, [dstate0 per layer], grads, [dL/dh per layer]
    bottom first when ``hidden``, else None)."""
    grads, dstate0, dH = {}, [None] * cfg.layers, [None] * cfg.layers
    bwd = layers.bidirectional_backward if cfg.bidirectional else layers.recurrent_backward
    for l in reversed(range(cfg.layers)):
        c = caches[l]
        dhs = layers.dropout_backward(dx, c.mask)
        dx, dstate0[l], g, dH[l] = bwd(dhs, None if dstate is None else dstate[l], c.layer, hidden)
        grads.update(flatten_grads(l, g, cfg.bidirectional))
    return dx, dstate0, grads, (dH if hidden else None)


def forward(params, cfg, ids, state, masks=None, limit=0):
    """Logits for every position of a (T,B) window of token ids, from a carried state.

    masks: optional dropout masks, one (T,B,H') array per layer output (None = no dropout).
    limit: the recurrent product's column-block limit (core/products.py; 0 = one product).
    Returns logits (T,B,V), the final state, and the Cache for ``backward``.
    """
    x = layers.embedding_forward(params["embed.W"], ids) if cfg.embed > 0 else ids
    top, new_state, caches = stack_forward(params, cfg, x, state, masks, limit=limit)
    out = {"V": params["out.V"], "c": params["out.c"]}
    logits, _ = layers.output_forward(out, top)
    return logits, new_state, Cache(ids, caches, out, top)


def backward(dlogits, cache, cfg, dstate=None, hidden=False):
    """Gradients of every parameter (keys as in params) and of the initial state.

    dstate: gradient flowing into the final state (None for truncated BPTT, where the
    carried state is treated as a constant). With ``hidden``, also dL/dh_t of every layer
    (a list of (T,B,H), bottom first; for diagnostics): (grads, dstate0, dH).
    """
    dx, g = layers.output_backward(dlogits, cache.top, cache.out)
    dx, dstate0, grads, dH = stack_backward(dx, cache.layers, cfg, dstate, hidden)
    grads["out.V"], grads["out.c"] = g["V"], g["c"]
    if cfg.embed > 0:
        grads["embed.W"] = layers.embedding_backward(dx, cache.ids, cfg.vocab_size)
    return (grads, dstate0, dH) if hidden else (grads, dstate0)


def layer_states(cache):
    """Per layer (hs, cs): the states a window forward stored, (T,B,H) each; cs is None but for
    the LSTM. Unidirectional models only."""
    return [(c.layer.cell.hs, c.layer.cell.cs) for c in cache.layers]


def make_masks(cfg, T, B, rng, dtype=np.float32):
    """Fresh inverted-dropout masks for one training window, or None when dropout is 0."""
    if cfg.dropout <= 0:
        return None
    return [layers.dropout_mask((T, B, cfg.out_width), cfg.dropout, rng, dtype) for _ in range(cfg.layers)]


def evaluate(params, cfg, x, y, state, limit=0):
    """Summed negative log-likelihood (nats) of a (T,B) window, and the carried state.

    -log p(y_t) = logsumexp(z_t) - z_t[y_t], row by row in the logits' own dtype (no
    float64 copy of the (T,B,V) logits); the sum over rows is taken in float64.
    """
    logits, new_state, _ = forward(params, cfg, x, state, limit=limit)
    nll, _, _ = layers.token_nll(logits, y)
    return float(nll.sum(dtype=np.float64)), new_state


# --------------------------------------------------------------------------- one step

def _own(a, p):
    """``a``, copied if it is one of the arrays of ``p`` (folded_input passes some through)."""
    return a.copy() if a is not None and any(a is v for v in p.values()) else a


class Stepper:
    """One token at a time for sampling: the cells' own step functions on reused buffers.

    ``step(ids (B,)) -> logits (B,V)`` equals row t of the window forward's logits, to rounding
    (the stacked product below sums in another order: 1e-12 apart in float64). The bias
    (and, for the LSTM, the sigmoid columns' exact ×0.5) is folded into per-layer copies of
    the weights once, and every state is updated in place, so a step is few numpy calls.
    Those copies are a snapshot: build a new Stepper after changing the parameters.

    A layer fed by another layer keeps h_{t-1} beside its input in one (B, D+H) buffer
    [x_t, h_{t-1}] and gets its whole pre-activation from one product with the stacked
    [Wx; Wh]: one call instead of two, on a matrix large enough that a multi-threaded BLAS
    splits it across cores, where each core's share of the weights stays in its own cache
    (charrnn/blas.py). The one-hot first layer gathers rows instead, and the GRU keeps two
    products because its n gate needs Wh·h apart. Only for unidirectional models (a
    bidirectional layer needs the whole sequence).
    """

    def __init__(self, params, cfg, B=1, state=None, limit=0):
        if cfg.bidirectional:
            raise ValueError("a bidirectional model cannot be stepped one token at a time")
        self.params, self.cfg = params, cfg
        dtype = params["out.V"].dtype
        H, G = cfg.hidden, cells.GATES[cfg.cell] * cfg.hidden
        pre = cells.input_scale(cfg.cell, H, dtype)
        start = state or zero_state(cfg, B, dtype)
        self.layers, self.state = [], []
        for l in range(cfg.layers):
            p = layer_params(params, l, False)
            one_hot = l == 0 and cfg.embed == 0
            Wx, b = layers.folded_input(p, cfg.cell, one_hot)
            Wh = p["Wh"] if pre is None else p["Wh"] * pre
            b = _own(b, p)  # a snapshot: no array of the parameters' own
            if one_hot or cfg.cell == "gru":
                Wx, Wh = _own(Wx, p), _own(Wh, p)
                L = {"Wx": Wx, "b": b, "Wh": Wh, "bh": _own(p.get("bh"), p), "blocks": products.plan(Wh, B, limit)}
                h = np.empty((B, H), dtype=dtype)  # (B,H)
            else:
                D = Wx.shape[0]
                W = np.concatenate([Wx, Wh])  # (D+H,G) [Wx; Wh]
                L = {"W": W, "b": b, "D": D, "blocks": products.plan(W, B, limit)}
                L["xh"] = np.empty((B, D + H), dtype=dtype)  # (B,D+H) [x_t, h_{t-1}]
                h = L["xh"][:, D:]  # the state is a view: the product reads it in place
            h[...] = start[l][0]
            self.layers.append(L)
            self.state.append((h,) + tuple(a.copy() for a in start[l][1:]))
        self.a = np.empty((B, G), dtype=dtype)  # (B,G) gate scratch
        self.xp = np.empty((B, G), dtype=dtype)  # (B,G)
        self.tc = np.empty((B, H), dtype=dtype)  # (B,H)
        self.tmp = np.empty((B, H), dtype=dtype)  # (B,H)
        self.logits = np.empty((B, cfg.vocab_size), dtype=dtype)  # (B,V)

    def step(self, ids):
        cfg, P, a, xp = self.cfg, self.params, self.a, self.xp
        x = P["embed.W"][ids] if cfg.embed > 0 else None
        for L, s in zip(self.layers, self.state):
            h = s[0]
            if "W" in L:  # the whole pre-activation: [x_t, h_{t-1}]·[Wx; Wh] + b
                L["xh"][:, :L["D"]] = x
                products.matmul(L["xh"], L["W"], L["blocks"], a)
                a += L["b"]
            elif x is None:  # one-hot: a row of (Wx + b)
                np.take(L["Wx"], ids, axis=0, out=xp)
            else:
                np.matmul(x, L["Wx"], out=xp)
                xp += L["b"]
            # each cell writes h_t over h_{t-1}, which its product has already read
            if cfg.cell == "lstm":
                if "W" in L:
                    cells.lstm_activate(a, s[1], s[1], self.tc, h, self.tmp)
                else:
                    cells.lstm_step(xp, h, s[1], L["Wh"], a, s[1], self.tc, h, self.tmp, L["blocks"])
            elif cfg.cell == "gru":
                cells.gru_step(xp, h, L["Wh"], L["bh"], a, self.tmp, h, L["blocks"])
            else:
                if "W" not in L:
                    products.matmul(h, L["Wh"], L["blocks"], a)
                    a += xp
                h[...] = cells.rnn_activate(a, cfg.activation)
            x = h
        np.matmul(x, P["out.V"], out=self.logits)
        self.logits += P["out.c"]
        return self.logits  # (B,V), overwritten by the next step
