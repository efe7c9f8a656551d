"""The one training loop, shared by the language model and the sequence classifier.

What differs between them is a task (training/lm.py, training/classify.py): what one step
computes, what a validation reports, what a checkpoint holds. The loop does everything else:
the step, epoch and time limits, per-element and global-norm clipping, divergence, the
learning-rate schedule, the running mean of the loss, speed and ETA, the reporter, --log,
checkpoints, and stopping at a step boundary on a signal.

No click, no rich: progress goes to a reporter object (ui/progress.py implements it), so the
loop can be driven and tested without a terminal.

A task provides:
    params, opt, opt_state     the parameters and the optimizer the loop updates in place
    start_step                 the step to start from (a resumed run's)
    start_elapsed              the run's clock at start_step, seconds (a resumed run's: --minutes
                               counts the whole run's time, not each sitting's)
    steps_per_epoch            steps in one pass over the training data
    eval_every                 steps between validations (and checkpoints)
    fresh_loss                 a fresh model's loss, ln(outputs), for the divergence message
    threads                    threads the optimizer may use
    with task:                 holds what a run needs open (worker processes)
    step(step) -> (loss, grads, tokens)   one batch, parameters untouched; may raise StepFailed
    advance()                  after the update (the language model carries its state)
    eval_by_time               in a time-limited run, validate after each fifth of it, and every
                               eval_every steps only while saves take a tenth of the time (bool)
    evaluate() -> (metrics, loss)   {"val_loss": …, ...} (empty without validation data), and a
                               loss in nats the loop checks is not absurd (or None)
    judge(metrics) -> bool     whether these metrics are the run's best (and remember them)
    checkpoint(step, metrics, train_loss) -> store.schema.Checkpoint
    preview(step) -> str | None    a short sample for the reporter
    info() -> dict             for reporter.start
    summary() -> dict          the best metrics, for reporter.finish
"""
import collections
import contextlib
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from charrnn import blas
from charrnn.core import optim
from charrnn.errors import CharrnnError
from charrnn.checkpoint import schema

MEAN_OF = 20  # the training loss shown beside each step's own: the mean of the last MEAN_OF steps
EVALS_PER_RUN = 5  # a time-limited run that lets time decide validates at least this often
SAVE_SHARE = 0.1  # and spends at most this share of its time validating and saving, the fifths aside


class Diverged(CharrnnError):
    """The loss or the gradient norm became NaN, infinite or absurd."""


class StepFailed(CharrnnError):
    """A step could not be computed (a worker died) and the parameters are untouched: the loop
    saves the steps done, then stops with this message."""


@dataclass
class Stop:
    """How a run is asked to end early. A signal handler sets ``signum`` (the loop finishes
    its step, saves at once without validating, and returns); a library callback sets
    ``requested`` (the same, with the usual validation). ``interruptible`` is True while a
    step or a validation runs: only then may a second Ctrl-C abandon it (the handler raises
    KeyboardInterrupt; the steps done are saved). Never during an update or a save."""

    signum: int = 0
    requested: bool = False
    interruptible: bool = False

    def __bool__(self):
        return bool(self.signum or self.requested)


@contextlib.contextmanager
def _interruptible(stop):
    stop.interruptible = True
    try:
        yield
    finally:
        stop.interruptible = False


class NullReporter:
    """What the loop tells its reporter (ui/progress.py draws it); this one ignores it all."""

    def start(self, info): pass
    def step(self, m): pass
    def clip(self, step, norm, limit): pass
    def evaluate(self, m): pass
    def sample(self, step, text): pass
    def message(self, text): pass
    def finish(self, summary): pass


def diverged(step, what):
    return Diverged(f"training diverged at step {step}: {what}; the last good checkpoint is kept "
                    f"(try a lower --lr or a smaller --clip)")


class Meter:
    """Speed and the running loss, over training time only: validation, checkpoints and
    previews do not count toward chars/s, and the ETA adds their measured cost apart."""

    def __init__(self):
        self.losses = collections.deque(maxlen=MEAN_OF)
        self.train_seconds = 0.0  # time inside steps and updates
        self.rate, self._tokens, self._since = 0.0, 0, 0.0
        self.save_seconds = 0.0  # the last save's cost (validation, writing, preview)

    def add(self, loss, tokens, seconds):
        self.losses.append(loss)
        self.train_seconds += seconds
        self._tokens += tokens
        self._since += seconds
        if self._since >= 0.5 or self.rate == 0.0:  # tokens/s over the last half second of training or more
            self.rate, self._tokens, self._since = self._tokens / max(self._since, 1e-9), 0, 0.0

    @property
    def mean(self):
        return sum(self.losses) / len(self.losses) if self.losses else None


