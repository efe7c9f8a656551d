"""Reading a corpus's inputs: files streamed in chunks, never whole; standard input and pipes
spooled to a temporary file first (they can be read only once, a corpus is read several
times); the cache directory charrnn keeps its spools and token caches in.

Every bad-input case is a one-line CorpusError.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from typing import BinaryIO, Iterator

from charrnn.errors import BadBytes, CorpusError
from charrnn.store import atomic
from charrnn.text.decode import BOM

CHUNK_BYTES = 1 << 22  # bytes read (and decoded) at a time


def open_input(path: str) -> BinaryIO:
    """``open(path, "rb")`` with a one-line CorpusError for a missing or unreadable path."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory") from None
    except PermissionError:
        raise CorpusError(f"{path}: permission denied") from None
    except OSError as err:
        raise CorpusError(f"{path}: {err.strerror or err}") from None


class Sources:
    """The corpus inputs as one byte stream, read from the files in chunks, never whole.

    The stream is the bytes of each path in order with the leading UTF-8 BOM of every file
    after the first one dropped (the first file's BOM is the stream's leading BOM, which
    decoding drops): otherwise a second file's BOM would land mid-text as a U+FEFF token the
    model learns to emit. These are the bytes the corpus sha256 is taken of, exactly as when
    the inputs were read into memory whole; ``locate`` turns an offset into them into the file
    and the offset within it that an error message gives.

    Every path is opened once up front, in order, so a missing or unreadable one is reported
    before anything is read. Standard input ("-"), and any input that is not a regular file
    (a named pipe, ``<(...)``), is spooled in chunks to a temporary file in
    ``spool_dir`` (or tempfile's default directory if that is None or unusable), then read
    like the others; ``close()`` (or leaving the ``with`` block) removes it.
    """

    def __init__(self, paths: list[str], stdin: BinaryIO | None = None, spool_dir: str | None = None):
        self.paths: list[str] = []  # what is read: the given paths, stdin replaced by its spool file
        self.names: list[str] = []  # as given, for error messages
        self._spooled: list[str] = []
        self._data: bytes | None = None
        self.size = 0  # bytes in the files (a BOM dropped later still counts): for progress bars
        try:
            for path in paths:
                if path == "-":
                    stream = stdin if stdin is not None else sys.stdin.buffer
                    real = self._spool(stream, spool_dir)
                else:
                    real = path
                    with open_input(path) as f:
                        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a pipe, <(...): it reads once
                            real = self._spool(f, spool_dir)
                with open_input(real) as f:
                    self.size += os.fstat(f.fileno()).st_size
                self.paths.append(real)
                self.names.append(path)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_bytes(cls, data: bytes) -> "Sources":
        """A source holding ``data`` itself (already one stream: no BOM is dropped)."""
        self = cls([])
        self._data, self.size = data, len(data)
        return self

    def _spool(self, stream: BinaryIO, spool_dir: str | None) -> str:
        f = None
        if spool_dir is not None:
            try:
                os.makedirs(spool_dir, exist_ok=True)
                f = tempfile.NamedTemporaryFile(dir=spool_dir, prefix=".tmp-stdin-", suffix=".part", delete=False)
            except OSError:
                f = None
        if f is None:
            f = tempfile.NamedTemporaryFile(prefix=".tmp-charrnn-stdin-", suffix=".part", delete=False)
        self._spooled.append(f.name)
        with f:
            while piece := stream.read(CHUNK_BYTES):
                f.write(piece)
                if len(piece) < CHUNK_BYTES:  # a buffered read came back short: the end, and on a
                    break                     # terminal, one more read would wait for a second Ctrl-D
        return f.name

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        """The stream in pieces of at most ``size`` bytes (default CHUNK_BYTES), afresh on
        each call; pieces are cut anywhere, even inside a UTF-8 sequence."""
        size = size or CHUNK_BYTES
        if size < len(BOM):
            raise ValueError("size must be at least 3")
        if self._data is not None:
            for i in range(0, len(self._data), size):
                yield self._data[i : i + size]
            return
        for i, (path, name) in enumerate(zip(self.paths, self.names)):
            with open_input(path) as f:
                try:
                    piece = f.read(size)  # a full piece unless the file ends (regular file)
                    if i > 0 and piece.startswith(BOM):
                        piece = piece[len(BOM):] or f.read(size)
                    while piece:
                        yield piece
                        piece = f.read(size)
                except OSError as err:
                    raise CorpusError(f"{name}: {err.strerror or err}") from None

    def locate(self, err: BadBytes) -> BadBytes:
        """``err``, whose offset counts the stream's bytes, as the file and offset it lies in
        (the first file's name is given too, so every message names its file)."""
        if self._data is not None or not self.paths:
            return err
        start = 0
        for i, (path, name) in enumerate(zip(self.paths, self.names)):
            size = os.stat(path).st_size
            dropped = 0
            if i > 0:
                with open(path, "rb") as f:
                    dropped = len(BOM) if f.read(len(BOM)) == BOM else 0
            if err.offset < start + size - dropped or i == len(self.paths) - 1:
                return err.at("<stdin>" if name == "-" else name, err.offset - start + dropped)
            start += size - dropped
        return err

    def read(self) -> bytes:
        """The whole stream in memory (for scoring a text, not for training corpora)."""
        if self._data is not None:
            return self._data
        return b"".join(self.chunks())

    def close(self) -> None:
        """Remove the spooled copy of standard input, if any (idempotent)."""
        while self._spooled:
            atomic.remove_quietly(self._spooled.pop())

    def __enter__(self) -> "Sources":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_cache_dir() -> str:
    """$CHARRNN_CACHE_DIR, else $XDG_CACHE_HOME/charrnn, else ~/.cache/charrnn."""
    if os.environ.get("CHARRNN_CACHE_DIR"):
        return os.environ["CHARRNN_CACHE_DIR"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "charrnn")
    return os.path.join(os.path.expanduser("~"), ".cache", "charrnn")
