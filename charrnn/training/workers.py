"""Data-parallel training in worker processes that share the parameters' memory (Linux).

core/shards.loss_and_grads splits the batch's shards between threads. A thread's step is
thousands of small numpy calls (a (16,1024) gate block, a 16-row recurrent product), and
two threads making them contend inside one interpreter; processes do not (benchmarks/
bench_speed.py --compare-threads times both; docs/speed.md has the figures).

The calling process computes the first run of shards itself (core/shards.py) and forked
processes the others. The parameters live in one anonymous shared mapping made before the
fork, so the optimizer's in-place update is what every worker reads next; each forked
worker writes the gradient tree's nodes it hands on into shared mappings of its own. Only
the window (with its dropout masks: a few MB, against a step of a tenth of a second and
more), the carried state and the losses travel through pipes. A shard is the
same computation in a worker as in a thread, summed by the same tree: the results are
identical, bit for bit.

A worker ignores SIGINT, SIGTERM and SIGHUP, which a terminal's Ctrl-C, `timeout` or a closed
terminal sends to the whole process group: the trainer decides what they mean (finish the step, save, exit). It is
killed by the kernel when the thread that forked it ends (PR_SET_PDEATHSIG; the trainer
forks from the thread that runs it), and sees end-of-file on its pipe if the trainer dies,
so no worker outlives its trainer.
"""
import ctypes
import mmap
import multiprocessing
import os
import signal
import sys

import numpy as np

from charrnn.core import cells, model, shards
from charrnn.errors import CharrnnError

_ALIGN = 64