class Loop:
    """Run ``task`` under the recipe ``cfg`` (a TrainConfig or ClassifyConfig), saving into
    ``rundir`` (a store.rundir.RunDir). Under MPI (``world``, training/distributed.py) every
    rank runs the loop and the ranks agree each step on what the clock and signals decide;
    only rank 0 validates, saves and reports."""

    def __init__(self, task, cfg, rundir, reporter=None, log=None, stop=None, world=None):
        self.task, self.cfg, self.rundir, self.world = task, cfg, rundir, world
        self.primary = world is None or world.primary
        self.reporter = reporter if reporter is not None else NullReporter()
        self.log, self.stop = log, (stop if stop is not None else Stop())
        self.step = task.start_step
        steps, epochs, minutes = cfg.limits
        limit = math.inf if steps is None else steps
        if epochs is not None and math.isfinite(epochs * task.steps_per_epoch):  # --epochs 1e307: no limit
            limit = min(limit, math.ceil(epochs * task.steps_per_epoch))
        self.max_steps, self.max_seconds = limit, (math.inf if minutes is None else minutes * 60)
        # a fresh model scores ln V per token; a hundred times that only comes from blowing up
        self.loss_ceiling = 100 * max(1.0, task.fresh_loss)
        self.meter = Meter()

    def run(self):
        # one BLAS thread per worker (the command line pins it before numpy loads; a library
        # caller's numpy may run several), and non-finite values are checked for explicitly
        with blas.threads(1), self.task, np.errstate(all="ignore"):
            return self._run()

    def _run(self):
        task, rep = self.task, self.reporter
        rep.start({**task.info(), "step": self.step, "max_steps": self.max_steps, "max_seconds": self.max_seconds,
                   "run_dir": str(self.rundir.path)})
        last_save = time.perf_counter()
        self.t0 = last_save - task.start_elapsed  # the run's clock goes on from where it stopped
        last_saved = self.step if self.step > 0 else -1
        watchdog = self.world.start_watchdog() if self.world is not None else None
        while self.step < self.max_steps and not self.stopped():
            started = time.perf_counter()
            if not self.train_step(self.elapsed):
                break  # a second Ctrl-C abandoned the step
            if watchdog is not None:
                watchdog.kick(time.perf_counter() - started)
            if self.due(last_save):
                self.save()
                last_saved, last_save = self.step, time.perf_counter()
                if watchdog is not None:
                    watchdog.kick(last_save - started)
        if self.step != last_saved and self.step > 0:
            self.save(validate=not self.stop.signum)  # after a signal: the steps first, at once
        if watchdog is not None:
            watchdog.stop()
        summary = {"step": self.step, **task.summary(), "elapsed": time.perf_counter() - self.t0,
                   "interrupted": self.stop.signum, "latest": self.rundir.latest_path()}
        rep.finish(summary)
        return summary

    def stopped(self):
        """Stop before the next step? A signal, a callback, or the time limit. Sets
        self.elapsed, the run's time so far, which the schedule reads. Under MPI: any rank's
        signal, and rank 0's clock (so every rank takes the same learning rate), agreed."""
        self.elapsed = time.perf_counter() - self.t0 if self.primary else 0.0
        if self.world is not None:
            signum, requested, micros = self.world.agree([self.stop.signum, self.stop.requested,
                                                          round(self.elapsed * 1e6)])
            self.stop.signum, self.stop.requested, self.elapsed = int(signum), bool(requested), micros / 1e6
        return bool(self.stop) or self.elapsed >= self.max_seconds

    def train_step(self, elapsed):
        """One step: loss and gradients, clipping, the update, the report. False when a second
        Ctrl-C abandoned it (the parameters are untouched)."""
        task, cfg, rep, meter = self.task, self.cfg, self.reporter, self.meter
        started = time.perf_counter()
        try:
            # under MPI a step holds collectives: abandoning it on one rank would part the ranks
            with _interruptible(self.stop) if self.world is None else contextlib.nullcontext():
                loss, grads, n = task.step(self.step)
        except KeyboardInterrupt:
            return False
        except StepFailed as e:  # the parameters are untouched: keep the steps done
            if self.step > 0:
                self.save(validate=False)
            where = f"at step {self.step}, which is saved" if self.step > 0 else "before its first step"
            raise StepFailed(f"{e}; training stopped {where}") from None
        if cfg.clip_value > 0:
            optim.clip_values(grads, cfg.clip_value)
        norm, clipped = optim.clip_global_norm(grads, cfg.clip)
        if not math.isfinite(norm) or not loss <= self.loss_ceiling:
            what = f"the gradient norm is {norm}" if math.isfinite(loss) and loss <= self.loss_ceiling \
                else f"the loss is {loss:.4g} nats (a fresh model's is {task.fresh_loss:.2f})"
            raise diverged(self.step + 1, what)
        progress = max(self.step / self.max_steps if math.isfinite(self.max_steps) else 0.0,
                       elapsed / self.max_seconds if math.isfinite(self.max_seconds) else 0.0)
        lr = optim.learning_rate(cfg.lr, cfg.lr_schedule, progress, self.step, cfg.warmup)
        task.opt.step(task.params, grads, task.opt_state, lr, workers=task.threads)
        task.advance()
        self.step += 1
        now = time.perf_counter()
        meter.add(loss, n, now - started)
        m = {"step": self.step, "epoch": self.step / task.steps_per_epoch, "loss": loss, "mean_loss": meter.mean,
             "grad_norm": norm, "clipped": clipped, "lr": lr, "chars_per_s": meter.rate,
             "elapsed": now - self.t0, "eta": self.eta(now - self.t0)}
        if clipped:
            rep.clip(self.step, norm, cfg.clip)
        rep.step(m)
        self.write_log({"event": "step", **{k: v for k, v in m.items() if k != "eta"}})
        return True

    def due(self, last_save):
        """Validate and save now? Every eval_every steps. A task that lets the time budget decide
        (eval_by_time) in a time-limited run: every eval_every steps while the saves take at most
        SAVE_SHARE of the time (a long validation of a large corpus waits), and after a fifth of
        the run at the latest (by rank 0's clock, under MPI)."""
        by_steps = self.step % self.task.eval_every == 0
        if not (self.task.eval_by_time and math.isfinite(self.max_seconds)):
            return by_steps
        since = time.perf_counter() - last_save
        due = self.primary and ((by_steps and since * SAVE_SHARE >= (1 - SAVE_SHARE) * self.meter.save_seconds)
                                or since >= self.max_seconds / EVALS_PER_RUN)
        return bool(self.world.agree([due])[0]) if self.world is not None else due

    def eta(self, elapsed):
        """Seconds left: by the step limit, from the training speed plus the saves still to come
        at the last one's cost; by the time limit, what is left of it."""
        left, m, done = [], self.meter, self.step - self.task.start_step
        if math.isfinite(self.max_steps) and done > 0:
            steps_left = self.max_steps - self.step
            saves_left = steps_left // self.task.eval_every + 1
            left.append(steps_left * m.train_seconds / done + saves_left * m.save_seconds)
        if math.isfinite(self.max_seconds):
            left.append(self.max_seconds - elapsed)
        return max(0.0, min(left)) if left else None

    def save(self, validate=True):
        """Validate (unless told not to, or a second Ctrl-C cuts it short), checkpoint (the best
        too, when it is), report, and show a preview. Rank 0's alone, under MPI: the other ranks
        wait for it to finish (distributed.World.saved), so their watchdogs can tell a long save
        from a lost rank."""
        if not self.primary:
            self.world.saved()
            return
        task, started = self.task, time.perf_counter()
        if self.world is not None and self.world.watchdog is not None:
            self.world.watchdog.saving = True  # its own save may validate for minutes, as the others wait
        bad = next((k for k, v in task.params.items() if not np.isfinite(v).all()), None)
        if bad is not None:  # the update after a finite loss can still overflow
            raise diverged(self.step, f"parameter {bad} is not finite")
        metrics, check = {}, None
        if validate:
            try:
                with _interruptible(self.stop):
                    metrics, check = task.evaluate()
            except KeyboardInterrupt:  # the steps matter more than their score: save them unscored
                metrics, check, validate = {}, None, False
        val = metrics.get("val_loss")
        if check is not None and not check <= self.loss_ceiling:
            raise diverged(self.step, f"the {'validation ' if val is not None else ''}loss is {check:.4g} nats")
        is_best = task.judge(metrics)
        ck = task.checkpoint(self.step, metrics, self.meter.mean)
        ck.saved_at, ck.elapsed = time.time(), time.perf_counter() - self.t0
        arrays, meta = schema.pack(ck)
        path = self.rundir.write(arrays, meta, step=self.step, val_loss=val, is_best=is_best)
        m = {"step": self.step, **metrics, "best": is_best, **task.summary(), "path": path}
        if validate:
            self.reporter.evaluate(m)
        self.write_log({"event": "eval" if validate else "save", **m})
        text = task.preview(self.step) if validate else None
        if text is not None:
            self.reporter.sample(self.step, text)
        self.meter.save_seconds = time.perf_counter() - started
        if self.world is not None:
            self.world.saved(self.meter.save_seconds)

    def write_log(self, record):
        self.log = write_log(self.log, record, self.reporter)


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


