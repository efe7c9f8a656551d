"""Corpus loading: read input files, decode and encode them (with an on-disk token
cache), split train/validation, and cut the token stream into truncated-BPTT windows.

Every bad-input case is a one-line CorpusError. Never imports click or rich; the only
output is an optional tqdm progress bar on stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from charrnn import atomic
from charrnn.errors import CorpusError
from charrnn.text import (
    BOM,
    Vocab,
    char_vocab,
    decode_bytes,
    iter_decoded,
    seen_codepoints,
    word_chunks,
    word_counts,
    word_vocab,
)

CACHE_FORMAT = 1
CHUNK_BYTES = 1 << 22  # bytes decoded at a time at char level


# ----------------------------------------------------------------------------- reading


def read_sources(paths: list[str], stdin: BinaryIO | None = None) -> bytes:
    """The bytes of each path ("-" = standard input), concatenated in order."""
    parts = []
    for path in paths:
        if path == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            parts.append(stream.read())
            continue
        try:
            with open(path, "rb") as f:
                parts.append(f.read())
        except FileNotFoundError:
            raise CorpusError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise CorpusError(f"{path}: is a directory") from None
        except PermissionError:
            raise CorpusError(f"{path}: permission denied") from None
        except OSError as err:
            raise CorpusError(f"{path}: {err.strerror or err}") from None
    # each file's byte-order mark is dropped, not only the first one (decoding drops that):
    # otherwise a second file's BOM lands mid-text as a U+FEFF token the model learns to emit
    return b"".join(parts[:1] + [p[len(BOM):] if p.startswith(BOM) else p for p in parts[1:]])


def default_cache_dir() -> str:
    """$CHARRNN_CACHE_DIR, else $XDG_CACHE_HOME/charrnn, else ~/.cache/charrnn."""
    if os.environ.get("CHARRNN_CACHE_DIR"):
        return os.environ["CHARRNN_CACHE_DIR"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "charrnn")
    return os.path.join(os.path.expanduser("~"), ".cache", "charrnn")


# ----------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """An encoded corpus: ``tokens`` is a 1-D int32 array or read-only memmap."""

    tokens: np.ndarray
    vocab: Vocab
    sha256: str
    n_chars: int


def load_corpus(
    data: bytes,
    level: str = "char",
    max_vocab: int | None = None,
    errors: str = "strict",
    cache_dir: str | None = None,
    progress: bool = False,
) -> Corpus:
    """Decode and encode ``data``; with ``cache_dir``, reuse or write the token cache."""
    if level not in ("char", "word"):
        raise ValueError(f"level must be 'char' or 'word', not {level!r}")
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', not {errors!r}")
    if level == "char" and max_vocab is not None:
        raise CorpusError("--max-vocab applies only to --level word")
    sha = hashlib.sha256(data).hexdigest()
    meta = {"format": CACHE_FORMAT, "sha256": sha, "level": level, "max_vocab": max_vocab, "errors": errors}
    base = None
    if cache_dir is not None:
        key = f"{sha[:32]}-{level}-{max_vocab or 'all'}-{errors}-v{CACHE_FORMAT}"
        base = os.path.join(cache_dir, key)
        hit = _load_cached(base, meta)
        if hit is not None:
            return hit
    if level == "char":
        vocab, n_chars, n_tokens, pieces = _encode_chars(data, errors, progress)
    else:
        vocab, n_chars, n_tokens, pieces = _encode_words(data, max_vocab, errors, progress)
    tokens = None
    if base is not None:
        tokens = _write_cache(base, dict(meta, vocab=vocab.to_json(), n_tokens=n_tokens, n_chars=n_chars), pieces)
    if tokens is None:  # no cache, or it could not be written (caching is only a speed-up)
        tokens = np.empty(n_tokens, dtype=np.int32)
        pos = 0
        for ids in pieces():
            tokens[pos : pos + len(ids)] = ids
            pos += len(ids)
    return Corpus(tokens=tokens, vocab=vocab, sha256=sha, n_chars=n_chars)


def _bar(total: int, desc: str, progress: bool, unit: str = "B"):
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                disable=not progress, leave=False)


def _encode_chars(data: bytes, errors: str, progress: bool):
    """Vocabulary pass, then a lazy encoding pass: only one decoded piece is held at a
    time. Returns (vocab, n_chars, n_tokens, pieces) where pieces() iterates over the
    int32 id pieces (afresh on each call)."""
    seen, n_chars, done = None, 0, 0
    with _bar(len(data), "vocabulary", progress) as bar:
        for end, text in iter_decoded(data, errors, CHUNK_BYTES):
            seen = seen_codepoints(text, seen)
            n_chars += len(text)
            bar.update(end - done)
            done = end
    if n_chars == 0:
        raise CorpusError("the corpus is empty")
    vocab = char_vocab(np.flatnonzero(seen))

    def pieces():
        done = 0
        with _bar(len(data), "encoding", progress) as bar:
            for end, text in iter_decoded(data, errors, CHUNK_BYTES):
                yield vocab.encode(text)
                bar.update(end - done)
                done = end

    return vocab, n_chars, n_chars, pieces


def _encode_words(data: bytes, max_vocab, errors: str, progress: bool):
    """Word level holds the decoded text and its ids in memory, tokenising in pieces."""
    text = decode_bytes(data, errors)
    if not text:
        raise CorpusError("the corpus is empty")
    counts = Counter()
    with _bar(len(text), "vocabulary", progress, unit="char") as bar:
        for piece in word_chunks(text):
            counts.update(word_counts(piece))
            bar.update(len(piece))
    vocab = word_vocab(counts, max_vocab)
    ids = []
    with _bar(len(text), "encoding", progress, unit="char") as bar:
        for piece in word_chunks(text):
            ids.append(vocab.encode(piece))
            bar.update(len(piece))
    return vocab, len(text), sum(map(len, ids)), lambda: iter(ids)


# ----------------------------------------------------------------------------- cache


def _load_cached(base: str, meta: dict) -> Corpus | None:
    """The cached corpus for ``meta``, or None if absent or damaged in any way."""
    try:
        with open(base + ".json", encoding="utf-8") as f:
            info = json.load(f)
        if any(info.get(k) != v for k, v in meta.items()):
            return None
        vocab = Vocab.from_json(info["vocab"])
        n_tokens, n_chars = info["n_tokens"], info["n_chars"]
        if not (isinstance(n_tokens, int) and isinstance(n_chars, int) and n_tokens > 0):
            return None
        if os.path.getsize(base + ".tokens.int32") != 4 * n_tokens:
            return None
        if not _ids_in_range(base + ".tokens.int32", len(vocab)):
            return None
        tokens = np.memmap(base + ".tokens.int32", dtype="<i4", mode="r", shape=(n_tokens,))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Corpus(tokens=tokens, vocab=vocab, sha256=meta["sha256"], n_chars=n_chars)


def _ids_in_range(path: str, n_vocab: int, chunk: int = 1 << 22) -> bool:
    """Whether every id in the token file is in [0, n_vocab). Read in 16 MB pieces, not
    through the memmap training uses: scanning that would make the whole array resident in
    the training process (4 bytes per token: 800 MB for a 200 MB corpus)."""
    buf = np.empty(chunk, dtype="<i4")
    with open(path, "rb") as f:
        while n := f.readinto(memoryview(buf).cast("B")) // 4:
            ids = buf[:n]
            if int(ids.min()) < 0 or int(ids.max()) >= n_vocab:
                return False
    return True


def _atomic_write(path: str, pieces) -> None:
    """Write the byte ``pieces`` to ``path`` atomically."""
    atomic.write(path, lambda f: [f.write(piece) for piece in pieces])


def _write_cache(base: str, info: dict, pieces):
    """Write the token pieces, then the metadata; return the tokens memmap, or None
    if the cache could not be written (unwritable directory, disk full...)."""
    n_tokens = info["n_tokens"]
    try:
        os.makedirs(os.path.dirname(base), exist_ok=True)
        _atomic_write(base + ".tokens.int32", (c.astype("<i4", copy=False).tobytes() for c in pieces()))
        _atomic_write(base + ".json", [json.dumps(info, ensure_ascii=False).encode("utf-8")])
        return np.memmap(base + ".tokens.int32", dtype="<i4", mode="r", shape=(n_tokens,))
    except OSError:
        return None


# ----------------------------------------------------------------------------- batching


def split_train_val(tokens: np.ndarray, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): validation is the last ``val_frac`` of the stream (views, no copy)."""
    if not 0 <= val_frac < 1:
        raise ValueError(f"val_frac must be in [0, 1), not {val_frac}")
    n_val = int(len(tokens) * val_frac)
    cut = len(tokens) - n_val
    return tokens[:cut], tokens[cut:]


