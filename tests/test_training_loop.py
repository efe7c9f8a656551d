"""The training loop as a user meets it: the loss it shows, its speed and ETA, when it validates,
what Ctrl-C does, and a run without validation."""
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn.core import optim
from charrnn.checkpoint import find, schema
from charrnn.store.rundir import RunDir
from charrnn.text.corpus import load_corpus
from charrnn.config.recipe import TrainConfig
from charrnn.training.lm import LanguageModelTask
from charrnn.training.loop import MEAN_OF, Loop
from charrnn.config.model import ModelConfig
from charrnn.ui.progress import PlainReporter

from .cli_support import isolate, make_corpus


def corpus_of(tmp_path, n=400):
    return load_corpus(make_corpus(tmp_path / "c.txt", n).read_bytes())


def task_for(corpus, **recipe):
    tcfg = TrainConfig(**{"batch": 4, "seq_len": 16, "threads": 1, **recipe})
    mcfg = ModelConfig(vocab_size=len(corpus.vocab), layers=1, hidden=16, dropout=0.0)
    return LanguageModelTask(corpus, mcfg, tcfg), tcfg


class Recorder(PlainReporter):
    """A plain reporter (one line a step) that also keeps what it was told."""

    def __init__(self):
        super().__init__(io.StringIO(), every=1, min_interval=0)
        self.steps, self.evals = [], []

    def step(self, m):
        self.steps.append(m)
        super().step(m)

    def evaluate(self, m):
        self.evals.append(m)
        super().evaluate(m)


def test_the_loss_shown_is_each_steps_own_beside_the_mean_of_the_last_20(tmp_path):
    """The plain line's first figure is the step's loss; the one beside it, labelled, is the plain
    mean of the last 20 (no average that starts at the first loss and lags for a hundred steps)."""
    task, tcfg = task_for(corpus_of(tmp_path), steps=45)
    rep = Recorder()
    Loop(task, tcfg, RunDir(tmp_path / "run"), rep).run()
    losses = [m["loss"] for m in rep.steps]
    for m in rep.steps:
        window = losses[max(0, m["step"] - MEAN_OF):m["step"]]
        assert m["mean_loss"] == pytest.approx(sum(window) / len(window), rel=1e-12)
    line = next(ln for ln in rep.stream.getvalue().splitlines() if ln.startswith("step 45/45 "))
    assert f"loss {losses[-1]:.4f} (mean of the last 20 {rep.steps[-1]['mean_loss']:.4f})" in line
    assert rep.steps[-1]["mean_loss"] < losses[0] - 0.3  # it follows the loss down


def test_speed_counts_training_steps_only(tmp_path, monkeypatch):
    """A slow validation does not drag chars/s down (the ETA adds it apart)."""
    task, tcfg = task_for(corpus_of(tmp_path), steps=120, eval_every=40)
    real = task.evaluate

    def slow_evaluate():
        time.sleep(1.0)
        return real()

    monkeypatch.setattr(task, "evaluate", slow_evaluate)
    rep = Recorder()
    Loop(task, tcfg, RunDir(tmp_path / "run"), rep).run()
    before = [m["chars_per_s"] for m in rep.steps if 25 <= m["step"] <= 40]
    after = [m["chars_per_s"] for m in rep.steps if 41 <= m["step"] <= 60]
    # over wall time the second second of the run held a 1 s pause: a rate some tens of times lower
    assert min(after) > 0.2 * np.median(before), (min(after), np.median(before))
    assert all(m["eta"] is not None for m in rep.steps)


def test_without_eval_every_a_time_limited_run_validates_each_fifth_of_it(tmp_path, monkeypatch):
    """--eval-every unset: every 200 steps, or each fifth of a --minutes run if sooner, so a
    one-minute run whose steps are slow still shows validation and previews as it goes."""
    task, tcfg = task_for(corpus_of(tmp_path), minutes=0.05)  # 3 s
    real = task.step

    def slow_step(step):
        time.sleep(0.02)  # 200 steps would take 4 s: longer than the run
        return real(step)

    monkeypatch.setattr(task, "step", slow_step)
    rep = Recorder()
    Loop(task, tcfg, RunDir(tmp_path / "run"), rep).run()
    assert rep.steps[-1]["step"] < 200
    assert len(rep.evals) >= 4, [m["step"] for m in rep.evals]  # about 0.6 s apart, and the last


