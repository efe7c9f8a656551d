"""charrnn as a library, called as a notebook or a bot would: train, load, generate, score.

The functions are charrnn's top level (README "Using charrnn from Python"); the command line
is built on them, so the same checkpoint, options and seed give the same bytes both ways.
"""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import charrnn

from .test_cli import isolate, make_corpus

SMALL = dict(hidden=32, layers=1, batch=8, seq_len=32, eval_every=50)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    make_corpus(root / "notes.txt", n=600)
    return root


@pytest.fixture
def here(lab, monkeypatch):
    return isolate(lab, monkeypatch)


@pytest.fixture(scope="module")
def trained(lab):
    """A notebook's first cell: train quietly, with a callback, and get the model back."""
    import os
    old, env = os.getcwd(), os.environ.get("CHARRNN_CACHE_DIR")
    os.chdir(lab)
    os.environ["CHARRNN_CACHE_DIR"] = str(lab / "cache")
    events = []
    try:
        m = charrnn.train("notes.txt", steps=200, lr=1e-2, callback=events.append, **SMALL)
    finally:
        os.chdir(old)
        if env is None:
            os.environ.pop("CHARRNN_CACHE_DIR", None)
        else:
            os.environ["CHARRNN_CACHE_DIR"] = env
    return m, events


def test_train_returns_the_model_and_reports_to_the_callback(trained, lab):
    m, events = trained
    assert isinstance(m, charrnn.Model) and m.kind == "lm" and m.config.hidden == 32
    assert m.path == "checkpoints/notes/best.ckpt"
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("step") == 200
    assert kinds.count("eval") == 4 and "sample" in kinds
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 201))
    assert steps[-1]["mean_loss"] < steps[0]["loss"] - 1.0  # it learned
    assert m.info["step"] == 200 and m.info["corpus_paths"] == [str(lab / "notes.txt")]


def test_train_prints_nothing(here, capfd):
    charrnn.train("notes.txt", steps=3, name="quiet", **SMALL)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_generate_with_a_seed_is_reproducible_and_starts_with_the_prime(trained):
    m, _ = trained
    a = m.generate("red fox", length=60, temperature=0.8, seed=1)
    assert a == m.generate("red fox", length=60, temperature=0.8, seed=1)
    assert a != m.generate("red fox", length=60, temperature=0.8, seed=2)
    assert a.startswith("red fox") and len(a) == len("red fox") + 60
    pieces = list(m.stream("red fox", length=5, seed=1))
    assert pieces[0] == "red fox" and len(pieces) == 6 and all(len(p) == 1 for p in pieces[1:])
    assert m.generate(length=0, stop=".", seed=3).endswith(".")


