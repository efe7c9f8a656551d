"""What a trained model's hidden units do: their activations over a text, and the simple
features of the text they may track (Karpathy, Johnson and Fei-Fei, "Visualizing and
Understanding Recurrent Networks", 2015).

Shapes: T tokens (characters at char level), L layers, H hidden units per layer, F features.

Pure: numpy and the standard library; nothing here prints. The command is cli/inspect.py.

The activation at position t is the state *after* reading token t (what the network knows
then), so the features are defined the same way: an opening quote is already inside the
quotes, a closing one is outside again.
"""
import numpy as np

from charrnn.core import model

STATES = ("h", "c")  # h: every cell's output; c: the LSTM's cell state (shown as tanh(c))
FEATURES = ("inside_quotes", "inside_brackets", "line_position", "word_start")
OPENERS, CLOSERS = "([{", ")]}"


# --------------------------------------------------------------------------- activations

def run(params, cfg, ids, window=256):
    """The states after each token of ``ids`` from a zero state, as stepping one token at a time
    would give them (batch 1), read off the window forward's cache a window at a time.

    Returns {"h": (L,T,H), "c": (L,T,H) raw cell state or None for a GRU or vanilla RNN}.
    """
    ids = np.asarray(ids, dtype=np.int64)
    T, L, H = len(ids), cfg.layers, cfg.hidden
    dtype = params["out.V"].dtype
    h = np.empty((L, T, H), dtype=dtype)  # (L,T,H)
    c = np.empty((L, T, H), dtype=dtype) if cfg.cell == "lstm" else None  # (L,T,H)
    state = model.zero_state(cfg, 1, dtype)
    for s in range(0, T, window):
        _, state, cache = model.forward(params, cfg, ids[s:s + window, None], state)
        for l, (hs, cs) in enumerate(model.layer_states(cache)):  # (t,1,H) each
            h[l, s:s + window] = hs[:, 0]
            if c is not None:
                c[l, s:s + window] = cs[:, 0]
    return {"h": h, "c": c}


def select(acts, state):
    """The (L,T,H) values a user looks at: h as is, c squashed to tanh(c) in [-1, 1]."""
    if state == "h":
        return acts["h"]
    if acts.get("c") is None:
        raise ValueError("only an LSTM has a cell state c")
    return np.tanh(acts["c"])


# --------------------------------------------------------------------------- features

def features(text):
    """Per-character features of ``text``: name -> (T,) float64 array, T = len(text).

    inside_quotes    1 from an opening " through the character before its closing "
                     (straight double quotes only; an unclosed quote runs to the end)
    inside_brackets  1 while the nesting depth of ( [ { is above 0 (the opener counts,
                     the closer that brings the depth to 0 does not; a stray closer is ignored)
    line_position    the column of each character in its line, 0 first (a line break is the
                     last character of its line)
    word_start       1 at the first character of a word (a run of letters, digits or _)
    """
    T = len(text)
    quotes, brackets = np.zeros(T), np.zeros(T)  # (T,) each
    column, start = np.zeros(T), np.zeros(T)  # (T,) each
    inside, depth, col, prev_word = False, 0, 0, False
    for t, ch in enumerate(text):
        if ch == '"':
            inside = not inside
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth = max(0, depth - 1)
        word = ch.isalnum() or ch == "_"
        quotes[t], brackets[t] = inside, depth > 0
        column[t], start[t] = col, word and not prev_word
        col = 0 if ch == "\n" else col + 1
        prev_word = word
    return {"inside_quotes": quotes, "inside_brackets": brackets, "line_position": column,
            "word_start": start}


# --------------------------------------------------------------------------- ranking

def correlations(values, feats):
    """Pearson correlation of every unit with every feature.

    values (L,T,H), feats name -> (T,). Returns (L,H,F) float64 in feature order; a unit or
    feature that is constant over the text has correlation 0 (there is nothing to track).
    """
    L, T, H = values.shape
    if T == 0:  # no text: nothing tracks anything
        return np.zeros((L, H, len(feats)))
    x = values.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)  # (L,T,H)
    f = np.stack([np.asarray(feats[k], dtype=np.float64) for k in feats], axis=1)  # (T,F)
    f = f - f.mean(axis=0)
    sx = np.sqrt((x * x).sum(axis=1))  # (L,H)
    sf = np.sqrt((f * f).sum(axis=0))  # (F,)
    cov = np.einsum("lth,tf->lhf", x, f)  # (L,H,F)
    denom = sx[:, :, None] * sf[None, None, :]
    # relative thresholds: float32 rounding leaves a constant unit with a tiny nonzero spread
    biggest = float(np.abs(values).max()) if values.size else 0.0
    tiny_x = sx <= 1e-6 * (biggest + 1e-30) * np.sqrt(max(T, 1))
    tiny_f = sf <= 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)
    r[tiny_x] = 0.0
    r[:, :, tiny_f] = 0.0
    return np.clip(r, -1.0, 1.0)


def rank(values, feats, top=5, layers=None):
    """The ``top`` units per feature by |Pearson correlation|, best first.

    layers: the layer indices to search (default all). Returns name -> {"constant": bool,
    "top": [{"layer", "unit", "corr"}, ...]}; a constant feature has an empty list. Ties
    keep the lower (layer, unit) first, so the ranking is deterministic.
    """
    r = correlations(values, feats)  # (L,H,F)
    L, H, _ = r.shape
    layers = list(range(L)) if layers is None else list(layers)
    out = {}
    for j, name in enumerate(feats):
        f = np.asarray(feats[name])
        constant = bool(f.size == 0 or np.all(f == f.flat[0]))
        sub = r[layers, :, j].ravel()  # (len(layers)·H,) layer-major, so i -> (layers[i // H], i % H)
        order = np.argsort(-np.abs(sub), kind="stable")[:0 if constant else top]
        out[name] = {"constant": constant,
                     "top": [{"layer": layers[i // H], "unit": int(i % H), "corr": float(sub[i])} for i in order]}
    return out
