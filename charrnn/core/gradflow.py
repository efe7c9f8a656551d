"""Gradient flow through time: how much of a loss at the end of a window reaches h_t, t steps back.

Shapes: T time, B batch, H hidden, V vocab, L layers, D = T distances.

For a window x_0 … x_{T-1} and the loss at its last position only,
    L_b = -log p(y_b | x_0 … x_{T-1})       (sequence b of the batch),
we measure ‖dL_b/dh^l_t‖ for every layer l and time t, and report it against the distance
d = T-1-t back from the loss (d = 0: the step that reads the loss). Backpropagation through
time multiplies by one Jacobian ∂h_t/∂h_{t-1} per step, so the norm shrinks (vanishes) or
grows (explodes) roughly geometrically with d: the seeds' vanishing and exploding gradients.

Everything runs in float64, so a gradient of 1e-30 is still measured, not rounded to 0.
"""
import numpy as np

from . import layers, model


def last_step_dlogits(logits, y):
    """dL_b/dlogits for L_b = -log softmax(z_{T-1,b})[y_b]: zero except the last step. (T,B,V)"""
    d = np.zeros_like(logits)  # (T,B,V)
    _, d[-1] = layers.softmax_cross_entropy(logits[-1], y)  # of the mean over the B sequences:
    d[-1] *= len(y)  # each row is its own sequence's gradient
    return d


def gradient_flow(params, cfg, ids, y, clip=0.0):
    """‖dL/dh‖ against the distance back, for every layer, from a zero initial state.

    ids (T,B) the windows, y (B,) the token after each. Returns a dict:
        norms      (L,D) geometric mean over the B sequences of ‖dL_b/dh^l_{T-1-d}‖
        loss       mean of L_b
        grad_norm  the global norm of every parameter's gradient of mean_b L_b (what --clip sees)
        clip_scale min(1, clip/grad_norm): the factor clipping multiplies the whole gradient by
    """
    if cfg.bidirectional:
        raise ValueError("gradient flow through time is measured for unidirectional models only")
    p64 = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    T, B = ids.shape
    logits, _, cache = model.forward(p64, cfg, ids, model.zero_state(cfg, B, np.float64))
    dlogits = last_step_dlogits(logits, y)  # per sequence: each row is its own L_b's gradient
    loss = float(layers.token_nll(logits[-1], y)[0].mean())

    # one backward gives both: dL/dh of every layer, and every parameter's gradient of
    # sum_b L_b (the mean's, which --clip sees, is 1/B of it)
    grads, _, dH = model.hidden_grads(dlogits, cache, cfg)
    norms = np.empty((cfg.layers, T))  # (L,D)
    for l, d in enumerate(dH):
        n = np.linalg.norm(d, axis=2)  # (T,B)
        norms[l] = np.exp(np.log(np.maximum(n, 1e-300)).mean(axis=1))[::-1]  # geometric mean, by distance
    grad_norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))) / B
    scale = min(1.0, clip / grad_norm) if clip > 0 and grad_norm > 0 else 1.0
    return {"norms": norms, "loss": loss, "grad_norm": grad_norm, "clip_scale": scale}


def ratio(norms, far=50, near=1):
    """‖dL/dh‖ at distance ``far`` over distance ``near``: below 1 vanishing, above 1 exploding."""
    return float(norms[far] / norms[near])
