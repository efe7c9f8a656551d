"""charrnn.train: train a language model from a script, as `charrnn train` does (the same
preparation and loop: training/prepare.py)."""
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from charrnn.api.load import load
from charrnn.api.trained import need_text
from charrnn.config.fields import unknown_names
from charrnn.config.model import ModelConfig
from charrnn.config.recipe import TrainConfig
from charrnn.config.run import RunOptions
from charrnn.errors import CharrnnWarning, UsageError


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
          resume: bool | str | os.PathLike | None = None, **options: Any):
    """Train a language model as `charrnn train` does, and return it (a LanguageModel: its best
    checkpoint).

    ``corpus`` is a path or a list of paths; or give the training text itself as ``text``;
    with neither, the default corpus. ``options`` are `charrnn train`'s, by their Python names,
    with the same defaults and rules: the fields of charrnn.ModelConfig (cell, layers, hidden,
    embed, dropout, ...), charrnn.TrainConfig (steps, minutes, epochs, lr, batch, seq_len, seed,
    threads, ...) and charrnn.RunOptions (checkpoint_dir, name, force, log). ``resume`` is True
    (this run's latest checkpoint) or a checkpoint path. ``callback(record)`` gets every event as
    a dict ({"event": "step", "loss": ..., ...}); returning False from it stops the run, saved.
    ``progress=True`` draws the command's progress on stderr instead. The run lives in
    ``checkpoint_dir/name`` (name: the first file's stem, "text" for ``text``).
    """
    from charrnn.training import prepare
    from charrnn.training.loop import LogFile, Stop

    bad = unknown_names([ModelConfig, TrainConfig, RunOptions], options)
    if bad:
        raise UsageError(f"unknown training option(s) {', '.join(bad)}: see charrnn.ModelConfig, charrnn.TrainConfig "
                         f"and charrnn.RunOptions")
    if corpus is not None and text is not None:
        raise UsageError("give corpus paths or text, not both")
    if text is not None:
        need_text(text, "text")
    if resume is not None and not isinstance(resume, (bool, str, os.PathLike)):
        raise UsageError(f"resume must be True, a checkpoint path or None, not {type(resume).__name__}")
    paths = () if corpus is None else tuple(os.fspath(p) for p in
                                            ([corpus] if isinstance(corpus, (str, os.PathLike)) else corpus))
    run_keys = {"checkpoint_dir", "name", "force", "log"}
    run = {k: (os.fspath(v) if k in ("checkpoint_dir", "log") and v is not None else v)
           for k, v in options.items() if k in run_keys}
    if "name" not in run and text is not None:
        run["name"] = "text"
    run = RunOptions(**run, resume=None if resume in (None, False) else ("" if resume is True else os.fspath(resume)))

    def notify(line):  # warnings as CharrnnWarning; the rest only with progress
        if line.startswith("warning: "):
            warnings.warn(line.removeprefix("warning: "), CharrnnWarning, stacklevel=3)
        elif progress:
            print(line, file=sys.stderr)

    req = prepare.Request({k: v for k, v in options.items() if k not in run_keys}, run, paths,
                          data=None if text is None else text.encode("utf-8"), quiet=not progress)
    p = prepare.prepare(req, notify)
    if p.done:  # nothing to train: the run is at its limit already
        warnings.warn(p.done, CharrnnWarning, stacklevel=2)
        return load(p.run.path)
    stop = Stop()
    if progress:
        from charrnn.ui.progress import make_reporter
        reporter = make_reporter(False)
    else:
        reporter = None if callback is None else _Callback(callback, stop)
    log_file = LogFile(run.log) if run.log else None
    try:
        prepare.run(p, reporter, log_file, stop)
    finally:
        if hasattr(reporter, "close"):
            reporter.close()
        if log_file is not None:
            log_file.close()
    return load(p.run.path)
