"""`charrnn` as a user drives it: CliRunner for the options, real subprocesses for pipes and signals."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import schema
from charrnn.store import rundir
from charrnn.cli import cli

from .cli_support import SMALL, env_for, isolate, make_corpus, run


@pytest.fixture
def work(tmp_path, monkeypatch):
    make_corpus(tmp_path / "corpus.txt")
    return isolate(tmp_path, monkeypatch)


def params_of(path):
    return schema.load(str(path)).params


def charrnn(*args, work, input=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "charrnn", *args], cwd=work, env=env_for(work), input=input,
                          capture_output=True, timeout=timeout)


# --------------------------------------------------------------------------- train and checkpoints

def test_train_writes_latest_best_and_periodic_checkpoints(work):
    r = run("train", "corpus.txt", "--steps", "12", *SMALL)
    assert r.exit_code == 0, r.output
    names = sorted(os.listdir(work / "checkpoints" / "corpus"))
    assert "latest.ckpt" in names and "best.ckpt" in names
    periodic = [n for n in names if n.startswith("step-")]
    assert [n[:12] for n in periodic] == ["step-0000004", "step-0000008", "step-0000012"]
    assert re.fullmatch(r"step-0000012-val-\d+\.\d{4}\.ckpt", periodic[-1])
    b = schema.load(str(work / "checkpoints" / "corpus" / "latest.ckpt"))
    assert b.step == 12 and b.train.steps == 12 and b.cfg.hidden == 16
    assert b.corpus["sha256"] and set(b.metrics) >= {"val_loss", "best_val_loss"}


def test_train_without_a_corpus_learns_the_default_corpus_and_sample_reads_it(work, monkeypatch):
    """README's first command in miniature: `charrnn train` with no corpus, then `charrnn sample`."""
    monkeypatch.delenv("CHARRNN_CORPUS_DIR", raising=False)
    r = CliRunner().invoke(cli, ["train", "--steps", "2", *SMALL[:-1]], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(work)) == ["cache", "checkpoints", "corpus.txt"]  # nothing written into the cwd
    built = os.listdir(work / "cache" / "corpora")  # but into charrnn's cache directory
    assert len(built) == 1 and built[0].startswith("python-3.") and built[0].endswith("-docs.txt")
    assert r.stderr.startswith(f"no corpus given: training on the default corpus {work}/cache/corpora/{built[0]} ")
    assert schema.load(str(work / "checkpoints" / built[0][:-4] / "latest.ckpt")).step == 2
    s = run("sample", "--length", "30", "--seed", "0")
    assert s.exit_code == 0 and s.stdout.strip()


