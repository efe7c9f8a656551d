"""Text <-> token ids: char and word vocabularies, fast encoding and decoding.

Pure: imports only numpy and the standard library, never prints, never touches files.
(Bytes -> text is text/decode.py.)

* Char level: one token per Unicode code point (a multi-byte character is never
  split); the vocabulary is sorted by code point.
* Word level: ``split_words`` cuts text into ``\\w+`` runs, whitespace runs and single
  other characters, so ``"".join(split_words(t)) == t``; the vocabulary is ordered by
  descending frequency, then by token. With ``max_vocab=N`` only the N most frequent
  tokens are kept and the unknown token ``"\\ufffd"`` is appended last.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from charrnn.config.recipe import LEVELS
from charrnn.errors import CorpusError

UNK_TOKEN = "\ufffd"

_WORD_RE = re.compile(r"\w+|\s+|.", re.DOTALL)
_CHAR_CHUNK = 1 << 18  # code points converted at a time (temporaries of a few MB)
N_CODEPOINTS = 0x110000


# ----------------------------------------------------------------------------- words


def split_words(text: str) -> list[str]:
    """Word-level tokens: ``\\w+`` runs, whitespace runs, single other characters."""
    return _WORD_RE.findall(text)


def word_chunks(text: str, size: int = 1 << 20) -> Iterator[str]:
    """Cut ``text`` into pieces of about ``size`` characters at word-token boundaries,
    so tokenising the pieces one by one gives the same tokens as the whole text."""
    pos, n = 0, len(text)
    while pos < n:
        end = min(pos + size, n)
        if end < n:
            # a match starting anywhere inside a run ends where that run ends
            end = _WORD_RE.match(text, end).end()
        yield text[pos:end]
        pos = end


def word_counts(text: str) -> Counter:
    """Frequency of each word-level token in ``text``."""
    return Counter(split_words(text))


def word_vocab(counts: Counter, max_vocab: int | None = None) -> "Vocab":
    """Word vocabulary from token counts: descending frequency, then by token.

    With ``max_vocab=N`` the N most frequent tokens other than U+FFFD are kept and the
    unknown token U+FFFD is appended (a real U+FFFD in the text then maps to it too).
    """
    if not counts:
        raise CorpusError("the corpus is empty")
    if max_vocab is not None and max_vocab < 1:
        raise CorpusError(f"--max-vocab must be at least 1, not {max_vocab}")
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    tokens = [t for t, _ in ordered]
    if max_vocab is None:
        return Vocab("word", tuple(tokens), None)
    tokens = [t for t in tokens if t != UNK_TOKEN][:max_vocab] + [UNK_TOKEN]
    return Vocab("word", tuple(tokens), len(tokens) - 1)


# ----------------------------------------------------------------------------- chars


def codepoints(text: str) -> np.ndarray:
    """The code points of ``text`` as a uint32 array (fast: one utf-32 encode)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def seen_codepoints(text: str, seen: np.ndarray | None = None) -> np.ndarray:
    """Mark the code points of ``text`` in a bool mask of all code points (O(n), no
    sort); pass the returned mask back in to accumulate over several texts."""
    if seen is None:
        seen = np.zeros(N_CODEPOINTS, dtype=bool)
    for i in range(0, len(text), _CHAR_CHUNK):
        seen[codepoints(text[i : i + _CHAR_CHUNK])] = True
    return seen


def char_vocab(cps: Iterable[int] | np.ndarray) -> "Vocab":
    """Char vocabulary from code points (any order, duplicates allowed)."""
    cps = np.unique(np.asarray(cps, dtype=np.uint32))
    if len(cps) == 0:
        raise CorpusError("the corpus is empty")
    return Vocab("char", tuple(chr(int(c)) for c in cps), None)


def check_max_vocab(level: str, max_vocab: int | None) -> None:
    """A vocabulary limit belongs to the word level (a character-level vocabulary keeps every
    character): a ValueError here, a caller's bug; users meet config.recipe's check first."""
    if level == "char" and max_vocab is not None:
        raise ValueError("max_vocab applies to the word level only")


def build_vocab(text: str, level: str, max_vocab: int | None = None) -> "Vocab":
    """The vocabulary of ``text`` at ``level`` ("char" or "word")."""
    check_max_vocab(level, max_vocab)
    if level == "char":
        return char_vocab(np.flatnonzero(seen_codepoints(text)))
    if level == "word":
        return word_vocab(word_counts(text), max_vocab)
    raise ValueError(f"level must be 'char' or 'word', not {level!r}")


# ----------------------------------------------------------------------------- vocab


