"""Which checkpoints are served under which names, and reloading one when training replaces it.

A model's id is its run's name: ``checkpoints/notes`` (a run directory, served from its best
checkpoint) and ``checkpoints/notes/step-0000200.ckpt`` are both "notes"; a checkpoint outside
a run directory is named by its file's stem; NAME=PATH names one explicitly.

With --watch each model's file is looked at once a second (a run directory's best, which may
become another file). Training saves by atomic rename, so a changed file is a whole new one:
it is loaded beside the old, new requests go to it, and the requests already running finish
on the weights they started with (their engine retires when they are done).
"""
import os
import re
from dataclasses import dataclass

from charrnn.errors import CheckpointError, UsageError
from charrnn.serve.engine import Engine
from charrnn.checkpoint import find, schema
from charrnn.store import rundir

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Source:
    """A model to serve: its name, and the run directory or checkpoint file it comes from."""

    name: str
    path: str

    def checkpoint_path(self) -> str:
        """The file to load now: the run's best (else latest), or the file itself."""
        return find.resolve(self.path, ".", kind=None)


def sources(args: list[str], checkpoint_dir: str) -> list[Source]:
    """Sources for the command line's CHECKPOINT_OR_RUN arguments (NAME=PATH names one); none:
    the run under ``checkpoint_dir`` trained last. UsageError when two would share a name."""
    if not args:
        found = find.resolve(None, checkpoint_dir)  # the newest run's best language model
        run = os.path.dirname(found)
        return [Source(os.path.basename(run), run)]
    out = []
    for arg in args:
        name, sep, path = arg.partition("=")
        if not (sep and NAME.fullmatch(name) and not os.path.exists(arg)):
            name, path = _name_of(arg), arg
        if not os.path.exists(path):
            raise CheckpointError(f"{path}: no such checkpoint or run directory")
        out.append(Source(name, path))
    seen = {}
    for s in out:
        if s.name in seen:
            raise UsageError(f"two models would be named {s.name!r} ({seen[s.name]} and {s.path}); "
                             f"name one with NAME=PATH")
        seen[s.name] = s.path
    return out


def _name_of(path):
    path = os.path.normpath(path)
    if os.path.isdir(path):
        return os.path.basename(os.path.abspath(path))
    parent = os.path.dirname(os.path.abspath(path))
    if any(os.path.isfile(os.path.join(parent, n)) for n in (rundir.LATEST_NAME, rundir.BEST_NAME)):
        return os.path.basename(parent)  # a file of a run directory: the run's name
    return os.path.splitext(os.path.basename(path))[0]


def stamp(path: str) -> tuple:
    """What changes when a file is replaced: its path (a run's best may move), inode, time, size."""
    st = os.stat(path)
    return path, st.st_ino, st.st_mtime_ns, st.st_size


class Served:
    """One model as served: its Source, the checkpoint loaded, the file's stamp, and its Engine."""

    def __init__(self, source: Source, slots: int, block_limit: int, log):
        path = source.checkpoint_path()
        stamp_before = stamp(path)
        ck = schema.load(path, kind="lm")
        if ck.cfg.bidirectional:
            raise CheckpointError(f"{path}: a bidirectional model reads whole texts both ways; it cannot generate text")
        self.source, self.path, self.checkpoint, self.stamp = source, path, ck, stamp_before
        self.engine = Engine(ck, slots, source.name, block_limit, log)

    @property
    def name(self) -> str:
        return self.source.name

    def describe(self) -> dict:
        """The model as GET /v1/models lists it; "charrnn" holds what the playground shows."""
        ck = self.checkpoint
        c = ck.cfg
        return {"id": self.name, "object": "model", "created": int(ck.saved_at or self.stamp[2] // 10 ** 9),
                "owned_by": "charrnn",
                "charrnn": {"path": self.path, "step": ck.step, "val_loss": ck.metrics.get("val_loss"),
                            "cell": c.cell, "layers": c.layers, "hidden": c.hidden, "vocab_size": c.vocab_size,
                            "level": ck.vocab.level}}


class Registry:
    """The models served, by name."""

    def __init__(self, srcs: list[Source], slots: int = 16, block_limit: int = 0, log=None):
        self.slots, self.block_limit, self.log = slots, block_limit, log or (lambda line: None)
        self._served = {}
        for s in srcs:
            self._served[s.name] = Served(s, slots, block_limit, self.log)
        self._tried = {}  # name -> the stamp of a file that would not load, not tried again
        self._retired = []  # engines replaced by a reload, finishing the requests they had

    def get(self, name: str) -> Served | None:
        return self._served.get(name)

    def all(self) -> list[Served]:
        return list(self._served.values())

    def reload_changed(self) -> list[str]:
        """Load every model whose file changed (blocking: call it off the event loop); the names
        reloaded. One that fails to load keeps serving the old file, and says why once."""
        done = []
        for name, old in list(self._served.items()):
            try:
                now = stamp(old.source.checkpoint_path())
            except (OSError, CheckpointError):
                continue  # between a run's files, or gone for now: the model served stays
            if now == old.stamp or now == self._tried.get(name):
                continue
            try:
                new = Served(old.source, self.slots, self.block_limit, self.log)
            except (OSError, CheckpointError) as e:
                self._tried[name] = now
                self.log(f"{name}: keeping the model served; the new file does not load: {e}")
                continue
            self._served[name] = new
            old.engine.retire()  # its open requests finish on the weights they began with
            self._retired = [e for e in self._retired if e.open_streams] + [old.engine]
            loss = new.checkpoint.metrics.get("val_loss")
            self.log(f"reloaded {name}: step {new.checkpoint.step}"
                     + (f", validation loss {loss:.4f}" if loss is not None else "") + f" ({new.path})")
            done.append(name)
        return done

    def close(self) -> int:
        """End every open stream of every model now (the server is stopping); how many there were."""
        n = 0
        for engine in [s.engine for s in self._served.values()] + self._retired:
            n += engine.open_streams
            engine.close()
        return n