@pytest.mark.exact
def test_resume_continues_bit_for_bit(work):
    """A run of 6 steps resumed to 14 equals 14 at once where the schedule does not depend on the
    total (constant, no warm-up: the warm-up ends by a tenth of the run); an interrupted run
    keeps its total (tests/test_cli_faults.py)."""
    args = [*SMALL, "--dropout", "0.2", "--lr-schedule", "constant", "--warmup", "0"]
    assert run("train", "corpus.txt", "--steps", "14", "--name", "whole", *args).exit_code == 0
    assert run("train", "corpus.txt", "--steps", "6", "--name", "parts", *args).exit_code == 0
    r = run("train", "corpus.txt", "--steps", "14", "--name", "parts", "--resume", "--quiet")
    assert r.exit_code == 0, r.output
    a = params_of(work / "checkpoints" / "whole" / "latest.ckpt")
    b = params_of(work / "checkpoints" / "parts" / "latest.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_a_corpus_after_resume_is_not_taken_for_a_checkpoint(work):
    r = run("train", "--resume", "corpus.txt")
    assert r.exit_code == 2
    assert r.stderr == ("charrnn: error: --resume corpus.txt: not a checkpoint; to resume training on a corpus, "
                        "name the corpus first: charrnn train corpus.txt --resume\n")
    assert sorted(p.name for p in work.iterdir()) == ["corpus.txt"]  # no default corpus built, no run started
    r = run("train", "--resume", "nothing.ckpt")
    assert r.exit_code == 1 and r.stderr == "charrnn: error: nothing.ckpt: no such checkpoint\n"
    assert sorted(p.name for p in work.iterdir()) == ["corpus.txt"]


def test_resume_says_when_there_is_nothing_to_do(work):
    assert run("train", "corpus.txt", "--steps", "8", "--threads", "2", *SMALL).exit_code == 0
    r = run("train", "corpus.txt", "--resume", "--steps", "5", *SMALL)
    assert r.exit_code == 0 and r.stderr == ("nothing to train: checkpoints/corpus is at step 8, and --steps 5 is the "
                                             "run's total; give a larger --steps to go on\n")


def test_a_refused_run_leaves_no_log_file_behind(work):
    assert run("train", "corpus.txt", "--steps", "2", *SMALL).exit_code == 0
    r = run("train", "corpus.txt", "--steps", "2", "--log", "run.jsonl", *SMALL)
    assert r.exit_code == 1 and "already holds a run" in r.stderr
    assert not (work / "run.jsonl").exists()


def test_resume_names_a_classifier_run_and_a_trainer_holding_the_run(work):
    (work / "labels.tsv").write_text("".join(f"{'ab'[i % 2]}\t{'xy'[i % 2] * 5} {i}\n" for i in range(40)))
    assert run("classify", "train", "labels.tsv", "--steps", "2", "--name", "cls", "--quiet").exit_code == 0
    for args in (["--resume", "--name", "cls"], ["corpus.txt", "--resume", "checkpoints/cls"]):
        r = run("train", *args)
        assert r.exit_code == 2 and r.stderr.startswith("charrnn: error: ") and r.stderr.endswith(
            "is a sequence classifier's run (charrnn classify train), which `charrnn train` cannot resume; train it "
            "again with charrnn classify train DATA --name cls --force\n"), r.stderr
    from charrnn.store.rundir import RunDir
    with RunDir(work / "checkpoints" / "busy").lock():  # a trainer that has not saved yet
        r = run("train", "--resume", "--name", "busy")
    assert r.exit_code == 1 and r.stderr == (f"charrnn: error: checkpoints/busy: another charrnn train is already "
                                             f"writing this run (lock held by pid {os.getpid()})\n")


@pytest.mark.exact
def test_a_run_resumed_with_other_threads_goes_on_bit_for_bit(work):
    """Workers take whole shards of the batch and the shards are summed in one order
    (core/shards.py): two workers, then one, train what two train throughout."""
    args = [*SMALL, "--dropout", "0.2", "--lr-schedule", "constant", "--warmup", "0"]
    assert run("train", "corpus.txt", "--steps", "14", "--name", "whole", "--threads", "2", *args).exit_code == 0
    assert run("train", "corpus.txt", "--steps", "6", "--name", "parts", "--threads", "2", *args).exit_code == 0
    r = run("train", "corpus.txt", "--steps", "14", "--name", "parts", "--resume", "--threads", "1", "--quiet")
    assert (r.exit_code, r.stderr) == (0, "")
    assert json.loads(run("info", "checkpoints/parts", "--json").stdout)["train"]["threads"] == 1
    a = params_of(work / "checkpoints" / "whole" / "latest.ckpt")
    b = params_of(work / "checkpoints" / "parts" / "latest.ckpt")
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_resume_points_past_a_damaged_latest_and_names_a_trainer_still_starting(work):
    assert run("train", "corpus.txt", "--steps", "8", *SMALL).exit_code == 0
    latest = work / "checkpoints" / "corpus" / "latest.ckpt"
    with open(latest, "r+b") as f:  # damaged in place: the hard links to it (best, step 8) with it
        f.truncate(100)
    r = run("train", "corpus.txt", "--resume", "--steps", "10", *SMALL)
    assert r.exit_code == 1 and r.stderr.startswith("charrnn: error: checkpoints/corpus/latest.ckpt: ")
    m = re.search(r"; resume from an earlier checkpoint with --resume (checkpoints/corpus/step-0+4-val-[\d.]+\.ckpt)\n$",
                  r.stderr)
    assert m, r.stderr
    r = run("train", "corpus.txt", "--resume", m.group(1), "--steps", "10", *SMALL)
    assert r.exit_code == 0 and schema.load("checkpoints/corpus/latest.ckpt").step == 10
    with rundir.RunDir(work / "checkpoints" / "fresh").lock():  # a trainer that has not saved yet
        r = run("train", "corpus.txt", "--name", "fresh", "--resume", *SMALL)
    assert r.exit_code == 1 and r.stderr == ("charrnn: error: checkpoints/fresh: another charrnn train is already "
                                             f"writing this run (lock held by pid {os.getpid()})\n")


def test_existing_run_is_not_overwritten_without_force(work):
    assert run("train", "corpus.txt", "--steps", "4", *SMALL).exit_code == 0
    before = (work / "checkpoints" / "corpus" / "latest.ckpt").read_bytes()
    r = run("train", "corpus.txt", "--steps", "4", *SMALL)
    assert r.exit_code == 1
    assert r.output.strip() == ("charrnn: error: checkpoints/corpus already holds a run; use --resume to continue it, "
                                "--force to start it over, or --name to start another") or "already holds a run" in r.output
    assert (work / "checkpoints" / "corpus" / "latest.ckpt").read_bytes() == before
    assert run("train", "corpus.txt", "--steps", "4", "--force", *SMALL).exit_code == 0


def test_force_replaces_the_old_run_at_its_first_save_not_before(work):
    assert run("train", "corpus.txt", "--steps", "12", *SMALL).exit_code == 0
    run_dir = work / "checkpoints" / "corpus"
    old = sorted(p.name for p in run_dir.glob("step-*.ckpt"))
    assert [n[:12] for n in old] == ["step-0000004", "step-0000008", "step-0000012"]
    assert run("train", "corpus.txt", "--force", "--steps", "1", "--batch", "999", "--quiet").exit_code == 1
    assert sorted(p.name for p in run_dir.glob("step-*.ckpt")) == old  # failed before saving: all kept
    assert run("train", "corpus.txt", "--force", "--steps", "5", *SMALL).exit_code == 0
    assert [p.name[:12] for p in sorted(run_dir.glob("step-*.ckpt"))] == ["step-0000004", "step-0000005"]
    assert schema.load(str(run_dir / "latest.ckpt")).step == 5
    assert not (set(p.name for p in run_dir.glob("step-*.ckpt")) & set(old[1:]))


def test_resume_on_another_corpus_needs_force(work):
    assert run("train", "corpus.txt", "--steps", "4", *SMALL).exit_code == 0
    make_corpus(work / "corpus.txt", seed=1)
    r = charrnn("train", "corpus.txt", "--steps", "8", "--resume", "--quiet", work=work)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == ("charrnn: error: this corpus differs from the one the checkpoint was trained "
                                         "on (another sha256); add --force to resume on it anyway")
    r = charrnn("train", "corpus.txt", "--steps", "8", "--resume", "--force", "--quiet", work=work)
    assert r.returncode == 0, r.stderr
    assert schema.load(str(work / "checkpoints" / "corpus" / "latest.ckpt")).step == 8


def test_model_options_cannot_change_on_resume(work):
    assert run("train", "corpus.txt", "--steps", "4", *SMALL).exit_code == 0
    r = charrnn("train", "corpus.txt", "--steps", "8", "--resume", "--hidden", "32", work=work)
    assert r.returncode == 2
    assert r.stderr.decode().strip() == "charrnn: error: --hidden cannot change when resuming (the checkpoint has 16)"


def test_forget_bias_is_a_model_option_that_travels_in_the_checkpoint(work):
    assert run("train", "corpus.txt", "--steps", "2", "--forget-bias", "1", *SMALL).exit_code == 0
    b = schema.load(str(work / "checkpoints" / "corpus" / "latest.ckpt"))
    assert b.cfg.forget_bias == 1.0
    assert json.loads(run("info", "--json").stdout)["model"]["forget_bias"] == 1.0
    r = charrnn("train", "corpus.txt", "--steps", "4", "--resume", "--forget-bias", "0", work=work)
    assert r.returncode == 2
    assert r.stderr == b"charrnn: error: --forget-bias cannot change when resuming (the checkpoint has 1.0)\n"


def test_bidirectional_language_model_is_refused(work):
    r = charrnn("train", "corpus.txt", "--bidirectional", work=work)
    assert r.returncode == 2
    assert b"would see the future it must predict" in r.stderr and r.stderr.count(b"\n") == 1


def test_diverging_run_stops_and_keeps_the_last_good_checkpoint(work):
    assert run("train", "corpus.txt", "--steps", "4", "--name", "d", "--optimizer", "sgd", *SMALL).exit_code == 0
    good = (work / "checkpoints" / "d" / "latest.ckpt").read_bytes()
    r = charrnn("train", "corpus.txt", "--steps", "200", "--name", "d", "--resume", "--lr", "1e38", "--clip", "0",
                "--eval-every", "1", "--quiet", work=work)  # a checkpoint after every step: none may hold NaN
    assert r.returncode == 1
    err = r.stderr.decode()
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("warning: "))
    assert err.startswith("charrnn: error: training diverged at step ") and err.count("\n") == 1
    assert (work / "checkpoints" / "d" / "latest.ckpt").read_bytes() == good


