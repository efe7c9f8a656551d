"""Training left alone overnight on a laptop: it may be killed, run out of disk, be interrupted,
meet a second trainer, or diverge. Nothing it trained may be lost.

Every fault here is real, not simulated in the test process: a training subprocess is SIGKILLed
(at every file-system step of a checkpoint save, and at random moments), gets ENOSPC/EIO from a
syscall of a save, receives SIGINT/SIGTERM, races another trainer for the lock, or blows up.
Faults inside a save are planted by FAULTY, a wrapper that runs `charrnn` with os.fsync,
os.replace, os.link, os.remove and the data writes of the run directory counted, and kills
the process (or raises OSError) at the Nth of them. Nothing in charrnn knows about it.

Recovery is checked against an uninterrupted run of the same recipe: after the fault, every
.ckpt in the run directory loads, `--resume` continues from the newest committed checkpoint,
and the finished run is bitwise identical to the one that never met the fault, with the same
best.ckpt and the same periodic files, and no temp file left.
"""
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import schema
from charrnn.cli import cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL, flock and /proc/self/fd")

TINY = ["--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16", "--threads", "1", "--quiet"]
KILL_RECIPE = ["--steps", "6", "--eval-every", "1", *TINY]  # a save after every step, prunes from the 4th

FAULTY = r'''
"""charrnn with a fault at the Nth file-system event in one run directory (see tests/test_cli_faults.py).

FAULT_PLAN is JSON: {"dir": run dir, "count": file to record the events in (optional),
"at": N (1-based), "action": "kill" | "fail", "errno": "ENOSPC" ...}. Events: every os.fsync,
os.replace, os.link and os.remove on the run directory or a .ckpt in it ("replace-done" and
friends once the call returned) and the second data write into a checkpoint file ("data").
"""
import errno, json, os, signal, sys

plan = json.loads(os.environ["FAULT_PLAN"])
rundir = os.path.realpath(plan["dir"])
real = {name: getattr(os, name) for name in ("fsync", "replace", "link", "remove")}
events, saves = [], [0]

from charrnn.store import atomic
from charrnn import cli
from charrnn.store import rundir as run_dirs


def role(path):
    """best / latest / periodic / dir for a checkpoint, its temp file, or the run directory."""
    base = os.path.basename(path)
    if base.startswith(".tmp-"):
        base = base[len(".tmp-"):].rsplit("-", 1)[0]
    return "periodic" if base.startswith("step-") else base.replace(".ckpt", "")


def ours(path):
    try:
        path = os.path.realpath(os.fspath(path))
    except TypeError:
        return None
    if path == rundir:
        return "dir"
    if os.path.dirname(path) == rundir and ".ckpt" in os.path.basename(path):
        return role(path)
    return None


def event(label):
    events.append([saves[0], label])
    if plan.get("count"):
        with open(plan["count"], "w") as f:
            json.dump(events, f)
    if len(events) != plan.get("at"):
        return
    if plan["action"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = getattr(errno, plan["errno"])
    raise OSError(code, os.strerror(code))


def hook(name):
    def wrapped(*args, **kw):
        if name == "fsync":
            target = os.readlink(f"/proc/self/fd/{args[0]}")
        else:
            target = args[1] if name in ("replace", "link") else args[0]
        who = ours(target)
        if who is None or (name == "remove" and str(target).endswith(".part")):
            return real[name](*args, **kw)
        event(f"{name}:{who}")
        out = real[name](*args, **kw)
        if name != "fsync":
            event(f"{name}-done:{who}")
        return out
    return wrapped


for name in real:
    setattr(os, name, hook(name))
real_write = atomic.write


def write(path, fill, tmp=None):
    who = ours(path)
    if who is None:
        return real_write(path, fill, tmp)

    class Counting:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, data):
            self.n += 1
            if self.n == 2:  # the header is written, the arrays are not
                event(f"data:{who}")
            return self.f.write(data)

        def __getattr__(self, attr):
            return getattr(self.f, attr)

    return real_write(path, lambda f: fill(Counting(f)), tmp)


atomic.write = write
real_rundir_write = run_dirs.RunDir.write


def rundir_write(self, *args, **kw):
    saves[0] += 1
    return real_rundir_write(self, *args, **kw)


run_dirs.RunDir.write = rundir_write
cli.main(sys.argv[1:])
'''


