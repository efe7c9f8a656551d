"""Optimizers, learning-rate schedules and gradient clipping.

An optimizer's state is a flat dict of named arrays ("m.<param>", "v.<param>", "t"),
so a checkpoint stores it like the parameters and a resumed run continues bit for bit.
Updates are in place on params and state.
"""
import math

import numpy as np

from .parallel import split_keys, thread_map

OPTIMIZERS = ("adam", "rmsprop", "adagrad", "sgd")
SCHEDULES = ("constant", "step", "cosine")


class Optimizer:
    """θ ← θ - lr·update(g); subclasses define init_state and _update."""

    slots = ()

    def __init__(self, **hp):
        self.hp = hp

    def init_state(self, params):
        state = {"t": np.zeros((), dtype=np.int64)}
        for slot in self.slots:
            for k, v in params.items():
                state[f"{slot}.{k}"] = np.zeros_like(v)
        return state

    def step(self, params, grads, state, lr, workers=1):
        """One update of every parameter; workers > 1 splits the parameters between threads."""
        state["t"] += 1
        t = int(state["t"])

        def update(keys):
            for k in keys:
                self._update(k, params[k], grads[k], state, lr, t)

        thread_map(update, split_keys(params, workers))


class SGD(Optimizer):
    """m ← μ·m + g;  θ ← θ - lr·m   (heavy-ball momentum μ; μ = 0 is plain SGD)."""

    slots = ("m",)

    def _update(self, k, p, g, s, lr, t):
        m = s["m." + k]
        m *= self.hp.get("momentum", 0.9)
        m += g
        p -= lr * m


class Adam(Optimizer):
    """m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²;  θ ← θ - lr·m̂/(√v̂ + ε), bias-corrected."""

    slots = ("m", "v")

    def _update(self, k, p, g, s, lr, t):
        b1, b2, eps = self.hp.get("beta1", 0.9), self.hp.get("beta2", 0.999), self.hp.get("eps", 1e-8)
        m, v = s["m." + k], s["v." + k]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * (g * g)
        step = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        denom = np.sqrt(v)
        denom += eps * math.sqrt(1 - b2 ** t)  # ε on the bias-corrected √v̂
        p -= step * (m / denom)


class RMSprop(Optimizer):
    """v ← α·v + (1-α)·g²;  θ ← θ - lr·g/(√v + ε)   (α = 0.95, as in char-rnn)."""

    slots = ("v",)

    def _update(self, k, p, g, s, lr, t):
        a, eps = self.hp.get("alpha", 0.95), self.hp.get("eps", 1e-8)
        v = s["v." + k]
        v *= a
        v += (1 - a) * (g * g)
        p -= lr * (g / (np.sqrt(v) + eps))


class Adagrad(Optimizer):
    """v ← v + g²;  θ ← θ - lr·g/(√v + ε)."""

    slots = ("v",)

    def _update(self, k, p, g, s, lr, t):
        v = s["v." + k]
        v += g * g
        p -= lr * (g / (np.sqrt(v) + self.hp.get("eps", 1e-8)))


def make_optimizer(name, **hp):
    try:
        cls = {"adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad, "sgd": SGD}[name]
    except KeyError:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}") from None
    return cls(**hp)


WARMUP_SHARE = 0.1  # warm-up never takes more than this share of a run


def learning_rate(base, schedule, progress, step, warmup=0, decay=0.5, decay_every=0.25):
    """The learning rate at a given step.

    progress: fraction of the run done, in [0, 1] (steps, epochs or minutes, whichever leads).
    constant: base.  step: base·decay^⌊progress/decay_every⌋ (halved at 25 %, 50 %, 75 %).
    cosine: base·½(1 + cos(π·progress)).  Warm-up, in every schedule, multiplies by
    max((step+1)/warmup, progress/0.1) while that is below 1: linear over the first ``warmup``
    steps, or over the first tenth of the run if that ends sooner (a short time-limited run
    would otherwise spend its whole schedule warming up).
    """
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        lr = base
    elif schedule == "step":
        lr = base * decay ** math.floor(progress / decay_every)
    elif schedule == "cosine":
        lr = base * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"lr schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if warmup > 0 and step < warmup:
        lr *= min(1.0, max((step + 1) / warmup, progress / WARMUP_SHARE))
    return lr


def global_norm(grads):
    """‖g‖₂ over every parameter, accumulated in float64."""
    return math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values()))


def clip_global_norm(grads, max_norm):
    """Scale all gradients by max_norm/‖g‖ when ‖g‖ > max_norm (in place).

    Returns (norm before clipping, whether it clipped). max_norm <= 0 disables clipping.
    A non-finite norm is returned as is and nothing is scaled: the caller stops the run.
    """
    norm = global_norm(grads)
    if max_norm <= 0 or not math.isfinite(norm) or norm <= max_norm:
        return norm, False
    scale = max_norm / norm
    for g in grads.values():
        g *= g.dtype.type(scale)
    return norm, True


def clip_values(grads, limit):
    """Per-element clipping to [-limit, limit] (char-rnn's grad_clip), in place."""
    for g in grads.values():
        np.clip(g, -limit, limit, out=g)
