"""`charrnn classify`: many-to-one. It learns a separable task; the files, errors and outputs are exact."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import schema
from charrnn.training.classify import predict as predict_probs
from charrnn.cli import cli
from charrnn.text.labeled import encode

WORDS = ["red", "fox", "sees", "a", "blue", "cat", "under", "the", "moon", "and", "runs"]


def make_tsv(path, n, seed):
    """label = animal when the line names a fox or a cat: a rule over the whole sequence."""
    r = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        w = [WORDS[j] for j in r.integers(0, len(WORDS), 6)]
        lines.append(("animal" if {"fox", "cat"} & set(w) else "other") + "\t" + " ".join(w))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    make_tsv(tmp_path / "data.tsv", 600, seed=0)
    return tmp_path


def run(*args, input=None):
    r = CliRunner().invoke(cli, list(args), input=input)
    return r.exit_code, r.stdout, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--cell", "lstm"], ["--cell", "gru", "--bidirectional", "--layers", "2"]],
                         ids=["lstm", "gru-bidirectional-2"])
def test_it_learns_a_separable_task_and_predicts_held_out_lines(work, extra):
    code, _, err = run("classify", "train", "data.tsv", "--hidden", "32", "--steps", "240", "--eval-every", "80",
                       "--log", "log.jsonl", *extra)
    assert code == 0, err
    evals = [r for r in map(json.loads, open("log.jsonl")) if r["event"] == "eval"]
    assert [e["step"] for e in evals] == [80, 160, 240] and evals[-1]["val_acc"] >= 0.95
    assert "accuracy" in err  # the progress view reports validation accuracy
    held = make_tsv(work / "held.tsv", 200, seed=1)
    code, out, err = run("classify", "predict", "--labeled", "held.tsv")
    assert code == 0, err
    got = out.splitlines()
    truth = [ln.split("\t")[0] for ln in held]
    acc = np.mean([a == b for a, b in zip(got, truth)])
    print(f"{extra}: held-out accuracy {acc:.1%}")
    assert len(got) == 200 and acc >= 0.95
    assert err.endswith(f"accuracy {acc:.4f} ({int(round(acc * 200))}/200)\n")


def test_predict_writes_labels_and_probabilities_exactly(work):
    assert run("classify", "train", "data.tsv", "--hidden", "8", "--steps", "3", "--quiet")[0] == 0
    texts = ["the cat runs", "", "red moon and the a"]
    code, out, err = run("classify", "predict", "--probs", input="\n".join(texts) + "\n")
    assert code == 0 and err == "", err
    b = schema.load("checkpoints/data/best.ckpt", kind="classifier")
    assert b.labels == ["animal", "other"]
    p = predict_probs(b.params, b.cfg, [encode(b.vocab, t, 400)[0] for t in texts])
    want = "".join(f"{b.labels[int(row.argmax())]}\tanimal:{row[0]:.4f}\tother:{row[1]:.4f}\n" for row in p)
    assert out == want
    assert run("classify", "predict")[1] == ""  # no input, no output
    code, out, _ = run("classify", "predict", input="the cat\nthe moon")  # no final line break
    assert code == 0 and len(out.splitlines()) == 2


def test_labelled_lines_to_predict_may_share_one_label_or_carry_an_unknown_one(work):
    assert run("classify", "train", "data.tsv", "--hidden", "8", "--steps", "3", "--quiet")[0] == 0
    code, out, err = run("classify", "predict", "--labeled", input="animal\tthe cat\nanimal\ta fox\n")
    assert code == 0 and len(out.splitlines()) == 2 and err.startswith("accuracy ")
    code, out, err = run("classify", "predict", "--labeled", input="poetry\tthe cat\nanimal\ta fox\npoetry\tx\n")
    assert code == 0 and len(out.splitlines()) == 3
    assert err.splitlines()[0] == "warning: 2 line(s) have a label the model was not trained on ('poetry'); " \
                                  "they count as wrong"
    code, _, err = run("classify", "train", "one.tsv") if (work / "one.tsv").write_text("a\tx\na\ty\n") else None
    assert code == 1 and err == "charrnn: error: one.tsv: every line has the label 'a'; a classifier needs at " \
                                "least two labels\n"


def test_without_a_checkpoint_each_command_takes_the_latest_run_of_its_kind(work):
    (work / "corpus.txt").write_text("the cat sees a red fox under the moon.\n" * 60)
    assert run("train", "corpus.txt", "--steps", "2", "--hidden", "8", "--batch", "2", "--seq-len", "16", "-q")[0] == 0
    assert run("classify", "train", "data.tsv", "--hidden", "8", "--steps", "2", "--quiet")[0] == 0  # written last
    code, out, err = run("sample", "--length", "5", "--seed", "0")
    assert code == 0 and err == "" and len(out) == 5
    code, out, err = run("classify", "predict", input="the cat\n")
    assert code == 0 and out in ("animal\n", "other\n")
    code, _, err = run("classify", "predict", "--checkpoint-dir", "nowhere", input="x\n")
    assert code == 1 and err == ("charrnn: error: no sequence classifier found under nowhere/; train one first: "
                                 "charrnn classify train DATA.tsv\n")


def test_a_classifier_and_a_language_model_refuse_each_other(work):
    assert run("classify", "train", "data.tsv", "--hidden", "8", "--steps", "2", "--quiet")[0] == 0
    ck = "checkpoints/data/best.ckpt"
    for args in (["sample", "--checkpoint", ck], ["score", "--checkpoint", ck]):
        code, out, err = run(*args, input="x\n")
        assert (code, out) == (1, "") and err == (f"charrnn: error: {ck}: a sequence classifier, not a language "
                                                  "model; use charrnn classify predict\n")
    (work / "corpus.txt").write_text("the cat sees the moon\n" * 50)
    assert run("train", "corpus.txt", "--hidden", "8", "--layers", "1", "--steps", "2", "--seq-len", "8",
               "--batch", "2", "--quiet")[0] == 0
    code, _, err = run("classify", "predict", "--checkpoint", "checkpoints/corpus/best.ckpt", input="x\n")
    assert code == 1 and err == ("charrnn: error: checkpoints/corpus/best.ckpt: a language model, not a sequence "
                                 "classifier (train one with charrnn classify train)\n")


def test_a_bidirectional_language_model_is_refused_with_the_reason(work):
    code, _, err = run("train", "data.tsv", "--bidirectional")
    assert code == 2 and err == ("charrnn: error: a bidirectional language model would see the future it must "
                                 "predict; --bidirectional is for `charrnn classify`\n")


@pytest.mark.parametrize("content,msg", [
    ("animal\tthe cat\nno tab here\n", "data.tsv: line 2 has no tab; each line must be label<TAB>text"),
    ("animal\tthe cat\n\tno label\n", "data.tsv: line 2 has an empty label"),
    ("animal\tthe cat\nanimal\ta fox\n", "data.tsv: every line has the label 'animal'; a classifier needs at "
                                         "least two labels"),
    ("\n\n", "data.tsv: no labelled lines (label<TAB>text)"),
])
def test_bad_training_data_is_one_line_naming_the_line(work, content, msg):
    (work / "data.tsv").write_text(content)
    code, out, err = run("classify", "train", "data.tsv", "--steps", "1")
    assert (code, out) == (1, "") and err == f"charrnn: error: {msg}\n"
    assert not (work / "checkpoints").exists()


def test_an_existing_run_needs_force_and_info_describes_a_classifier(work):
    assert run("classify", "train", "data.tsv", "--hidden", "8", "--steps", "2", "--quiet", "--bidirectional")[0] == 0
    code, _, err = run("classify", "train", "data.tsv", "--hidden", "8", "--steps", "2", "--quiet")
    assert code == 1 and "already holds a run; use --force" in err
    code, out, _ = run("info", "checkpoints/data", "--json")
    d = json.loads(out)
    assert code == 0 and d["kind"] == "classifier" and d["labels"] == ["animal", "other"]
    assert d["model"]["bidirectional"] is True and d["model"]["labels"] == 2 and 0 <= d["val_acc"] <= 1
