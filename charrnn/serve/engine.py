"""The continuous batcher: every open stream of one model advances in one batched step of the
network. A request joins between two steps and leaves when it ends, each with its own state,
sampler and Generator (continuous batching, as LLM servers do).

Shapes: B rows of a step, V vocabulary.

One thread per model (Engine) owns the network. Between two steps it lets new streams in and
the ended ones out; a step feeds every row one token (the next token of its prime, or the one
it drew last), runs core.model.Stepper once for all rows, and each row that has read its prime
draws with its own core.sampling.Sampler, the one `charrnn sample` draws with.

The rows are packed into the smallest bucket of 1, 2, 4, ... rows that holds them (a Stepper
per bucket; a packed batch runs faster than a full one, benchmarks/bench_serve.py). So a
request alone in the engine is computed exactly as `charrnn sample` computes it, a Stepper of
one row, and gives its bytes for the same checkpoint, options and seed. In a batch of several
rows the BLAS sums each row's products in another order than for one row (its kernels differ
by the number of rows), so a row's scores agree with the lone ones to float32 rounding, not
bit for bit, and a draw can differ only when it falls within that rounding of a boundary
between two tokens' cumulative probabilities.
"""
import collections
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from charrnn.core import model as core_model
from charrnn.core.sampling import NonFiniteOutput, Sampler, context
from charrnn.serve.stops import StopText


@dataclass(frozen=True)
class Job:
    """What one request asks for (app.py makes it from a protocol.Completion)."""

    prime_ids: tuple[int, ...]
    max_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    argmax: bool = False
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None
    logprobs: int | None = None  # alternatives reported per token; None: no log-probabilities


class TokenInfo(NamedTuple):
    """What the model thought of a drawn token: its log-probability under the model's own
    distribution (temperature 1, nothing cut) and the most likely tokens, best first (the drawn
    one added when it is not among them)."""
    logprob: float
    top: tuple


class Piece(NamedTuple):
    """Text of one choice that may be shown now, and its tokens [(text, TokenInfo or None)]."""
    choice: int
    text: str
    tokens: tuple


class End(NamedTuple):
    """A choice is complete: "length" (max_tokens drawn) or "stop" (a stop sequence came)."""
    choice: int
    reason: str
    drawn: int


class Failed(NamedTuple):
    """The stream ends without completing; message and code as in OpenAI's error object."""
    message: str
    code: str


class Busy(Exception):
    """Every slot is taken."""


class Closed(Exception):
    """The engine takes no more requests: the server is stopping, or the model was reloaded."""


class _Row:
    """What a stream's Sampler steps: ``step`` keeps the token to feed for the next batched step
    and hands back the (1,V) row of logits that step will fill."""

    def __init__(self, V, dtype):
        self.logits = np.zeros((1, V), dtype=dtype)  # (1,V)
        self.pending = 0

    def step(self, ids):
        self.pending = int(ids[0])
        return self.logits


