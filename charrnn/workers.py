"""Data-parallel training in worker processes that share the parameters' memory (Linux).

model.loss_and_grads splits the batch's streams between threads. A thread's step is
thousands of small numpy calls (a (16,1024) gate block, a 16-row recurrent product), and
two threads making them contend inside one interpreter: side by side in one benchmark run,
two processes trained 1.03–1.08× faster than two threads on lstm 2×256 b32 and 1.2–1.4×
on gru 2×256, whose gate math is the largest share of a step.

The calling process computes the first slice itself and forked processes the others. The
parameters live in one anonymous shared mapping made before the fork, so the optimizer's
in-place update is what every worker reads next; each forked worker writes its gradient
into a shared mapping of its own. Only the window's slices, the carried state
and the loss travel through pipes. The arithmetic is the threads' arithmetic on the same
slices, merged by the same code (model.merge): the results are identical, bit for bit.

A worker ignores SIGINT (the trainer decides what a Ctrl-C means) and is killed by the
kernel when the trainer dies (PR_SET_PDEATHSIG), so no worker outlives its trainer.
"""
import ctypes
import mmap
import multiprocessing
import os
import signal
import sys

import numpy as np

from .core import cells, model

_ALIGN = 64


def available():
    """Forked workers need Linux (fork is unsafe with macOS's system libraries)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


# Processes pay where a worker's per-step arrays are small, so that its thousands of short
# numpy calls would contend with the other threads' inside one interpreter: lstm 2×256 b32
# (16×1024 gate blocks per worker) 1.03–1.08×, gru 2×256 1.2–1.4×, rnn 2×256 1.04–1.09×.
# At lstm 2×512 b64 (32×2048) they gained nothing (0.97–1.07×) and raised peak memory from
# 1.33× to 1.64× the analytic sum, so blocks above this size stay with threads.
MAX_BLOCK = 32768


def worth_it(cfg, batch, n):
    """Whether `train --threads n` should run its workers as processes."""
    rows = -(-batch // max(n, 1))  # streams per worker
    return n > 1 and available() and rows * cells.GATES[cfg.cell] * cfg.hidden <= MAX_BLOCK


def _layout(params):
    offsets, end = {}, 0
    for k, v in params.items():
        offsets[k] = end
        end += -(-v.nbytes // _ALIGN) * _ALIGN
    return offsets, max(end, _ALIGN)


def _views(buf, params, offsets):
    return {k: np.frombuffer(buf, dtype=v.dtype, count=v.size, offset=offsets[k]).reshape(v.shape)
            for k, v in params.items()}


class WorkerError(RuntimeError):
    """A worker process failed or died."""


class Workers:
    """n workers computing model.loss_and_grads's slices: the calling process takes the first
    slice itself while n - 1 forked processes take the rest. Use as a context manager.

    ``params`` is the shared copy of the parameters given: update it in place (the optimizer
    does) and every worker sees the update.
    """

    def __init__(self, params, cfg, n):
        self.cfg, self.n = cfg, n
        offsets, size = _layout(params)
        self._maps = [mmap.mmap(-1, size) for _ in range(n)]  # anonymous, MAP_SHARED
        self.params = _views(self._maps[0], params, offsets)
        for k, v in params.items():
            self.params[k][...] = v
        self._grads = [_views(m, params, offsets) for m in self._maps[1:]]
        ctx = multiprocessing.get_context("fork")
        self._conns, self._procs = [], []
        parent = os.getpid()
        for i in range(1, n):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(theirs, self._conns + [mine], parent, self.params,
                                                 self._grads[i - 1], cfg), daemon=True, name=f"charrnn-worker-{i}")
            p.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(p)

    def loss_and_grads(self, x, y, state, rng=None):
        """As model.loss_and_grads(self.params, cfg, x, y, state, rng, workers=n)."""
        cfg = self.cfg
        T, B = x.shape
        masks = model.make_masks(cfg, T, B, rng, self.params["out.V"].dtype) if rng is not None else None
        n = min(self.n, B)
        jobs, bounds = model.split_jobs(cfg, x, y, state, masks, n)
        for conn, (_, *args) in zip(self._conns, jobs[1:]):
            conn.send(args)
        try:
            results = [model.window_loss_and_grads(self.params, *jobs[0])]  # this process's own slice
        except BaseException:
            self._drain(n)  # the others' replies must not be read as the next window's
            raise
        for i in range(1, n):
            try:
                reply = self._conns[i - 1].recv()
            except (EOFError, OSError):
                code = self._procs[i - 1].exitcode
                raise WorkerError(f"worker process {i} died (exit code {code})") from None
            if reply[0] != "ok":
                raise WorkerError(f"worker process {i} failed: {reply[1]}")
            results.append((reply[1], self._grads[i - 1], reply[2]))
        return model.merge(results, bounds, cfg)

    def _drain(self, n):
        for conn in self._conns[:n - 1]:
            try:
                conn.recv()
            except (EOFError, OSError):
                pass

    def close(self):
        for conn in self._conns:
            try:
                conn.send(None)
                conn.close()
            except OSError:
                pass
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve(conn, parent_ends, parent, params, grads, cfg):
    """A worker's life: it leaves by os._exit, so buffers it inherited from the trainer (stderr,
    the --log file) are never flushed a second time, and no lock a trainer thread held at the
    fork can stall its exit."""
    try:
        _work(conn, parent_ends, parent, params, grads, cfg)
    finally:
        os._exit(0)


def _work(conn, parent_ends, parent, params, grads, cfg):
    """A slice in, its gradient into shared memory, (loss, state) out, until told to stop."""
    for c in parent_ends:  # the trainer's ends, inherited by the fork: a dead trainer must mean EOF here
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the trainer died before the line above
        return
    with np.errstate(all="ignore"):  # as the trainer: non-finite values are checked there
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            try:
                loss, g, state = model.window_loss_and_grads(params, cfg, *job)
                for k, v in g.items():
                    grads[k][...] = v
                conn.send(("ok", loss, state))
            except Exception as e:  # reported by the trainer, which owns the terminal
                conn.send(("error", f"{type(e).__name__}: {e}"))
