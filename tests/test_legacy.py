"""Checkpoints written by an earlier charrnn still load, and give the answers it gave.

tests/fixtures/make_legacy.py (run once, with charrnn at commit 336c399) trained three tiny
models through the command line and recorded what that charrnn printed of each: `sample`
bytes for a seed, `eval --json`, `info --json`, `classify predict --probs`. These tests ask
today's charrnn the same questions of the same files.
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


@pytest.mark.parametrize("name", ["lm", "words"])
def test_an_old_language_model_samples_and_scores_as_it_did(name, tmp_path):
    ckpt = str(FIXTURES / f"legacy-{name}.ckpt")
    r = charrnn("sample", "--checkpoint", ckpt, "--seed", "7", "--length", "80", "--prime", "the ", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode("utf-8") == RECORDED[name]["sample"]
    (tmp_path / "held.txt").write_text(RECORDED["held"], encoding="utf-8")
    r = charrnn("eval", "held.txt", "--checkpoint", ckpt, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == RECORDED[name]["eval"]


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
    assert r.stdout.decode("utf-8") == RECORDED["labels"]["predict"]


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