def test_a_time_limited_run_spends_a_tenth_of_its_time_validating_not_more(tmp_path, monkeypatch):
    """A large corpus's validation can take longer than the steps between two: then a --minutes
    run without --eval-every validates when the saves have had a tenth of the time since the
    last (or a fifth of the run has passed), not every eval_every steps."""
    corpus = corpus_of(tmp_path)
    task, tcfg = task_for(corpus, minutes=0.1)  # 6 s
    task.eval_every = 5  # fast steps: every 5 steps would be dozens of saves
    real = task.evaluate

    def slow_evaluate():
        time.sleep(0.25)  # a save of 0.25 s waits for 2.25 s of training since the last
        return real()

    monkeypatch.setattr(task, "evaluate", slow_evaluate)
    rep = Recorder()
    Loop(task, tcfg, RunDir(tmp_path / "run"), rep).run()
    steps = [m["step"] for m in rep.evals]
    assert rep.steps[-1]["step"] > 100 and 4 <= len(steps) <= 8, steps  # the fifths (1.2 s) decide, and the end
    task2, tcfg2 = task_for(corpus, minutes=0.1)
    task2.eval_every = 20  # slow steps, a quick validation: every 20 steps (1 s), as asked
    real_step = task2.step

    def slow_step(step):
        time.sleep(0.05)
        return real_step(step)

    monkeypatch.setattr(task2, "step", slow_step)
    rep2 = Recorder()
    Loop(task2, tcfg2, RunDir(tmp_path / "run2"), rep2).run()
    assert [m["step"] for m in rep2.evals][:4] == [20, 40, 60, 80]


def test_a_short_time_limited_run_warms_up_within_a_tenth_of_it():
    lr = optim.learning_rate
    assert lr(1.0, "constant", 0.05, 5, warmup=100) == pytest.approx(0.5)  # half of the tenth: half the rate
    assert lr(1.0, "constant", 0.10, 5, warmup=100) == 1.0  # a tenth of the run: warm, at step 5 of 100
    assert lr(1.0, "constant", 0.001, 49, warmup=100) == pytest.approx(0.5)  # a long run: by steps, as before


def test_without_validation_there_is_no_best_and_the_files_say_no_loss(tmp_path, monkeypatch):
    from .cli_support import SMALL, run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    make_corpus(tmp_path / "corpus.txt")
    r = run("train", "corpus.txt", "--steps", "8", "--val-frac", "0", *SMALL[:-1])
    assert r.exit_code == 0, r.output
    names = sorted(os.listdir(tmp_path / "checkpoints" / "corpus"))
    assert "best.ckpt" not in names and [n for n in names if n.startswith("step-")] == \
        ["step-0000004.ckpt", "step-0000008.ckpt"]
    assert "done: step 8, no validation (--val-frac 0), " in r.stderr
    assert "best val" not in r.stderr
    assert schema.load(find.resolve("checkpoints/corpus", "checkpoints")).step == 8  # sample reads latest then


# --------------------------------------------------------------------------- Ctrl-C

SLOW = ["--hidden", "192", "--layers", "2", "--batch", "16", "--seq-len", "100", "--threads", "1",
        "--steps", "100000", "--eval-every", "100000"]


