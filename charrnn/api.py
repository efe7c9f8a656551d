"""charrnn as a library: load a trained model and use it, or train one from a script.

    import charrnn
    model = charrnn.load("checkpoints/notes")     # a run directory (its best) or a .ckpt file
    model.generate(prime="The ", length=200, temperature=0.8, seed=1)
    for piece in model.stream(length=0): ...      # tokens as they come, until you stop
    model.score("a line of text")                 # Score(logprob, surprisal, tokens)
    model.evaluate(text)                          # the figures of `charrnn eval --json`
    model.classify(["a text", ...])               # a classifier's labels
    model.info                                    # what `charrnn info --json` shows
    charrnn.train("notes.txt", minutes=1, callback=print)   # -> the trained Model

The command line is built on these functions. Problems raise charrnn.CharrnnError or one of
its subclasses (UsageError for arguments that cannot be, CheckpointError, CorpusError);
symbols a model never saw are reported as charrnn.CharrnnWarning warnings. Nothing prints
unless asked (train's progress=True).
"""
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from typing import Any, NamedTuple

import numpy as np

from charrnn import blas
from charrnn.core import model as core_model
from charrnn.core.sampling import NonFiniteOutput, Sampler, beam_search, context
from charrnn.errors import CharrnnError, CharrnnWarning, UsageError
from charrnn.store import schema
from charrnn.text.decode import lf
from charrnn.training.config import LM_MODEL, TrainConfig, cores

__all__ = ["MODEL_DEFAULTS", "Model", "Score", "load", "train"]


class Score(NamedTuple):
    """A text's log-probability under a model: the total in nats, each token's surprisal
    -log p(token | everything before it) in nats, and the tokens scored."""

    logprob: float
    surprisal: np.ndarray
    tokens: list


def load(path: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike = "checkpoints") -> "Model":
    """The Model in ``path``: a checkpoint file, or a run directory (its best checkpoint).
    Without a path, the most recent run under ``checkpoint_dir``. CheckpointError if there is
    none, or it is damaged."""
    resolved = schema.resolve(path, checkpoint_dir, kind=None)
    return Model(schema.load(resolved, kind=None), resolved)


