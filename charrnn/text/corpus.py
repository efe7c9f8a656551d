"""Corpus loading: decode and encode the inputs (text/sources.py) into token ids, through an
on-disk token cache keyed by their sha256 and the tokeniser settings.

The inputs are streamed in CHUNK_BYTES pieces, so at char level memory does not grow with
the corpus: the tokens are a memory-mapped cache file (or, without a usable cache, one int32
array). Batching them into windows is text/windows.py.

Every bad-input case is a one-line CorpusError. Never imports click or rich; the only
output is an optional tqdm progress bar on stderr.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from tqdm import tqdm

from charrnn.store import atomic
from charrnn.errors import BadBytes, CorpusError
from charrnn.text.vocab import Vocab, char_vocab, check_max_vocab, seen_codepoints, word_chunks, word_counts, word_vocab
from charrnn.text.decode import LineBreaks, StreamDecoder, check_nul
from charrnn.text.sources import Sources

tqdm.monitor_interval = 0  # no monitor thread: train forks its workers (training/workers.py)

CACHE_FORMAT = 2  # 2: CRLF line breaks read as "\n" (text/decode.py)


# ----------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """An encoded corpus: ``tokens`` is a 1-D int32 array or read-only memmap."""

    tokens: np.ndarray
    vocab: Vocab
    sha256: str
    n_chars: int
    crlf: int = 0  # CRLF line breaks in the input, read as "\n"


def load_corpus(
    data: "bytes | Sources",
    level: str = "char",
    max_vocab: int | None = None,
    errors: str = "strict",
    cache_dir: str | None = None,
    progress: bool = False,
) -> Corpus:
    """Decode and encode a corpus; with ``cache_dir``, reuse or write the token cache.

    ``data`` is a ``Sources`` (files read in chunks of CHUNK_BYTES, never whole) or bytes.
    At char level the input is never held whole: a first pass streams it for its sha256 (of
    the stream described in ``Sources``) and the first NUL byte; on a cache hit nothing more
    is read and the cached token file is returned memory-mapped. Otherwise a second pass
    decodes it for the vocabulary (and the first invalid UTF-8 sequence) and a third encodes
    it piece by piece straight into the cache file (or into a preallocated array when there
    is no usable cache), checking that the input still has the same sha256.

    Word level does the same first pass, then holds the decoded text (and its ids) in
    memory to count and encode the words.
    """
    if level not in ("char", "word"):
        raise ValueError(f"level must be 'char' or 'word', not {level!r}")
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', not {errors!r}")
    check_max_vocab(level, max_vocab)
    src = data if isinstance(data, Sources) else Sources.from_bytes(data)
    try:
        return _load(src, level, max_vocab, errors, cache_dir, progress)
    except BadBytes as e:  # offsets count the joined stream: name the file and its own offset
        raise src.locate(e) from None


def _load(src: Sources, level: str, max_vocab: int | None, errors: str, cache_dir: str | None,
          progress: bool) -> Corpus:
    sha = _hash_pass(src, progress)
    meta = {"format": CACHE_FORMAT, "sha256": sha, "level": level, "max_vocab": max_vocab, "errors": errors}
    base = None
    if cache_dir is not None:
        key = f"{sha[:32]}-{level}-{max_vocab or 'all'}-{errors}-v{CACHE_FORMAT}"
        base = os.path.join(cache_dir, key)
        hit = _load_cached(base, meta)
        if hit is not None:
            return hit
    breaks = LineBreaks()
    if level == "char":
        vocab, n_chars, n_tokens, pieces = _encode_chars(src, errors, progress, breaks)
    else:
        vocab, n_chars, n_tokens, pieces = _encode_words(src, max_vocab, errors, progress, breaks)
    tokens = None
    if base is not None:
        info = dict(meta, vocab=vocab.to_json(), n_tokens=n_tokens, n_chars=n_chars, crlf=breaks.crlf)
        tokens = _write_cache(base, info, lambda: _same_input(pieces(), src, sha))
    if tokens is None:  # no cache, or it could not be written (caching is only a speed-up)
        tokens = np.empty(n_tokens, dtype=np.int32)
        pos = 0
        for ids in _same_input(pieces(), src, sha):
            tokens[pos : pos + len(ids)] = ids
            pos += len(ids)
    return Corpus(tokens=tokens, vocab=vocab, sha256=sha, n_chars=n_chars, crlf=breaks.crlf)


def _bar(total: int, desc: str, progress: bool, unit: str = "B"):
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                disable=not progress, leave=False)


def _hash_pass(src: Sources, progress: bool) -> str:
    """The sha256 of the stream; CorpusError at its first NUL byte (a NUL anywhere is
    refused before any invalid UTF-8, in both error modes)."""
    h, pos = hashlib.sha256(), 0
    with _bar(src.size, "reading", progress) as bar:
        for chunk in src.chunks():
            check_nul(chunk, pos)
            h.update(chunk)
            pos += len(chunk)
            bar.update(len(chunk))
            del chunk  # before the next one is read
    return h.hexdigest()


class _Hashed:
    """The chunks of a source, hashed as they go by (``sha`` once they are exhausted)."""

    def __init__(self, src: Sources):
        self.src, self.h, self.sha = src, hashlib.sha256(), None

    def __iter__(self):
        for chunk in self.src.chunks():
            self.h.update(chunk)
            yield chunk
        self.sha = self.h.hexdigest()


def _same_input(pieces, src: Sources, sha: str):
    """``pieces``, then a CorpusError if the input changed since its sha256 was taken (the
    token cache must match its key)."""
    yield from pieces
    if getattr(pieces, "sha", sha) != sha:
        names = ", ".join(src.names) or "the input"
        raise CorpusError(f"{names}: changed while it was being read; try again")


def _decoded(chunks, errors: str, breaks: LineBreaks | None = None) -> Iterator[tuple[int, str]]:
    """(bytes read so far, text) for each chunk of a byte stream, decoded exactly, its CRLF line
    breaks read as "\n" (counted in ``breaks``)."""
    dec, done, breaks = StreamDecoder(errors), 0, breaks or LineBreaks()
    for chunk in chunks:
        done += len(chunk)
        text = breaks.feed(dec.decode(chunk))
        del chunk
        yield done, text
        del text
    yield done, breaks.feed(dec.decode(b"", final=True), final=True)


class _Pieces:
    """Re-iterable int32 id pieces of the source (a fresh hashed read each time)."""

    def __init__(self, src: Sources, errors: str, encode, progress: bool, total: int):
        self.src, self.errors, self.encode, self.progress, self.total = src, errors, encode, progress, total
        self.sha = None

    def __call__(self):
        return self

    def __iter__(self):
        chunks = _Hashed(self.src)
        done = 0
        with _bar(self.total, "encoding", self.progress) as bar:
            for end, text in _decoded(chunks, self.errors):
                for i in range(0, len(text), _ENCODE_CHARS):
                    yield self.encode(text[i : i + _ENCODE_CHARS])
                bar.update(end - done)
                done = end
                del text  # before the next piece is decoded
        self.sha = chunks.sha


_ENCODE_CHARS = 1 << 18  # code points encoded at a time (1 MB of ids)


def _encode_chars(src: Sources, errors: str, progress: bool, breaks: LineBreaks):
    """Vocabulary pass, then a lazy encoding pass: only one chunk of the input is held at a
    time. Returns (vocab, n_chars, n_tokens, pieces) where pieces() iterates over the
    int32 id pieces (reading the input afresh on each call; ``pieces().sha`` is the sha256
    of what the last full iteration read)."""
    seen, n_chars, done = None, 0, 0
    with _bar(src.size, "vocabulary", progress) as bar:
        for end, text in _decoded(src.chunks(), errors, breaks):
            for i in range(0, len(text), _ENCODE_CHARS):  # no copy of the whole piece
                seen = seen_codepoints(text[i : i + _ENCODE_CHARS], seen)
            n_chars += len(text)
            bar.update(end - done)
            done = end
            del text  # before the next piece is decoded
    if n_chars == 0:
        raise CorpusError("the corpus is empty")
    vocab = char_vocab(np.flatnonzero(seen))
    return vocab, n_chars, n_chars, _Pieces(src, errors, vocab.encode, progress, src.size)


def _encode_words(src: Sources, max_vocab, errors: str, progress: bool, breaks: LineBreaks):
    """Word level holds the decoded text and its ids in memory, tokenising in pieces."""
    chunks = _Hashed(src)
    text = "".join(text for _, text in _decoded(chunks, errors, breaks))
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
    n_chars = len(text)
    del text
    ids = _IdList(ids)
    ids.sha = chunks.sha
    return vocab, n_chars, sum(map(len, ids)), lambda: ids


class _IdList(list):
    sha: str | None = None  # the sha256 of the input the ids were encoded from


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
        tokens = _map_tokens(base + ".tokens.int32", n_tokens)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    crlf = info.get("crlf", 0)
    return Corpus(tokens=tokens, vocab=vocab, sha256=meta["sha256"], n_chars=n_chars,
                  crlf=crlf if isinstance(crlf, int) else 0)


def _ids_in_range(path: str, n_vocab: int, chunk: int = 1 << 20) -> bool:
    """Whether every id in the token file is in [0, n_vocab). Read in 4 MB pieces, not
    through the memmap training uses: scanning that would make the whole array resident in
    the training process (4 bytes per token: 800 MB for a 200 MB corpus)."""
    buf = np.empty(chunk, dtype="<i4")
    with open(path, "rb") as f:
        while n := f.readinto(memoryview(buf).cast("B")) // 4:
            ids = buf[:n]
            if int(ids.min()) < 0 or int(ids.max()) >= n_vocab:
                return False
    return True


def _map_tokens(path: str, n_tokens: int) -> np.memmap:
    """The token file memory-mapped read-only, set up so that training's scattered reads make
    only the pages they touch resident.

    Training reads B small runs far apart (and validation one run of at most 4 MB), but the
    kernel maps a whole page-cache folio per fault, and the folios left by writing or reading
    the file are large (1 MB and more on ext4 with recent kernels): 32 streams would make
    32 MB of tokens resident to read 32 x 400 bytes. So the file's (clean: it was fsynced)
    page cache is dropped and the mapping marked random-access, after which a fault reads
    and maps single pages. Best effort: without posix_fadvise or madvise it is a plain map.
    """
    if hasattr(os, "posix_fadvise"):
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except OSError:
            pass
    tokens = np.memmap(path, dtype="<i4", mode="r", shape=(n_tokens,))
    mm = getattr(tokens, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_RANDOM"):
        try:
            mm.madvise(mmap.MADV_RANDOM)
        except (OSError, ValueError):
            pass
    return tokens


def _atomic_write(path: str, pieces) -> None:
    """Write the byte ``pieces`` to ``path`` atomically."""
    atomic.write(path, lambda f: [f.write(piece) for piece in pieces])


def _write_cache(base: str, info: dict, pieces):
    """Write the token pieces, then the metadata; return the tokens memmap, or None
    if the cache could not be written (unwritable directory, disk full...)."""
    n_tokens = info["n_tokens"]
    try:
        os.makedirs(os.path.dirname(base), exist_ok=True)
        _atomic_write(base + ".tokens.int32", (memoryview(c.astype("<i4", copy=False)).cast("B") for c in pieces()))
        _atomic_write(base + ".json", [json.dumps(info, ensure_ascii=False).encode("utf-8")])
        return _map_tokens(base + ".tokens.int32", n_tokens)
    except OSError:
        return None
