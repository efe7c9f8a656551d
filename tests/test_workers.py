"""Worker processes (charrnn/workers.py): the threads' results bit for bit, shared parameters,
clear failures, and no worker outliving its trainer."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn import workers
from charrnn.core import model, optim
from charrnn.core.model import ModelConfig

pytestmark = pytest.mark.skipif(not workers.available(), reason="worker processes need Linux")

CFG = ModelConfig(vocab_size=13, cell="lstm", layers=2, hidden=24, dropout=0.25)


def window(seed, T=15, B=6):
    r = np.random.default_rng(seed)
    return r.integers(0, CFG.vocab_size, (T, B)), r.integers(0, CFG.vocab_size, (T, B))


def test_workers_compute_what_threads_compute_bit_for_bit_and_see_each_update():
    params = model.init_params(CFG, np.random.default_rng(0))
    opt = optim.make_optimizer("adam")
    with workers.Workers(params, CFG, 3) as pool:
        mine = {k: v.copy() for k, v in pool.params.items()}  # the threads' copy, updated alike
        s_pool = s_mine = model.zero_state(CFG, 6)
        st_pool, st_mine = opt.init_state(pool.params), opt.init_state(mine)
        for step in range(3):
            x, y = window(step)
            a = pool.loss_and_grads(x, y, s_pool, np.random.default_rng([7, step]))
            b = model.loss_and_grads(mine, CFG, x, y, s_mine, np.random.default_rng([7, step]), workers=3)
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
    return model.loss_and_grads(params, CFG, x, y, model.zero_state(CFG, 6))[0]


def test_a_failing_worker_is_reported_with_its_error():
    params = model.init_params(CFG, np.random.default_rng(0))
    x, y = window(0)
    y[3, 5] = CFG.vocab_size  # no such token: the worker holding stream 5 fails
    with workers.Workers(params, CFG, 2) as pool:
        with pytest.raises(workers.WorkerError, match=r"^worker process 1 failed: IndexError: "):
            pool.loss_and_grads(x, y, model.zero_state(CFG, 6))
        y[3, 5], y[2, 0] = 0, CFG.vocab_size  # now the trainer's own slice fails, as it would with threads
        with pytest.raises(IndexError):
            pool.loss_and_grads(x, y, model.zero_state(CFG, 6))
        y[2, 0] = 0  # and the pool still answers for the next window with its own results
        x2, y2 = window(1)
        a = pool.loss_and_grads(x2, y2, model.zero_state(CFG, 6))
        b = model.loss_and_grads(pool.params, CFG, x2, y2, model.zero_state(CFG, 6), workers=2)
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


def test_no_worker_outlives_a_killed_trainer(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "train", str(corpus), "--threads", "3", "--steps",
                          "100000", "--hidden", "32", "--batch", "8", "--checkpoint-dir", str(tmp_path / "ck")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        kids = set()
        while len(kids) < 2 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
            kids = _children(p.pid)  # --threads 3: the trainer computes one slice, two forked workers the rest
        assert len(kids) == 2, p.stderr.read().decode() if p.poll() is not None else "no workers started"
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
