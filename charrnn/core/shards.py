"""A window's streams in fixed shards, so that how they are split never changes a bit.

Shapes: T time, B streams, S streams a shard, n shards; P parameters.

One row of a matrix product can come out with other last bits depending on how many rows the
product has: OpenBLAS's AVX2 (Haswell) kernels take a product's rows four at a time and the
rest one or two at a time, each way rounding differently. So a window is computed shard by
shard, S streams a shard, S fixed by B alone (``size``): each shard's forward, backward and
gradient are the same function of the same arrays whoever computes it (this thread, one of
K worker threads or processes, one of K MPI ranks). The shards' gradients are summed in one
fixed order, a binary tree over the shard indices:

    node (0, s)          shard s's gradient
    node (j+1, k)        node (j, 2k) + node (j, 2k+1); node (j, 2k) alone where 2k+1 is past n

A worker holding shards [a, b) sums what it can of the tree as it goes (``push``) and hands on
the nodes it could not finish; ``total`` finishes the tree from every worker's nodes, in
order. The carried state is the shards' states joined, the loss the shards' summed NLL (in
float64, in shard order) over all T·B positions. So 1, 2 or 4 workers, and K ranks, give the
same loss, gradient and state bit for bit, on any BLAS that computes the same product of the
same operands alike (every BLAS charrnn has met; the suite checks it under OpenBLAS's AVX2
and AVX-512 kernels).
"""
from typing import NamedTuple

import numpy as np

from . import layers, model
from .parallel import split_keys, thread_map

MAX_STREAMS = 16  # a shard's streams: at 16 rows the recurrent product still runs near its best