class Model:
    """A trained language model or sequence classifier (what ``load`` gives)."""

    def __init__(self, checkpoint: schema.Checkpoint, path: str | os.PathLike | None = None):
        self._ck, self.path = checkpoint, None if path is None else os.fspath(path)

    @property
    def kind(self):
        """"lm" (a language model) or "classifier"."""
        return self._ck.kind

    @property
    def config(self):
        """The network's shape: a core.model.ModelConfig."""
        return self._ck.cfg

    @property
    def level(self):
        """"char" or "word": what a token is."""
        return self._ck.vocab.level

    @property
    def vocabulary(self):
        """The tokens, in id order (characters, or words at word level)."""
        return list(self._ck.vocab.tokens)

    @property
    def labels(self):
        """A classifier's label names (None for a language model)."""
        return None if self._ck.labels is None else list(self._ck.labels)

    @property
    def info(self):
        """What `charrnn info --json` shows: model, recipe, step, metrics, vocabulary, corpus."""
        ck = self._ck
        d = {"path": self.path, "kind": ck.kind, "model": ck.cfg.to_json(),
             "train": None if ck.train is None else ck.train.to_json(),
             "params": core_model.num_params(ck.params), "step": ck.step, "epoch": ck.epoch,
             "val_loss": ck.metrics.get("val_loss"), "best_val_loss": ck.metrics.get("best_val_loss"),
             "vocab_size": len(ck.vocab), "level": ck.vocab.level, "corpus_sha256": ck.corpus.get("sha256"),
             "corpus_tokens": ck.corpus.get("tokens"), "corpus_paths": ck.corpus.get("paths"),
             "saved_at": _iso(ck.saved_at), "charrnn": ck.version}
        if ck.kind == "classifier":
            d.update(labels=list(ck.labels), val_acc=ck.metrics.get("val_acc"),
                     classify=None if ck.classify is None else ck.classify.to_json())
        return d

    def __repr__(self):
        c = self._ck.cfg
        return f"<charrnn.Model {self.kind} {c.cell} {c.layers}x{c.hidden} from {self.path or 'memory'}>"

    # ------------------------------------------------------------------ generating
    def stream(self, prime: str = "", length: int = 500, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, argmax: bool = False, stop: str | None = None,
               seed: int | np.random.Generator | None = None, beam: int | None = None) -> Iterator[str]:
        """Text as it is made: the prime first (if any), then one token at a time.

        The prime is read as after a line break (as training sees text); without one, sampling
        starts as after a line break. ``length`` tokens follow the prime (0: no limit: stop
        when you stop reading, or at ``stop``, which ends the text right after it appears).
        ``temperature`` > 0 (tiny values equal ``argmax``), ``top_k`` (0 = all) and ``top_p``
        shape the distribution; ``seed`` is an int (the same seed gives the same text) or a
        numpy Generator to draw from; None is random. ``beam`` = N gives the most likely
        continuation by beam search with N beams instead (deterministic: no sampling options).
        """
        self._need("lm", "generate text")
        ck = self._ck
        _check_sampling(length, temperature, top_k, top_p, argmax, stop, seed, beam)
        stop = lf(stop) if stop else stop  # the text made has "\n" line breaks only
        prime_ids = self._encode(prime or "", "the prime")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        start = context(ck.vocab.tokens, prime_ids, rng)
        if prime_ids:
            yield ck.vocab.decode(prime_ids)
        try:
            if beam:
                toks, _ = beam_search(ck.params, ck.cfg, start, length, beam, blas.product_limit())
                yield ck.vocab.decode(toks)
                return
            s = Sampler(core_model.Stepper(ck.params, ck.cfg), rng, temperature, top_k, top_p, argmax)
            with np.errstate(all="ignore"):  # a non-finite output is reported, not warned about
                for tok in start:
                    s.feed(tok)
                i, tail = 0, ""
                while length == 0 or i < length:
                    piece = ck.vocab.decode_one(s.draw())
                    yield piece
                    i += 1
                    if stop:
                        tail = (tail + piece)[-(len(stop) + len(piece)):]
                        if stop in tail:
                            return
        except NonFiniteOutput as e:
            raise CharrnnError(f"cannot sample: {e}") from None

    def generate(self, prime: str = "", length: int = 500, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, argmax: bool = False, stop: str | None = None,
                 seed: int | np.random.Generator | None = None, beam: int | None = None) -> str:
        """``stream``'s text as one string: the prime and what follows it (exactly the bytes
        `charrnn sample` prints for the same options). Needs a ``length`` above 0 or a ``stop``."""
        if length == 0 and not stop:
            raise UsageError("generate needs a length above 0 or a stop text (stream has no end otherwise)")
        return "".join(self.stream(prime, length, temperature, top_k, top_p, argmax, stop, seed, beam))

    # ------------------------------------------------------------------ scoring
    def evaluate(self, text: str, name: str = "the text") -> dict[str, float | int]:
        """The figures of `charrnn eval --json` for ``text``: loss (nats per token),
        bits_per_char, perplexity, tokens (scored) and skipped (symbols the model never saw)."""
        from charrnn.analysis import likelihood
        self._need("lm", "evaluate text")
        ck = self._ck
        text = lf(text)
        ids, unknown = ck.vocab.encode_known(text)
        self._warn(ck.vocab.describe_unknown(ids, unknown, name, text))
        if len(ids) < 2:
            raise CharrnnError(f"{name}: too short to score (needs at least 2 tokens the model knows)")
        nll, n = likelihood.stream_nll(ck.params, ck.cfg, np.asarray(ids), batch=16, seq_len=100,
                                       workers=min(4, cores()), limit=blas.product_limit())
        chars = sum(len(ck.vocab.tokens[i]) for i in ids[1:]) if ck.vocab.level == "word" else n
        return {**likelihood.summary(nll, n, chars), "skipped": sum(unknown.values())}

    def score(self, text: str) -> Score:
        """A Score of ``text`` read as running text after a line break: every token is predicted
        (without a line break in the vocabulary, the first token is the context). Symbols the
        model never saw are skipped, with a warning."""
        from charrnn.analysis import likelihood
        self._need("lm", "score text")
        ck = self._ck
        ids = self._encode(text, "the text")
        seq = context(ck.vocab.tokens, ids, None) if ids and "\n" in ck.vocab._index else ids
        if len(seq) < 2:
            raise CharrnnError("the text is too short to score (needs a token the model knows)")
        surprisal = likelihood.token_surprisals(ck.params, ck.cfg, [np.asarray(seq, dtype=np.int64)],
                                                limit=blas.product_limit())[0]
        tokens = [ck.vocab.tokens[i] for i in seq[1:]]
        return Score(float(-surprisal.sum()), surprisal, tokens)

    def score_lines(self, lines: Iterable[str]) -> list[tuple[float, int]]:
        """(total log-probability, characters predicted) for each line (without its line break),
        as `charrnn score` writes them: each line read after a line break, predicting its
        characters and the break that ends it; -inf for a line with a symbol the model never saw.
        A line ending in "\\r" is read with "\\r\\n" if the model knows that break, else "\\n"."""
        from charrnn.analysis import likelihood
        self._need("lm", "score lines")
        ck = self._ck
        if ck.cfg.bidirectional:
            raise CharrnnError(f"{self.path}: a bidirectional model does not assign probabilities to text")
        if "\n" not in ck.vocab.tokens and ck.vocab.level == "char":
            raise CharrnnError(f"{self.path}: this model never saw a line break, so it cannot score lines")
        crlf = ("\r" if ck.vocab.level == "char" else "\r\n") in ck.vocab.tokens
        seqs, counts, slots = [], [], []
        for i, text in enumerate(lines):
            ids, chars = _encode_line(ck.vocab, text, crlf)
            counts.append(chars)
            if ids is not None:
                seqs.append(ids)
                slots.append(i)
        totals = np.full(len(counts), -np.inf)
        if seqs:
            totals[slots] = likelihood.sequence_logprobs(ck.params, ck.cfg, seqs, limit=blas.product_limit())
        return list(zip(totals.tolist(), counts))

    # ------------------------------------------------------------------ classifying
    def classify(self, texts: Iterable[str], probabilities: bool = False) -> list[str] | list[dict[str, float]]:
        """A classifier's label for each text, or with ``probabilities`` a dict label -> p for
        each. Symbols the model never saw are skipped (one warning for all the texts)."""
        from charrnn.text.labeled import encode
        from charrnn.training.classify import predict
        self._need("classifier", "classify texts")
        ck = self._ck
        max_len = ck.classify.max_len if ck.classify is not None else schema.ClassifyConfig.max_len
        seqs, skipped = [], 0
        for t in texts:
            ids, unknown = encode(ck.vocab, t, max_len)
            skipped += bool(unknown)
            seqs.append(ids)
        if skipped:
            self._warn([f"in {skipped} line(s), symbols the model never saw were skipped"])
        labels = list(ck.labels or [])
        p = predict(ck.params, ck.cfg, seqs) if seqs else np.zeros((0, len(labels)))
        if probabilities:
            return [dict(zip(labels, row.tolist())) for row in p]
        return [labels[k] for k in p.argmax(axis=1)]

    # ------------------------------------------------------------------ helpers
    def _need(self, kind, what):
        if self._ck.kind != kind:
            other = "a sequence classifier" if self._ck.kind == "classifier" else "a language model"
            raise UsageError(f"{self.path or 'this model'} is {other}: it cannot {what}")

    def _encode(self, text, what):
        if not text:
            return []
        text = lf(text)  # a model reads a CRLF line break as "\n" (text/decode.py)
        ids, unknown = self._ck.vocab.encode_known(text)
        self._warn(self._ck.vocab.describe_unknown(ids, unknown, what, text))
        return [int(i) for i in ids]

    @staticmethod
    def _warn(lines):
        for line in lines:
            warnings.warn(line, CharrnnWarning, stacklevel=3)


