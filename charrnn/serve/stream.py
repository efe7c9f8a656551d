"""One request as the engine runs it: its Generator and Sampler, its choices one after another,
its text held back or cut at stop sequences, and the events its reader takes (Piece, End,
Failed). The engine (engine.py) feeds its row and hands it the row's scores after each step.

Shapes: V vocabulary.
"""
import collections
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from charrnn.core.sampling import Sampler, context
from charrnn.serve.protocol import Completion
from charrnn.serve.stops import StopText


@dataclass(frozen=True)
class Job:
    """What one request asks for: its prompt as token ids, and the checked request
    (protocol.Completion), whose fields (max_tokens, temperature, top_k, top_p, argmax, stop, n,
    seed, logprobs) read as the job's own."""

    prime_ids: tuple[int, ...]
    request: Completion

    def __getattr__(self, name):
        if name == "request":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.request, name)


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
        self.events = collections.deque()  # what its reader may take
        self.new = []  # this step's events: published once the engine has let go of a finished stream
        self.cancelled = self.finished = self.released = False
        self.restart = False  # a new choice begins: its row's state goes back to zero
        self.news = False  # events its reader has not been woken for
        self.urgent = False  # a choice ended or the stream failed: its reader is woken at once
        self.announced = None  # when its reader was last woken (time.monotonic)
        self._input = _Row(len(vocab), dtype)
        self.choice = -1
        self._next_choice()

    def take(self) -> list:
        """The events so far, oldest first (the engine adds more from its thread)."""
        out = []
        while self.events:
            out.append(self.events.popleft())
        return out

    def publish(self):
        self.events.extend(self.new)
        self.new.clear()

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

    @property
    def drawing(self) -> bool:
        """Its prime is read: the step's logits are for a draw."""
        return self.fed >= len(self.todo)

    @property
    def plain(self) -> bool:
        """Drawn by temperature alone (no top-k, top-p or argmax), as draw_rows draws."""
        j = self.job
        return not (j.argmax or j.top_k or j.top_p < 1.0)

    def after_step(self, logits, tok=None) -> bool:
        """Take the row's (V,) logits; once the prime is read, draw, or take ``tok`` that draw_rows
        drew for it from its Generator. True if there are new events."""
        self._input.logits[0] = logits
        if not self.drawing:
            return False
        if tok is None:
            tok = self.sampler.draw()  # feeds the token back: the next step reads it
        else:
            self.sampler.feed(tok)
        info = self._info(tok) if self.job.logprobs is not None else None
        self.drawn += 1
        shown, stopped = self.text.push(self.vocab.decode_one(tok), info)
        ended = stopped or self.drawn == self.job.max_tokens
        if ended and not stopped:
            shown += self.text.flush()
        if shown:
            self.new.append(Piece(self.choice, "".join(p for p, _ in shown), tuple(shown)))
        if ended:
            self.new.append(End(self.choice, "stop" if stopped else "length", self.drawn))
            self.urgent = True
            if self.choice + 1 < self.job.n:
                self._next_choice()
                self.restart = True
            else:
                self.finished = True
        return bool(shown) or ended

    def fail(self, message, code):
        self.new.append(Failed(message, code))
        self.finished = self.urgent = True

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
