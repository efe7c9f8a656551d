"""The seeds' vanishing-gradient claim made real: delayed recall over 30+ steps.

Each line is a key (one of 4 letters), 30-35 blanks, a marker, the key again, a newline.
Predicting the character after the marker needs the key from 32+ steps back. LSTM and GRU
learn it; a vanilla tanh RNN of the same size and budget stays near chance (1 in 4),
because its gradient through 30 tanh steps has vanished.

The loss counts the recall position 10 times. With the plain mean, the recall is 1 of ~38
positions per line and its gradient drowns in the ~3 nats per line nobody can predict
(which key comes next, how many blanks): measured here, neither our LSTM nor PyTorch's
nn.LSTM (forget-gate bias 1, same data) learned the recall within 7,000 steps. Weighted,
both learn it by ~1,000 steps; the tanh RNN still cannot carry the gradient that far.
"""
import numpy as np
import pytest

from charrnn.core import model, optim
from charrnn.core.model import ModelConfig

KEYS, BLANK, MARK, NL = "abcd", ".", "?", "\n"
VOCAB = KEYS + BLANK + MARK + NL
H, BATCH, WINDOW, LR, RECALL_WEIGHT = 64, 32, 70, 5e-3, 10.0


def make_line(r):
    key = KEYS[r.integers(len(KEYS))]
    return key + BLANK * int(r.integers(30, 36)) + MARK + key + NL


def make_stream(r, n_chars):
    parts, n = [], 0
    while n < n_chars:
        line = make_line(r)
        parts.append(line)
        n += len(line)
    return np.array([VOCAB.index(c) for c in "".join(parts)[:n_chars]], dtype=np.int32)


def train(cell, steps, seed=0):
    r = np.random.default_rng(seed)
    cfg = ModelConfig(vocab_size=len(VOCAB), cell=cell, layers=1, hidden=H)
    params = model.init_params(cfg, r)
    opt = optim.make_optimizer("adam")
    ost = opt.init_state(params)
    data = np.stack([make_stream(r, steps * WINDOW + 1) for _ in range(BATCH)], axis=1)  # (N,B)
    state = model.zero_state(cfg, BATCH)
    for s in range(steps):
        w = data[s * WINDOW:(s + 1) * WINDOW + 1]
        weights = np.where(w[:-1] == VOCAB.index(MARK), RECALL_WEIGHT, 1.0)  # (T,B): the recall counts more
        _, grads, state = model.loss_and_grads(params, cfg, w[:-1], w[1:], state, weights=weights)
        optim.clip_global_norm(grads, 5.0)
        opt.step(params, grads, ost, LR)
    return params, cfg


def recall_accuracy(params, cfg, probes=40, seed=123):
    """Prime with two whole lines, then a new key and its blanks and marker: is argmax the key?"""
    r = np.random.default_rng(seed)
    hits = 0
    for _ in range(probes):
        line = make_line(r)
        text = make_line(r) + make_line(r) + line[: line.index(MARK) + 1]
        stepper = model.Stepper(params, cfg)
        for c in text:
            logits = stepper.step(np.array([VOCAB.index(c)]))
        hits += VOCAB[int(np.argmax(logits[0]))] == line[0]
    return hits / probes


@pytest.mark.slow
@pytest.mark.parametrize("cell,steps,lo,hi", [("lstm", 1500, 0.95, 1.0), ("gru", 1500, 0.95, 1.0),
                                              ("rnn", 1500, 0.0, 0.5)])
def test_delayed_recall_over_30_steps(cell, steps, lo, hi):
    params, cfg = train(cell, steps)
    acc = recall_accuracy(params, cfg)
    print(f"{cell}: recall {acc:.0%} after {steps} steps (chance 25%)")
    assert lo <= acc <= hi