def _iso(seconds):
    """2026-12-03T07:01:22Z, or None."""
    if seconds is None:
        return None
    import datetime
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_sampling(length, temperature, top_k, top_p, argmax, stop, seed, beam):
    if not (isinstance(length, int) and length >= 0):
        raise UsageError(f"length must be a whole number, 0 or more, not {length!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise UsageError(f"temperature must be above 0, not {temperature!r}")
    if not (isinstance(top_k, int) and top_k >= 0):
        raise UsageError(f"top_k must be a whole number, 0 or more, not {top_k!r}")
    if not (0 < top_p <= 1):
        raise UsageError(f"top_p must be in (0, 1], not {top_p!r}")
    if argmax and (temperature != 1.0 or top_k or top_p < 1.0 or seed is not None or beam):
        raise UsageError("argmax takes the most likely token every time: temperature, top_k, top_p, seed and "
                         "beam do not apply")
    if beam is not None:
        if not (isinstance(beam, int) and beam >= 1):
            raise UsageError(f"beam must be a whole number, 1 or more, not {beam!r}")
        if length == 0:
            raise UsageError("beam search needs a length above 0")
        if temperature != 1.0 or top_k or top_p < 1.0 or argmax or stop or seed is not None:
            raise UsageError("beam search takes the single most likely continuation: temperature, top_k, "
                             "top_p, argmax, stop and seed do not apply")


def _encode_line(vocab, text, crlf):
    """(ids of context + line + line break, or None if the model cannot read them; the number of
    characters predicted: the line's and its break's).

    The break is "\\r\\n" for a CRLF line if the model knows one (crlf), else "\\n". At word level a
    whitespace run is one token, so a line's edges merge with its line breaks: a blank line is
    one token, leaving nothing to predict, and "\\n   " may be a run the model never saw. A
    word-level line that cannot be read whole is read as the token "\\n", then its own tokens.
    """
    end = "\n"
    if text.endswith("\r"):
        text = text[:-1]
        end = "\r\n" if crlf else "\n"
    ids, unknown = vocab.encode_known("\n" + text + end)
    if (unknown or len(ids) < 2) and vocab.level == "word":
        ctx, unknown_ctx = vocab.encode_known("\n")
        body, unknown = vocab.encode_known(text + end)
        ids, unknown = np.concatenate([ctx, body]), {**unknown_ctx, **unknown}
    if unknown or len(ids) < 2:
        return None, len(text) + len(end)
    return np.asarray(ids, dtype=np.int64), len(text) + len(end)


# --------------------------------------------------------------------------- training

MODEL_DEFAULTS = dict(LM_MODEL)  # the model options' defaults (embed None: by level)


class _Callback:
    """A reporter (training/loop.py) that hands every event to a function as a dict
    {"event": "start" | "step" | "clip" | "eval" | "sample" | "message" | "finish", ...}; the
    function returning False stops the run at the step boundary (it is saved)."""

    def __init__(self, fn, stop):
        self.fn, self.stop = fn, stop

    def _call(self, event, **record):
        if self.fn({"event": event, **record}) is False:
            self.stop.requested = True

    def start(self, info): self._call("start", **{k: v for k, v in info.items() if k not in ("model", "train")})
    def step(self, m): self._call("step", **m)
    def clip(self, step, norm, limit): self._call("clip", step=step, grad_norm=norm, limit=limit)
    def evaluate(self, m): self._call("eval", **m)
    def sample(self, step, text): self._call("sample", step=step, text=text)
    def message(self, text): self._call("message", text=text)
    def finish(self, summary): self._call("finish", **summary)


def train(corpus: str | os.PathLike | Iterable[str | os.PathLike] | None = None, *, text: str | None = None,
          callback: Callable[[dict[str, Any]], Any] | None = None, progress: bool = False,
          log: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike = "checkpoints",
          name: str | None = None, resume: bool | str | os.PathLike | None = None, force: bool = False,
          **options: Any) -> Model:
    """Train a language model as `charrnn train` does, and return it (its best checkpoint).

    ``corpus`` is a path or a list of paths; or give the training text itself as ``text``;
    with neither, the default corpus. ``options`` are `charrnn train`'s, by their Python names
    and with the same defaults: the fields of charrnn.TrainConfig (steps, minutes, epochs, lr,
    batch, seq_len, seed, ...) and of charrnn.MODEL_DEFAULTS (cell, layers, hidden, embed,
    dropout, ...). ``callback(record)`` gets every event as a dict ({"event": "step", "loss":
    ..., ...}); returning False from it stops the run, saved. ``progress=True`` draws the
    command's progress on stderr instead; ``log`` appends --log's JSON lines to that path.
    ``resume`` is True (this run's latest checkpoint) or a checkpoint path. The run lives in
    ``checkpoint_dir/name`` (name: the first file's stem, "text" for ``text``).
    """
    from charrnn.training import setup
    from charrnn.training.loop import Stop

    # ranks is the MPI job's size, recorded, not chosen (mpirun -n K charrnn train)
    unknown = sorted(set(options) - ({f.name for f in fields(TrainConfig)} - {"ranks"}) - set(MODEL_DEFAULTS))
    if unknown:
        raise UsageError(f"unknown training option(s) {', '.join(unknown)}: see charrnn.TrainConfig and "
                         f"charrnn.MODEL_DEFAULTS")
    if corpus is not None and text is not None:
        raise UsageError("give corpus paths or text, not both")
    if text is not None and not isinstance(text, str):
        raise UsageError(f"text must be a str, not {type(text).__name__}")
    paths = [] if corpus is None else [os.fspath(p) for p in
                                       ([corpus] if isinstance(corpus, (str, os.PathLike)) else corpus)]
    o = dict(options, checkpoint_dir=os.fspath(checkpoint_dir), force=force, quiet=not progress,
             name=name if name is not None or text is None else "text",
             resume=None if resume is None or resume is False else ("" if resume is True else os.fspath(resume)))

    def notify(line):  # warnings as CharrnnWarning; the rest only with progress
        if line.startswith("warning: "):
            warnings.warn(line.removeprefix("warning: "), CharrnnWarning, stacklevel=3)
        elif progress:
            print(line, file=sys.stderr)

    p = setup.prepare(o, set(options), paths, notify, data=None if text is None else text.encode("utf-8"))
    if p.done:  # nothing to train: the run is at its steps already
        warnings.warn(p.done, CharrnnWarning, stacklevel=2)
        return load(p.run.path)
    stop = Stop()
    if progress:
        from charrnn.ui.progress import make_reporter
        reporter = make_reporter(False)
    else:
        reporter = None if callback is None else _Callback(callback, stop)
    from charrnn.training.loop import LogFile
    log_file = LogFile(log) if log else None
    try:
        setup.run(p, reporter, log_file, stop)
    finally:
        if hasattr(reporter, "close"):
            reporter.close()
        if log_file is not None:
            log_file.close()
    return load(p.run.path)

