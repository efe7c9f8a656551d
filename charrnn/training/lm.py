"""The training loop: stateful truncated BPTT over B streams, evaluation, checkpoints.

No click, no rich: progress goes to a reporter object (display.py implements it), so
the loop can be driven and tested without a terminal. Everything that decides the
numbers (parameters, optimizer state, carried state, RNG, step) is in the checkpoint,
so a resumed run continues bit for bit.
"""
import json
import math
import time
from dataclasses import dataclass

import numpy as np

from charrnn.store import schema
from charrnn.analysis import likelihood
from charrnn.training import workers
from charrnn.core import model, optim
from charrnn.core.sampling import Sampler, start_token
from charrnn.text.corpus import Streams, split_train_val
from charrnn.errors import CharrnnError

MAX_VAL_TOKENS = 1 << 20  # validation reads at most the first 1,048,576 tokens of its split
PREVIEW_CHARS = 200


class Diverged(CharrnnError):
    """The loss or the gradient norm became NaN or infinite."""


@dataclass
class Stop:
    """Set by a signal handler; the loop finishes its step, saves and returns."""

    signum: int = 0


class NullReporter:
    """What the loop tells its reporter (display.py draws it); this one ignores it all."""

    def start(self, info): pass
    def step(self, m): pass
    def clip(self, step, norm, limit): pass
    def evaluate(self, m): pass
    def sample(self, step, text): pass
    def message(self, text): pass
    def finish(self, summary): pass