# --------------------------------------------------------------------------- the lab


class Lab:
    """A corpus, a warm token cache and a checkpoint dir shared by the tests of this module."""

    def __init__(self, root: Path):
        self.root = root
        self.ckpts = root / "checkpoints"
        self.corpus = root / "corpus.txt"
        self.faulty = root / "faulty.py"
        self.faulty.write_text(FAULTY, encoding="utf-8")
        r = np.random.default_rng(0)
        words = ["red", "fox", "sees", "a", "blue", "cat", "under", "the", "moon", "and", "runs"]
        lines = [" ".join(words[i] for i in r.integers(0, len(words), 6)) + "." for _ in range(400)]
        self.corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.env = dict(os.environ, CHARRNN_CACHE_DIR=str(root / "cache"), PYTHONUNBUFFERED="1")
        self.env.pop("CHARRNN_CHECKPOINT_DIR", None)

    def dir(self, name):
        return self.ckpts / name

    def argv(self, name, args, plan=None):
        head = [sys.executable, str(self.faulty)] if plan is not None else [sys.executable, "-m", "charrnn"]
        return [*head, "train", str(self.corpus), "--name", name, "--checkpoint-dir", str(self.ckpts), *args]

    def spawn(self, name, args, plan=None, **kw):
        env = dict(self.env, FAULT_PLAN=json.dumps({"dir": str(self.dir(name)), **plan})) if plan else self.env
        return subprocess.Popen(self.argv(name, args, plan), cwd=self.root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kw)

    def run(self, name, args, plan=None, timeout=120):
        p = self.spawn(name, args, plan)
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out.decode(), err.decode()

    def train(self, name, args):
        """`charrnn train` in this process (no interpreter start-up): resumes and references."""
        argv = ["train", str(self.corpus), "--name", name, "--checkpoint-dir", str(self.ckpts), *args]
        r = CliRunner().invoke(cli, argv, env={"CHARRNN_CACHE_DIR": str(self.root / "cache")},
                               catch_exceptions=False)
        return r.exit_code, r.output

    def copy(self, src, dst):
        shutil.copytree(self.dir(src), self.dir(dst))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("faults"))
    assert lab.train("warm-cache", ["--steps", "1", *TINY])[0] == 0
    return lab


def finals(d):
    """Checkpoints under their final names."""
    return sorted(n for n in os.listdir(d) if n.endswith(".ckpt") and not n.startswith(".tmp-"))


def temps(d):
    return sorted(n for n in os.listdir(d) if n.startswith(".tmp-"))


def periodic(d):
    return [n for n in finals(d) if n.startswith("step-")]


def load_all(d):
    """Every checkpoint under a final name loads (a partial file would not: size, checksum)."""
    return {n: schema.load(str(Path(d) / n)) for n in finals(d)}


def resume_source(d):
    """What `--resume` continues from: latest.ckpt, whose replacement commits a save; without it
    (a kill inside the very first save) what that save completed: best.ckpt, else a periodic file."""
    names = finals(d)
    for n in ("latest.ckpt", "best.ckpt"):
        if n in names:
            return n
    return periodic(d)[-1] if periodic(d) else None


def same_training_state(a, b):
    """Bitwise: parameters, optimizer state, carried hidden state, step and RNG."""
    assert a.step == b.step and a.rng == b.rng
    for x, y in ((a.params, b.params), (a.opt_state, b.opt_state)):
        assert x.keys() == y.keys()
        for k in x:
            assert np.array_equal(x[k], y[k]), k
    assert [list(map(np.ndarray.tobytes, s)) for s in a.state or []] == \
        [list(map(np.ndarray.tobytes, s)) for s in b.state or []]


def steps_in_log(path):
    with open(path, encoding="utf-8") as f:
        return [r["step"] for r in map(json.loads, f) if r["event"] == "step"]