# --------------------------------------------------------------------------- sampling

@pytest.fixture
def trained(work):
    assert run("train", "corpus.txt", "--steps", "150", "--lr", "1e-2", *SMALL).exit_code == 0
    return work


@pytest.mark.exact
def test_same_seed_same_bytes_and_prime_is_echoed(trained):
    a = run("sample", "--seed", "7", "--length", "80", "--prime", "red fox")
    b = run("sample", "--seed", "7", "--length", "80", "--prime", "red fox")
    c = run("sample", "--seed", "8", "--length", "80", "--prime", "red fox")
    assert a.exit_code == 0 and a.stdout_bytes == b.stdout_bytes != c.stdout_bytes
    assert a.stdout.startswith("red fox") and len(a.stdout) == len("red fox") + 80


def test_argmax_is_deterministic_and_tiny_temperature_equals_it(trained):
    a = run("sample", "--argmax", "--length", "60").stdout
    b = run("sample", "--argmax", "--length", "60").stdout
    c = run("sample", "--temp", "1e-30", "--length", "60", "--seed", "3").stdout
    assert a == b == c and len(a) >= 60


def test_unknown_prime_characters_warn_and_are_skipped(trained):
    r = CliRunner().invoke(cli, ["sample", "--prime", "red ☃fox", "--length", "5", "--seed", "0"])
    assert r.exit_code == 0
    assert r.stdout.startswith("red fox")
    assert r.stderr == ("warning: the prime: 1 of 8 characters (12.5%) is not in the model's vocabulary and was "
                        "skipped: '☃'\n")