class Stream:
    """One request inside the engine. Its n choices are drawn one after another from one
    Generator(seed), as `charrnn sample --num-samples n --seed S` draws its samples; its reader
    takes the events (Piece, End, Failed) from ``take``."""

    def __init__(self, job: Job, vocab, dtype, on_ready: Callable[[list], Any], tag: Any = None):
        self.job, self.vocab, self.on_ready, self.tag = job, vocab, on_ready, tag
        self.rng = np.random.default_rng(job.seed)
        self.events = collections.deque()
        self.cancelled = self.finished = False
        self.restart = False  # a new choice begins: its row's state goes back to zero
        self._input = _Row(len(vocab), dtype)
        self.choice = -1
        self._next_choice()

    def take(self) -> list:
        """The events so far, oldest first (the engine adds more from its thread)."""
        out = []
        while self.events:
            out.append(self.events.popleft())
        return out

    def _next_choice(self):
        j = self.job
        self.choice += 1
        self.sampler = Sampler(self._input, self.rng, j.temperature, j.top_k, j.top_p, j.argmax)
        self.todo = context(self.vocab.tokens, list(j.prime_ids), self.rng)  # the prime, after a line break
        self.fed = self.drawn = 0
        self.text = StopText(j.stop)

    def before_step(self) -> int:
        """The token this stream's row reads in the next step."""
        if self.fed < len(self.todo):
            self.sampler.feed(self.todo[self.fed])
            self.fed += 1
        return self._input.pending

    def after_step(self, logits) -> bool:
        """Take the row's (V,) logits; once the prime is read, draw. True if there are new events."""
        self._input.logits[0] = logits
        if self.fed < len(self.todo):
            return False
        tok = self.sampler.draw()  # feeds the token back: the next step reads it
        info = self._info(tok) if self.job.logprobs is not None else None
        self.drawn += 1
        shown, stopped = self.text.push(self.vocab.decode_one(tok), info)
        ended = stopped or self.drawn == self.job.max_tokens
        if ended and not stopped:
            shown += self.text.flush()
        if shown:
            self.events.append(Piece(self.choice, "".join(p for p, _ in shown), tuple(shown)))
        if ended:
            self.events.append(End(self.choice, "stop" if stopped else "length", self.drawn))
            if self.choice + 1 < self.job.n:
                self._next_choice()
                self.restart = True
            else:
                self.finished = True
        return bool(shown) or ended

    def fail(self, message, code):
        self.events.append(Failed(message, code))
        self.finished = True

    def _info(self, tok):
        z = self._input.logits[0].astype(np.float64)  # the scores the token was drawn from
        z -= z.max()
        logp = z - math.log(np.exp(z).sum())  # (V,) the model's own log-probabilities
        best = np.argsort(-logp, kind="stable")[:self.job.logprobs]
        tokens = self.vocab.tokens
        top = tuple((tokens[i], float(logp[i])) for i in best)
        if tok not in best:
            top += ((tokens[tok], float(logp[tok])),)
        return TokenInfo(float(logp[tok]), top)


def bucket(n: int, slots: int) -> int:
    """The rows of the step that carries n streams: the next power of two, at most ``slots``."""
    return min(slots, 1 << (n - 1).bit_length())


class Engine:
    """One model's continuous batcher: ``submit`` a Job, read the Stream's events; at most
    ``slots`` streams at once (Busy past that). ``limit`` is core/products.py's block limit for
    the batched products (0: one product; a lone row never uses blocks)."""

    def __init__(self, checkpoint, slots: int = 16, name: str = "model", limit: int = 0,
                 log: Callable[[str], Any] | None = None):
        if checkpoint.cfg.bidirectional:
            raise ValueError("a bidirectional model cannot generate text one token at a time")
        self.checkpoint, self.slots, self.name, self.limit = checkpoint, slots, name, limit
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
                self._wake(touched)

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
                    self._wake(ending)
                    return False
                keep = [s for s in self._rows if not (s.finished or s.cancelled)]
                new = [s for s in self._incoming if not s.cancelled]
                let_go = len(self._rows) + len(self._incoming) - len(keep) - len(new)
                self._incoming = []
                if let_go:
                    self._open -= let_go
                    self._cv.notify_all()
                if keep or new:
                    break
                self._rows = []
                if self._retiring:
                    return False
                self._cv.wait()
        self._layout(keep, new)
        return True

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
            self._steppers[rows] = (core_model.Stepper(c.params, c.cfg, B=rows, limit=self.limit if rows > 1 else 0),
                                    np.zeros(rows, dtype=np.int64))
        return self._steppers[rows]

    def _step(self):
        """One step of every row; the streams with new events."""
        rows = self._rows
        batch, ids = self._batch
        for k, s in enumerate(rows):
            ids[k] = s.before_step()
        logits = batch.step(ids)  # (B,V)
        touched = []
        for k, s in enumerate(rows):
            try:
                if s.after_step(logits[k]):
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
