"""Many-to-one: a sequence classifier. Embedding -> L recurrent layers -> final state(s) -> softmax.

Shapes: T time (the longest sequence of the batch), B batch, H hidden, H' = H or 2H
(bidirectional), K labels.

    h^l_t     as in the language model (core/model.py), layer over layer, dropout between
    f_b       = h→_{len_b - 1}                       unidirectional: the state after the last token
              = [h→_{len_b - 1} ; h←_0]              bidirectional: each direction's final state
    p(k | x)  = softmax(f_b·V + c)_k

Sequences are padded at the end to T; the features are read at each one's own last step, so
the padding never reaches them (a bidirectional layer reverses each sequence within its length).
Parameters are the language model's, keys and all, with out.V (H',K) and out.c (K,).
"""
from typing import NamedTuple

import numpy as np

from . import layers, model


class Cache(NamedTuple):
    """What ``forward`` keeps for ``backward``: ids, lengths, the stack's output shape, its
    layer caches (model.stack_forward) and the features the output layer read."""
    ids: np.ndarray
    lengths: np.ndarray
    shape: tuple
    layers: list
    feat: np.ndarray


def forward(params, cfg, ids, lengths, masks=None):
    """Label logits (B,K) for padded sequences ids (T,B) of the given lengths (B,), and the Cache."""
    T, B = ids.shape
    lengths = np.asarray(lengths)
    x = layers.embedding_forward(params["embed.W"], ids) if cfg.embed > 0 else ids
    state = model.zero_state(cfg, B, params["out.V"].dtype)
    x, _, caches = model.stack_forward(params, cfg, x, state, masks, lengths)
    rows = np.arange(B)
    H = cfg.hidden
    feat = x[lengths - 1, rows]  # (B,H') the forward direction's last real step
    if cfg.bidirectional:
        feat = np.concatenate([feat[:, :H], x[0, :, H:]], axis=1)  # (B,2H) h← has read all by t = 0
    logits = feat @ params["out.V"] + params["out.c"]  # (B,K)
    return logits, Cache(ids, lengths, x.shape, caches, feat)


def backward(dlogits, cache, cfg, params):
    """Gradients of every parameter, keys as in params."""
    ids, lengths, shape, feat = cache.ids, cache.lengths, cache.shape, cache.feat
    B = len(lengths)
    H = cfg.hidden
    grads = {"out.V": feat.T @ dlogits, "out.c": dlogits.sum(axis=0)}
    dfeat = dlogits @ params["out.V"].T  # (B,H')
    dx = np.zeros(shape, dtype=dlogits.dtype)  # (T,B,H')
    rows = np.arange(B)
    dx[lengths - 1, rows, :H] = dfeat[:, :H]
    if cfg.bidirectional:
        dx[0, :, H:] = dfeat[:, H:]
    dx, _, g = model.stack_backward(dx, cache.layers, cfg)
    grads.update(g)
    if cfg.embed > 0:
        grads["embed.W"] = layers.embedding_backward(dx, ids, cfg.vocab_size)
    return grads


def loss_and_grads(params, cfg, ids, lengths, y, rng=None):
    """Mean cross-entropy over the B sequences, its gradients, and the logits (B,K)."""
    T, B = ids.shape
    masks = model.make_masks(cfg, T, B, rng, params["out.V"].dtype) if rng is not None else None
    logits, cache = forward(params, cfg, ids, lengths, masks)
    loss, dlogits = layers.softmax_cross_entropy(logits, y)
    return loss, backward(dlogits, cache, cfg, params), logits


def predict_proba(params, cfg, ids, lengths):
    """p(k | sequence) for each of B sequences: (B,K) rows summing to 1 (float64)."""
    logits, _ = forward(params, cfg, ids, lengths)
    z = layers.log_softmax(logits.astype(np.float64))
    return np.exp(z)


def pad(seqs, pad_id=0):
    """(T,B) int64 ids, end-padded, and the (B,) lengths of a list of 1-D id arrays (each ≥ 1 long)."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)  # (B,)
    ids = np.full((int(lengths.max()), len(seqs)), pad_id, dtype=np.int64)  # (T,B)
    for b, s in enumerate(seqs):
        ids[:len(s), b] = s
    return ids, lengths