def test_word_level_prime_words_read_as_unknown_are_named(work):
    assert run("train", "corpus.txt", "--level", "word", "--max-vocab", "100", "--steps", "2", "--embed", "4",
               *SMALL).exit_code == 0
    r = CliRunner().invoke(cli, ["sample", "--prime", "red zyzzyva fox zyzzyva", "--length", "3", "--seed", "0"])
    assert r.exit_code == 0 and r.stdout.startswith("red \ufffd fox \ufffd")
    assert r.stderr == ("warning: the prime: 2 of 7 tokens (28.6%) are not in the model's vocabulary and are read "
                        "as its unknown token: 'zyzzyva'\n")
    (work / "zoo.txt").write_text("red zyzzyva fox aardvark the\n")
    r = run("eval", "zoo.txt")
    assert r.exit_code == 0 and r.stderr == ("warning: zoo.txt: 2 of 10 tokens (20.0%) are not in the model's "
                                             "vocabulary and are read as its unknown token: 'zyzzyva', 'aardvark'\n")


def test_stop_and_num_samples(trained):
    r = run("sample", "--num-samples", "3", "--length", "0", "--stop", ".", "--seed", "5", "--prime", "red")
    assert r.exit_code == 0
    samples = re.findall(r"red[^.]*\.", r.stdout)  # each sample: the prime, then up to and including the stop text
    assert len(samples) == 3 and r.stdout == "\n\n".join(samples)


def test_a_separator_tells_samples_apart_even_when_they_end_in_a_blank_line(trained):
    """With --stop $'\\n\\n' a sample ends in a blank line, as the blank line between samples does."""
    r = run("sample", "--num-samples", "3", "--length", "0", "--stop", ".", "--seed", "5", "--prime", "red",
            "--separator", "---\n")
    samples = re.findall(r"red[^.]*\.", r.stdout)
    assert r.exit_code == 0 and r.stdout == "\n---\n".join(samples)



def test_null_separates_samples_by_a_nul_alone_as_xargs_0_reads_them(trained, tmp_path):
    """A shell argument cannot hold a NUL ($'\\0' arrives as an empty string): -0 gives the
    samples' bytes exactly, each ended by a NUL, in a real pipe into xargs -0."""
    r = run("sample", "--num-samples", "3", "--length", "8", "--seed", "5", "-0")
    alone = [run("sample", "--num-samples", "1", "--length", "8", "--seed", str(s)).stdout for s in (5,)]
    parts = r.stdout.split("\0")
    assert r.exit_code == 0 and len(parts) == 4 and parts[-1] == "" and parts[0] == alone[0]
    out = subprocess.run(["/bin/sh", "-c", f"{sys.executable} -m charrnn sample --num-samples 3 --length 8 --seed 5 -0"
                          f" | xargs -0 -n 1 printf '[%s]'"], cwd=trained, env=env_for(trained), capture_output=True,
                         text=True)
    assert out.stdout == "".join(f"[{p}]" for p in parts[:-1])
    r = run("sample", "-0", "--separator", "--")
    assert r.exit_code == 2 and r.stderr == "charrnn: error: give --separator or --null, not both\n"


