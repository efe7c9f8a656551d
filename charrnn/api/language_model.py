"""A trained language model: generate, stream, score and evaluate text (`charrnn sample`,
`score` and `eval` are built on it).

One rule for line breaks everywhere a model reads text: a CRLF line break is read as "\\n", as
training read it (text/decode.lf); a lone "\\r" stays a character.
"""
import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from charrnn import blas
from charrnn.api.trained import Model, need_text
from charrnn.config.fields import unknown_names
from charrnn.config.sampling import SamplingOptions
from charrnn.core import model as core_model
from charrnn.core.sampling import NonFiniteOutput, Sampler, beam_search, context
from charrnn.errors import CharrnnError, CharrnnWarning, UsageError
from charrnn.text.decode import lf


class Score(NamedTuple):
    """A text's log-probability under a model: the total in nats, each token's surprisal
    -log p(token | everything before it) in nats, and the tokens scored."""

    logprob: float
    surprisal: np.ndarray
    tokens: list


class LanguageModel(Model):
    """A trained language model (what ``charrnn.load`` gives for one)."""

    kind = "lm"

    # ------------------------------------------------------------------ generating
    def stream(self, prime: str = "", options: SamplingOptions | None = None,
               seed: int | np.random.Generator | None = None, **sampling: Any) -> Iterator[str]:
        """Text as it is made: the prime first (if any), then one token at a time.

        The prime is read as after a line break (as training sees text); without one, sampling
        starts as after a line break. ``options`` (a SamplingOptions) and ``sampling`` (its
        fields by name: length, temperature, top_k, top_p, argmax, stop, beam) say how: with
        length 0 it goes on until you stop reading, or until ``stop`` appears (included).
        ``seed`` is an int (the same seed gives the same text), a numpy Generator to draw from,
        or None (random).
        """
        opts, rng = self._options(options, seed, sampling)
        yield from self._one(need_text(prime, "prime"), opts, rng)

    def generate(self, prime: str = "", options: SamplingOptions | None = None,
                 seed: int | np.random.Generator | None = None, **sampling: Any) -> str:
        """``stream``'s text as one string: the prime and what follows it (exactly the bytes
        `charrnn sample` prints for the same options). Needs a length above 0 or a stop."""
        opts, rng = self._options(options, seed, sampling)
        if opts.length == 0 and not opts.stop:
            raise UsageError("generate needs a length above 0 or a stop text (stream has no end otherwise)")
        return "".join(self._one(need_text(prime, "prime"), opts, rng))

    def samples(self, prime: str = "", options: SamplingOptions | None = None,
                seed: int | np.random.Generator | None = None, **sampling: Any) -> Iterator[Iterator[str]]:
        """``options.samples`` samples, each a stream of pieces, drawn one after another from one
        generator (`charrnn sample --num-samples`)."""
        opts, rng = self._options(options, seed, sampling)
        need_text(prime, "prime")
        for _ in range(opts.samples):
            yield self._one(prime, opts, rng)

    def _options(self, options, seed, sampling):
        """(SamplingOptions, Generator or None) from what the caller gave."""
        bad = unknown_names([SamplingOptions], sampling)
        if bad or "seed" in sampling:
            raise UsageError(f"unknown sampling option(s) {', '.join(bad or ['seed'])}: see charrnn.SamplingOptions")
        if options is not None and not isinstance(options, SamplingOptions):
            raise UsageError(f"options must be a charrnn.SamplingOptions, not {type(options).__name__}")
        if seed is not None and not isinstance(seed, np.random.Generator) and type(seed) is not int:
            raise UsageError(f"seed must be an int, a numpy Generator or None, not {type(seed).__name__}")
        opts = dataclasses.replace(options or SamplingOptions(), **sampling)
        if isinstance(seed, np.random.Generator):
            rng = seed
            dataclasses.replace(opts, seed=0)  # refused as any seed is, with argmax or beam search
        else:
            opts = dataclasses.replace(opts, seed=seed) if seed is not None else opts
            rng = np.random.default_rng(opts.seed) if opts.drawn else None
        return opts, rng

    def _one(self, prime, opts, rng):
        ck = self._ck
        stop = lf(opts.stop) if opts.stop else opts.stop  # the text made has "\n" line breaks only
        prime_ids = self._encode(prime, "the prime")
        start = context(ck.vocab.tokens, prime_ids, rng)
        if prime_ids:
            yield ck.vocab.decode(prime_ids)
        try:
            if opts.beam:
                toks, _ = beam_search(ck.params, ck.cfg, start, opts.length, opts.beam, blas.product_limit())
                yield ck.vocab.decode(toks)
                return
            s = Sampler(core_model.Stepper(ck.params, ck.cfg), rng, opts.temperature, opts.top_k, opts.top_p,
                        opts.argmax)
            with np.errstate(all="ignore"):  # a non-finite output is reported, not warned about
                for tok in start:
                    s.feed(tok)
                i, tail = 0, ""
                while opts.length == 0 or i < opts.length:
                    piece = ck.vocab.decode_one(s.draw())
                    yield piece
                    i += 1
                    if stop:
                        tail = (tail + piece)[-(len(stop) + len(piece)):]
                        if stop in tail:
                            return
        except NonFiniteOutput as e:
            raise CharrnnError(f"cannot sample: {e}") from None

    # ------------------------------------------------------------------ scoring
    def evaluate(self, text: str, name: str = "the text") -> dict[str, float | int]:
        """The figures of `charrnn eval --json` for ``text``: loss (nats per token),
        bits_per_char, perplexity, tokens (scored) and skipped (symbols the model never saw)."""
        from charrnn.analysis import likelihood
        from charrnn.training.machine import cores
        ck = self._ck
        text = lf(need_text(text, "text"))
        ids, unknown = ck.vocab.encode_known(text)
        self._warn(ck.vocab.describe_unknown(ids, unknown, name, text))
        if len(ids) < 2:
            raise CharrnnError(f"{name}: too short to score (needs at least 2 tokens the model knows)")
        with blas.threads(1):  # one BLAS thread a worker, as the command line's
            nll, n = likelihood.stream_nll(ck.params, ck.cfg, np.asarray(ids), batch=16, seq_len=100,
                                           workers=min(4, cores()), block_limit=blas.product_limit())
        chars = sum(len(ck.vocab.tokens[i]) for i in ids[1:]) if ck.vocab.level == "word" else n
        return {**likelihood.summary(nll, n, chars), "skipped": sum(unknown.values())}

    def score(self, text: str) -> Score:
        """A Score of ``text`` read as running text after a line break: every token is predicted
        (without a line break in the vocabulary, the first token is the context). Symbols the
        model never saw are skipped, with a warning."""
        from charrnn.analysis import likelihood
        ck = self._ck
        ids = self._encode(need_text(text, "text"), "the text")
        seq = context(ck.vocab.tokens, ids, None) if ids and "\n" in ck.vocab else ids
        if len(seq) < 2:
            raise CharrnnError("the text is too short to score (needs a token the model knows)")
        surprisal = likelihood.token_surprisals(ck.params, ck.cfg, [np.asarray(seq, dtype=np.int64)],
                                                block_limit=blas.product_limit())[0]
        return Score(float(-surprisal.sum()), surprisal, [ck.vocab.tokens[i] for i in seq[1:]])

    def score_lines(self, lines: Iterable[str]) -> list[tuple[float, int]]:
        """(total log-probability, characters predicted) for each line (without its line break),
        as `charrnn score` writes them: each line read after a line break, predicting its
        characters and the "\\n" that ends it; -inf for a line with a symbol the model never saw.
        A line ending in "\\r" (split from CRLF text) is that line without it, as everywhere."""
        from charrnn.analysis import likelihood
        ck = self._ck
        if "\n" not in ck.vocab.tokens and ck.vocab.level == "char":
            raise CharrnnError(f"{self.path}: this model never saw a line break, so it cannot score lines")
        seqs, counts, slots = [], [], []
        for i, text in enumerate(lines):
            ids, chars = _encode_line(ck.vocab, need_text(text, "each line"))
            counts.append(chars)
            if ids is not None:
                seqs.append(ids)
                slots.append(i)
        totals = np.full(len(counts), -np.inf)
        if seqs:
            totals[slots] = likelihood.sequence_logprobs(ck.params, ck.cfg, seqs, block_limit=blas.product_limit())
        return list(zip(totals.tolist(), counts))

    # ------------------------------------------------------------------ helpers
    def _encode(self, text, what):
        if not text:
            return []
        text = lf(text)  # a model reads a CRLF line break as "\n" (text/decode.py)
        ids, unknown = self._ck.vocab.encode_known(text)
        self._warn(self._ck.vocab.describe_unknown(ids, unknown, what, text))
        return [int(i) for i in ids]

    @staticmethod
    def _warn(lines):
        import warnings
        for line in lines:
            warnings.warn(line, CharrnnWarning, stacklevel=4)


