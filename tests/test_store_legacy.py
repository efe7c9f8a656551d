"""Checkpoints written by an earlier charrnn still load, and give the answers it gave.

tests/fixtures/make_legacy.py (run once, with charrnn at commit 336c399, on a machine whose
OpenBLAS ran its AVX-512 kernels) trained three tiny models through the command line and
recorded what that charrnn printed of each: `sample` bytes for a seed, `eval --json`, `info
--json`, `classify predict --probs`. These tests ask today's charrnn the same questions of
the same files, on whatever kernels this machine runs: figures are compared to 1e-6
relative (float32 arithmetic in another order: 2e-9 apart between AVX2 and AVX-512), printed
probabilities to one unit of their last digit, and the sample byte for byte once each of its
draws is shown to lie at least 1e-5 of the total probability from a boundary between two
tokens (these models' logits differ by at most 1e-7 between the two kernel families, which
moves a boundary by about 2e-7): rounding cannot flip a draw.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = json.loads((FIXTURES / "legacy.json").read_text(encoding="utf-8"))
sys.path.insert(0, str(FIXTURES))
from make_legacy import corpus  # noqa: E402  (the generated training text, regenerated)


def charrnn(*args, cwd, stdin=None):
    env = dict(os.environ, CHARRNN_CACHE_DIR=str(Path(cwd) / "cache"))
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    return subprocess.run([sys.executable, "-m", "charrnn", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, timeout=120)


@pytest.mark.exact
@pytest.mark.parametrize("name", ["lm", "words"])
def test_an_old_language_model_samples_and_scores_as_it_did(name, tmp_path):
    ckpt = str(FIXTURES / f"legacy-{name}.ckpt")
    recorded = RECORDED[name]["sample"]
    assert min(draw_margins(ckpt, "the ", 7, recorded)) > 1e-5  # rounding cannot flip a draw
    r = charrnn("sample", "--checkpoint", ckpt, "--seed", "7", "--length", "80", "--prime", "the ", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode("utf-8") == recorded
    (tmp_path / "held.txt").write_text(RECORDED["held"], encoding="utf-8")
    r = charrnn("eval", "held.txt", "--checkpoint", ckpt, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got, want = json.loads(r.stdout), RECORDED[name]["eval"]
    assert (got["tokens"], got["skipped"]) == (want["tokens"], want["skipped"])
    for k in ("loss", "bits_per_char", "perplexity"):
        assert got[k] == pytest.approx(want[k], rel=1e-6), k


def draw_margins(ckpt, prime, seed, text):
    """Replay `charrnn sample --seed` drawing ``text`` after ``prime``: for each draw, how far
    (as a fraction of the total probability) its uniform number fell from the nearest boundary
    between two tokens. Asserts the replay draws ``text``."""
    import numpy as np
    from charrnn.core.model import Stepper
    from charrnn.core.sampling import Sampler, context
    from charrnn.checkpoint import schema
    ck = schema.load(ckpt)
    rng = np.random.default_rng(seed)
    prime_ids = [int(i) for i in ck.vocab.encode_known(prime)[0]]
    s = Sampler(Stepper(ck.params, ck.cfg), rng)
    for t in context(ck.vocab.tokens, prime_ids, rng):
        s.feed(t)
    drawn, margins = prime, []
    while len(drawn) < len(text):
        cdf = np.cumsum(np.exp(s.logits.astype(np.float64) - s.logits.max()))
        u = rng.random() * cdf[-1]
        tok = int(np.searchsorted(cdf, u, side="right"))
        edges = [cdf[tok] - u] + ([u - cdf[tok - 1]] if tok else [u])
        margins.append(min(edges) / cdf[-1])
        drawn += ck.vocab.tokens[tok]
        s.feed(tok)
    assert drawn == text
    return margins


@pytest.mark.parametrize("name", ["lm", "words", "labels"])
def test_info_on_an_old_checkpoint_says_what_it_said(name, tmp_path):
    r = charrnn("info", str(FIXTURES / f"legacy-{name}.ckpt"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got, want = json.loads(r.stdout), dict(RECORDED[name]["info"])
    for d in (got, want):
        d.pop("path")  # where the file was read from
    assert subset(got, want) == want  # what it said is said again; later versions may say more


def subset(got, want):
    """``got`` cut to the keys of ``want``, at every depth."""
    if isinstance(got, dict) and isinstance(want, dict):
        return {k: subset(got[k], v) for k, v in want.items() if k in got}
    return got


def test_an_old_classifier_predicts_as_it_did(tmp_path):
    r = charrnn("classify", "predict", "--checkpoint", str(FIXTURES / "legacy-labels.ckpt"), "--probs",
                cwd=tmp_path, stdin=b"red fox runs.\nthe blue moon.\n")
    assert r.returncode == 0, r.stderr
    got, want = (text.splitlines() for text in (r.stdout.decode("utf-8"), RECORDED["labels"]["predict"]))
    assert len(got) == len(want)
    for g, w in zip(got, want):  # label, then label:probability to 4 places
        g, w = g.split("\t"), w.split("\t")
        assert g[0] == w[0] and [x.split(":")[0] for x in g[1:]] == [x.split(":")[0] for x in w[1:]]
        for a, b in zip(g[1:], w[1:]):
            assert abs(float(a.split(":")[1]) - float(b.split(":")[1])) <= 1e-4 + 1e-12


def test_an_old_run_resumes(tmp_path):
    """The old checkpoint holds its optimizer, RNG and carried state: training goes on from it."""
    (tmp_path / "lm.txt").write_text(corpus(300, 0), encoding="utf-8")
    run = tmp_path / "checkpoints" / "lm"
    run.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "legacy-lm.ckpt", run / "latest.ckpt")
    r = charrnn("train", "lm.txt", "--resume", "--steps", "14", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = charrnn("info", str(run), "--json", cwd=tmp_path)
    assert json.loads(r.stdout)["step"] == 14