def test_checkpoint_paths_complete_in_the_shell(trained, monkeypatch):
    monkeypatch.setenv("_CHARRNN_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "charrnn sample --checkpoint chec")
    monkeypatch.setenv("COMP_CWORD", "3")
    r = CliRunner().invoke(cli, [], prog_name="charrnn")
    assert r.output.strip() == "file,chec"  # bash then completes the path itself


def test_info_names_the_corpus_files_and_when_it_was_saved(trained):
    r = run("info")
    assert r.exit_code == 0
    assert re.search(rf"^corpus       {re.escape(str(trained / 'corpus.txt'))} \([\d,]+ tokens, sha256 [0-9a-f]{{12}}…\)$",
                     r.stdout, re.M), r.stdout
    assert re.search(r"^saved        20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC by charrnn \d", r.stdout, re.M)
    d = json.loads(run("info", "--json").stdout)
    assert d["corpus_paths"] == [str(trained / "corpus.txt")] and d["saved_at"].endswith("Z")


def test_beam_search_gives_the_most_likely_continuation(trained):
    r = run("sample", "--beam", "4", "--length", "20", "--prime", "red")
    g = run("sample", "--beam", "1", "--length", "20", "--prime", "red")
    a = run("sample", "--argmax", "--length", "20", "--prime", "red")
    assert r.exit_code == 0 and len(r.stdout) == 23
    assert g.stdout == a.stdout  # one beam is greedy decoding


def test_a_bad_prime_file_is_named_without_advising_an_option_sample_lacks(trained):
    (trained / "bad.txt").write_bytes(b"ab\xffcd")
    r = run("sample", "--prime-file", "bad.txt")
    assert r.exit_code == 1 and r.stderr == ("charrnn: error: bad.txt: invalid UTF-8 at byte offset 2; if it is "
                                             "Latin-1 or Windows-1252 text, convert it first: iconv -f "
                                             "WINDOWS-1252 -t UTF-8 bad.txt > bad.txt.utf8\n")  # sample has no --errors


def test_beam_refuses_the_options_it_would_ignore(trained):
    r = run("sample", "--beam", "4", "--length", "10", "--stop", "e", "--temp", "0.5", "--num-samples", "2")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == ("charrnn: error: --beam cannot be combined with --temp, --stop, --num-samples: beam search "
                        "takes the single most likely continuation of --length tokens\n")


def test_sample_reads_a_run_directory_and_refuses_bad_values(trained):
    r = run("sample", "--checkpoint", "checkpoints/corpus", "--length", "10", "--seed", "0")
    assert r.exit_code == 0 and len(r.stdout) == 10
    r = charrnn("sample", "--temp", "0", work=trained)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and b"--temp" in r.stderr


# --------------------------------------------------------------------------- eval and info

def test_eval_json_and_info_json(trained):
    r = run("eval", "corpus.txt", "--json")
    d = json.loads(r.stdout)
    assert set(d) == {"loss", "bits_per_char", "perplexity", "tokens", "skipped"} and d["skipped"] == 0
    assert abs(d["bits_per_char"] - d["loss"] / np.log(2)) < 1e-9 and d["tokens"] > 1000
    assert abs(np.exp(d["loss"]) - d["perplexity"]) < 1e-6 * d["perplexity"]
    i = json.loads(run("info", "--json").stdout)
    assert i["step"] == 150 and i["vocab_size"] == len(set((trained / "corpus.txt").read_text()))
    assert i["model"]["hidden"] == 16 and i["params"] > 0


def test_eval_says_how_much_of_the_text_it_could_not_read(trained):
    text = (trained / "corpus.txt").read_text()[:3000]
    (trained / "mixed.txt").write_text(text + "☃✓" * 500 + "ü" * 6, encoding="utf-8")
    r = run("eval", "mixed.txt")
    assert r.exit_code == 0
    assert r.stderr == ("warning: mixed.txt: 1,006 of 4,006 characters (25.1%) are not in the model's vocabulary "
                        "and were skipped: '☃', '✓', 'ü'\n")
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert out["tokens"] == "2999" and out["skipped"] == "1006"
    assert json.loads(run("eval", "mixed.txt", "--json").stdout)["skipped"] == 1006


def test_a_trained_model_scores_its_own_kind_of_text_better_than_noise(trained):
    r = np.random.default_rng(0)
    chars = sorted(set((trained / "corpus.txt").read_text()))
    (trained / "noise.txt").write_text("".join(r.choice(chars, 3000)), encoding="utf-8")
    make_corpus(trained / "fresh.txt", n=100, seed=9)
    real = json.loads(run("eval", "fresh.txt", "--json").stdout)["loss"]
    noise = json.loads(run("eval", "noise.txt", "--json").stdout)["loss"]
    assert real < noise - 0.5


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("content,message", [
    (b"", "charrnn: error: the corpus is empty"),
    (b"ab\xffcd", "charrnn: error: bad.txt: invalid UTF-8 at byte offset 2; if it is Latin-1 or Windows-1252 text, convert it first: iconv -f WINDOWS-1252 -t UTF-8 bad.txt > bad.txt.utf8, or use --errors replace to decode it anyway"),
    (b"\xef\xbb\xbfab\xffcd", "charrnn: error: bad.txt: invalid UTF-8 at byte offset 5; if it is Latin-1 or Windows-1252 text, convert it first: iconv -f WINDOWS-1252 -t UTF-8 bad.txt > bad.txt.utf8, or use --errors replace to decode it anyway"),
    ("text in UTF-16".encode("utf-16"), "charrnn: error: bad.txt: NUL byte at byte offset 3: this looks like UTF-16 "
                                        "text; convert it to UTF-8 first, e.g. iconv -f UTF-16 -t UTF-8 bad.txt > "
                                        "bad.txt.utf8"),
    ("sans BOM".encode("utf-16-le"), "charrnn: error: bad.txt: NUL byte at byte offset 1: this looks like UTF-16 "
                                     "text; convert it to UTF-8 first, e.g. iconv -f UTF-16 -t UTF-8 bad.txt > "
                                     "bad.txt.utf8"),
    (b"text\x00more", "charrnn: error: bad.txt: NUL byte at byte offset 4: this looks like a binary file, not text"),
    (b"tiny", "charrnn: error: the corpus has 4 tokens, too few for one window of --batch 32 x --seq-len 50 (+1); "
              "use a smaller --batch or --seq-len"),
])
def test_bad_corpus_is_one_line_and_exit_1(work, content, message):
    (work / "bad.txt").write_bytes(content)
    r = charrnn("train", "bad.txt", "--val-frac", "0", work=work)
    assert r.returncode == 1
    assert r.stderr.decode() == message + "\n"
    assert not (work / "checkpoints" / "bad").exists()  # no run directory left holding only its lock


@pytest.mark.parametrize("args", [
    ["train", "corpus.txt", "--minutes", "inf"],  # once crashed at the first save, losing the run
    ["train", "corpus.txt", "--epochs", "inf"],
    ["train", "corpus.txt", "--clip", "inf"],
    ["train", "corpus.txt", "--lr", "nan"],
    ["train", "corpus.txt", "--dropout", "nan"],
    ["sample", "--temp", "nan"],
    ["sample", "--top-p", "nan"],
    ["diagnose", "--gain", "inf"],
    ["classify", "train", "corpus.txt", "--minutes", "inf"],
])
def test_non_finite_numbers_are_refused_in_one_line(work, args):
    r = run(*args)
    assert r.exit_code == 2
    assert r.stderr.startswith(f"charrnn: error: Invalid value for '{args[-2]}'")
    assert r.stderr.endswith(f": '{args[-1]}' is not a finite number.\n") and r.stderr.count("\n") == 1
    assert not (work / "checkpoints").exists()


@pytest.mark.parametrize("args", [["train", "corpus.txt", "--epochs", "1e307"], ["train", "corpus.txt", "--minutes", "1e307"]])
def test_huge_finite_limits_train_to_the_step_limit(work, args):
    r = run(*args, "--steps", "3", *SMALL)
    assert r.exit_code == 0, r.stderr
    assert schema.load("checkpoints/corpus/latest.ckpt").step == 3


def test_errors_replace_goes_on(work):
    (work / "bad.txt").write_bytes((work / "corpus.txt").read_bytes() + b"\xff")
    r = charrnn("train", "bad.txt", "--errors", "replace", "--steps", "2", *SMALL, work=work)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args,code,needle", [
    (["train", "missing.txt"], 1, "charrnn: error: missing.txt: no such file"),
    (["train", "."], 1, "charrnn: error: .: is a directory"),
    (["score", "missing.txt"], 1, "charrnn: error: missing.txt: no such file"),  # as train says it, not click
    (["classify", "train", "missing.tsv"], 1, "charrnn: error: missing.tsv: no such file"),
    (["diagnose", "--file", "."], 1, "charrnn: error: .: is a directory"),
    (["train", "corpus.txt", "--log", "nodir/log.jsonl"], 1, "charrnn: error: --log nodir/log.jsonl: no such directory"),
    (["train", "corpus.txt", "--max-vocab", "5"], 2,
     "charrnn: error: --max-vocab applies to --level word only (a character-level model keeps every character)"),
    (["train", "corpus.txt", "--cell", "transformer"], 2, "charrnn: error: Invalid value for '--cell'"),
    (["train", "corpus.txt", "--hidden", "0"], 2, "charrnn: error: Invalid value for '--hidden'"),
    (["train", "corpus.txt", "--name", ""], 2, "charrnn: error: Invalid value for --name: '' is not a usable run name"),
    (["train", "corpus.txt", "--val-frac", "0.99"], 1, "charrnn: error: the training part of the corpus (all but the "
                                                      "last --val-frac 0.99) has 110 tokens, too few for one window "
                                                      "of --batch 32 x --seq-len 50 (+1); use a smaller --batch or "
                                                      "--seq-len or --val-frac"),
    (["sample", "--checkpoint", "nothing.ckpt"], 1, "charrnn: error: nothing.ckpt: no such checkpoint"),
    (["sample"], 1, "charrnn: error: no language model found under checkpoints/; train one first: charrnn train CORPUS"),
    (["info", "corpus.txt"], 1, "charrnn: error: corpus.txt: not a charrnn checkpoint"),
    (["frobnicate"], 2, "charrnn: error: No such command 'frobnicate'."),
    (["train", "corpus.txt", "--seed", "-1"], 2, "charrnn: error: Invalid value for '--seed'"),
    (["sample", "--seed", "-1"], 2, "charrnn: error: Invalid value for '--seed'"),
    # options the chosen cell or mode has no use for are refused, not silently dropped
    (["train", "corpus.txt", "--activation", "relu"], 2,
     "charrnn: error: --activation applies to --cell rnn only (an lstm has no use for it)"),
    (["train", "corpus.txt", "--cell", "gru", "--forget-bias", "1"], 2,
     "charrnn: error: --forget-bias applies to --cell lstm or cifg only (a gru has no use for it)"),
    (["classify", "train", "corpus.txt", "--cell", "rnn", "--forget-bias", "1"], 2,
     "charrnn: error: --forget-bias applies to --cell lstm or cifg only (an rnn has no use for it)"),
    (["sample", "--argmax", "--temp", "0.5", "--seed", "1"], 2,
     "charrnn: error: --argmax cannot be combined with --temp, --seed: it takes the most likely token every time, "
     "so nothing is drawn and every sample is the same"),
    (["sample", "--argmax", "--num-samples", "2"], 2, "charrnn: error: --argmax cannot be combined with --num-samples"),
])
def test_usage_and_runtime_errors_are_one_line(work, args, code, needle):
    r = charrnn(*args, work=work)
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert err.startswith(needle) and err.count("\n") == 1 and "Traceback" not in err