def _encode_line(vocab, text):
    """(ids of context + line + line break, or None if the model cannot read them; the number of
    characters predicted: the line's and its break's).

    The line is read as training read text: lf(line + "\\n"), so a "\\r" before the break is
    part of a CRLF break, and a lone "\\r" before that stays a character. The context is the
    line break before it: "\\n", or at word level, where a whitespace run is one token, the
    shortest line-break run the model knows (a corpus whose lines end "\\r\\r\\n" has "\\r\\n"
    runs and no "\\n"). A line's edges merge with its break there: a blank line is one token,
    leaving nothing to predict, and a word-level line that cannot be read whole is read as the
    context, then its own tokens.
    """
    body = lf(text + "\n")
    context = _line_break(vocab)
    ids, unknown = vocab.encode_known(context + body)
    if (unknown or len(ids) < 2) and vocab.level == "word":
        ctx, unknown_ctx = vocab.encode_known(context)
        rest, unknown = vocab.encode_known(body)
        ids, unknown = np.concatenate([ctx, rest]), {**unknown_ctx, **unknown}
    if unknown or len(ids) < 2:
        return None, len(body)
    return np.asarray(ids, dtype=np.int64), len(body)


def _line_break(vocab):
    """The token a line is read after: "\\n", or the shortest whitespace run ending in one."""
    if "\n" in vocab or vocab.level == "char":
        return "\n"
    runs = [t for t in vocab.tokens if t.endswith("\n") and t.isspace()]
    return min(runs, key=len) if runs else "\n"