@pytest.mark.exact
def test_generate_gives_the_bytes_charrnn_sample_prints(trained, here):
    m, _ = trained
    for options, flags in [({"temperature": 0.7, "seed": 5}, ["--temp", "0.7", "--seed", "5"]),
                           ({"top_k": 3, "seed": 9}, ["--top-k", "3", "--seed", "9"]),
                           ({"top_p": 0.8, "seed": 4, "prime": "the moon"},
                            ["--top-p", "0.8", "--seed", "4", "--prime", "the moon"]),
                           ({"beam": 3, "prime": "a "}, ["--beam", "3", "--prime", "a "])]:
        r = subprocess.run([sys.executable, "-m", "charrnn", "sample", "--checkpoint", m.path, "--length", "50",
                            *flags], cwd=here, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert m.generate(length=50, **options).encode("utf-8") == r.stdout, options


def test_score_puts_real_text_above_shuffled_text(trained):
    m, _ = trained
    r = np.random.default_rng(0)
    real = "the red fox sees a blue cat under the moon."
    shuffled = "".join(r.permutation(list(real)))
    s = m.score(real)
    assert isinstance(s, charrnn.Score) and len(s.surprisal) == len(s.tokens) == len(real)
    assert s.logprob == pytest.approx(-s.surprisal.sum()) and s.tokens == list(real)
    assert s.logprob > m.score(shuffled).logprob + 10


@pytest.mark.exact
def test_evaluate_gives_the_figures_of_charrnn_eval(trained, here):
    m, _ = trained
    text = (here / "notes.txt").read_text()[:3000]
    (here / "held.txt").write_text(text)
    r = subprocess.run([sys.executable, "-m", "charrnn", "eval", "held.txt", "--checkpoint", m.path, "--json"],
                       cwd=here, capture_output=True, text=True, timeout=60)
    assert json.loads(r.stdout) == m.evaluate(text)


def test_unknown_symbols_are_a_warning_not_a_print(trained, capfd):
    m, _ = trained
    with pytest.warns(charrnn.CharrnnWarning, match="not in the model's vocabulary"):
        m.generate("red ☃", length=3, seed=0)
    assert capfd.readouterr() == ("", "")


def test_a_callback_returning_false_stops_the_run_and_it_is_saved(here):
    def stop_at_7(record):
        return not (record["event"] == "step" and record["step"] == 7)

    m = charrnn.train("notes.txt", steps=100, name="stopped", callback=stop_at_7, **SMALL)
    assert m.info["step"] == 7


def test_training_text_given_as_a_string(here):
    m = charrnn.train(text=(here / "notes.txt").read_text(), steps=2, **SMALL)
    assert m.path == "checkpoints/text/best.ckpt" and m.info["step"] == 2 and m.info["corpus_paths"] == []


def test_errors_are_charrnns_own_and_documented(here):
    with pytest.raises(charrnn.UsageError, match="unknown training option"):
        charrnn.train("notes.txt", hiden=32)
    with pytest.raises(charrnn.UsageError, match=r"unknown training option\(s\) ranks"):
        charrnn.train("notes.txt", ranks=2)  # the MPI job's size is recorded, not chosen
    with pytest.raises(charrnn.CorpusError, match="missing.txt: no such file"):
        charrnn.train("missing.txt")
    with pytest.raises(charrnn.CheckpointError, match="no such checkpoint"):
        charrnn.load("nothing.ckpt")
    assert issubclass(charrnn.UsageError, charrnn.CharrnnError)


def test_a_classifier_classifies(here):
    from click.testing import CliRunner
    from charrnn.cli import cli
    lines = [("animal" if {"fox", "cat"} & set(line.split()) else "other") + "\t" + line
             for line in (here / "notes.txt").read_text().splitlines()[:300]]
    (here / "lines.tsv").write_text("\n".join(lines) + "\n")
    r = CliRunner().invoke(cli, ["classify", "train", "lines.tsv", "--hidden", "16", "--steps", "20", "--quiet"])
    assert r.exit_code == 0, r.output
    c = charrnn.load("checkpoints/lines")
    assert c.kind == "classifier" and c.labels == ["animal", "other"]
    assert all(label in ("animal", "other") for label in c.classify(["a red fox", "the moon"]))
    probs = c.classify(["a red fox"], probabilities=True)[0]
    assert set(probs) == {"animal", "other"} and sum(probs.values()) == pytest.approx(1.0)
    with pytest.raises(charrnn.UsageError, match="cannot generate text"):
        c.generate(length=5)


def test_the_api_is_what_the_package_exports_and_it_is_typed():
    import pathlib
    assert {"load", "train", "Model", "Score", "CharrnnError", "UsageError", "CorpusError", "CheckpointError",
            "CharrnnWarning", "TrainConfig", "ModelConfig", "MODEL_DEFAULTS"} <= set(charrnn.__all__)
    assert (pathlib.Path(charrnn.__file__).parent / "py.typed").exists()
    assert charrnn.train.__doc__ and charrnn.load.__doc__ and charrnn.Model.generate.__doc__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert charrnn.MODEL_DEFAULTS["hidden"] == 256 and charrnn.TrainConfig().batch == 32
