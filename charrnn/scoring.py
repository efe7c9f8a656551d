"""Negative log-likelihood of a token stream under a model (validation and `charrnn eval`).

Shapes: T time, B streams. The stream is cut into B contiguous pieces read in parallel,
each carrying its state from window to window, as in training; every token but the
first of each piece is predicted and scored.
"""
import math

import numpy as np

from .core import model


def stream_nll(params, cfg, tokens, batch=32, seq_len=100, max_tokens=None):
    """(summed NLL in nats, number of predicted tokens) over ``tokens`` (1-D int array)."""
    n = len(tokens) if max_tokens is None else min(len(tokens), max_tokens)
    if n < 2:
        return 0.0, 0
    B = max(1, min(batch, (n - 1) // max(seq_len, 1)))
    L = (n - 1) // B  # predicted tokens per stream
    rows = np.stack([np.asarray(tokens[b * L:b * L + L + 1]) for b in range(B)], axis=1)  # (L+1,B)
    rows = rows.astype(np.int64)
    state = model.zero_state(cfg, B, params["out.V"].dtype)
    total, count = 0.0, 0
    for s in range(0, L, seq_len):
        x, y = rows[s:s + seq_len], rows[s + 1:s + seq_len + 1]
        x = x[:len(y)]
        nll, state = model.evaluate(params, cfg, x, y, state)
        total += nll
        count += y.size
    return total, count


def summary(nll, tokens, chars):
    """loss (nats/token), bits per character, perplexity, token count."""
    loss = nll / tokens if tokens else float("nan")
    return {
        "loss": loss,
        "bits_per_char": nll / (chars * math.log(2)) if chars else float("nan"),
        "perplexity": math.exp(loss) if tokens and loss < 700 else float("inf"),
        "tokens": tokens,
    }