class Trainer:
    def __init__(self, corpus, mcfg, tcfg, rundir, reporter=None, resume=None, log=None, stop=None, limit=0):
        self.corpus, self.mcfg, self.tcfg, self.rundir = corpus, mcfg, tcfg, rundir
        self.limit = limit  # core/products.py's block limit for this BLAS (blas.product_limit)
        self.reporter = reporter or NullReporter()
        self.log, self.stop = log, stop or Stop()
        train_tok, self.val_tok = split_train_val(corpus.tokens, tcfg.val_frac)
        if len(self.val_tok) == 0:
            self.streams = Streams(train_tok, tcfg.batch, tcfg.seq_len)
        else:
            self.streams = Streams(train_tok, tcfg.batch, tcfg.seq_len,
                                   f"the training part of the corpus (all but the last --val-frac {tcfg.val_frac:g})",
                                   "a smaller --batch or --seq-len or --val-frac")
        self.wpe = self.streams.windows_per_epoch
        rng = np.random.default_rng(tcfg.seed)
        if resume is None:
            self.params = model.init_params(mcfg, rng)
            self.opt = optim.make_optimizer(tcfg.optimizer)
            self.opt_state = self.opt.init_state(self.params)
            self.step, self.best, self.state = 0, math.inf, None
        else:
            self.params = {k: v.astype(np.float32) for k, v in resume.params.items()}
            self.opt = optim.make_optimizer(tcfg.optimizer)
            self.opt_state = resume.opt_state or self.opt.init_state(self.params)
            self.step = resume.step
            best = resume.meta.get("metrics", {}).get("best_val_loss")
            self.best = math.inf if best is None else best
            self.state = resume.state
            rng.bit_generator.state = resume.meta["rng"]
        self.rng = rng
        if self.state is not None and self.state[0][0].shape[0] != tcfg.batch:
            self.state = None  # a different --batch: start the streams afresh
        steps, epochs, minutes = tcfg.limits
        limit = math.inf if steps is None else steps
        if epochs is not None and math.isfinite(epochs * self.wpe):  # --epochs 1e307: no limit
            limit = min(limit, math.ceil(epochs * self.wpe))
        self.max_steps, self.max_seconds = limit, (math.inf if minutes is None else minutes * 60)
        # a fresh model scores ln V per token; a hundred times that only comes from blowing up
        self.loss_ceiling = 100 * max(1.0, math.log(len(corpus.vocab)))

    # ------------------------------------------------------------------ the loop
    def run(self):
        pool = None
        n = min(self.tcfg.threads, self.tcfg.batch)  # a worker without a stream would idle
        if workers.worth_it(self.mcfg, self.tcfg.batch, n):
            pool = workers.Workers(self.params, self.mcfg, n, self.limit)
            self.params = pool.params  # shared: the optimizer's in-place update reaches every worker
        try:
            with np.errstate(all="ignore"):  # non-finite values are checked for explicitly below
                return self._run(pool)
        finally:
            if pool is not None:
                pool.close()

    def _run(self, pool):
        t, rep = self.tcfg, self.reporter
        rep.start(self.info())
        t0 = last_t = time.perf_counter()
        last_step, rate, smooth = self.step, 0.0, None
        last_saved = self.step if self.step > 0 else -1
        chars_per_step = t.batch * t.seq_len
        while self.step < self.max_steps and not self.stop.signum:
            elapsed = time.perf_counter() - t0
            if elapsed >= self.max_seconds:
                break
            k = self.step % self.wpe
            if k == 0 or self.state is None:
                self.state = model.zero_state(self.mcfg, t.batch)  # each epoch starts fresh
            x, y = self.streams.window(k)
            rng = self.rng if self.mcfg.dropout > 0 else None
            if pool is not None:
                before = self.rng.bit_generator.state
                try:
                    loss, grads, new_state = pool.loss_and_grads(x, y, self.state, rng)
                except workers.WorkerError as e:  # the parameters are untouched: keep the steps done
                    self.rng.bit_generator.state = before  # as if this step's masks were never drawn
                    if self.step != last_saved and self.step > 0:
                        self.checkpoint(smooth)
                    where = f"at step {self.step}, which is saved" if self.step > 0 else "before its first step"
                    raise workers.WorkerError(f"{e}; training stopped {where}") from None
            else:
                loss, grads, new_state = model.loss_and_grads(self.params, self.mcfg, x, y, self.state, rng,
                                                              workers=t.threads, limit=self.limit)
            if t.clip_value > 0:
                optim.clip_values(grads, t.clip_value)
            norm, clipped = optim.clip_global_norm(grads, t.clip)
            if not math.isfinite(norm) or not loss <= self.loss_ceiling:
                what = f"the gradient norm is {norm}" if math.isfinite(loss) and loss <= self.loss_ceiling \
                    else f"the loss is {loss:.4g} nats (a fresh model's is {math.log(len(self.corpus.vocab)):.2f})"
                self.diverged(self.step + 1, what)
            progress = max(self.step / self.max_steps if math.isfinite(self.max_steps) else 0.0,
                           elapsed / self.max_seconds if math.isfinite(self.max_seconds) else 0.0)
            lr = optim.learning_rate(t.lr, t.lr_schedule, progress, self.step, t.warmup)
            self.opt.step(self.params, grads, self.opt_state, lr, workers=t.threads)
            self.state = new_state
            self.step += 1
            smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
            now = time.perf_counter()
            if now - last_t >= 0.5 or rate == 0.0:  # chars/s over the last half second or more
                rate = (self.step - last_step) * chars_per_step / max(now - last_t, 1e-9)
                last_t, last_step = now, self.step
            m = {"step": self.step, "epoch": self.step / self.wpe, "loss": loss, "smooth_loss": smooth,
                 "grad_norm": norm, "clipped": clipped, "lr": lr, "chars_per_s": rate,
                 "elapsed": now - t0, "eta": self.eta(rate, now - t0)}
            if clipped:
                rep.clip(self.step, norm, t.clip)
            rep.step(m)
            self.write_log({"event": "step", **{k_: v for k_, v in m.items() if k_ != "eta"}})
            if self.step % t.eval_every == 0:
                self.checkpoint(smooth)
                last_saved = self.step
        if self.step != last_saved and self.step > 0:
            self.checkpoint(smooth)
        summary = {"step": self.step, "best_val_loss": None if math.isinf(self.best) else self.best,
                   "elapsed": time.perf_counter() - t0, "interrupted": self.stop.signum,
                   "latest": self.rundir.latest_path()}
        rep.finish(summary)
        return summary

    def diverged(self, step, what):
        raise Diverged(f"training diverged at step {step}: {what}; the last good checkpoint is kept "
                       f"(try a lower --lr or a smaller --clip)")

    def eta(self, rate, elapsed):
        left = []
        if math.isfinite(self.max_steps) and rate > 0:
            left.append((self.max_steps - self.step) * self.tcfg.batch * self.tcfg.seq_len / rate)
        if math.isfinite(self.max_seconds):
            left.append(self.max_seconds - elapsed)
        return max(0.0, min(left)) if left else None

    # ------------------------------------------------------------------ evaluation and saving
    def validate(self):
        if len(self.val_tok) < 2:
            return None, None
        nll, n = likelihood.stream_nll(self.params, self.mcfg, self.val_tok, self.tcfg.batch,
                                    self.tcfg.seq_len, MAX_VAL_TOKENS, workers=self.tcfg.threads, limit=self.limit)
        if n == 0:
            return None, None
        return nll / n, nll / (self.chars_of_val(n) * math.log(2))

    def chars_of_val(self, n):
        if self.corpus.vocab.level == "char":
            return n
        lens = np.array([len(s) for s in self.corpus.vocab.tokens])
        toks = np.asarray(self.val_tok[:min(len(self.val_tok), MAX_VAL_TOKENS)])
        return max(1, int(lens[toks].sum() * n / max(len(toks), 1)))

    def checkpoint(self, train_loss):
        bad = next((k for k, v in self.params.items() if not np.isfinite(v).all()), None)
        if bad is not None:  # the update after a finite loss can still overflow
            self.diverged(self.step, f"parameter {bad} is not finite")
        val, bpc = self.validate()
        if val is not None and not val <= self.loss_ceiling:
            self.diverged(self.step, f"the validation loss is {val:.4g} nats")
        if val is None:  # nothing else scores the parameters about to be saved: one window does
            nll, n = likelihood.stream_nll(self.params, self.mcfg, self.streams.tokens[:self.tcfg.seq_len + 1], 1,
                                        self.tcfg.seq_len)
            if n and not nll / n <= self.loss_ceiling:
                self.diverged(self.step, f"the loss is {nll / n:.4g} nats")
        score = val if val is not None else train_loss
        is_best = score is not None and score < self.best
        if is_best:
            self.best = score
        meta = {
            "kind": "lm", "step": self.step, "epoch": self.step / self.wpe, "position": self.step % self.wpe,
            "train": self.tcfg.to_json(), "rng": self.rng.bit_generator.state,
            "corpus": {"sha256": self.corpus.sha256, "tokens": int(len(self.corpus.tokens))},
            "metrics": {"train_loss": _finite(train_loss), "val_loss": _finite(val), "val_bpc": _finite(bpc),
                        "best_val_loss": _finite(self.best)},
            "saved_at": time.time(),
        }
        arrays, meta = schema.pack(self.params, self.mcfg, self.corpus.vocab, meta, self.opt_state, self.state)
        path = self.rundir.write(arrays, meta, step=self.step, val_loss=val, is_best=is_best)
        m = {"step": self.step, "val_loss": val, "val_bpc": bpc, "best": is_best,
             "best_val_loss": _finite(self.best), "path": path}
        self.reporter.evaluate(m)
        self.write_log({"event": "eval", **m})
        self.reporter.sample(self.step, self.preview())

    def preview(self):
        """A short sample at temperature 0.8 from its own RNG, so training's RNG is untouched."""
        vocab = self.corpus.vocab
        rng = np.random.default_rng([self.tcfg.seed, self.step])
        s = Sampler(model.Stepper(self.params, self.mcfg), rng, temp=0.8)
        s.feed(start_token(vocab.tokens, rng))  # as `charrnn sample` starts: not from the corpus's first token
        return vocab.decode([s.draw() for _ in range(PREVIEW_CHARS if vocab.level == "char" else 60)])

    def write_log(self, record):
        self.log = write_log(self.log, record, self.reporter)

    def info(self):
        return {"step": self.step, "max_steps": self.max_steps, "max_seconds": self.max_seconds,
                "windows_per_epoch": self.wpe, "params": model.num_params(self.params),
                "vocab": len(self.corpus.vocab), "tokens": int(len(self.corpus.tokens)),
                "val_tokens": int(len(self.val_tok)), "model": self.mcfg, "train": self.tcfg,
                "run_dir": str(self.rundir.path)}


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
