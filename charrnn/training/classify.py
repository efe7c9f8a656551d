"""The training loop of `charrnn classify train`: batches of labelled sequences, validation accuracy.

No printing: progress goes to a reporter (display.py), as for `charrnn train`. Each epoch
visits the training lines in a fresh order (from the run's Generator); a batch is padded to
its longest sequence. Checkpoints are written with the language model's RunDir: best
(highest validation accuracy, then lowest loss), latest and the last periodic files.
"""
import math
import time

import numpy as np

from charrnn.store import schema
from charrnn.core import classifier, model, optim
from charrnn.errors import CharrnnError
from charrnn.training.lm import NullReporter, Stop, write_log

VAL_BATCH = 256


class ClassifyTrainer:
    def __init__(self, data, mcfg, ccfg, rundir, label_names, vocab, reporter=None, log=None, stop=None):
        self.train_seqs, self.train_y, self.val_seqs, self.val_y = data
        self.mcfg, self.ccfg, self.rundir = mcfg, ccfg, rundir
        self.label_names, self.vocab = label_names, vocab
        self.reporter, self.log, self.stop = reporter or NullReporter(), log, stop or Stop()
        self.rng = np.random.default_rng(ccfg.seed)
        self.params = model.init_params(mcfg, self.rng)
        self.opt = optim.make_optimizer(ccfg.optimizer)
        self.opt_state = self.opt.init_state(self.params)
        n = len(self.train_seqs)
        self.steps_per_epoch = max(1, math.ceil(n / ccfg.batch))
        steps, epochs, minutes = ccfg.limits
        by_epochs = None if epochs is None or not math.isfinite(epochs * self.steps_per_epoch) else \
            math.ceil(epochs * self.steps_per_epoch)  # --epochs 1e307: no limit
        limits = [s for s in (steps, by_epochs) if s]
        self.max_steps = min(limits) if limits else math.inf
        self.max_seconds = minutes * 60 if minutes else math.inf
        self.eval_every = ccfg.eval_every or self.steps_per_epoch
        self.best = (-1.0, math.inf)  # (accuracy, loss): higher accuracy wins, then lower loss
        self.step = 0

    def batches(self):
        """Index arrays of B lines, epoch after epoch, each epoch in a fresh order."""
        n, B = len(self.train_seqs), self.ccfg.batch
        while True:
            order = self.rng.permutation(n)
            for i in range(0, n, B):
                yield order[i:i + B]

    def run(self):
        c, rep = self.ccfg, self.reporter
        rep.start(self.info())
        t0 = last_t = time.perf_counter()
        smooth, last_saved, tokens_since = None, 0, 0
        rate = 0.0
        for idx in self.batches():
            elapsed = time.perf_counter() - t0
            if self.step >= self.max_steps or elapsed >= self.max_seconds or self.stop.signum:
                break
            ids, lengths = classifier.pad([self.train_seqs[i] for i in idx])
            loss, grads, _ = classifier.loss_and_grads(self.params, self.mcfg, ids, lengths, self.train_y[idx],
                                                       self.rng if self.mcfg.dropout > 0 else None)
            norm, clipped = optim.clip_global_norm(grads, c.clip)
            if not (math.isfinite(norm) and math.isfinite(loss)):
                raise CharrnnError(f"training diverged at step {self.step + 1} (the loss or gradient is not "
                                   "finite); the last good checkpoint is kept (try a lower --lr)")
            progress = max(self.step / self.max_steps if math.isfinite(self.max_steps) else 0.0,
                           elapsed / self.max_seconds if math.isfinite(self.max_seconds) else 0.0)
            lr = optim.learning_rate(c.lr, c.lr_schedule, progress, self.step, c.warmup)
            self.opt.step(self.params, grads, self.opt_state, lr)
            self.step += 1
            tokens_since += int(lengths.sum())
            smooth = loss if smooth is None else 0.95 * smooth + 0.05 * loss
            now = time.perf_counter()
            if now - last_t >= 0.5 or rate == 0.0:
                rate, last_t, tokens_since = tokens_since / max(now - last_t, 1e-9), now, 0
            m = {"step": self.step, "epoch": self.step / self.steps_per_epoch, "loss": loss, "smooth_loss": smooth,
                 "grad_norm": norm, "clipped": clipped, "lr": lr, "chars_per_s": rate, "elapsed": now - t0,
                 "eta": self.eta(now - t0)}
            if clipped:
                rep.clip(self.step, norm, c.clip)
            rep.step(m)
            self.write_log({"event": "step", **{k: v for k, v in m.items() if k != "eta"}})
            if self.step % self.eval_every == 0:
                self.checkpoint()
                last_saved = self.step
        if self.step != last_saved and self.step > 0:
            self.checkpoint()
        summary = {"step": self.step, "best_val_loss": None if math.isinf(self.best[1]) else self.best[1],
                   "best_val_acc": None if self.best[0] < 0 else self.best[0],
                   "elapsed": time.perf_counter() - t0, "interrupted": self.stop.signum,
                   "latest": self.rundir.latest_path()}
        rep.finish(summary)
        return summary

    def eta(self, elapsed):
        left = []
        if math.isfinite(self.max_steps) and self.step:
            left.append((self.max_steps - self.step) * elapsed / self.step)
        if math.isfinite(self.max_seconds):
            left.append(self.max_seconds - elapsed)
        return max(0.0, min(left)) if left else None

    def validate(self):
        """(mean loss, accuracy) over the validation lines, or (None, None) without any."""
        if not len(self.val_seqs):
            return None, None
        probs = predict(self.params, self.mcfg, self.val_seqs)
        y = self.val_y
        loss = float(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-300)).mean())
        return loss, float((probs.argmax(axis=1) == y).mean())

    def checkpoint(self):
        val, acc = self.validate()
        key = (acc if acc is not None else -1.0, val if val is not None else math.inf)
        is_best = acc is not None and (key[0] > self.best[0] or (key[0] == self.best[0] and key[1] < self.best[1]))
        if is_best:
            self.best = key
        meta = {"kind": "classifier", "step": self.step, "epoch": self.step / self.steps_per_epoch,
                "labels": list(self.label_names), "classify": self.ccfg.to_json(),
                "metrics": {"val_loss": val, "val_acc": acc, "best_val_acc": None if self.best[0] < 0 else
                            self.best[0]},
                "saved_at": time.time()}
        arrays, meta = schema.pack(self.params, self.mcfg, self.vocab, meta)
        path = self.rundir.write(arrays, meta, step=self.step, val_loss=val, is_best=is_best or acc is None)
        m = {"step": self.step, "val_loss": val, "val_acc": acc, "best": is_best,
             "best_val_loss": None if math.isinf(self.best[1]) else self.best[1], "path": path}
        self.reporter.evaluate(m)
        self.write_log({"event": "eval", **m})

    def write_log(self, record):
        self.log = write_log(self.log, record, self.reporter)

    def info(self):
        return {"step": 0, "max_steps": self.max_steps, "max_seconds": self.max_seconds,
                "params": model.num_params(self.params), "vocab": len(self.vocab),
                "tokens": int(sum(len(s) for s in self.train_seqs) + sum(len(s) for s in self.val_seqs)),
                "val_tokens": int(sum(len(s) for s in self.val_seqs)), "model": self.mcfg,
                "run_dir": str(self.rundir.path), "labels": len(self.label_names),
                "examples": len(self.train_seqs), "val_examples": len(self.val_seqs)}


def predict(params, cfg, seqs, batch=VAL_BATCH):
    """p(label | sequence) (N,K) for a list of id arrays, batched by length so little is padding."""
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.empty((len(seqs), cfg.labels))  # (N,K)
    for i in range(0, len(seqs), batch):
        part = order[i:i + batch]
        out[part] = classifier.predict_proba(params, cfg, *classifier.pad([seqs[j] for j in part]))
    return out
