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
    steps_per_epoch            steps in one pass over the training data
    eval_every                 steps between validations (and checkpoints)
    fresh_loss                 a fresh model's loss, ln(outputs), for the divergence message
    threads                    threads the optimizer may use
    with task:                 holds what a run needs open (worker processes)
    step(step) -> (loss, grads, tokens)   one batch, parameters untouched; may raise StepFailed
    advance()                  after the update (the language model carries its state)
    evaluate() -> (metrics, loss)   {"val_loss": …, ...} (empty without validation data), and a
                               loss in nats the loop checks is not absurd (or None)
    judge(metrics) -> bool     whether these metrics are the run's best (and remember them)
    checkpoint(step, metrics) -> store.schema.Checkpoint
    preview(step) -> str | None    a short sample for the reporter
    info() -> dict             for reporter.start
    summary() -> dict          the best metrics, for reporter.finish
"""
import json
import math
import time
from dataclasses import dataclass

import numpy as np

from charrnn import blas
from charrnn.core import optim
from charrnn.errors import CharrnnError
from charrnn.store import schema

SMOOTHING = 0.98  # the shown training loss: an exponential moving average of the steps' losses


class Diverged(CharrnnError):
    """The loss or the gradient norm became NaN, infinite or absurd."""


class StepFailed(CharrnnError):
    """A step could not be computed (a worker died) and the parameters are untouched: the loop
    saves the steps done, then stops with this message."""


@dataclass
class Stop:
    """Set by a signal handler (signum) or a library callback (requested); the loop finishes
    its step, saves and returns."""

    signum: int = 0
    requested: bool = False

    def __bool__(self):
        return bool(self.signum or self.requested)


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


class Loop:
    """Run ``task`` under the recipe ``cfg`` (a TrainConfig or ClassifyConfig), saving into
    ``rundir`` (a store.rundir.RunDir)."""

    def __init__(self, task, cfg, rundir, reporter=None, log=None, stop=None):
        self.task, self.cfg, self.rundir = task, cfg, rundir
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

    def run(self):
        # one BLAS thread per worker (the command line pins it before numpy loads; a library
        # caller's numpy may run several), and non-finite values are checked for explicitly
        with blas.threads(1), self.task, np.errstate(all="ignore"):
            return self._run()

    def _run(self):
        task, cfg, rep = self.task, self.cfg, self.reporter
        rep.start({**task.info(), "step": self.step, "max_steps": self.max_steps, "max_seconds": self.max_seconds,
                   "run_dir": str(self.rundir.path)})
        t0 = last_t = time.perf_counter()
        rate, smooth, tokens = 0.0, None, 0
        last_saved = self.step if self.step > 0 else -1
        while self.step < self.max_steps and not self.stop:
            elapsed = time.perf_counter() - t0
            if elapsed >= self.max_seconds:
                break
            try:
                loss, grads, n = task.step(self.step)
            except StepFailed as e:  # the parameters are untouched: keep the steps done
                if self.step != last_saved and self.step > 0:
                    self.save(smooth)
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
            tokens += n
            smooth = loss if smooth is None else SMOOTHING * smooth + (1 - SMOOTHING) * loss
            now = time.perf_counter()
            if now - last_t >= 0.5 or rate == 0.0:  # tokens/s over the last half second or more
                rate, last_t, tokens = tokens / max(now - last_t, 1e-9), now, 0
            m = {"step": self.step, "epoch": self.step / task.steps_per_epoch, "loss": loss, "smooth_loss": smooth,
                 "grad_norm": norm, "clipped": clipped, "lr": lr, "chars_per_s": rate,
                 "elapsed": now - t0, "eta": self.eta(rate, n, now - t0)}
            if clipped:
                rep.clip(self.step, norm, cfg.clip)
            rep.step(m)
            self.write_log({"event": "step", **{k: v for k, v in m.items() if k != "eta"}})
            if self.step % task.eval_every == 0:
                self.save(smooth)
                last_saved = self.step
        if self.step != last_saved and self.step > 0:
            self.save(smooth)
        summary = {"step": self.step, **task.summary(), "elapsed": time.perf_counter() - t0,
                   "interrupted": self.stop.signum, "latest": self.rundir.latest_path()}
        rep.finish(summary)
        return summary

    def eta(self, rate, tokens_per_step, elapsed):
        left = []
        if math.isfinite(self.max_steps) and rate > 0:
            left.append((self.max_steps - self.step) * tokens_per_step / rate)
        if math.isfinite(self.max_seconds):
            left.append(self.max_seconds - elapsed)
        return max(0.0, min(left)) if left else None

    def save(self, train_loss):
        """Validate, checkpoint (the best too, when it is), report, and show a preview."""
        task = self.task
        bad = next((k for k, v in task.params.items() if not np.isfinite(v).all()), None)
        if bad is not None:  # the update after a finite loss can still overflow
            raise diverged(self.step, f"parameter {bad} is not finite")
        metrics, check = task.evaluate()
        val = metrics.get("val_loss")
        if check is not None and not check <= self.loss_ceiling:
            raise diverged(self.step, f"the {'validation ' if val is not None else ''}loss is {check:.4g} nats")
        is_best = task.judge(metrics, train_loss)
        ck = task.checkpoint(self.step, metrics, train_loss)
        ck.saved_at = time.time()
        arrays, meta = schema.pack(ck)
        path = self.rundir.write(arrays, meta, step=self.step, val_loss=val, is_best=is_best)
        m = {"step": self.step, **{k: v for k, v in metrics.items()}, "best": is_best, **task.summary(),
             "path": path}
        self.reporter.evaluate(m)
        self.write_log({"event": "eval", **m})
        text = task.preview(self.step)
        if text is not None:
            self.reporter.sample(self.step, text)

    def write_log(self, record):
        self.log = write_log(self.log, record, self.reporter)


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


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