@dataclass(frozen=True)
class Vocab:
    """Immutable id <-> token mapping. ``tokens[i]`` is the token of id ``i``."""

    level: str
    tokens: tuple[str, ...]
    unk: int | None = None
    _index: dict = field(init=False, repr=False, compare=False, hash=False)
    _lut: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _id_cps: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        _validate(self.level, self.tokens, self.unk)
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})
        if self.level == "char":
            # code point -> id table up to the largest code point (<= 4.4 MB), -1 = unknown;
            # its last entry stands for every code point above that
            id_cps = np.array([ord(t) for t in self.tokens], dtype=np.uint32)
            lut = np.full(int(id_cps.max()) + 2, -1, dtype=np.int32)
            lut[id_cps] = np.arange(len(id_cps), dtype=np.int32)
            object.__setattr__(self, "_id_cps", id_cps)
            object.__setattr__(self, "_lut", lut)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        """Whether ``token`` is one of the vocabulary's (not read as the unknown token)."""
        return token in self._index

    # -- encoding

    def _char_chunks(self, text: str):
        """(chunk, ids, known mask) for every _CHAR_CHUNK code points of text, in order."""
        for i in range(0, len(text), _CHAR_CHUNK):
            chunk = text[i : i + _CHAR_CHUNK]
            ids = self._lut[np.minimum(codepoints(chunk), len(self._lut) - 1)]
            yield chunk, ids, ids >= 0

    def read_as_unk(self, text: str) -> dict[str, int]:
        """Word level with an unknown token: the words of ``text`` the vocabulary lacks, which
        encoding reads as that token, with their counts (empty otherwise)."""
        if self.level != "word" or self.unk is None:
            return {}
        found = {}
        for tok in split_words(text):
            if tok not in self._index:
                found[tok] = found.get(tok, 0) + 1
        return found

    def read(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids, owner): what the model reads of ``text`` (as encode_known), and for each
        character of the text the index into ids of the token it belongs to, -1 where the
        model cannot read it (a symbol it never saw)."""
        if self.level == "char":
            ids, known = [], []
            for _, part, k in self._char_chunks(text):
                ids.append(part[k])
                known.append(k)
            known = np.concatenate(known) if known else np.zeros(0, dtype=bool)
            owner = np.where(known, np.cumsum(known) - 1, -1)
            return _joined(ids), owner
        index, unk, ids, owner = self._index, self.unk, [], []
        for tok in split_words(text):
            i = index.get(tok, unk)
            owner.append(np.full(len(tok), -1 if i is None else len(ids)))
            if i is not None:
                ids.append(i)
        return np.array(ids, dtype=np.int32), (np.concatenate(owner) if owner else np.zeros(0, dtype=np.int64))

    def describe_unknown(self, ids, unknown: dict[str, int], what: str, text: str | None = None) -> list[str]:
        """What ``encode_known`` dropped from ``what`` (``ids`` are what it kept), as one line
        each: how many occurrences of how many, and which; with the ``text``, a second for the
        words a word-level model reads as its unknown token. Empty when nothing was lost."""
        unit = "character" if self.level == "char" else "token"

        def line(symbols, total, fate_one, fate_many):
            n = sum(symbols.values())
            are, fate = ("is", fate_one) if n == 1 else ("are", fate_many)
            shown = ", ".join(repr(u) for u in list(symbols)[:5])
            shown += f" and {len(symbols) - 5:,} more" if len(symbols) > 5 else ""
            return (f"{what}: {n:,} of {total:,} {unit}{'s' if total > 1 else ''} ({n / total:.1%}) {are} "
                    f"not in the model's vocabulary and {fate}: {shown}")

        lines = []
        if unknown:
            lines.append(line(unknown, len(ids) + sum(unknown.values()), "was skipped", "were skipped"))
        unk = self.read_as_unk(text) if text is not None else {}
        if unk:  # those are among ids
            lines.append(line(unk, len(ids), "is read as its unknown token", "are read as its unknown token"))
        return lines

    def encode_known(self, text: str) -> tuple[np.ndarray, dict[str, int]]:
        """Encode, dropping symbols not in the vocabulary (mapped to unk if there is one).

        Returns ``(ids, unknown)``: int32 ids, and each dropped symbol with how many times it
        was dropped, in order of first appearance (empty when nothing was dropped).
        """
        unknown = {}
        if self.level == "char":
            parts = []
            for chunk, ids, known in self._char_chunks(text):
                if not known.all():
                    for j in np.flatnonzero(~known):
                        unknown[chunk[j]] = unknown.get(chunk[j], 0) + 1
                    ids = ids[known]
                parts.append(ids)
            return _joined(parts), unknown
        index, unk, out = self._index, self.unk, []
        for tok in split_words(text):
            i = index.get(tok, unk)
            if i is None:
                unknown[tok] = unknown.get(tok, 0) + 1
            else:
                out.append(i)
        return np.array(out, dtype=np.int32), unknown

    def encode(self, text: str) -> np.ndarray:
        """Encode to int32 ids; an unknown symbol maps to unk, or raises CorpusError."""
        if self.level == "char":
            parts = []
            for chunk, ids, known in self._char_chunks(text):
                if not known.all():
                    _raise_unknown(chunk[int(np.argmin(known))])
                parts.append(ids)
            return _joined(parts)
        index, unk = self._index, self.unk
        if unk is not None:
            return np.fromiter((index.get(t, unk) for t in split_words(text)), dtype=np.int32)
        try:
            return np.fromiter((index[t] for t in split_words(text)), dtype=np.int32)
        except KeyError as err:
            tok = err.args[0]
            if len(tok) == 1:
                _raise_unknown(tok)
            raise CorpusError(f"token {tok!r} is not in the model's vocabulary") from None

    # -- decoding

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """Text of a sequence of ids (the unknown token renders as U+FFFD)."""
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError("ids must be a 1-D sequence of integers")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= len(self.tokens):
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is out of range for a vocabulary of {len(self)}")
        if self.level == "char":
            return self._id_cps[arr].astype("<u4").tobytes().decode("utf-32-le")
        tokens = self.tokens
        return "".join([tokens[i] for i in arr.tolist()])

    def decode_one(self, id: int) -> str:
        """The token of one id."""
        i = int(id)
        if not 0 <= i < len(self.tokens):
            raise ValueError(f"token id {i} is out of range for a vocabulary of {len(self)}")
        return self.tokens[i]

    # -- serialisation

    def to_json(self) -> dict:
        return {"level": self.level, "tokens": list(self.tokens), "unk": self.unk}

    @classmethod
    def from_json(cls, d: object) -> "Vocab":
        """Rebuild a Vocab from ``to_json()`` output; ValueError on anything wrong."""
        if not isinstance(d, dict):
            raise ValueError("vocabulary must be a JSON object")
        for key in ("level", "tokens", "unk"):
            if key not in d:
                raise ValueError(f"vocabulary has no {key!r} field")
        if not isinstance(d["tokens"], (list, tuple)):
            raise ValueError("vocabulary 'tokens' must be a list of strings")
        return cls(d["level"], tuple(d["tokens"]), d["unk"])


def _joined(parts) -> np.ndarray:
    """The id pieces as one int32 array."""
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return ids.astype(np.int32, copy=False)


def _raise_unknown(c: str) -> None:
    raise CorpusError(f"character {c!r} (U+{ord(c):04X}) is not in the model's vocabulary")


def _validate(level: object, tokens: tuple, unk: object) -> None:
    if level not in LEVELS:
        raise ValueError(f"vocabulary level must be 'char' or 'word', not {level!r}")
    if not tokens:
        raise ValueError("vocabulary has no tokens")
    for i, t in enumerate(tokens):
        if not isinstance(t, str) or not t:
            raise ValueError(f"vocabulary token {i} must be a non-empty string, not {t!r}")
        if level == "char" and len(t) != 1:
            raise ValueError(f"char vocabulary token {i} must be one code point, not {t!r}")
    try:  # decoded UTF-8 never holds a lone surrogate, and one could not be written back out
        "".join(tokens).encode("utf-8")
    except UnicodeEncodeError:
        i = next(i for i, t in enumerate(tokens) if not t.isascii() and any(0xD800 <= ord(c) < 0xE000 for c in t))
        raise ValueError(f"vocabulary token {i} holds a surrogate code point, not text: {tokens[i]!r}") from None
    if len(set(tokens)) != len(tokens):
        dup = next(t for t, c in Counter(tokens).items() if c > 1)
        raise ValueError(f"vocabulary token {dup!r} appears more than once")
    if unk is not None:
        if level != "word":
            raise ValueError("only a word vocabulary can have an unknown token")
        if isinstance(unk, bool) or not isinstance(unk, int) or not 0 <= unk < len(tokens):
            raise ValueError(f"vocabulary 'unk' must be null or a token id below {len(tokens)}, not {unk!r}")
        if tokens[unk] != UNK_TOKEN:
            raise ValueError(f"vocabulary unknown token must be {UNK_TOKEN!r}, not {tokens[unk]!r}")