def available():
    """Forked workers need Linux (fork is unsafe with macOS's system libraries)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


# Processes pay where a worker's per-step arrays are small, so that its thousands of short
# numpy calls would contend with the other threads' inside one interpreter; above this many
# floats a gate block (lstm 2×512 b64) they gained nothing and raised peak memory
# (docs/speed.md), so larger blocks stay with threads
MAX_BLOCK = 32768
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # a terminal's to the whole group: the trainer's


def worth_it(cfg, batch, n):
    """Whether `train --threads n` should run its workers as processes."""
    return n > 1 and available() and shards.size(batch) * cells.get(cfg.cell).gates * cfg.hidden <= MAX_BLOCK


def _layout(params):
    offsets, end = {}, 0
    for k, v in params.items():
        offsets[k] = end
        end += -(-v.nbytes // _ALIGN) * _ALIGN
    return offsets, max(end, _ALIGN)


def _views(buf, params, offsets):
    return {k: np.frombuffer(buf, dtype=v.dtype, count=v.size, offset=offsets[k]).reshape(v.shape)
            for k, v in params.items()}


class WorkerError(CharrnnError):
    """A worker process failed or died."""


class Workers:
    """n workers computing core/shards.loss_and_grads's runs of shards for a batch of B streams:
    the calling process takes the first run itself while n - 1 forked processes take the
    rest. Use as a context manager.

    ``params`` is the shared copy of the parameters given: update it in place (the optimizer
    does) and every worker sees the update.
    """

    def __init__(self, params, cfg, n, B, block_limit=0):
        self.cfg, self.B, self.block_limit = cfg, B, block_limit
        self.n_shards = len(shards.bounds(B))
        self.runs = shards.split(0, self.n_shards, n)
        self.n = len(self.runs)
        offsets, size = _layout(params)
        self._maps = [mmap.mmap(-1, size)]  # anonymous, MAP_SHARED: the parameters
        self.params = _views(self._maps[0], params, offsets)
        for k, v in params.items():
            self.params[k][...] = v
        self._nodes = []  # per forked worker: a shared gradient dict for each node it hands on
        for first, last in self.runs[1:]:
            maps = [mmap.mmap(-1, size) for _ in range(shards.node_count(first, last, self.n_shards))]
            self._maps += maps
            self._nodes.append([_views(m, params, offsets) for m in maps])
        ctx = multiprocessing.get_context("fork")
        self._conns, self._procs, self._broken = [], [], None
        parent = os.getpid()
        # blocked across the fork, so no worker runs the trainer's own signal handlers
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for i, run in enumerate(self.runs[1:], start=1):
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=_serve, args=(theirs, self._conns + [mine], parent, self.params,
                                                     self._nodes[i - 1], cfg, run, block_limit), daemon=True,
                                name=f"charrnn-worker-{i}")
                p.start()
                theirs.close()
                self._conns.append(mine)
                self._procs.append(p)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def loss_and_grads(self, x, y, state, rng=None):
        """As shards.loss_and_grads(self.params, cfg, x, y, state, rng, workers=n, block_limit=block_limit).

        A run that fails in a worker raises WorkerError after every worker has answered, so
        the pool stays in step; a worker that died leaves the pool broken for good."""
        if self._broken:
            raise WorkerError(self._broken)
        cfg = self.cfg
        T, B = x.shape
        if B != self.B:
            raise ValueError(f"the pool was made for {self.B} streams, not {B}")
        masks = model.make_masks(cfg, T, B, rng, self.params["out.V"].dtype) if rng is not None else None
        scale = shards.window_scale(T, B)
        sent = 0
        for conn, run in zip(self._conns, self.runs[1:]):
            lo, hi = shards.streams(B, *run)  # only its streams travel
            job = (x[:, lo:hi], y[:, lo:hi], [tuple(a[lo:hi] for a in layer) for layer in state],
                   None if masks is None else [m[:, lo:hi] for m in masks], scale, B)
            try:
                conn.send(job)
            except OSError:
                self._collect(sent)
                raise self._died(sent + 1) from None
            sent += 1
        try:  # its own run
            parts = [shards.shard_range(self.params, cfg, x, y, state, masks, *self.runs[0], scale, block_limit=self.block_limit)]
        except BaseException:
            self._collect(sent)  # their replies must not be read as the next window's
            raise
        replies = self._collect(sent)
        for i, reply in enumerate(replies, start=1):
            if reply is None:
                raise self._died(i)
        for i, reply in enumerate(replies, start=1):
            if reply[0] != "ok":
                raise WorkerError(f"worker process {i} failed: {reply[1]}")
            _, nll, ids, states = reply
            parts.append(shards.Part(nll, [(lv, ix, g) for (lv, ix), g in zip(ids, self._nodes[i - 1])], states))
        return shards.combine(parts, self.n_shards, scale, self.n)

    def _collect(self, count):
        """The first ``count`` workers' replies, None for a worker that died."""
        replies = []
        for conn in self._conns[:count]:
            try:
                replies.append(conn.recv())
            except (EOFError, OSError):
                replies.append(None)
        return replies

    def _died(self, i):
        p = self._procs[i - 1]
        p.join(timeout=1)
        code = p.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        self._broken = f"worker process {i} died ({how})"
        return WorkerError(self._broken)

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


def _serve(conn, parent_ends, parent, params, nodes, cfg, run, block_limit):
    """A worker's life: it leaves by os._exit, so buffers it inherited from the trainer (stderr,
    the --log file) are never flushed a second time, and no lock a trainer thread held at the
    fork can stall its exit."""
    try:
        _work(conn, parent_ends, parent, params, nodes, cfg, run, block_limit)
    finally:
        os._exit(0)


def _work(conn, parent_ends, parent, params, nodes, cfg, run, block_limit):
    """A window in, its run of shards computed: the nodes' gradients into shared memory, the
    losses, the nodes' places in the tree and the states out, until told to stop."""
    for c in parent_ends:  # the trainer's ends, inherited by the fork: a dead trainer must mean EOF here
        c.close()
    for sig in _SIGNALS:  # the trainer decides what a signal means; it dies, so do we (below)
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
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
                x, y, state, masks, scale, B = job
                part = shards.shard_range(params, cfg, x, y, state, masks, *run, scale, block_limit=block_limit, B=B)
                for (_, _, g), shared in zip(part.nodes, nodes):
                    for k, v in g.items():
                        shared[k][...] = v
                conn.send(("ok", part.nll, [node[:2] for node in part.nodes], part.states))
            except Exception as e:  # reported by the trainer, which owns the terminal
                conn.send(("error", f"{type(e).__name__}: {e}"))
