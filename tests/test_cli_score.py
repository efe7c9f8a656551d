"""`charrnn score`: one line in, one score out, in order, streamed; the scores mean something."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import schema
from charrnn.store import container
from charrnn.cli import cli
from charrnn.core import layers, model
from charrnn.config.model import ModelConfig
from charrnn.text.vocab import build_vocab

from .cli_support import make_corpus

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,\n\r\t"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained (random) model over a fixed alphabet: enough to check the arithmetic."""
    d = tmp_path_factory.mktemp("score")
    vocab = build_vocab(ALPHABET, "char")
    cfg = ModelConfig(vocab_size=len(vocab), cell="gru", layers=2, hidden=16)
    params = model.init_params(cfg, np.random.default_rng(1))
    arrays, meta = schema.pack(schema.Checkpoint(cfg, params, vocab))
    container.save(d / "m.ckpt", arrays, meta)
    return str(d / "m.ckpt"), params, cfg, vocab


def score(ckpt_path, data, *args):
    r = CliRunner().invoke(cli, ["score", "--checkpoint", ckpt_path, *args], input=data)
    return r.exit_code, r.stdout_bytes, r.stderr


def stepped_logprob(params, cfg, vocab, line):
    """log p(line + "\\n" | "\\n") one token at a time with the sampler's Stepper: an independent path."""
    s = model.Stepper(params, cfg)
    ids = vocab.encode("\n" + line + "\n")
    total = 0.0
    for a, b in zip(ids[:-1], ids[1:]):
        logits = s.step(np.array([a])).astype(np.float64)
        total += float(layers.log_softmax(logits)[0, b])
    return total


def test_each_line_gets_its_log_probability_in_order(ckpt):
    path, params, cfg, vocab = ckpt
    lines = ["the cat sat.", "", "a, b, c", "x" * 300] + [f"line {'abc'[i % 3]} {i % 7}" for i in range(70)]
    lines = [ln for ln in lines if all(c in ALPHABET for c in ln)]
    code, out, err = score(path, "".join(ln + "\n" for ln in lines).encode())
    assert code == 0 and err == "", err
    rows = out.decode().split("\n")
    assert rows[-1] == "" and len(rows) - 1 == len(lines)  # more than one batch of 64, order kept
    for ln, row in zip(lines, rows):
        total, per, echoed = row.split("\t", 2)
        assert echoed == ln
        want = stepped_logprob(params, cfg, vocab, ln)
        assert float(total) == pytest.approx(want, abs=2e-4)
        assert float(per) == pytest.approx(want / (len(ln) + 1), abs=2e-4)


def test_exact_bytes_bom_crlf_no_final_newline_and_empty_input(ckpt):
    path, params, cfg, vocab = ckpt
    code, out, _ = score(path, b"\xef\xbb\xbfab\r\ncd")
    assert code == 0
    t1, t2 = stepped_logprob(params, cfg, vocab, "ab"), stepped_logprob(params, cfg, vocab, "cd")
    # a CRLF break is read as "\n", as training read it, though this model knows "\r"
    assert out == f"{t1:.4f}\t{t1 / 3:.4f}\tab\n{t2:.4f}\t{t2 / 3:.4f}\tcd\n".encode()
    assert score(path, b"")[:2] == (0, b"")


def save_model(path, text, level, **vocab_kw):
    vocab = build_vocab(text, level, **vocab_kw)
    cfg = ModelConfig(vocab_size=len(vocab), cell="lstm", layers=1, hidden=8, embed=4 if level == "word" else 0)
    params = model.init_params(cfg, np.random.default_rng(2))
    container.save(path, *schema.pack(schema.Checkpoint(cfg, params, vocab)))
    return params, cfg, vocab


def test_a_crlf_line_scores_as_its_lf_line_with_a_model_that_never_saw_cr(tmp_path):
    save_model(tmp_path / "lf.ckpt", "ab cd\nef\n", "char")
    code, out, err = score(str(tmp_path / "lf.ckpt"), b"ab cd\r\nef\r\n")
    assert code == 0 and err == ""
    assert out == score(str(tmp_path / "lf.ckpt"), b"ab cd\nef\n")[1] and b"\r" not in out


