"""One rule for line breaks: a model reads a CRLF line break as "\\n" (text/decode.py's lf).

A Windows file and its LF twin train the same model and score the same; a model trained on a
CRLF corpus scores its own lines, reads LF text without skipping, and its samples stop at a
blank line. (War and Peace ships with CRLF: at word level its vocabulary held "\\r\\n" tokens
and no "\\n", so `score` gave -inf for every line of its own training text.)
"""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.checkpoint import find, schema
from charrnn.text.corpus import load_corpus
from charrnn.text.decode import LineBreaks, lf

from .cli_support import make_corpus

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
SMALL = ["--hidden", "24", "--layers", "1", "--batch", "4", "--seq-len", "32", "--eval-every", "20"]


def run(*args, input=None):
    return CliRunner().invoke(cli, list(map(str, args)), input=input)


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    lf_text = make_corpus(tmp_path / "lf.txt", n=300).read_text()
    (tmp_path / "crlf.txt").write_bytes(lf_text.replace("\n", "\r\n").encode())
    return tmp_path


def test_line_breaks_are_turned_wherever_a_stream_is_cut():
    text = "a\r\nb\r\r\nc\rd\r\n"
    assert lf(text) == "a\nb\r\nc\rd\n"  # a lone "\r" stays, also the one before a CRLF
    for cut in range(len(text) + 1):
        lb = LineBreaks()
        assert lb.feed(text[:cut]) + lb.feed(text[cut:]) + lb.feed("", final=True) == lf(text)
        assert lb.crlf == text.count("\r\n")


@pytest.mark.parametrize("level", ["char", "word"])
def test_a_crlf_corpus_is_the_same_corpus_as_its_lf_twin(work, level):
    a = load_corpus((work / "crlf.txt").read_bytes(), level)
    b = load_corpus((work / "lf.txt").read_bytes(), level)
    assert a.vocab.tokens == b.vocab.tokens and list(a.tokens) == list(b.tokens)
    assert not any("\r" in t for t in a.vocab.tokens)
    assert a.crlf == 300 and b.crlf == 0 and a.sha256 != b.sha256  # the file's own bytes are hashed


def test_a_word_level_model_of_a_crlf_corpus_scores_its_own_lines_and_reads_lf_text(work):
    r = run("train", "crlf.txt", "--level", "word", "--steps", "20", *SMALL)
    assert r.exit_code == 0, r.stderr
    assert "note: the corpus's 300 CRLF line breaks are read as \\n, as every line break is" in r.stderr
    r = run("score", "crlf.txt")
    assert r.exit_code == 0, r.stderr
    totals = [float(line.split("\t")[0]) for line in r.stdout.splitlines()]
    assert len(totals) == 300 and all(t > -1e9 for t in totals)  # none is -inf
    evals = [json.loads(run("eval", f, "--json").stdout) for f in ("crlf.txt", "lf.txt")]
    assert evals[0]["skipped"] == evals[1]["skipped"] == 0
    assert evals[0]["loss"] == evals[1]["loss"]


def test_a_char_level_sample_of_a_crlf_corpus_stops_at_a_blank_line(work):
    (work / "para.txt").write_bytes(("one two three.\r\nfour five.\r\n\r\n" * 150).encode())
    r = run("train", "para.txt", "--steps", "150", "--lr", "1e-2", *SMALL, "--quiet")
    assert r.exit_code == 0, r.stderr
    r = run("sample", "--length", "0", "--stop", "\n\n", "--seed", "3", "--temp", "0.5")
    assert r.exit_code == 0 and r.stdout.endswith("\n\n") and "\r" not in r.stdout


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "warpeace.txt").exists(), reason="../shared/corpora is not here")
def test_war_and_peace_at_word_level_scores_its_own_lines(work):
    """The reviewer's case: UTF-8 with a byte-order mark and CRLF."""
    r = run("train", SHARED / "warpeace.txt", "--level", "word", "--max-vocab", "3000", "--steps", "3",
            "--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16", "--quiet", "--val-frac", "0.01")
    assert r.exit_code == 0, r.stderr
    ck = schema.load(find.resolve(None, "checkpoints"))
    assert "\n" in ck.vocab.tokens and not any("\r" in t for t in ck.vocab.tokens)
    lines = (SHARED / "warpeace.txt").read_bytes().decode("utf-8-sig").split("\r\n")[1000:1100]
    r = run("score", input="".join(line + "\r\n" for line in lines).encode())
    totals = [float(line.split("\t")[0]) for line in r.stdout.splitlines()]
    assert len(totals) == 100 and all(t > -1e9 for t in totals)


@pytest.mark.parametrize("level", ["char", "word"])
def test_score_and_eval_read_a_lone_cr_as_training_did(work, level):
    """A file whose lines end "\\r\\r\\n" trains a model with a lone "\\r" in its vocabulary (lf
    leaves "\\r" + "\\n"). Such a model used to score a CRLF line as ending "\\r\\n" and its LF
    twin as ending "\\n" (eval read both as "\\n"): now `score` reads both as `eval` does, and
    scores the model's own training lines (word level included)."""
    lines = [line for line in (work / "lf.txt").read_text().splitlines() if line][:200]
    (work / "rr.txt").write_bytes("".join(line + "\r\r\n" for line in lines).encode())
    r = run("train", "rr.txt", "--level", level, "--steps", "3", *SMALL, "--quiet")
    assert r.exit_code == 0, r.stderr
    assert "\r" in "".join(schema.load(find.resolve(None, "checkpoints")).vocab.tokens)
    crlf = "".join(line + "\r\n" for line in lines[:20]).encode()
    lf_twin = crlf.replace(b"\r\n", b"\n")
    a, b = run("score", input=crlf), run("score", input=lf_twin)
    assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout and a.stdout.count("\n") == 20
    own = run("score", input="".join(line + "\r\r\n" for line in lines[:20]).encode())  # the training text
    assert own.exit_code == 0 and all(float(row.split("\t")[0]) > -1e9 for row in own.stdout.splitlines())
    (work / "a.txt").write_bytes(crlf)
    (work / "b.txt").write_bytes(lf_twin)
    ea, eb = (json.loads(run("eval", name, "--json").stdout) for name in ("a.txt", "b.txt"))
    assert ea == eb