# --------------------------------------------------------------------------- pipes and processes

def test_stdin_training_and_pipe_to_head(work):
    corpus = (work / "corpus.txt").read_bytes()
    r = charrnn("train", "-", "--steps", "6", "--name", "piped", *SMALL, work=work, input=corpus)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    p = subprocess.run(f"{sys.executable} -m charrnn sample --length 1000000 --seed 0 | head -c 100", shell=True,
                       cwd=work, env=env_for(work), capture_output=True, timeout=60)
    assert p.returncode == 0 and len(p.stdout) == 100 and p.stderr == b""


@pytest.mark.parametrize("command", [
    "sample --length 100000",
    "score corpus.txt",
    "inspect --file corpus.txt --find 2>&1",  # a report on stderr, read by head too
    "diagnose 2>&1",
])
def test_a_reader_that_goes_away_ends_any_command_quietly(trained, command):
    p = subprocess.run(f"set -o pipefail; {sys.executable} -m charrnn {command} | head -c 10", shell=True,
                       executable="/bin/bash", cwd=trained, env=env_for(trained), capture_output=True, timeout=120)
    assert p.returncode == 0 and len(p.stdout) == 10 and p.stderr == b""


def test_a_group_without_a_command_prints_its_help(work):
    for args, usage in [((), " [OPTIONS] COMMAND [ARGS]...\n"), (("classify",), " classify [OPTIONS] COMMAND")]:
        r = run(*args)
        assert r.exit_code == 2 and r.stdout == ""
        assert r.stderr.startswith("Usage: ") and usage in r.stderr.splitlines()[0] + "\n"
        assert "\nCommands:\n" in r.stderr and "error" not in r.stderr


