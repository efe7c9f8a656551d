"""Negative log-likelihood of a token stream under a model (validation and `charrnn eval`).

Shapes: T time, B streams. The stream is cut into B contiguous pieces read in parallel,
each carrying its state from window to window, as in training; every token but the
first of each piece is predicted and scored.
"""
import math

import numpy as np

from charrnn.core import classifier, layers, model, shards
from charrnn.core.parallel import thread_map


def stream_nll(params, cfg, tokens, batch=32, seq_len=100, max_tokens=None, workers=1, block_limit=0,
               context=None):
    """(summed NLL in nats, number of predicted tokens) over ``tokens`` (1-D int array).

    Every token after the first is scored: the B streams take (n-1)//B tokens each and
    one short extra stream the few left over. The streams are read in shards, summed in
    shard order: the figure is the same bit for bit for any number of ``workers``.
    block_limit: core/products.py's column-block limit. ``context``: a token id each stream
    reads first, unscored (the line break `score` and `sample` start after), instead of
    starting from the zero state on a token in mid-text.
    """
    n = len(tokens) if max_tokens is None else min(len(tokens), max_tokens)
    if n < 2:
        return 0.0, 0
    B = max(1, min(batch, (n - 1) // max(seq_len, 1)))
    L = (n - 1) // B  # predicted tokens per stream
    rows = np.stack([np.asarray(tokens[b * L:b * L + L + 1]) for b in range(B)], axis=1)  # (L+1,B)
    rows = rows.astype(np.int64)
    cuts = shards.bounds(B)  # shard by shard, so the sum does not depend on the workers (core/shards.py)

    def run(r):  # one worker's shards, each from start to end
        out = []
        for lo, hi in cuts[r[0]:r[1]]:
            state = model.zero_state(cfg, hi - lo, params["out.V"].dtype)
            if context is not None:  # the state after the context token, for every stream of the shard
                _, state, _ = model.forward(params, cfg, np.full((1, hi - lo), context, dtype=np.int64), state,
                                            block_limit=block_limit)
            total = 0.0
            for s in range(0, L, seq_len):
                y = rows[s + 1:s + seq_len + 1, lo:hi]
                nll, state = model.evaluate(params, cfg, rows[s:s + len(y), lo:hi], y, state, block_limit)
                total += nll
            out.append(total)
        return out

    totals = [t for part in thread_map(run, shards.split(0, len(cuts), workers)) for t in part]
    total, count = sum(totals), L * B
    rest = n - 1 - count  # tokens past the B equal streams: one more short stream scores them
    if rest > 0:
        nll, _ = stream_nll(params, cfg, np.asarray(tokens[count:n]), 1, seq_len, block_limit=block_limit,
                            context=context)
        total, count = total + nll, count + rest
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


def sequence_logprobs(params, cfg, seqs, window=128, block_limit=0):
    """log p(s_1 … s_n | s_0) in nats for each sequence s (1-D int arrays, n ≥ 1), from a zero state.

    The sequences are scored side by side: padded to the longest into a (T,B) batch, read in
    windows of ``window`` steps carrying the state, padding masked out of the sums.
    """
    total = np.zeros(len(seqs))  # (B,)
    for _, nll, valid in _window_nlls(params, cfg, seqs, window, block_limit):
        total -= np.where(valid, nll, 0.0).sum(axis=0, dtype=np.float64)
    return total


def token_surprisals(params, cfg, seqs, window=128, block_limit=0):
    """-log p(s_t | s_0 … s_{t-1}) in nats for t = 1 … n of each sequence: a list of (n,) float64."""
    out = [np.empty(len(s) - 1) for s in seqs]
    for start, nll, _ in _window_nlls(params, cfg, seqs, window, block_limit):
        for b, o in enumerate(out):
            part = o[start:start + len(nll)]
            part[...] = nll[:len(part), b]
    return out


def _window_nlls(params, cfg, seqs, window, block_limit):
    """(first position, nll (t,B), valid (t,B)) for each window of the padded batch of ``seqs``."""
    ids, lens = classifier.pad(seqs)  # (T+1,B) padded with token 0, (B,)
    B, T = len(seqs), ids.shape[0] - 1
    valid = np.arange(1, T + 1)[:, None] < lens[None, :]  # (T,B) position t predicts a real token
    state = model.zero_state(cfg, B, params["out.V"].dtype)
    for s in range(0, T, window):
        x, y = ids[s:s + window], ids[s + 1:s + window + 1]
        logits, state, _ = model.forward(params, cfg, x[:len(y)], state, block_limit=block_limit)
        nll, _, _ = layers.token_nll(logits, y)
        yield s, nll.reshape(y.shape), valid[s:s + len(y)]
