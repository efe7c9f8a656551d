"""The continuous batcher: every open stream of one model advances in one batched step of the
network. A request joins between two steps and leaves when it ends, each with its own state,
sampler and Generator (continuous batching, as LLM servers do).

Shapes: B rows of a step, V vocabulary.

One thread per model (Engine) owns the network. Between two steps it lets new streams in and
the ended ones out; a step feeds every row one token (the next token of its prime, or the one
it drew last), runs core.model.Stepper once for all rows, and each row that has read its prime
draws from its own Generator: with its own core.sampling.Sampler, the one `charrnn sample`
draws with, or, for the rows of a batch that sample by temperature alone, all at once with
Sampler.draw's arithmetic row by row (draw_rows: the same tokens, one call for the batch).

The rows are packed into the smallest bucket of 1, 2, 4, ... rows that holds them (a Stepper
per bucket; a packed batch runs faster than a full one, benchmarks/bench_serve.py). So a
request alone in the engine is computed exactly as `charrnn sample` computes it, a Stepper of
one row, and gives its bytes for the same checkpoint, options and seed. In a batch of several
rows the BLAS sums each row's products in another order than for one row (its kernels differ
by the number of rows), so a row's scores agree with the lone ones to float32 rounding, not
bit for bit, and a draw can differ only when it falls within that rounding of a boundary
between two tokens' cumulative probabilities.
"""
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from charrnn.core import model as core_model
from charrnn.core.sampling import NonFiniteOutput
from charrnn.serve.stream import Failed, Job, Stream

ANNOUNCE_EVERY = 0.01  # seconds: the readers of generating streams are woken at most this often (a
# first token, an end or an error at once); the tokens between come in one chunk, so the cost of a
# chunk (JSON, the socket) and of a wake-up is not paid per token


class Busy(Exception):
    """Every slot is taken."""


class Closed(Exception):
    """The engine takes no more requests: the server is stopping, or the model was reloaded."""


def draw_rows(logits, rngs, temps):
    """Sampler.draw's common case, temperature alone, for m rows at once: (m,) tokens from
    logits (m,V), one Generator and temperature per row. The same float64 operations as
    Sampler.draw, row by row (max, subtract, scale, exp, a running sum along the row, one
    uniform draw scaled by the total, the first bucket above it), so the same token for the
    same logits and Generator; done once for the batch instead of m times."""
    p = logits.astype(np.float64)  # (m,V)
    p -= p.max(axis=1, keepdims=True)
    p *= (1.0 / np.asarray(temps, dtype=np.float64))[:, None]
    np.exp(p, out=p)
    np.cumsum(p, axis=1, out=p)  # (m,V) each row's cdf
    x = np.array([r.random() for r in rngs]) * p[:, -1]  # (m,)
    return np.minimum((p <= x[:, None]).sum(axis=1), p.shape[1] - 1)  # searchsorted(cdf, x, "right"), guarded


def bucket(n: int, slots: int) -> int:
    """The rows of the step that carries n streams: the next power of two, at most ``slots``."""
    return min(slots, 1 << (n - 1).bit_length())


