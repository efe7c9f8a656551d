"""Drawing tokens from the model: temperature, top-k, top-p, argmax, beam search.

Shapes: V vocab, K beam width. Pure: numpy and the standard library, randomness passed in.
"""
import math

import numpy as np

from . import layers, model


def distribution(logits, temp=1.0, top_k=0, top_p=1.0):
    """p ∝ exp((logit - max) / temp) over the kept tokens, in float64.

    Subtracting the max before dividing keeps any temp > 0 finite: the best token gets
    exp(0) = 1, the rest underflow to 0 at tiny temperatures instead of overflowing.
    top_k > 0 keeps the k most likely tokens; top_p < 1 keeps the smallest set whose
    probability reaches p (nucleus sampling).
    """
    z = np.asarray(logits, dtype=np.float64)
    top = z.max()
    if not math.isfinite(top):
        raise NonFiniteOutput("the model's output is not finite (its weights overflow)")
    z = (z - top) / temp  # (V,)
    p = np.exp(z)
    if 0 < top_k < p.size:
        cut = np.partition(p, p.size - top_k)[p.size - top_k]
        p[p < cut] = 0.0
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = np.searchsorted(cum, top_p * cum[-1]) + 1  # tokens needed to reach top_p
        p[order[keep:]] = 0.0
    return p / p.sum()


class NonFiniteOutput(ValueError):
    """The network produced NaN or infinite scores: nothing sensible can be drawn."""


def newline_id(tokens):
    """The line break's id in the vocabulary, or None."""
    return next((i for i, t in enumerate(tokens) if t == "\n"), None)


def start_token(tokens, rng):
    """Where a sample without a prime starts: after a line break if the vocabulary has one,
    else at a random token. Training rarely sees the zero state, so a model's output there
    after an arbitrary token is close to uniform, and one rare draw can derail the sample."""
    nl = newline_id(tokens)
    return nl if nl is not None else int(rng.integers(len(tokens)))


def context(tokens, prime_ids, rng):
    """What a sample feeds before its first draw: the prime as read after a line break (the
    break fed, not printed), or without a prime the start_token alone."""
    if not prime_ids:
        return [start_token(tokens, rng)]
    nl = newline_id(tokens)
    return list(prime_ids) if nl is None or prime_ids[0] == nl else [nl, *prime_ids]


class Sampler:
    """One token after another from a Stepper; ``feed`` primes, ``draw`` samples and feeds."""

    def __init__(self, stepper, rng, temp=1.0, top_k=0, top_p=1.0, argmax=False):
        self.stepper, self.rng = stepper, rng
        self.temp, self.top_k, self.top_p, self.argmax = temp, top_k, top_p, argmax
        self.logits = None
        self._id = np.zeros(1, dtype=np.int64)  # (1,) reused input buffer

    def feed(self, token):
        self._id[0] = token
        self.logits = self.stepper.step(self._id)[0]  # (V,) a view the next step overwrites

    def draw(self):
        """The next token, given everything fed so far; it is fed back in."""
        if self.logits is None:
            raise ValueError("feed at least one token before drawing")
        if self.argmax:
            tok = int(np.argmax(self.logits))
        else:
            if self.top_k or self.top_p < 1.0:
                p = self.distribution()
            else:  # the common case in as few calls as possible: exp((z - max)/temp), unnormalised
                p = self.logits.astype(np.float64)
                top = p.max()
                if not math.isfinite(top):
                    raise NonFiniteOutput("the model's output is not finite (its weights overflow)")
                p -= top
                p *= 1.0 / self.temp
                np.exp(p, out=p)
            cdf = np.cumsum(p)
            tok = int(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right"))
            tok = min(tok, p.size - 1)  # guard the last bucket against rounding of the sum
        self.feed(tok)
        return tok

    def distribution(self):
        return distribution(self.logits, self.temp, self.top_k, self.top_p)


def beam_search(params, cfg, prime, length, beam, block_limit=0):
    """The most likely continuation of ``length`` tokens after ``prime`` (log-prob summed).

    Keeps the ``beam`` best partial continuations, each with its own recurrent state;
    returns (tokens, total log-probability).
    """
    stepper = model.Stepper(params, cfg, B=1)
    for tok in prime[:-1]:
        stepper.step(np.array([tok]))
    logp = layers.log_softmax(stepper.step(np.array([prime[-1]]))[0].astype(np.float64))  # (V,)
    # start all beams from the primed state
    states = [tuple(np.repeat(a, beam, axis=0) for a in s) for s in stepper.state]
    K = min(beam, logp.size)
    first = np.argsort(-logp, kind="stable")[:K]
    seqs = [[int(t)] for t in first]
    scores = logp[first]  # (K,)
    bs = model.Stepper(params, cfg, B=beam, state=[tuple(a[:beam] for a in s) for s in states], block_limit=block_limit)
    for s in bs.state:
        for a in s:
            a[K:] = 0
    last = np.zeros(beam, dtype=np.int64)
    last[:K] = first
    for _ in range(length - 1):
        lp = layers.log_softmax(bs.step(last)[:K].astype(np.float64))  # (K,V)
        total = (scores[:, None] + lp).ravel()  # (K·V,)
        best = np.argsort(-total, kind="stable")[:beam]
        rows, toks = np.divmod(best, lp.shape[1])
        seqs = [seqs[r] + [int(t)] for r, t in zip(rows, toks)]
        scores = total[best]
        K = len(best)
        for s in bs.state:  # reorder each beam's state to follow its parent
            for a in s:
                a[:K] = a[rows]
        last[:K] = toks
    return seqs[0], float(scores[0])