def assert_recovers(lab, name, recipe, ref, total, eval_every, why):
    """The post-fault protocol: inspect the directory as the fault left it, resume, compare."""
    d = lab.dir(name)
    loaded = load_all(d)  # no partial or damaged file under a final name
    source = resume_source(d)
    log = lab.root / f"{name}.log"
    if source is None:  # killed before any save completed: a plain rerun starts it, no --force needed
        start = 0
        code, out = lab.train(name, [*recipe, "--log", str(log)])
    else:
        start = loaded[source].step
        newest = max(b.step for b in loaded.values())
        assert start >= newest - eval_every, f"{why}: resume would go back from {newest} to {start}"
        code, out = lab.train(name, [*recipe, "--resume", "--log", str(log)])
    assert code == 0, f"{why}: {out}"
    assert (steps_in_log(log) if log.exists() else []) == list(range(start + 1, total + 1)), why
    assert temps(d) == [], f"{why}: stale temp files survive a resumed run"
    after = load_all(d)
    want = load_all(ref)
    same_training_state(after["latest.ckpt"], want["latest.ckpt"])
    assert after["best.ckpt"].step == want["best.ckpt"].step, f"{why}: best.ckpt is not the best checkpoint"
    same_training_state(after["best.ckpt"], want["best.ckpt"])
    ours, theirs = periodic(d), periodic(ref)
    assert set(theirs) <= set(ours) and len(ours) <= len(theirs) + 1, f"{why}: {ours} vs {theirs}"
    for n in set(ours) - set(theirs):  # a kill between the last save and its pruning
        assert n < theirs[0], f"{why}: {n}"


# --------------------------------------------------------------------------- 1. SIGKILL


@pytest.fixture(scope="module")
def kill_reference(lab):
    """The uninterrupted run, under FAULTY with no fault: its files and its list of events."""
    events = lab.root / "kill-events.json"
    code, _, err = lab.run("kill-ref", KILL_RECIPE, plan={"count": str(events)})
    assert code == 0, err
    return lab.dir("kill-ref"), json.loads(events.read_text())


@pytest.mark.slow
def test_sigkill_at_every_step_of_a_checkpoint_save(lab, kill_reference):
    """SIGKILL before and after every fsync, rename, link and unlink, and halfway through the data,
    of the first save (nothing to fall back on) and of the last (best, latest and pruning)."""
    ref, events = kill_reference
    last = events[-1][0]
    targets = [i for i, (save, _) in enumerate(events, 1) if save in (1, last)]
    kinds = {label.split(":")[0] for save, label in events if save in (1, last)}
    assert kinds == {"data", "fsync", "replace", "replace-done", "link", "link-done", "remove", "remove-done"}
    trials = left_partial = 0
    for n, at in enumerate(targets):
        name, why = f"kill-{n:02d}", f"SIGKILL at event {at} {events[at - 1]}"
        code, _, err = lab.run(name, KILL_RECIPE, plan={"at": at, "action": "kill"})
        assert code == -signal.SIGKILL, f"{why}: {code} {err}"
        trials += 1
        left_partial += bool(temps(lab.dir(name)))
        assert_recovers(lab, name, KILL_RECIPE, ref, total=6, eval_every=1, why=why)
    assert trials == len(targets) >= 30
    assert left_partial >= 4  # kills inside a write did leave temp files behind, and they went