class Engine:
    """One model's continuous batcher: ``submit`` a Job, read the Stream's events; at most
    ``slots`` streams at once (Busy past that). ``block_limit`` is core/products.py's column-block
    limit for the batched products (0: one product; a lone row never uses blocks)."""

    def __init__(self, checkpoint, slots: int = 16, name: str = "model", block_limit: int = 0,
                 log: Callable[[str], Any] | None = None):
        if checkpoint.cfg.bidirectional:
            raise ValueError("a bidirectional model cannot generate text one token at a time")
        self.checkpoint, self.slots, self.name, self.block_limit = checkpoint, slots, name, block_limit
        self.log = log or (lambda line: None)
        self._dtype = checkpoint.params["out.V"].dtype
        self._steppers = {}  # rows -> (Stepper, ids (rows,))
        self._rows = []  # the streams in the batch, in row order
        self._batch = None  # the (Stepper, ids) holding their states in rows 0 .. len(_rows)-1
        self._incoming = []
        self._open = 0  # streams accepted and not yet let go
        self._cv = threading.Condition()
        self._closing = None  # the Failed event every open stream gets once closing
        self._retiring = False
        self._announced = 0.0  # when the readers were last woken (time.monotonic)
        self._thread = threading.Thread(target=self._run, name=f"charrnn-engine-{name}", daemon=True)
        self._stepper(1)  # ready for the first request
        self._thread.start()

    # ------------------------------------------------------------------ the request side
    def submit(self, job: Job, on_ready: Callable[[list], Any], tag: Any = None) -> Stream:
        """A Stream for ``job``; ``on_ready(streams)`` is called from the engine's thread, once
        a step, with the streams that have new events. Busy or Closed when it cannot start."""
        stream = Stream(job, self.checkpoint.vocab, self._dtype, on_ready, tag)
        with self._cv:
            if self._closing is not None or self._retiring:
                raise Closed(self.name)
            if self._open >= self.slots:
                raise Busy(self.name)
            self._open += 1
            self._incoming.append(stream)
            self._cv.notify_all()
        return stream

    def cancel(self, stream: Stream) -> None:
        """Let a stream go (its reader left): its slot is free before the next step."""
        with self._cv:
            stream.cancelled = True
            self._cv.notify_all()

    @property
    def open_streams(self) -> int:
        return self._open

    def wait_open(self, at_most: int = 0, timeout: float | None = None) -> bool:
        """Wait until at most ``at_most`` streams are open; False if ``timeout`` seconds passed first."""
        with self._cv:
            return self._cv.wait_for(lambda: self._open <= at_most, timeout)

    def close(self, message: str = "the server is shutting down", code: str = "server_shutdown") -> None:
        """End every open stream at the next step with this error, take no more, stop the thread."""
        with self._cv:
            self._closing = Failed(message, code)
            self._cv.notify_all()

    def retire(self) -> None:
        """Take no more streams; the thread stops when the open ones have ended (a reload)."""
        with self._cv:
            self._retiring = True
            self._cv.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ the engine's thread
    def _run(self):
        with np.errstate(all="ignore"):  # a non-finite output is reported by its stream
            while self._admit():
                try:
                    touched = self._step()
                except Exception as e:  # a bug must not leave its streams waiting forever
                    self.log(f"{self.name}: internal error in a step: {type(e).__name__}: {e}")
                    for s in self._rows:
                        s.fail("internal error while generating; see the server's log", "internal_error")
                    touched = list(self._rows)
                self._release([s for s in touched if s.finished])  # free before its reader can know it ended
                for s in touched:
                    s.publish()
                self._wake(self._due(touched))

    def _admit(self):
        """Between two steps: let the ended streams go and the new ones in, waiting while there
        is nothing to do. False when the thread should stop."""
        with self._cv:
            while True:
                if self._closing is not None:
                    ending = [s for s in self._rows + self._incoming if not (s.finished or s.cancelled)]
                    for s in ending:
                        s.fail(*self._closing)
                    self._rows, self._incoming, self._open = [], [], 0
                    self._cv.notify_all()
                    for s in ending:
                        s.publish()
                    self._wake(ending)
                    return False
                keep = [s for s in self._rows if not (s.finished or s.cancelled)]
                new = [s for s in self._incoming if not s.cancelled]
                self._release_locked([s for s in self._rows + self._incoming if s.cancelled])
                self._incoming = []
                if keep or new:
                    break
                self._rows = []
                if self._retiring:
                    return False
                self._cv.wait()
        self._layout(keep, new)
        return True

    def _release(self, streams):
        if streams:
            with self._cv:
                self._release_locked(streams)

    def _release_locked(self, streams):
        """Free the slots of streams that ended or were let go (each once)."""
        for s in streams:
            if not s.released:
                s.released = True
                self._open -= 1
                self._cv.notify_all()

    def _layout(self, keep, new):
        """Pack the rows: the kept ones first, in their order, their states carried over; the new
        ones after them from a zero state."""
        if not new and len(keep) == len(self._rows):
            return
        batch = self._stepper(bucket(len(keep) + len(new), self.slots))
        where = {id(s): k for k, s in enumerate(self._rows)}
        old = [where[id(s)] for s in keep]
        for l, layer in enumerate(batch[0].state):
            for i, a in enumerate(layer):
                moved = self._batch[0].state[l][i][old] if old else None  # a copy: a may be its source
                a[len(old):] = 0
                if moved is not None:
                    a[:len(old)] = moved
        self._rows, self._batch = keep + new, batch

    def _stepper(self, rows):
        """The (Stepper, ids (rows,)) of a bucket, made on first use."""
        if rows not in self._steppers:
            c = self.checkpoint
            self._steppers[rows] = (core_model.Stepper(c.params, c.cfg, B=rows, block_limit=self.block_limit if rows > 1 else 0),
                                    np.zeros(rows, dtype=np.int64))
        return self._steppers[rows]

    def _step(self):
        """One step of every row; the streams with new events."""
        rows = self._rows
        batch, ids = self._batch
        for k, s in enumerate(rows):
            ids[k] = s.before_step()
        logits = batch.step(ids)  # (B,V)
        drawn = self._draw_plain(rows, logits) if len(rows) > 1 else {}  # a lone row: Sampler.draw itself
        touched = []
        for k, s in enumerate(rows):
            try:
                if s.after_step(logits[k], drawn.get(k)):
                    touched.append(s)
            except NonFiniteOutput as e:
                s.fail(f"cannot sample: {e}", "model_output_not_finite")
                touched.append(s)
            if s.restart:  # the next choice reads its prime from a zero state
                for layer in batch.state:
                    for a in layer:
                        a[k] = 0
                s.restart = False
        return touched

    @staticmethod
    def _draw_plain(rows, logits):
        """{row: token} for the rows drawing by temperature alone, drawn together (draw_rows);
        none when their scores are not all finite (each row's Sampler then says so)."""
        ks = [k for k, s in enumerate(rows) if s.drawing and s.plain]
        if len(ks) < 2 or not np.isfinite(logits[ks]).all():
            return {}
        toks = draw_rows(logits[ks], [rows[k].rng for k in ks], [rows[k].job.temperature for k in ks])
        return dict(zip(ks, toks.tolist()))

    def _due(self, touched):
        """The streams whose readers are woken now: every one with news, once ANNOUNCE_EVERY
        passed since the last time, or at once when one of them is urgent or has news for the
        first time. One wake-up for all of them: its cost is paid per announcement, not per step."""
        for s in touched:
            s.news = True
        now = time.monotonic()
        pending = [s for s in self._rows if s.news]
        if not pending or (now - self._announced < ANNOUNCE_EVERY
                           and not any(s.urgent or s.announced is None for s in pending)):
            return []
        self._announced = now
        for s in pending:
            s.news = s.urgent = False
            s.announced = now
        return pending

    def _wake(self, streams):
        """Tell each reader once a step; a reader that cannot be told any more has gone."""
        by_reader = {}
        for s in streams:
            by_reader.setdefault(s.on_ready, []).append(s)
        for on_ready, group in by_reader.items():
            try:
                on_ready(group)
            except RuntimeError:  # its event loop is closed
                for s in group:
                    s.cancelled = True
