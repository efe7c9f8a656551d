"""`mpirun -n 2 charrnn train`: one model on two ranks (training/distributed.py, replicas.py).

Run for real under the mpich wheel's mpirun (the `mpi` extra, which `test` pulls in); skipped
where mpirun or mpi4py is absent."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="no mpirun (pip install 'charrnn[mpi]')")

CHARRNN = [sys.executable, "-m", "charrnn"]
SMALL = ["--hidden", "32", "--batch", "8", "--seq-len", "16", "--seed", "3", "--dropout", "0.1"]
WORDS = "the quick brown fox jumps over a lazy dog and then some more words follow here".split()


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "HYDI_", "MPI_"))}
    e["CHARRNN_MPI_TIMEOUT"] = "60"  # a test that hangs fails instead of waiting forever
    return e


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "c.txt"
    path.write_text(" ".join(rng.choice(WORDS, 20000)), encoding="utf-8")
    return path


def mpirun(args, cwd, n=2, timeout=120, **kw):
    return subprocess.run([MPIRUN, "-n", str(n), *CHARRNN, *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=timeout, **kw)


def single(args, cwd, timeout=120):
    return subprocess.run([*CHARRNN, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def tensors(path):
    return safetensors_numpy.load_file(str(path))


def manifest(path):
    from safetensors import safe_open
    with safe_open(str(path), "np") as f:
        return json.loads(f.metadata()["manifest"])


def assert_same_run(a, b, differ=("saved_at", "elapsed")):
    ta, tb = tensors(a), tensors(b)
    assert sorted(ta) == sorted(tb)
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and np.array_equal(ta[k], tb[k]), k  # bit for bit
    ma, mb = manifest(a), manifest(b)
    for k in set(ma) | set(mb):
        if k not in differ and k != "train":
            assert ma.get(k) == mb.get(k), k
    return ma, mb


@pytest.mark.exact
def test_two_ranks_train_the_model_two_workers_train_bit_for_bit(corpus):
    d = corpus.parent
    r = mpirun(["train", corpus.name, "--steps", "30", "--name", "mpi", "--threads", "1", *SMALL], d)
    assert r.returncode == 0, r.stderr
    first, second = [line for line in r.stderr.splitlines() if not line.startswith("recipe: ")][:2]
    pids = [x.split(")")[0] for x in first.split("pid ")[1:]]
    assert first.startswith(f"MPI ranks: 0 on {os.uname().nodename} (pid {pids[0]}), "
                            f"1 on {os.uname().nodename} (pid {pids[1]}); ")
    assert first.endswith("; gradients gathered and summed in shard order (exact)")
    assert "on 2 MPI ranks" in second
    assert r.stdout == ""
    s = single(["train", corpus.name, "--steps", "30", "--name", "one", "--threads", "2", *SMALL], d)
    assert s.returncode == 0, s.stderr
    ma, mb = assert_same_run(d / "checkpoints/mpi/latest.ckpt", d / "checkpoints/one/latest.ckpt")
    assert (ma["train"]["ranks"], ma["train"]["threads"]) == (2, 1)
    assert (mb["train"]["ranks"], mb["train"]["threads"]) == (1, 2)
    # and one worker alone: the shards are summed in one order however many share them
    s = single(["train", corpus.name, "--steps", "30", "--name", "alone", "--threads", "1", *SMALL], d)
    assert s.returncode == 0, s.stderr
    assert_same_run(d / "checkpoints/mpi/latest.ckpt", d / "checkpoints/alone/latest.ckpt")
    # the same K and seed again: the same checkpoint
    again = mpirun(["train", corpus.name, "--steps", "30", "--name", "again", "--threads", "1", *SMALL], d)
    assert again.returncode == 0, again.stderr
    assert_same_run(d / "checkpoints/mpi/latest.ckpt", d / "checkpoints/again/latest.ckpt")


def test_the_allreduce_mode_matches_to_float32_rounding(corpus):
    d = corpus.parent
    args = ["train", corpus.name, "--steps", "5", "--threads", "1", *SMALL]
    r = subprocess.run([MPIRUN, "-n", "2", *CHARRNN, *args, "--name", "sum"], cwd=d, capture_output=True, text=True,
                       env={**env(), "CHARRNN_MPI_REDUCE": "sum"}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0].endswith("; gradients summed by MPI_Allreduce (to float32 rounding)")
    assert single([*args, "--threads", "2", "--name", "one"], d).returncode == 0
    a, b = tensors(d / "checkpoints/sum/latest.ckpt"), tensors(d / "checkpoints/one/latest.ckpt")
    for k in a:
        if k.startswith("param/"):
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-5, err_msg=k)
    r = subprocess.run([MPIRUN, "-n", "2", *CHARRNN, *args, "--name", "bad"], cwd=d, capture_output=True, text=True,
                       env={**env(), "CHARRNN_MPI_REDUCE": "fast"}, timeout=120)
    assert (r.returncode, r.stderr) == (2, "charrnn: error: CHARRNN_MPI_REDUCE=fast: say auto, exact or sum\n")


@pytest.mark.exact
def test_resume_under_mpi_continues_exactly_also_on_one_machine(corpus):
    """As tests/test_cli_commands.py's single-machine resume: a schedule that does not depend on the total."""
    d = corpus.parent
    fixed = [*SMALL, "--lr-schedule", "constant", "--warmup", "0", "--eval-every", "20"]
    whole = mpirun(["train", corpus.name, "--steps", "40", "--name", "whole", *fixed], d)
    assert whole.returncode == 0, whole.stderr
    half = mpirun(["train", corpus.name, "--steps", "20", "--name", "half", *fixed], d)
    assert half.returncode == 0, half.stderr
    rest = mpirun(["train", "--resume", "--steps", "40", "--name", "half"], d)
    assert rest.returncode == 0, rest.stderr
    assert "resuming" in rest.stderr and "warning" not in rest.stderr
    # the recipe's choice records the budget the run started with: 40 steps and 20 (the same network)
    assert_same_run(d / "checkpoints/whole/latest.ckpt", d / "checkpoints/half/latest.ckpt",
                    differ=("saved_at", "elapsed", "choice"))
    # the exact sum has one order for any K: a K=2 run resumed on one machine goes on bit for bit
    more = mpirun(["train", "--resume", "--steps", "50", "--name", "whole"], d)
    assert more.returncode == 0, more.stderr
    alone = single(["train", "--resume", "--steps", "50", "--name", "half"], d)
    assert alone.returncode == 0, alone.stderr
    assert "warning" not in alone.stderr
    assert manifest(d / "checkpoints/half/latest.ckpt")["train"]["ranks"] == 1
    assert_same_run(d / "checkpoints/whole/latest.ckpt", d / "checkpoints/half/latest.ckpt",
                    differ=("saved_at", "elapsed", "choice"))
    # a run summed by MPI_Allreduce has its ranks' order: resumed on one machine, it says so
    env_sum = {**env(), "CHARRNN_MPI_REDUCE": "sum"}
    r = subprocess.run([MPIRUN, "-n", "2", *CHARRNN, "train", corpus.name, "--steps", "20", "--name", "sum", *fixed],
                       cwd=d, env=env_sum, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert manifest(d / "checkpoints/sum/latest.ckpt")["train"]["reduction"] == "sum"
    alone = single(["train", "--resume", "--steps", "30", "--name", "sum"], d)
    assert alone.returncode == 0, alone.stderr
    assert ("warning: the run was trained with 2 MPI ranks summing by MPI_Allreduce, now an exact sum: training goes "
            "on, equal to float32 rounding but no longer bit for bit as the run would have gone without the "
            "interruption") in alone.stderr


def test_only_rank_0_needs_the_corpus_and_writes_the_run(corpus, tmp_path):
    elsewhere = tmp_path / "rank1"
    elsewhere.mkdir()
    args = ["train", str(corpus), "--steps", "10", "--name", "r", "--log", "log.jsonl", *SMALL]
    r = subprocess.run([MPIRUN, "-n", "1", "-wdir", str(corpus.parent), *CHARRNN, *args, ":",
                        "-n", "1", "-wdir", str(elsewhere), *CHARRNN, *args],
                       env={**env(), "XDG_CACHE_HOME": str(tmp_path / "cache1")}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert (corpus.parent / "checkpoints/r/latest.ckpt").exists() and (corpus.parent / "log.jsonl").exists()
    assert list(elsewhere.iterdir()) == []  # no run directory, no log, no lock


def test_ranks_started_with_other_options_are_refused_in_one_line(corpus):
    d = corpus.parent
    base = ["train", corpus.name, "--steps", "5", "--name", "x", *SMALL]
    r = subprocess.run([MPIRUN, "-n", "1", *CHARRNN, *base, ":", "-n", "1", *CHARRNN, *base, "--lr", "0.01"],
                       cwd=d, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith("[")]  # mpirun's own: [mpiexec@vm]
    assert lines == ["charrnn: error: rank 1 (%s) was started with other options than rank 0: --lr 0.01 there, "
                     "(not given) here; give every rank the same command line" % os.uname().nodename]
    assert not (d / "checkpoints/x").exists()


def test_an_error_on_rank_0_is_one_line_and_no_hang(corpus):
    started = time.monotonic()
    r = mpirun(["train", "missing.txt", "--steps", "5", *SMALL], corpus.parent)
    assert r.returncode == 1
    assert [x for x in r.stderr.splitlines() if x.strip()] == \
        ["charrnn: error: missing.txt: no such file"]
    assert time.monotonic() - started < 30


def _wait_for_steps(log, n, proc, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if log.exists() and sum('"event": "step"' in x for x in log.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no steps")


def _rank_pid(rank, marker):
    """The pid of the charrnn rank `rank` whose command line holds `marker`."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in c for c in cmd) and f"PMI_RANK={rank}".encode() in environ and b"charrnn" in cmd:
            return int(pid)
    raise AssertionError(f"no rank {rank}")


def test_ctrl_c_to_mpirun_saves_on_rank_0_and_every_rank_exits_130(corpus):
    d = corpus.parent
    log = d / "int.jsonl"
    p = subprocess.Popen([MPIRUN, "-n", "2", *CHARRNN, "train", corpus.name, "--steps", "100000", "--name", "int",
                          "--log", str(log), *SMALL], cwd=d, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for_steps(log, 5, p)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:  # say where it stood, not only that it did not end
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"mpirun did not end after SIGINT; stdout {out!r}, stderr {err[-2000:]!r}") from None
    assert p.returncode == 130, err
    assert [x for x in out.splitlines() if not x.startswith("[mpiexec@")] == []  # mpirun's own lines go to stdout
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines() if '"event": "step"' in x]
    assert manifest(d / "checkpoints/int/latest.ckpt")["step"] == steps[-1]  # every step done is kept
    assert err.count("SIGINT: finishing this step and saving") == 1  # rank 0 says it; rank 1 is quiet


def test_a_killed_rank_ends_the_job_and_the_checkpoint_resumes(corpus):
    d = corpus.parent
    log = d / "kill.jsonl"
    p = subprocess.Popen([MPIRUN, "-n", "2", *CHARRNN, "train", corpus.name, "--steps", "100000", "--eval-every", "5",
                          "--name", "kill", "--log", str(log), *SMALL], cwd=d, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_for_steps(log, 12, p)
    started = time.monotonic()
    victim, survivor = _rank_pid(1, str(log)), _rank_pid(0, str(log))
    os.kill(victim, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    assert time.monotonic() - started < 10
    assert p.returncode != 0
    # mpirun's report names one process of the job by pid and host: the lost one, or rank 0 when
    # its cleanup's SIGKILL reached rank 0 first (seen under load); our start names each rank's pid
    host = os.uname().nodename
    assert any(f"PID {pid} RUNNING AT {host}" in out for pid in (victim, survivor)), out
    assert "EXIT CODE: 9" in out and "(signal 9)" in out, out
    assert f"1 on {host} (pid {victim})" in err.splitlines()[0]
    saved = manifest(d / "checkpoints/kill/latest.ckpt")["step"]
    assert saved >= 10 and saved % 5 == 0
    more = mpirun(["train", "--resume", "--steps", str(saved + 5), "--name", "kill"], d)
    assert more.returncode == 0, more.stderr
    assert f"resuming checkpoints/kill at step {saved}" in more.stderr
    assert manifest(d / "checkpoints/kill/latest.ckpt")["step"] == saved + 5


def test_a_usage_error_is_said_once_and_classify_train_is_refused(corpus):
    started = time.monotonic()
    r = mpirun(["train", corpus.name, "--hidden", "-3"], corpus.parent)
    assert r.returncode == 2
    assert r.stderr == "charrnn: error: Invalid value for '--hidden': -3 is not in the range x>=1.\n"
    (corpus.parent / "l.tsv").write_text("a\thello\nb\tworld\n", encoding="utf-8")
    r = mpirun(["classify", "train", "l.tsv"], corpus.parent)
    assert r.returncode == 2
    assert r.stderr == ("charrnn: error: classify train runs on one machine (its labelled lines are few); "
                        "mpirun is for charrnn train\n")
    assert time.monotonic() - started < 8  # no rank waits for a peer that has left


def test_a_rank_that_stops_answering_ends_the_job_by_the_watchdog(corpus):
    """A lost machine, as one box can make it: rank 1 stopped (SIGSTOP) leaves rank 0 blocked in
    a collective that never returns; rank 0's watchdog ends it with one line, and mpirun the rest."""
    d = corpus.parent
    log = d / "stall.jsonl"
    p = subprocess.Popen([MPIRUN, "-n", "2", *CHARRNN, "train", corpus.name, "--steps", "100000", "--eval-every", "5",
                          "--name", "stall", "--log", str(log), *SMALL], cwd=d,
                         env={**env(), "CHARRNN_MPI_TIMEOUT": "4"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    _wait_for_steps(log, 7, p)
    victim = _rank_pid(1, str(log))
    started = time.monotonic()
    os.kill(victim, signal.SIGSTOP)
    try:
        out, err = p.communicate(timeout=60)
    finally:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert time.monotonic() - started < 20
    assert p.returncode != 0
    ours = [x for x in err.splitlines() if x.startswith("charrnn: error:")]
    assert len(ours) == 1 and ours[0].startswith("charrnn: error: no training step finished on rank 0 (")
    assert ours[0].endswith("another rank stopped answering (a machine or the network was lost); the run's last "
                            "checkpoint is kept, resume it with --resume")
    assert manifest(d / "checkpoints/stall/latest.ckpt")["step"] >= 5


def _netns_possible():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("bc") is None:
        return False
    probe = f"charrnn-probe-{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


@pytest.mark.slow
@pytest.mark.skipif(not _netns_possible(), reason="needs root and Linux network namespaces (ip netns)")
def test_two_hosts_over_tcp_train_what_one_machine_trains(corpus):
    """benchmarks/two_hosts.sh: one rank in each of two network namespaces over a veth pair."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "two_hosts.sh"
    r = subprocess.run(["bash", str(script), str(corpus)], env={**env(), "STEPS": "12", "NO_REDUCE": "1", "PYTHON": sys.executable}, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mpiexec rc=0" in r.stdout and "rank 1's directory after the run: []" in r.stdout
    assert int(r.stdout.split(" bytes crossed the veth")[0].split()[-1]) > 1_000_000  # the gradients went by TCP
    assert r.stdout.rstrip().endswith("identical bit for bit: yes")


def test_an_error_every_replica_meets_is_said_once_by_rank_0(corpus):
    r = mpirun(["train", corpus.name, "--steps", "200", "--lr", "1000", "--clip", "0", "--warmup", "0", "--name", "dv",
                *SMALL], corpus.parent)
    assert r.returncode == 1
    ours = [x for x in r.stderr.splitlines() if x.startswith("charrnn:")]
    assert len(ours) == 1 and ours[0].startswith("charrnn: error: training diverged at step ")  # no "rank 1 (…)"


def test_the_watchdog_allows_a_long_save_on_rank_0_but_not_a_stalled_step(monkeypatch):
    from charrnn.training.distributed import Watchdog
    monkeypatch.delenv("CHARRNN_MPI_TIMEOUT", raising=False)
    dog = Watchdog(world=None, first=300.0)
    assert dog.limit() == 300.0  # before the first step (imports, the first window)
    dog.kick(0.2)
    assert dog.limit() == 62.0  # a step: 60 s plus ten times the longest
    dog.saving = True  # waiting for rank 0's save, which may validate for minutes
    assert dog.limit() == 300.0
    dog.saves = 45.0
    assert dog.limit() == 510.0
    dog.saving = False
    assert dog.limit() == 62.0
    monkeypatch.setenv("CHARRNN_MPI_TIMEOUT", "7")
    assert Watchdog(world=None, first=300.0).limit() == 7.0
