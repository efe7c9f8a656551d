"""Atomic file writes, the one way charrnn writes a file: a temp file in the same directory,
flush, fsync, os.replace, fsync the directory.

A crash at any moment leaves either the old file or the new one under the final name, never
a partial one; a temp file left by a crash is named ``.tmp-<name>-<random><suffix>``
(suffix ".part", or ".ckpt.part" for checkpoints, which a trainer cleans up: is_temp).
"""
import contextlib
import os
import secrets
from typing import BinaryIO, Callable


PREFIX = ".tmp-"


def temp_path(path: str, suffix: str = ".part") -> str:
    """A fresh temp file name beside ``path`` (the name cut to 100 characters: never too long)."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(head, f"{PREFIX}{tail[:100]}-{secrets.token_hex(6)}{suffix}")


def is_temp(name: str, suffix: str = ".part") -> bool:
    """Whether a file name is one of temp_path's (with this suffix)."""
    return name.startswith(PREFIX) and name.endswith(suffix)


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def fsync_directory(directory: str) -> None:
    """Make a rename durable; best effort, as some platforms cannot fsync a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write(path: str, fill: Callable[[BinaryIO], None], suffix: str = ".part") -> None:
    """Write ``path`` atomically; ``fill(f)`` writes the content to a binary file. Permissions
    follow the umask."""
    tmp = temp_path(path, suffix)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_directory(os.path.dirname(os.path.abspath(path)))