def spawn(tmp_path, *args):
    env = dict(os.environ, CHARRNN_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    return subprocess.Popen([sys.executable, "-m", "charrnn", "train", "corpus.txt", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_steps(log, n, proc, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if log.exists() and sum(1 for line in log.read_text().splitlines() if '"event": "step"' in line) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"no {n} steps: {proc.stderr.read().decode() if proc.poll() is not None else ''}")


def records(log):
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_ctrl_c_saves_the_steps_at_once_without_validating(tmp_path):
    """The first Ctrl-C finishes the step and saves it before anything else: no validation and
    no preview (on a large model they took minutes before a checkpoint existed)."""
    make_corpus(tmp_path / "corpus.txt", n=3000)
    log = tmp_path / "log.jsonl"
    p = spawn(tmp_path, *SLOW, "--log", str(log))
    wait_for_steps(log, 3, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    recs = records(log)
    steps = [r["step"] for r in recs if r["event"] == "step"]
    assert recs[-1]["event"] == "save" and recs[-1]["step"] == steps[-1]
    assert not any(r["event"] == "eval" for r in recs)
    ck = schema.load(str(tmp_path / "checkpoints" / "corpus" / "latest.ckpt"))
    assert ck.step == steps[-1] and ck.metrics["val_loss"] is None
    assert b"eval step" not in err and b"sample step" not in err


@pytest.mark.slow
def test_a_second_ctrl_c_skips_the_rest_of_the_step_and_keeps_the_steps_done(tmp_path):
    make_corpus(tmp_path / "corpus.txt", n=3000)
    log = tmp_path / "log.jsonl"
    p = spawn(tmp_path, *SLOW, "--log", str(log))
    wait_for_steps(log, 3, p)
    p.send_signal(signal.SIGINT)
    time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    steps = [r["step"] for r in records(log) if r["event"] == "step"]
    ck = schema.load(str(tmp_path / "checkpoints" / "corpus" / "latest.ckpt"))
    assert ck.step == steps[-1] >= 3  # every step done is in the checkpoint
    assert b"Traceback" not in err
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", "corpus.txt", "--resume", "--steps",
                        str(ck.step + 1), "--quiet"], cwd=tmp_path, capture_output=True, timeout=120,
                       env=dict(os.environ, CHARRNN_CACHE_DIR=str(tmp_path / "cache")))
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- big models

def test_a_model_too_big_for_this_machine_is_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    from .cli_support import run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    make_corpus(tmp_path / "corpus.txt")
    started = time.monotonic()
    r = run("train", "corpus.txt", "--cell", "lstm", "--hidden", "100000", "--steps", "1")
    assert r.exit_code == 1 and time.monotonic() - started < 10
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("charrnn: error: a 2x100000 lstm needs about 2.2 TiB to train at --batch 32 x "
                               "--seq-len 50 (weights, gradients and optimizer state 2.2 TiB, activations ")
    assert "free: use a smaller --hidden, --layers, --batch or --seq-len" in r.stderr
    assert not (tmp_path / "checkpoints" / "corpus").exists()


def test_a_large_model_says_what_it_costs_before_it_is_built():
    from charrnn.training.machine import check_memory
    said = []
    cfg = ModelConfig(vocab_size=65, hidden=4096)
    check_memory(cfg, 32, 100, "adam", 2, said.append, available=64 << 30)
    assert said == ["building a 2x4096 lstm of 202,690,625 parameters (about 4.9 GiB to train)"]
    with pytest.raises(Exception) as e:
        check_memory(cfg, 32, 100, "adam", 2, said.append, available=4 << 30)
    assert "this machine has 4.0 GiB free" in str(e.value)
    said.clear()
    check_memory(ModelConfig(vocab_size=65), 32, 100, "adam", 2, said.append, available=4 << 30)
    assert said == []  # the default model: nothing to say


def test_the_estimate_is_the_parameter_count_and_the_window_it_keeps():
    from charrnn.core import model
    for cfg in [ModelConfig(vocab_size=65), ModelConfig(vocab_size=9, cell="gru", embed=4, layers=3, hidden=7),
                ModelConfig(vocab_size=9, cell="rnn", bidirectional=True, labels=3, hidden=5)]:
        params = model.init_params(cfg, np.random.default_rng(0))
        assert model.count_params(cfg) == model.num_params(params)
        need = model.training_bytes(cfg, 8, 10, slots=2, workers=1)
        assert need["weights"] == 4 * 4 * model.num_params(params)  # parameters, one gradient, two moments


# --------------------------------------------------------------------------- resume alone

@pytest.fixture
def work(tmp_path, monkeypatch):
    make_corpus(tmp_path / "notes.txt")
    return isolate(tmp_path, monkeypatch)


def test_resume_alone_continues_the_latest_run_on_the_corpus_it_recorded(work):
    """After Ctrl-C the natural command is `charrnn train --resume`: no corpus named, so the run
    reads the one its checkpoint records (its sha256 checked), not the default corpus."""
    from .cli_support import SMALL, run
    assert run("train", "notes.txt", "--steps", "4", *SMALL).exit_code == 0
    ck = schema.load("checkpoints/notes/latest.ckpt")
    assert ck.corpus["paths"] == [str(work / "notes.txt")]
    r = run("train", "--resume", "--steps", "8", *SMALL[:-1])
    assert r.exit_code == 0, r.stderr
    assert r.stderr.startswith(f"resuming on the corpus the run recorded: {work / 'notes.txt'}\n")
    assert schema.load("checkpoints/notes/latest.ckpt").step == 8
    assert not (work / "cache" / "corpora").exists()  # the default corpus was not built


def test_resume_alone_names_the_file_it_needs(work):
    from .cli_support import SMALL, run
    (work / "b.txt").write_text((work / "notes.txt").read_text())
    assert run("train", "notes.txt", "b.txt", "--steps", "2", *SMALL).exit_code == 0
    (work / "b.txt").unlink()
    r = run("train", "--resume", "--steps", "4")
    assert r.exit_code == 1
    assert r.stderr == (f"charrnn: error: checkpoints/notes was trained on {work}/notes.txt, {work}/b.txt; "
                        f"{work}/b.txt is gone: give the corpus as it was, charrnn train {work}/notes.txt "
                        f"{work}/b.txt --resume --name notes\n")
    (work / "b.txt").write_text("something else entirely, and long enough to train on. " * 200)
    r = run("train", "--resume", "--steps", "4")
    assert r.exit_code == 1 and r.stderr.endswith("b.txt changed since the run was trained on it (another sha256); "
                                                  "add --force to resume on it anyway\n")


def test_resume_alone_after_stdin_says_to_give_it_again(work):
    from .cli_support import SMALL, run
    assert run("train", "-", "--steps", "2", *SMALL, input=(work / "notes.txt").read_bytes()).exit_code == 0
    r = run("train", "--resume", "--name", "stdin", "--steps", "4")
    assert r.exit_code == 1 and r.stderr == (
        "charrnn: error: checkpoints/stdin was trained on standard input, which cannot be read again; give it "
        "again: ... | charrnn train - --resume --name stdin\n")


@pytest.mark.slow
def test_a_resumed_time_limited_run_goes_on_with_its_clock_and_its_schedule(work):
    """--minutes is the run's total, as --steps is: a run stopped at about a third of its 6 s and
    resumed goes on from its clock (the schedule at its place, not back at the peak) and stops
    when the 6 s are spent; resumed again after that, there is nothing to train."""
    from .cli_support import env_for
    args = ["--minutes", "0.1", "--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16",
            "--threads", "1", "--log", "run.jsonl", "--quiet"]
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "train", "notes.txt", *args], cwd=work,
                         env=env_for(work), stderr=subprocess.PIPE)
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 130, p.stderr.read()
    stopped = schema.load("checkpoints/notes/latest.ckpt")
    assert 1.0 < stopped.elapsed < 6.0
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", "--resume", "--log", "run.jsonl"], cwd=work,
                       env=env_for(work), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"resuming checkpoints/notes at step {stopped.step:,}, {stopped.elapsed:.1f} s of its 0.1 minutes " \
           "trained: it stops when they are spent (--minutes sets the run's total)" in r.stderr
    steps = [json.loads(line) for line in open("run.jsonl") if '"event": "step"' in line]
    before = [m for m in steps if m["step"] <= stopped.step][-1]
    after = [m for m in steps if m["step"] > stopped.step]
    assert after[0]["step"] == stopped.step + 1
    assert stopped.elapsed <= after[0]["elapsed"] < stopped.elapsed + 2  # the clock goes on
    assert after[0]["lr"] <= before["lr"]  # the cosine schedule too, not back at its peak
    assert 5.5 <= after[-1]["elapsed"] < 7.5  # and the run stops when its 6 s are spent, not 6 s later
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", "--resume"], cwd=work, env=env_for(work),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.endswith(
        "nothing to train: checkpoints/notes has trained for " + f"{schema.load('checkpoints/notes/latest.ckpt').elapsed:.1f}"
        + " s, and --minutes 0.1 is the run's total; give a larger --minutes to go on\n")