@pytest.mark.slow
def test_sigkill_at_random_moments(lab):
    """SIGKILL from outside at seeded random moments spread over a run that saves after every step.

    Aimed by progress, not by the clock alone: wait for the save of a random step k (none for k=0),
    then kill within one step's time, so a slow or busy machine moves the kills but never past the end."""
    total = 20
    recipe = ["--steps", str(total), "--eval-every", "1", *TINY]
    p = lab.spawn("random-ref", recipe)
    lock = lab.dir("random-ref") / ".lock"
    while not lock.exists() and p.poll() is None:
        time.sleep(0.002)
    t1 = time.monotonic()
    assert p.wait(timeout=120) == 0
    step_time = (time.monotonic() - t1) / total  # from taking the lock to the end of the run

    def saved(d):
        return max((int(n.split("-")[1]) for n in periodic(d)), default=0)

    rng = random.Random(20261121)
    trials = attempts = 0
    starts, inside_a_write = set(), 0
    while trials < 10:
        attempts += 1
        assert attempts <= 15, "the kills keep missing the run"
        name, k = f"random-{attempts:02d}", rng.randrange(0, total - 4)
        p = lab.spawn(name, recipe)
        while not (lab.dir(name) / ".lock").exists() and p.poll() is None:
            time.sleep(0.002)
        while k and saved(lab.dir(name)) < k and p.poll() is None:
            time.sleep(0.001)
        time.sleep(rng.uniform(0.0, step_time))
        p.kill()
        p.communicate(timeout=60)
        if p.returncode != -signal.SIGKILL:
            continue  # the run finished first: not a trial
        trials += 1
        inside_a_write += bool(temps(lab.dir(name)))
        source = resume_source(lab.dir(name))
        starts.add(schema.load(str(lab.dir(name) / source)).step if source else 0)
        assert_recovers(lab, name, recipe, lab.dir("random-ref"), total=total, eval_every=1, why=name)
    assert trials == 10
    assert len(starts) >= 3, starts  # the kills were spread over the run
    print(f"random SIGKILLs: {trials} trials, resumed from steps {sorted(starts)}, {inside_a_write} inside a write")


# --------------------------------------------------------------------------- 2. write errors

DISK_RECIPE = ["--steps", "8", "--lr-schedule", "constant", *TINY]  # a schedule the resume's new total leaves be


@pytest.fixture(scope="module")
def disk_runs(lab):
    """A run saved at steps 2 and 4; the events of resuming it to 8; the result of doing so."""
    assert lab.train("disk-base", ["--steps", "4", "--eval-every", "2", "--lr-schedule", "constant", *TINY])[0] == 0
    lab.copy("disk-base", "disk-ref")
    events = lab.root / "disk-events.json"
    code, _, err = lab.run("disk-ref", [*DISK_RECIPE, "--resume"], plan={"count": str(events)})
    assert code == 0, err
    events = json.loads(events.read_text())
    assert [save for save, _ in events][-1] == 2  # saves at 6 and 8
    return lab.dir("disk-ref"), events


@pytest.mark.parametrize("site,err,survives", [
    ("data:", "ENOSPC", False),               # halfway through the arrays of the first file written
    ("fsync:", "ENOSPC", False),              # the first file's fsync (delayed allocation fails there)
    ("fsync:", "EIO", False),
    ("replace:best", "ENOSPC", False),
    ("replace:periodic", "EIO", False),
    ("replace:latest", "ENOSPC", False),
    ("link:latest", "EPERM", True),           # no hard links here: latest.ckpt is copied instead
    ("fsync:dir", "EIO", True),               # a directory that cannot be fsynced: best effort
], ids=lambda v: str(v) if not isinstance(v, bool) else ("recovers" if v else "fails"))
def test_write_error_during_a_save_keeps_the_previous_checkpoint(lab, disk_runs, site, err, survives):
    ref, events = disk_runs
    at = next(i for i, (save, label) in enumerate(events, 1) if save == 1 and label.startswith(site))
    name = f"disk-{site.replace(':', '-')}{err}"
    lab.copy("disk-base", name)
    d = lab.dir(name)
    before = {n: (d / n).read_bytes() for n in finals(d)}
    assert schema.load(str(d / "latest.ckpt")).step == 4
    code, out, stderr = lab.run(name, [*DISK_RECIPE, "--resume"], plan={"at": at, "action": "fail", "errno": err})
    if survives:
        assert code == 0 and stderr == "", stderr
        assert schema.load(str(d / "latest.ckpt")).step == 8
    else:
        assert code == 1 and out == ""
        assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
        cause = os.strerror(getattr(errno, err))
        target = site.split(":")[1] or events[at - 1][1].split(":")[1]
        file = r"step-0000006-val-\d+\.\d{4}\.ckpt" if target == "periodic" else re.escape(f"{target}.ckpt")
        assert re.fullmatch(f"charrnn: error: cannot write checkpoint {re.escape(str(d))}/{file}: {cause}\n",
                            stderr), stderr
        assert (d / "latest.ckpt").read_bytes() == before["latest.ckpt"]  # the previous checkpoint, intact
        best_replaced = any(label == "replace-done:best" for _, label in events[:at - 1])
        if not best_replaced:
            assert (d / "best.ckpt").read_bytes() == before["best.ckpt"]
        assert set(before) <= set(finals(d))
        for n in before:
            if n not in ("best.ckpt", "latest.ckpt"):
                assert (d / n).read_bytes() == before[n], n
    assert temps(d) == []  # a failed save cleans up after itself
    load_all(d)
    # the disk has room again: resuming loses nothing
    assert_recovers(lab, name, DISK_RECIPE, ref, total=8, eval_every=2, why=f"{site} {err}")


