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
from charrnn.core import cells

from .cli_support import isolate, make_corpus

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
    assert isinstance(m, charrnn.LanguageModel) and m.kind == "lm" and m.config.hidden == 32
    assert m.path == "checkpoints/notes/best.ckpt"
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("step") == 200
    assert kinds.count("eval") == 4 and "sample" in kinds
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 201))
    assert steps[-1]["mean_loss"] < steps[0]["loss"] - 1.0  # it learned
    assert m.info["step"] == 200 and m.info["corpus_paths"] == [str(lab / "notes.txt")]
    from charrnn.training.machine import default_threads  # the command's default, as `charrnn train`'s
    assert m.info["train"]["threads"] == default_threads(SMALL["batch"])


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
    assert isinstance(c, charrnn.Classifier) and not hasattr(c, "generate")


def test_the_api_is_what_the_package_exports_and_it_is_typed():
    import pathlib
    assert {"load", "train", "Model", "LanguageModel", "Classifier", "Score", "CharrnnError", "UsageError",
            "CorpusError", "CheckpointError", "CharrnnWarning", "ModelConfig", "TrainConfig", "ClassifyConfig",
            "RunOptions", "SamplingOptions"} <= set(charrnn.__all__)
    assert (pathlib.Path(charrnn.__file__).parent / "py.typed").exists()
    assert charrnn.train.__doc__ and charrnn.load.__doc__ and charrnn.LanguageModel.generate.__doc__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert charrnn.ModelConfig().hidden == 256 and charrnn.TrainConfig().batch == 32


@pytest.mark.parametrize("call,message", [
    (lambda: charrnn.train("notes.txt", cell="transformer"),
     f"cell must be one of {', '.join(cells.kinds())}, not 'transformer'"),
    (lambda: charrnn.train("notes.txt", hidden=0), "hidden must be at least 1, not 0"),
    (lambda: charrnn.train("notes.txt", hidden="64"), "hidden must be a whole number, not str '64'"),
    (lambda: charrnn.train("notes.txt", dropout=1.5), "dropout must be at least 0 and below 1, not 1.5"),
    (lambda: charrnn.train("notes.txt", level="byte"), "level must be one of char, word, not 'byte'"),
    (lambda: charrnn.train("notes.txt", optimizer="lion"),
     "optimizer must be one of adam, rmsprop, adagrad, sgd, not 'lion'"),
    (lambda: charrnn.train("notes.txt", steps=-1), "steps must be at least 1, not -1"),
    (lambda: charrnn.train("notes.txt", max_vocab=5),
     "max_vocab applies to level word only (a character-level model keeps every character)"),
    (lambda: charrnn.train("notes.txt", activation="relu"),
     "activation applies to cell rnn only (an lstm has no use for it)"),
    (lambda: charrnn.train(text=5), "text must be a str, not int"),
], ids=["cell", "hidden", "hidden-str", "dropout", "level", "optimizer", "steps", "max_vocab", "activation", "text"])
def test_a_value_an_option_cannot_take_is_a_usage_error_in_pythons_words(here, call, message):
    """Named as the Python caller named it (steps=, not --steps), before any text is read."""
    with pytest.raises(charrnn.UsageError) as e:
        call()
    assert str(e.value) == message


def test_a_trained_models_methods_refuse_what_they_cannot_read(trained, here):
    m, _ = trained
    for call, message in [(lambda: m.score(5), "text must be a str, not int"),
                          (lambda: m.generate(prime=5), "prime must be a str, not int"),
                          (lambda: m.generate(seed="x"), "seed must be an int, a numpy Generator or None, not str"),
                          (lambda: m.generate(temperature=0), "temperature must be above 0, not 0"),
                          (lambda: m.generate(argmax=True, seed=1),
                           "argmax cannot be combined with seed: it takes the most likely token every time, so "
                           "nothing is drawn and every sample is the same"),
                          (lambda: m.generate(temp=0.5), "unknown sampling option(s) temp: see "
                                                         "charrnn.SamplingOptions"),
                          (lambda: m.evaluate(b"bytes"), "text must be a str, not bytes")]:
        with pytest.raises(charrnn.UsageError) as e:
            call()
        assert str(e.value) == message
    charrnn.train("notes.txt", steps=2, name="twice", **SMALL)
    with pytest.raises(charrnn.CharrnnError) as e:
        charrnn.train("notes.txt", steps=2, name="twice", **SMALL)
    assert str(e.value) == ("checkpoints/twice already holds a run; use resume=True to continue it, force=True to "
                            "start it over, or name to start another")