def test_a_report_off_a_terminal_is_not_cut_to_80_columns(trained):
    r = charrnn("diagnose", "--length", "300", work=trained)
    assert r.returncode == 0
    lines = r.stderr.decode().splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("model "))
    assert lines[head].split() == ["model", "d=1", "d=10", "d=25", "d=50", "d=100", "ratio", "50/1", "‖grad‖", "clip",
                                   "×"]
    rows = lines[head + 1:]
    from charrnn.core import cells
    assert len(rows) == len(cells.kinds()) and "…" not in r.stderr.decode()
    assert all(re.fullmatch(r"\S+(\s+\d\.\d\de[-+]\d\d){7}\s+-", row) for row in rows), rows


def test_plain_progress_on_a_pipe_has_no_control_codes(work):
    r = charrnn("train", "corpus.txt", "--steps", "8", *[a for a in SMALL if a != "--quiet"], work=work)
    assert r.returncode == 0
    assert r.stdout == b""
    err = r.stderr.decode()
    assert "\x1b" not in err and "\r" not in err
    assert re.search(r"^eval step 4: val \d+\.\d{4} nats \(\d+\.\d{3} bits/char\) best$", err, re.M)
    assert re.search(r"^done: step 8, best val \d+\.\d{4} nats, ", err, re.M)