# --------------------------------------------------------------------------- 3. SIGINT, SIGTERM

@pytest.mark.exact
@pytest.mark.slow
@pytest.mark.parametrize("cell,sig,code,seed", [("lstm", signal.SIGINT, 130, 1), ("gru", signal.SIGTERM, 143, 2)],
                         ids=["lstm-SIGINT", "gru-SIGTERM"])
def test_signal_saves_at_a_step_boundary_and_resume_is_bitwise(lab, cell, sig, code, seed):
    """Dropout (the RNG state), two threads (the data-parallel split) and both gated cells."""
    recipe = ["--steps", "500", "--eval-every", "50", "--cell", cell, "--dropout", "0.2", "--hidden", "16",
              "--layers", "1", "--batch", "4", "--seq-len", "16", "--threads", "2", "--quiet"]
    name = f"sig-{cell}"
    log = lab.root / f"{name}.log"
    p = lab.spawn(name, [*recipe, "--log", str(log)])
    latest = lab.dir(name) / "latest.ckpt"
    while not latest.exists() and p.poll() is None:
        time.sleep(0.002)
    time.sleep(random.Random(seed).uniform(0.0, 0.4))
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert (out, err) == (b"", b"")  # --quiet: errors only, not even the signal's line
    cut = schema.load(str(latest))
    steps = steps_in_log(log)
    assert 50 <= cut.step < 500 and steps == list(range(1, cut.step + 1))  # saved right after the last step
    assert cut.train.threads == 2 and cut.cfg.dropout == 0.2 and cut.cfg.cell == cell
    # saved at once, not validated; or by the periodic save, when the signal came at one
    assert any(n == f"step-{cut.step:07d}.ckpt" or n.startswith(f"step-{cut.step:07d}-val-") for n in periodic(lab.dir(name)))
    code_, out_ = lab.train(name, [*recipe, "--resume"])
    assert code_ == 0, out_
    assert lab.train(f"{name}-whole", recipe)[0] == 0
    same_training_state(schema.load(str(latest)), schema.load(str(lab.dir(f"{name}-whole") / "latest.ckpt")))
    assert temps(lab.dir(name)) == []


# --------------------------------------------------------------------------- 4. two trainers

