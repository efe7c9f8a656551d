"""Run directories: where one training run keeps its checkpoints, and which file a command reads.

A run directory ``<checkpoint_dir>/<name>/`` holds ``latest.ckpt``, ``best.ckpt``, the last
few ``step-NNNNNNN-val-X.XXXX.ckpt`` and a ``.lock`` file that the training process holds
with ``flock``. Each file is written by store/container.py, atomically; latest.ckpt is
replaced last, so it commits a save.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import re
from collections.abc import Iterator, Mapping

import numpy as np

from charrnn.store import atomic
from charrnn.store.container import is_temp_name, replicate, save
from charrnn.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - platforms without flock get no locking
    fcntl = None  # type: ignore[assignment]

__all__ = ["BEST_NAME", "LATEST_NAME", "RunDir", "periodic_name", "resolve_checkpoint"]

_PERIODIC = re.compile(r"step-(\d+)(?:-val-(.+))?\.ckpt")

LATEST_NAME = "latest.ckpt"
BEST_NAME = "best.ckpt"
LOCK_NAME = ".lock"


def periodic_name(step: int, val_loss: float | None) -> str:
    """``step-0001234-val-1.2345.ckpt``; ``step-0001234.ckpt`` without a validation loss."""
    if val_loss is None or not math.isfinite(val_loss):
        return f"step-{step:07d}.ckpt"
    return f"step-{step:07d}-val-{val_loss:.4f}.ckpt"


class RunDir:
    """One training run: ``latest.ckpt``, ``best.ckpt``, periodic files and a lock."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._lock_fd: int | None = None
        self._previous: list[str] = []  # a run started over (--force): its files, removed at the first save

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def latest_path(self) -> str | None:
        """``latest.ckpt`` if it exists, else None."""
        latest = os.path.join(self.path, LATEST_NAME)
        return latest if os.path.isfile(latest) else None

    def resume_path(self) -> str | None:
        """Where training continues: ``latest.ckpt``; without it (a crash inside the very first
        save) what that save completed: ``best.ckpt``, else the newest periodic file."""
        best = os.path.join(self.path, BEST_NAME)
        fallback = [best] if os.path.isfile(best) else self.periodic_paths()[-1:]
        return self.latest_path() or next(iter(fallback), None)

    def best_path(self) -> str | None:
        """``best.ckpt`` if it exists, else ``latest.ckpt``, else None."""
        best = os.path.join(self.path, BEST_NAME)
        return best if os.path.isfile(best) else self.latest_path()

    def periodic_paths(self) -> list[str]:
        """The periodic checkpoints, oldest step first."""
        try:
            names = os.listdir(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = [(int(m.group(1)), n) for n in names if (m := _PERIODIC.fullmatch(n))]
        return [os.path.join(self.path, n) for _, n in sorted(found)]

    def start_over(self) -> None:
        """Start the run this directory holds over (train --force): its checkpoints are removed
        at the new run's first save, not before, so a start-over that fails early keeps them."""
        best = os.path.join(self.path, BEST_NAME)
        self._previous = [p for p in [self.latest_path(), best, *self.periodic_paths()] if p and os.path.isfile(p)]

    def write(
        self,
        arrays: Mapping[str, np.ndarray],
        meta: Mapping,
        step: int,
        val_loss: float | None,
        is_best: bool,
        keep: int = 3,
    ) -> str:
        """Write the periodic checkpoint, refresh latest (and best), prune; return its path."""
        step, keep = operator.index(step), operator.index(keep)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._ensure_dir()
        periodic = os.path.join(self.path, periodic_name(step, val_loss))
        best = os.path.join(self.path, BEST_NAME)
        # latest.ckpt last: replacing it commits the save. A crash (or a full disk) before that
        # leaves the previous latest.ckpt, never one whose best checkpoint best.ckpt lacks; the
        # resumed run redoes this save. best.ckpt first, so a periodic file implies it too.
        first = best if is_best else periodic
        save(first, arrays, meta)
        if is_best:
            replicate(best, periodic)
        replicate(first, os.path.join(self.path, LATEST_NAME))
        written = {periodic, os.path.join(self.path, LATEST_NAME), *([best] if is_best else [])}
        for old in self._previous:  # the run this one replaces: not a mix of both runs' files
            if old not in written:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(old)
        self._previous = []
        self._prune(keep, periodic)
        return periodic

    def _ensure_dir(self) -> None:
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(
                f"{self.path}: cannot create run directory: {exc.strerror or exc}"
            ) from exc

    def _prune(self, keep: int, just_written: str) -> None:
        paths = self.periodic_paths()
        older = [p for p in paths if p != just_written]
        for stale in older[: max(0, len(paths) - keep)]:
            try:
                os.remove(stale)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CheckpointError(
                    f"cannot remove old checkpoint {stale}: {exc.strerror or exc}"
                ) from exc

    @contextlib.contextmanager
    def lock(self) -> Iterator[RunDir]:
        """Hold an exclusive flock on ``<dir>/.lock`` (freed when the process dies). A run
        directory left with nothing but the lock (the run failed before its first save) is
        removed on release."""
        lock_path = os.path.join(self.path, LOCK_NAME)
        fd = self._open_locked(lock_path)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._lock_fd = fd
            yield self
        finally:
            self._lock_fd = None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                if os.listdir(self.path) == [LOCK_NAME]:  # a run that failed before its first save
                    os.unlink(lock_path)  # still held: a trainer that opened it sees it gone, retries
                    os.rmdir(self.path)
            os.close(fd)

    def _open_locked(self, lock_path: str) -> int:
        """An fd of ``lock_path``, flocked. A releasing trainer may remove the lock file (and its
        empty directory) between our open and our flock: then the lock we hold is on a file no
        longer there, and we start again."""
        for _ in range(10):
            self._ensure_dir()
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except FileNotFoundError:
                continue  # the directory went away under us
            except OSError as exc:
                raise CheckpointError(f"{lock_path}: cannot open lock file: {exc.strerror}") from exc
            try:
                self._flock(fd)
                held, there = os.fstat(fd), os.stat(lock_path)
                if (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise CheckpointError(f"{self.path}: cannot lock run: its lock file keeps changing")

    def _flock(self, fd: int) -> None:
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            holder = raw if raw.isdigit() else "unknown"
            raise CheckpointError(
                f"{self.path}: another charrnn train is already writing this run "
                f"(lock held by pid {holder})"
            ) from None
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot lock run: {exc.strerror}") from exc

    def clean_stale_temps(self) -> list[str]:
        """Remove leftover ``.tmp-*.ckpt.part`` files; only allowed while holding the lock."""
        if self._lock_fd is None:
            raise RuntimeError("clean_stale_temps() needs the run lock: use `with run.lock():`")
        removed = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                name = entry.name
                if is_temp_name(name):
                    if entry.is_file(follow_symlinks=False):
                        atomic.remove_quietly(entry.path)
                        removed.append(entry.path)
        return sorted(removed)


def resolve_checkpoint(path: str | os.PathLike | None, checkpoint_dir: str | os.PathLike,
                       accept=None, what: str = "checkpoint", hint: str = "charrnn train CORPUS") -> str:
    """A ``.ckpt`` file -> itself; a run directory -> its best (else latest);
    None -> the best of the run under ``checkpoint_dir`` most recently written whose best
    ``accept(path)`` takes (any, without accept: a language model's command skips classifiers)."""
    if path is not None:
        return _resolve_explicit(os.fspath(path))
    checkpoint_dir = os.fspath(checkpoint_dir)
    for run in _runs_newest_first(checkpoint_dir):
        found = run.best_path()
        if found is not None and (accept is None or accept(found)):
            return found
    raise CheckpointError(f"no {what} found under {checkpoint_dir.rstrip('/')}/; train one first: {hint}")


def _resolve_explicit(path: str) -> str:
    if os.path.isdir(path):
        found = RunDir(path).best_path()
        if found is None:
            raise CheckpointError(f"{path}: no best.ckpt or latest.ckpt in this run directory")
        return found
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


def _runs_newest_first(checkpoint_dir: str) -> list[RunDir]:
    """The runs under checkpoint_dir that have a latest checkpoint, most recently written first."""
    candidates = []
    try:
        with os.scandir(checkpoint_dir) as entries:
            for entry in entries:
                if not entry.is_dir():
                    continue
                try:
                    mtime = os.stat(os.path.join(entry.path, LATEST_NAME)).st_mtime_ns
                except OSError:
                    continue
                candidates.append((mtime, entry.name, entry.path))
    except OSError:
        return []
    return [RunDir(p) for _, _, p in sorted(candidates, reverse=True)]
