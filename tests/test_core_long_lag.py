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
import json

import numpy as np
import pytest

from charrnn.core import model, optim, shards
from charrnn.config.model import ModelConfig

KEYS, BLANK, MARK, NL = "abcd", ".", "?", "\n"
VOCAB = "".join(sorted(KEYS + BLANK + MARK + NL))  # a char-level Vocab sorts by code point
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
    cfg = ModelConfig(vocab_size=len(VOCAB), cell=cell, layers=1, hidden=H, forget_bias=1.0)  # long memory
    params = model.init_params(cfg, r)
    opt = optim.make_optimizer("adam")
    ost = opt.init_state(params)
    data = np.stack([make_stream(r, steps * WINDOW + 1) for _ in range(BATCH)], axis=1)  # (N,B)
    state = model.zero_state(cfg, BATCH)
    for s in range(steps):
        w = data[s * WINDOW:(s + 1) * WINDOW + 1]
        weights = np.where(w[:-1] == VOCAB.index(MARK), RECALL_WEIGHT, 1.0)  # (T,B): the recall counts more
        _, grads, state = shards.loss_and_grads(params, cfg, w[:-1], w[1:], state, weights=weights)
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


STEPS = 1500


@pytest.fixture(scope="module")
def trained():
    """Each cell trained once (STEPS steps, same data), for the tests below."""
    cache = {}

    def get(cell):
        if cell not in cache:
            cache[cell] = train(cell, STEPS)
        return cache[cell]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("cell,lo,hi", [("lstm", 0.95, 1.0), ("gru", 0.95, 1.0), ("rnn", 0.0, 0.5)])
def test_delayed_recall_over_30_steps(trained, cell, lo, hi):
    params, cfg = trained(cell)
    acc = recall_accuracy(params, cfg)
    print(f"{cell}: recall {acc:.0%} after {STEPS} steps (chance 25%)")
    assert lo <= acc <= hi


@pytest.mark.slow
def test_diagnose_shows_the_trained_rnn_gradient_vanish_where_the_lstm_keeps_it(trained, tmp_path):
    """`charrnn diagnose` on the trained models, the loss at each recall (the last character of a
    line): ‖dL/dh‖ at the window's far end (99 steps back) over 1 step back. Over six training
    seeds and two kernel families the RNN's was 1e-48 to 8e-7, the LSTM's 1.2e-3 to 7e-3 (at
    50 steps the RNN's reached 9e-4 once: too close to the LSTM's 8e-3 for a test)."""
    from click.testing import CliRunner

    from charrnn.checkpoint import schema
    from charrnn.store import container
    from charrnn.cli import cli
    from charrnn.text.vocab import build_vocab

    r = np.random.default_rng(7)
    (tmp_path / "recall.txt").write_text("".join(make_line(r) for _ in range(60)), encoding="utf-8")
    ratios = {}
    for cell in ("rnn", "lstm", "gru"):
        params, cfg = trained(cell)
        vocab = build_vocab(VOCAB, "char")
        assert "".join(vocab.tokens) == VOCAB
        arrays, meta = schema.pack(schema.Checkpoint(cfg, params, vocab, step=STEPS))
        container.save(tmp_path / f"{cell}.ckpt", arrays, meta)
        res = CliRunner().invoke(cli, ["diagnose", "--checkpoint", str(tmp_path / f"{cell}.ckpt"),
                                       "--file", str(tmp_path / "recall.txt"), "--json"])
        assert res.exit_code == 0, res.stderr
        norms = json.loads(res.stdout)["models"][0]["norms"][-1]  # by distance, 0 … 99
        ratios[cell] = norms[99] / norms[1]
    print("ratio of ‖dL/dh‖ at distance 99 to distance 1:", {k: f"{v:.1e}" for k, v in ratios.items()})
    assert ratios["rnn"] < 1e-5 and ratios["lstm"] > 1e-4 and ratios["gru"] > 1e-4