def test_validation_reads_each_stream_after_a_line_break_as_sample_and_score_do():
    """A zero state met on a token in mid-text can drop a trained network into a mode it never
    leaves (seen: one of 32 validation streams at 30 nats/char, the run's best.ckpt its step 600);
    each stream therefore reads the line break first, as `sample` and `score` start."""
    from charrnn.analysis import likelihood
    from charrnn.config.model import ModelConfig
    from charrnn.core import model
    cfg = ModelConfig(vocab_size=7, cell="cifg", layers=2, hidden=8)
    params = model.init_params(cfg, np.random.default_rng(3), dtype=np.float64)
    tokens = np.random.default_rng(4).integers(0, 7, 3 * 40 + 5)
    got, n = likelihood.stream_nll(params, cfg, tokens, batch=3, seq_len=10, context=6)
    L = (len(tokens) - 1) // 3
    pieces = [tokens[b * L:b * L + L + 1] for b in range(3)] + [tokens[3 * L:]]  # the 3 streams, the rest
    want = sum(likelihood.token_surprisals(params, cfg, [np.concatenate([[6], p])])[0][1:].sum() for p in pieces)
    assert n == len(tokens) - 1 and got == pytest.approx(want, rel=1e-12)
    plain, _ = likelihood.stream_nll(params, cfg, tokens, batch=3, seq_len=10)
    assert plain != pytest.approx(got, rel=1e-9)  # the context changes what the first tokens are predicted from
