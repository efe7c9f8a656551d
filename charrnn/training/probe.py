"""How fast this machine trains a network: a few real steps of a candidate, timed.

A step here is what the trainer's step is (the window's forward and backward over the shards,
split between the run's workers as threads, and the optimizer's update), on a window of the
corpus itself, with fresh random weights: its time does not depend on what the weights are.
The first step warms the caches and the thread pool and is not counted.
"""
import time

import numpy as np

from charrnn import blas
from charrnn.config.model import ModelConfig
from charrnn.core import model, optim, shards


def seconds_per_step(mcfg: ModelConfig, tokens, batch, seq_len, threads, steps=2, budget=None):
    """The fastest of ``steps`` timed training steps of ``mcfg`` (after one warm-up), in seconds;
    ``budget`` seconds: stop timing early once they are spent (at least one timed step)."""
    rng = np.random.default_rng(0)
    params = model.init_params(mcfg, rng)
    opt = optim.make_optimizer("adam")
    state, opt_state = model.zero_state(mcfg, batch), opt.init_state(params)
    need = batch * (seq_len + 1)
    ids = np.asarray(tokens[:need]) if len(tokens) >= need else rng.integers(0, mcfg.vocab_size, need)
    window = ids.reshape(batch, seq_len + 1).T.astype(np.int64)  # (T+1,B)
    x, y = window[:-1], window[1:]
    best, started = float("inf"), time.perf_counter()
    with blas.threads(1), np.errstate(all="ignore"):
        for i in range(steps + 1):
            t = time.perf_counter()
            _, grads, _ = shards.loss_and_grads(params, mcfg, x, y, state, rng, workers=threads,
                                                block_limit=blas.product_limit())
            opt.step(params, grads, opt_state, 1e-3, workers=threads)
            if i:
                best = min(best, time.perf_counter() - t)
                if budget is not None and time.perf_counter() - started > budget:
                    break
    return best
