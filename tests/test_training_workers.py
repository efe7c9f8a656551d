"""Worker processes (charrnn/training/workers.py): the threads' results bit for bit, shared parameters,
clear failures, and no worker outliving its trainer."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn.training import workers
from charrnn.core import model, optim, shards
from charrnn.config.model import ModelConfig

pytestmark = pytest.mark.skipif(not workers.available(), reason="worker processes need Linux")

CFG = ModelConfig(vocab_size=13, cell="lstm", layers=2, hidden=24, dropout=0.25)


def window(seed, T=15, B=48):  # three shards of 16 streams
    r = np.random.default_rng(seed)
    return r.integers(0, CFG.vocab_size, (T, B)), r.integers(0, CFG.vocab_size, (T, B))


@pytest.mark.exact
def test_workers_compute_what_threads_compute_bit_for_bit_and_see_each_update():
    params = model.init_params(CFG, np.random.default_rng(0))
    opt = optim.make_optimizer("adam")
    with workers.Workers(params, CFG, 3, 48) as pool:
        mine = {k: v.copy() for k, v in pool.params.items()}  # one thread's copy, updated alike
        s_pool = s_mine = model.zero_state(CFG, 48)
        st_pool, st_mine = opt.init_state(pool.params), opt.init_state(mine)
        for step in range(3):
            x, y = window(step)
            a = pool.loss_and_grads(x, y, s_pool, np.random.default_rng([7, step]))
            b = shards.loss_and_grads(mine, CFG, x, y, s_mine, np.random.default_rng([7, step]))
            assert a[0] == b[0]
            for k in b[1]:
                assert np.array_equal(a[1][k], b[1][k]), k
            for sa, sb in zip(a[2], b[2]):
                for u, v in zip(sa, sb):
                    assert np.array_equal(u, v)
            opt.step(pool.params, a[1], st_pool, 1e-2)  # in place, in the shared mapping
            opt.step(mine, b[1], st_mine, 1e-2)
            s_pool, s_mine = a[2], b[2]
        assert a[0] != window_loss_at_start(params)  # the updates did reach the workers


def window_loss_at_start(params):
    x, y = window(2)
    return shards.loss_and_grads(params, CFG, x, y, model.zero_state(CFG, 48))[0]


def test_a_failing_worker_is_reported_with_its_error_and_the_pool_stays_in_step():
    params = model.init_params(CFG, np.random.default_rng(0))
    x, y = window(0)
    y[3, 20] = CFG.vocab_size  # no such token: the worker holding streams 16-31 fails, the one after it does not
    with workers.Workers(params, CFG, 3, 48) as pool:
        with pytest.raises(workers.WorkerError, match=r"^worker process 1 failed: IndexError: "):
            pool.loss_and_grads(x, y, model.zero_state(CFG, 48))
        y[3, 20], y[2, 0] = 0, CFG.vocab_size  # now the trainer's own run fails, as it would with threads
        with pytest.raises(IndexError):
            pool.loss_and_grads(x, y, model.zero_state(CFG, 48))
        x2, y2 = window(1)  # and the next window gets its own answers, not a stale reply
        a = pool.loss_and_grads(x2, y2, model.zero_state(CFG, 48))
        b = shards.loss_and_grads(pool.params, CFG, x2, y2, model.zero_state(CFG, 48), workers=3)
        assert a[0] == b[0]


def _children(pid):
    kids = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids.update(int(c) for c in f.read().split())
    return kids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def start_trainer(tmp_path, *extra, workers=None):
    """A `charrnn train` in its own process group, once its forked workers run (--threads
    workers + 1: the trainer computes one run of shards itself; at most one thread a core, as
    train caps it; a shard of 16 streams each) and it has logged a few steps."""
    from charrnn.training.machine import cores
    workers = workers or min(2, cores() - 1)
    if workers < 1:
        pytest.skip("one core: train runs no worker processes")
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    log = tmp_path / "log.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "train", str(corpus), "--threads", str(workers + 1),
                          "--steps", "100000", "--hidden", "32", "--batch", str(16 * (workers + 1)), "--checkpoint-dir",
                          str(tmp_path / "ck"), "--log", str(log), *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, start_new_session=True)
    deadline = time.monotonic() + 60
    kids = set()
    while time.monotonic() < deadline and p.poll() is None:
        kids = _children(p.pid)
        if len(kids) == workers and log.exists() and log.read_text().count('"event": "step"') >= 5:
            return p, kids
        time.sleep(0.05)
    p.kill()
    raise AssertionError(p.stderr.read().decode() or "no workers started")


def test_no_worker_outlives_a_killed_trainer(tmp_path):
    p, kids = start_trainer(tmp_path)
    try:
        p.send_signal(signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + 10
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(k) for k in kids)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sigterm_to_the_whole_group_finishes_the_step_saves_and_exits_143(tmp_path):
    """`timeout`, systemd and a terminal's Ctrl-C signal the whole group: the workers must leave
    the decision to the trainer."""
    p, kids = start_trainer(tmp_path)
    os.killpg(p.pid, signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err.decode()
    assert b"Traceback" not in err
    assert list((tmp_path / "ck").glob("*/latest.ckpt"))


def test_a_worker_killed_mid_run_is_one_line_and_the_steps_done_are_saved(tmp_path):
    from charrnn.checkpoint import schema
    p, kids = start_trainer(tmp_path, "--eval-every", "100000")
    os.kill(min(kids), signal.SIGKILL)
    _, err = p.communicate(timeout=60)
    lines = err.decode().strip().splitlines()
    assert p.returncode == 1
    assert b"Traceback" not in err
    last = lines[-1]
    assert last.startswith("charrnn: error: worker process ") and " died (killed by SIGKILL); training stopped " \
        "at step " in last and last.endswith(", which is saved"), last
    step = int(last.split("at step ")[1].split(",")[0])
    (latest,) = (tmp_path / "ck").glob("*/latest.ckpt")
    assert schema.load(latest).step == step >= 5