def size(B):
    """Streams a shard for a batch of B: 16, or half the batch when that is less (so that a
    batch under 32 still makes two shards for two workers)."""
    return max(1, min(MAX_STREAMS, -(-B // 2)))


def bounds(B):
    """Each shard's streams [lo, hi) in a batch of B; the last may be shorter."""
    S = size(B)
    return [(lo, min(lo + S, B)) for lo in range(0, B, S)]


def split(first, last, k):
    """Shards [first, last) in k contiguous runs as equal as they can be (none empty)."""
    n = last - first
    k = max(1, min(k, n))
    return [(first + n * i // k, first + n * (i + 1) // k) for i in range(k)]


# --------------------------------------------------------------------------- the tree

def _whole(level, index, n):
    """Node (level, index) covers all n shards: the root."""
    return index == 0 and (1 << level) >= n


def push(nodes, node, n, add):
    """Put ``node`` = (level, index, value) after ``nodes`` (the earlier shards' unfinished
    nodes, in order) and sum all that can be summed: a right child onto its left sibling
    (``add(left, right)`` returns their sum, in place in left), a left child without a right
    one up a level as it is. In place; returns ``nodes``."""
    nodes.append(node)
    while True:
        level, index, value = nodes[-1]
        if _whole(level, index, n):
            break
        if index % 2 == 0:
            if (index + 1) << level < n:
                break  # its right sibling is still to come
            nodes[-1] = (level + 1, index // 2, value)
        elif len(nodes) >= 2 and nodes[-2][:2] == (level, index - 1):
            left = nodes[-2][2]
            nodes[-2:] = [(level + 1, index // 2, add(left, value))]
        else:
            break  # its left sibling is another worker's
    return nodes


def total(parts, n, add):
    """The root of the tree from every worker's unfinished nodes, the workers in shard order."""
    nodes = []
    for part in parts:
        for node in part:
            push(nodes, node, n, add)
    assert len(nodes) == 1 and _whole(*nodes[0][:2], n), "the nodes do not cover every shard"
    return nodes[0][2]


def add_grads(a, b, workers=1):
    """a += b for two gradient dicts, key by key (keys split between threads: element-wise, so
    exact however they are split); returns a."""
    def run(keys):
        for k in keys:
            a[k] += b[k]
    thread_map(run, split_keys(a, workers))
    return a


# --------------------------------------------------------------------------- a window

class Part(NamedTuple):
    """What a worker hands on for its shards: each shard's summed NLL (float64), the gradient
    tree's unfinished nodes [(level, index, grads)], and each shard's final carried state."""
    nll: list
    nodes: list
    states: list


def streams(B, first, last):
    """The streams [lo, hi) that shards [first, last) of a batch of B hold."""
    cuts = bounds(B)
    return cuts[first][0], cuts[last - 1][1]


def shard_range(params, cfg, x, y, state, masks, first, last, scale, weights=None, block_limit=0, B=None):
    """Shards [first, last) of a window of B streams, one after another: a Part. x, y, state,
    masks and weights hold all B streams, or (a worker process's) only those of these shards.
    ``scale`` is 1/Σw over the whole window (1/(T·B) without weights), so the shards'
    gradients add up to the window's mean loss's with no weighting after."""
    B = x.shape[1] if B is None else B
    cuts, base = bounds(B), (0 if x.shape[1] == B else streams(B, first, last)[0])
    nlls, nodes, states = [], [], []
    for s in range(first, last):
        lo, hi = cuts[s][0] - base, cuts[s][1] - base
        w = None if weights is None else weights[:, lo:hi]
        sub = [tuple(a[lo:hi] for a in layer) for layer in state]
        m = None if masks is None else [mask[:, lo:hi] for mask in masks]
        logits, new_state, cache = model.forward(params, cfg, x[:, lo:hi], sub, m, block_limit)
        nll, dlogits = layers.nll_and_grad(logits, y[:, lo:hi], w, scale)
        grads, _ = model.backward(dlogits, cache, cfg)
        nlls.append(nll)
        states.append(new_state)
        push(nodes, (0, s, grads), len(cuts), add_grads)
    return Part(nlls, nodes, states)


def joined(parts, n):
    """Consecutive workers' Parts as one (a rank's threads): the nodes pushed again in order,
    so siblings that two of them held are summed as the tree sums them."""
    nodes = []
    for p in parts:
        for node in p.nodes:
            push(nodes, node, n, add_grads)
    return Part([v for p in parts for v in p.nll], nodes, [s for p in parts for s in p.states])


def node_count(first, last, n):
    """How many unfinished nodes a worker holding shards [first, last) of n hands on."""
    nodes = []
    for s in range(first, last):
        push(nodes, (0, s, None), n, lambda a, b: a)
    return len(nodes)


def combine(parts, n, scale, workers=1):
    """Every worker's Part, in shard order, as the window's (mean loss, grads, carried state):
    the NLL summed in shard order, the gradient tree finished, the states joined."""
    grads = total([p.nodes for p in parts], n, lambda a, b: add_grads(a, b, workers))
    return sum(v for p in parts for v in p.nll) * scale, grads, join_states([s for p in parts for s in p.states])


def join_states(states):
    """Per-shard carried states (each per layer a tuple of (S,H) arrays) as one, streams in order."""
    return [tuple(np.concatenate([s[l][i] for s in states]) for i in range(len(states[0][l])))
            for l in range(len(states[0]))]


def window_scale(T, B, weights=None):
    """1/Σw over the window's positions: what each shard's gradient is scaled by."""
    return 1.0 / (T * B if weights is None else float(np.asarray(weights, dtype=np.float64).sum()))


def loss_and_grads(params, cfg, x, y, state, rng=None, workers=1, weights=None, block_limit=0, shards=None):
    """One truncated-BPTT window: the mean loss over all T·B positions, the gradients, the
    final carried state (the caller carries it into the next window without gradient).

    workers > 1 splits the shards between threads (one BLAS thread each works best): the
    result is the same bit for bit. weights: optional (T,B) per-position loss weights.
    block_limit: core/products.py's column-block limit. shards: (first, last), only those shards
    (one MPI rank's share, training/distributed.py), returned as a Part to ``combine`` with
    the other ranks'. The dropout masks are drawn for the whole window either way, so the
    Generator advances alike on every rank and each rank's slice of them is the single
    machine's.
    """
    T, B = x.shape
    masks = model.make_masks(cfg, T, B, rng, params["out.V"].dtype) if rng is not None else None
    n, scale = len(bounds(B)), window_scale(T, B, weights)
    first, last = shards or (0, n)
    runs = split(first, last, workers)
    parts = thread_map(lambda r: shard_range(params, cfg, x, y, state, masks, *r, scale, weights, block_limit), runs)
    if shards is not None:
        return joined(parts, n)
    return combine(parts, n, scale, workers)