def test_word_level_blank_lines_score_and_per_char_counts_the_line(tmp_path):
    params, cfg, vocab = save_model(tmp_path / "w.ckpt", "the cat sat\n\nthe dog ran\n", "word", max_vocab=6)
    assert vocab.unk is not None and "zebraxx" not in vocab.tokens
    code, out, err = score(str(tmp_path / "w.ckpt"), b"the cat\n\n   \nthe zebraxx\n")
    assert code == 0 and err == "", err
    rows = [r.split("\t") for r in out.decode().splitlines()]
    assert [r[2] for r in rows] == ["the cat", "", "   ", "the zebraxx"]
    assert all(math.isfinite(float(r[0])) for r in rows)
    for line, (total, per, _) in zip(["the cat", "", "   ", "the zebraxx"], rows):
        assert float(per) == pytest.approx(float(total) / (len(line) + 1), abs=1e-4)  # the line's characters
    blank = vocab.encode("\n") .tolist() * 2  # read as the token "\n", then the line's own "\n"
    s = model.Stepper(params, cfg)
    want = float(layers.log_softmax(s.step(np.array(blank[:1])).astype(np.float64))[0, blank[1]])
    assert float(rows[1][0]) == pytest.approx(want, abs=2e-4)


def test_a_line_with_an_unknown_character_scores_minus_infinity_and_is_counted(ckpt):
    path = ckpt[0]
    code, out, err = score(path, "abc\nabc ☃ Q\nabc\n".encode())
    assert code == 0
    rows = out.decode().splitlines()
    assert rows[1] == "-inf\t-inf\tabc ☃ Q" and rows[0].split("\t")[0] == rows[2].split("\t")[0]
    assert err == "warning: 1 line(s) have characters the model never saw (first: line 2); they score -inf\n"


def test_invalid_utf8_names_the_line_and_replace_scores_it(ckpt):
    path = ckpt[0]
    code, out, err = score(path, b"abc\nab\xffc\n")
    assert code == 1 and out.endswith(b"\tabc\n") and out.count(b"\n") == 1 and err == (
        "charrnn: error: line 2: invalid UTF-8 at byte 2 of the line; use --errors replace to score it anyway\n")
    code, out, err = score(path, b"abc\nab\xffc\n", "--errors", "replace")
    assert code == 0 and out.split(b"\n")[1].startswith(b"-inf\t-inf\tab\xffc")  # U+FFFD is not in the vocab


def test_scores_stream_before_the_input_ends(ckpt, tmp_path):
    """One line in, its score out, while stdin is still open: it works in a pipeline."""
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "score", "--checkpoint", ckpt[0]], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        p.stdin.write(b"abc\n")
        p.stdin.flush()
        first = p.stdout.readline()  # would block forever if score waited for the end of its input
        assert first.endswith(b"\tabc\n")
        p.stdin.write(b"de\n")
        p.stdin.close()
        assert p.stdout.read().endswith(b"\tde\n") and p.wait(timeout=30) == 0
    finally:
        p.kill()


@pytest.mark.slow
def test_a_trained_model_ranks_real_lines_above_shuffled_ones(tmp_path, monkeypatch):
    """Many-to-one made useful: held-out sentences of the training language score higher than the
    same characters shuffled, and `sort -g` puts the shuffled ones first."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    make_corpus(tmp_path / "corpus.txt", n=2000)
    r = CliRunner().invoke(cli, ["train", "corpus.txt", "--hidden", "48", "--layers", "1", "--batch", "16",
                                 "--seq-len", "48", "--steps", "300", "--lr", "5e-3", "--threads", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    real = make_corpus(tmp_path / "held.txt", n=40, seed=99).read_text().splitlines()
    rng = np.random.default_rng(0)
    shuffled = ["".join(rng.permutation(list(ln))) for ln in real]
    mixed = [x for pair in zip(real, shuffled) for x in pair]
    code, out, err = score("checkpoints/corpus", "\n".join(mixed).encode())
    assert code == 0, err
    per = {row.split("\t", 2)[2]: float(row.split("\t")[1]) for row in out.decode().splitlines()}
    wins = sum(per[a] > per[b] for a, b in zip(real, shuffled))
    print(f"real above shuffled: {wins}/{len(real)}; mean per char {np.mean([per[a] for a in real]):.3f} "
          f"vs {np.mean([per[b] for b in shuffled]):.3f}")
    assert wins == len(real)
    ranked = sorted(out.decode().splitlines(), key=lambda row: float(row.split("\t")[0]))
    assert {row.split("\t", 2)[2] for row in ranked[:10]} <= set(shuffled)
    assert all(math.isfinite(v) for v in per.values())