class Streams:
    """Truncated-BPTT batching over B contiguous streams.

    The tokens are cut into B streams of L = (n-1)//B tokens; window k holds steps
    k*T .. k*T+T-1 of every stream, so hidden state carries over from window k to k+1.
    ``window(k)`` returns time-major int32 ``(x, y)`` of shape (T, B) with
    ``x[t, b] = tokens[b*L + k*T + t]`` and ``y[t, b] = tokens[b*L + k*T + t + 1]``.
    Only the B*(T+1) needed tokens are read, so ``tokens`` may be a memmap.
    """

    def __init__(self, tokens: np.ndarray, batch: int, seq_len: int, what: str = "the corpus"):
        if batch < 1 or seq_len < 1:
            raise ValueError("batch and seq_len must be at least 1")
        if tokens.ndim != 1:
            raise ValueError("tokens must be a 1-D array")
        n = len(tokens)
        if n < batch * seq_len + 1:
            raise CorpusError(
                f"{what} has {n} tokens, too few for one window of --batch {batch} x "
                f"--seq-len {seq_len} (+1); use a smaller --batch or --seq-len"
            )
        self.tokens, self.batch, self.seq_len = tokens, batch, seq_len
        self.stream_len = (n - 1) // batch
        self.windows_per_epoch = self.stream_len // seq_len
        self._offsets = (np.arange(batch, dtype=np.int64) * self.stream_len)[None, :] + np.arange(
            seq_len + 1, dtype=np.int64
        )[:, None]

    def __len__(self) -> int:
        return self.windows_per_epoch

    def window(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= k < self.windows_per_epoch:
            raise IndexError(f"window {k} out of range 0..{self.windows_per_epoch - 1}")
        block = np.asarray(self.tokens[self._offsets + k * self.seq_len], dtype=np.int32)
        return np.ascontiguousarray(block[:-1]), np.ascontiguousarray(block[1:])

    def __iter__(self):
        for k in range(self.windows_per_epoch):
            yield self.window(k)