@pytest.mark.slow
def test_a_second_trainer_is_kept_out_and_the_first_finishes(lab):
    recipe = ["--steps", "3000", "--eval-every", "250", *TINY]
    first = lab.spawn("shared", recipe)
    d = lab.dir("shared")
    while not (d / "latest.ckpt").exists() and first.poll() is None:
        time.sleep(0.002)
    assert first.poll() is None, "the first trainer ended before it could be contended"
    contenders = [lab.spawn("shared", [*recipe, flag]) for flag in ("--resume", "--force")]
    reader = subprocess.Popen([sys.executable, "-m", "charrnn", "info", str(d), "--json"], cwd=lab.root,
                              env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = [(c.wait(timeout=60), c.stdout.read().decode(), c.stderr.read().decode()) for c in contenders]
    assert first.poll() is None, "the first trainer ended before the contenders did: make its run longer"
    for code, out, err in results:
        assert code == 1 and out == "", err
        assert err == (f"charrnn: error: {d}: another charrnn train is already writing this run "
                       f"(lock held by pid {first.pid})\n")
    info_out, info_err = reader.communicate(timeout=60)
    assert reader.returncode == 0 and json.loads(info_out)["step"] > 0, info_err  # reading is fine meanwhile
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and out == b"" and err == b"", err
    loaded = load_all(d)
    assert loaded["latest.ckpt"].step == 3000
    assert [n[5:12] for n in periodic(d)] == ["0002500", "0002750", "0003000"]
    assert temps(d) == [] and (d / ".lock").read_text() == ""
    same_training_state(loaded["latest.ckpt"], loaded[periodic(d)[-1]])


# --------------------------------------------------------------------------- 5. divergence

LOSS_TOO_HIGH = r"the (validation )?loss is \S+ nats( \(a fresh model's is \d+\.\d\d\))?"


@pytest.mark.parametrize("case,args,reason", [
    ("huge-lr", ["--lr", "1e38", "--clip", "0", "--eval-every", "1", "--quiet"], LOSS_TOO_HIGH),
    ("overflow", ["--lr", "1e300", "--clip", "0", "--eval-every", "1", "--quiet"], r"parameter \S+ is not finite"),
    ("clipped", ["--lr", "100", "--clip", "1", "--warmup", "0", "--eval-every", "1000"], LOSS_TOO_HIGH),
], ids=["huge-lr", "overflow", "clipped"])
def test_divergence_stops_with_one_line_and_keeps_the_good_checkpoints(lab, case, args, reason):
    if "good-sgd" not in os.listdir(lab.ckpts):
        assert lab.train("good-sgd", ["--steps", "4", "--eval-every", "2", "--optimizer", "sgd", *TINY])[0] == 0
    name = f"diverge-{case}"
    lab.copy("good-sgd", name)
    d = lab.dir(name)
    before = {n: (d / n).read_bytes() for n in finals(d)}
    tiny = [a for a in TINY if a != "--quiet"]
    code, out, err = lab.run(name, ["--steps", "300", "--resume", *tiny, *args])
    assert code == 1 and out == "" and "Traceback" not in err, err
    lines = err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("charrnn: error:")]
    assert errors == [len(lines) - 1], err
    m = re.fullmatch(rf"charrnn: error: training diverged at step (\d+): {reason}; the last good checkpoint is "
                     r"kept \(try a lower --lr or a smaller --clip\)", lines[-1])
    assert m, lines[-1]
    if "--quiet" not in args:
        clips = [re.fullmatch(r"clip step (\d+): grad norm (\d+\.\d\d) > 1\.00", line) for line in lines]
        clipped = [int(c.group(1)) for c in clips if c]
        assert clipped and all(float(c.group(2)) > 1 for c in clips if c)
        assert max(clipped) < int(m.group(1)) and all("\x1b" not in line for line in lines)
    assert {n: (d / n).read_bytes() for n in finals(d)} == before  # nothing replaced, nothing added
    assert temps(d) == []
    assert {b.step for b in load_all(d).values()} == {2, 4}
    assert lab.train(name, ["--steps", "8", "--resume", "--quiet"])[0] == 0  # the good one resumes
    assert schema.load(str(d / "latest.ckpt")).step == 8


def test_divergence_without_a_validation_split_keeps_the_good_checkpoints(lab):
    assert lab.train("noval", ["--steps", "4", "--eval-every", "2", "--optimizer", "sgd", "--val-frac", "0",
                               *TINY])[0] == 0
    d = lab.dir("noval")
    before = {n: (d / n).read_bytes() for n in finals(d)}
    code, _, err = lab.run("noval", ["--steps", "300", "--resume", "--lr", "1e38", "--clip", "0", "--eval-every", "1",
                                     *TINY])
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("warning: "))
    assert code == 1 and err.startswith("charrnn: error: training diverged at step "), err
    assert not (d / "best.ckpt").exists()  # without validation nothing is "best"
    assert (d / "latest.ckpt").read_bytes() == before["latest.ckpt"]