class LogFile:
    """--log FILE (JSON lines, appended), opened at its first line: a run refused before it
    starts leaves no file behind. A path that cannot be written is refused at once."""

    def __init__(self, path):
        self.path, self.file = os.fspath(path), None
        where = os.path.dirname(os.path.abspath(self.path))
        problem = ("is a directory" if os.path.isdir(self.path) else "no such directory" if not os.path.isdir(where)
                   else "permission denied" if not os.access(self.path if os.path.exists(self.path) else where, os.W_OK)
                   else None)
        if problem:
            raise CharrnnError(f"--log {self.path}: {problem}")

    def write(self, text):
        if self.file is None:
            self.file = open(self.path, "a", encoding="utf-8")
        self.file.write(text)

    def flush(self):
        if self.file is not None:
            self.file.flush()

    def close(self):
        if self.file is not None:
            self.file.close()


def write_log(log, record, reporter):
    """One JSON line of --log (nothing without a log file), flushed so a reader sees it at once.
    Returns the log, or None once it cannot be written (a full disk, a closed pipe): the run
    goes on without it, after one warning."""
    if log is not None:
        try:
            log.write(json.dumps(record, allow_nan=False, default=_finite) + "\n")
            log.flush()
        except OSError as e:
            reporter.message(f"warning: --log: {e.strerror or e}; training goes on without it")
            return None
    return log