def test_every_clipping_event_is_reported(work):
    r = charrnn("train", "corpus.txt", "--steps", "5", "--clip", "1e-6", *[a for a in SMALL if a != "--quiet"],
                work=work)
    lines = [l for l in r.stderr.decode().splitlines() if l.startswith("clip step ")]
    assert [l.split(":")[0] for l in lines] == [f"clip step {i}" for i in range(1, 6)]
    assert all(l.endswith("> 0.00") for l in lines)


@pytest.mark.exact
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_at_a_step_boundary_and_resume_matches(work, sig, code):
    base = ["--steps", "600", "--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16",
            "--eval-every", "25", "--dropout", "0.1", "--quiet"]
    whole = charrnn("train", "corpus.txt", "--name", "whole", *base, work=work)
    assert whole.returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "train", "corpus.txt", "--name", "cut", *base],
                         cwd=work, env=env_for(work), stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    first = work / "checkpoints" / "cut" / "latest.ckpt"
    deadline = time.time() + 60
    while time.time() < deadline and not first.exists():
        time.sleep(0.005)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert (out, err) == (b"", b"")  # --quiet: errors only, not even the signal's line
    cut = schema.load(str(first))
    assert 0 < cut.step < 600
    r = charrnn("train", "corpus.txt", "--name", "cut", "--resume", *base, work=work)
    assert r.returncode == 0, r.stderr
    a = params_of(work / "checkpoints" / "whole" / "latest.ckpt")
    b = params_of(first)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_python_dash_m_and_version(work):
    r = charrnn("--version", work=work)
    assert r.returncode == 0 and re.fullmatch(rb"charrnn \d+\.\d+\.\d+\n", r.stdout)


def test_ctrl_c_during_the_imports_is_one_line_and_130(monkeypatch, capsys):
    import importlib.abc

    import charrnn.__main__ as entry

    class Interrupt(importlib.abc.MetaPathFinder):  # as if Ctrl-C landed while numpy loads
        def find_spec(self, name, path, target=None):
            if name == "charrnn.cli":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "charrnn.cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupt(), *sys.meta_path])
    with pytest.raises(SystemExit) as e:
        entry.run()
    assert e.value.code == 130 and capsys.readouterr().err == "charrnn: interrupted\n"


@pytest.mark.parametrize("args", [["score"], ["eval", "-"], ["sample", "--prime-file", "-", "--length", "1"]])
def test_reading_a_terminal_says_so_for_every_command_that_reads_stdin(trained, args):
    import pty
    master, slave = pty.openpty()  # standard input is a terminal, as when a user forgets the file
    try:
        p = subprocess.Popen([sys.executable, "-m", "charrnn", *args], stdin=slave, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=trained, env=env_for(trained))
        os.write(master, b"red fox sees a cat\nthe moon\n\x04")  # two lines, then one Ctrl-D
        out, err = p.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, err
    assert err.decode().startswith("reading standard input: type or paste the text, then Ctrl-D\n")
    if args[0] == "score":
        assert [line.split("\t")[2] for line in out.decode().splitlines()] == ["red fox sees a cat", "the moon"]
    if args[0] == "eval":  # all of it was read, after a single Ctrl-D
        assert "tokens 27\n" in out.decode()  # 28 characters, the first only read


def test_checkpoint_dir_env_and_option(work, monkeypatch):
    monkeypatch.setenv("CHARRNN_CHECKPOINT_DIR", str(work / "elsewhere"))
    assert run("train", "corpus.txt", "--steps", "2", *SMALL).exit_code == 0
    assert (work / "elsewhere" / "corpus" / "latest.ckpt").exists()
    assert rundir.resolve_checkpoint(None, str(work / "elsewhere")).endswith("best.ckpt")


def test_more_threads_than_cores_are_capped_with_a_warning(work):
    from charrnn.training.machine import cores
    n = cores()
    r = run("train", "corpus.txt", "--steps", "2", "--threads", str(n + 62), *SMALL[:-1])
    assert r.exit_code == 0, r.output
    assert f"warning: --threads {n + 62} is more than the {n} cores here; using {n}\n" in r.stderr
    assert schema.load(str(work / "checkpoints" / "corpus" / "latest.ckpt")).train.threads == n
