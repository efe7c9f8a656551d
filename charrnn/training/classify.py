"""`charrnn classify train`: a run prepared from label<TAB>text lines, and what one step of it
is, a batch of labelled texts.

The task training/loop.py runs. Each epoch visits the training lines in a fresh order (from
the run's Generator); a batch is padded to its longest sequence. The best checkpoint has the
highest validation accuracy, then the lowest loss.
"""
import math
import os
from dataclasses import dataclass, fields

import numpy as np

from charrnn.checkpoint.schema import Checkpoint
from charrnn.config.model import CLASSIFY_MODEL, ModelConfig
from charrnn.config.recipe import ClassifyConfig
from charrnn.core import classifier, model, optim
from charrnn.store.rundir import RunDir

VAL_BATCH = 256


class ClassifierTask:
    """Learn labels from ``data`` = (train seqs, train labels, val seqs, val labels), the seqs
    1-D id arrays in ``vocab``, under the recipe ``ccfg`` (a ClassifyConfig)."""

    start_step, start_elapsed, threads, eval_by_time = 0, 0.0, 1, False

    def __init__(self, data, mcfg, ccfg, label_names, vocab):
        self.train_seqs, self.train_y, self.val_seqs, self.val_y = data
        self.mcfg, self.ccfg, self.label_names, self.vocab = mcfg, ccfg, label_names, vocab
        self.rng = np.random.default_rng(ccfg.seed)
        self.params = model.init_params(mcfg, self.rng)
        self.opt = optim.make_optimizer(ccfg.optimizer, beta2=ccfg.beta2)
        self.opt_state = self.opt.init_state(self.params)
        self.steps_per_epoch = max(1, math.ceil(len(self.train_seqs) / ccfg.batch))
        self.eval_every = ccfg.eval_every or self.steps_per_epoch
        self.fresh_loss = math.log(len(label_names))
        self.best = (-1.0, math.inf)  # (accuracy, loss): higher accuracy wins, then lower loss
        self._batches = self.batches()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def batches(self):
        """Index arrays of B lines, epoch after epoch, each epoch in a fresh order."""
        n, B = len(self.train_seqs), self.ccfg.batch
        while True:
            order = self.rng.permutation(n)
            for i in range(0, n, B):
                yield order[i:i + B]

    def step(self, step):
        idx = next(self._batches)
        ids, lengths = classifier.pad([self.train_seqs[i] for i in idx])
        loss, grads, _ = classifier.loss_and_grads(self.params, self.mcfg, ids, lengths, self.train_y[idx],
                                                   self.rng if self.mcfg.dropout > 0 else None)
        return loss, grads, int(lengths.sum())

    def advance(self):
        pass

    def evaluate(self):
        """({val_loss, val_acc} over the validation lines, val_loss), or ({}, None) without any."""
        if not len(self.val_seqs):
            return {}, None
        probs = predict(self.params, self.mcfg, self.val_seqs)
        y = self.val_y
        loss = float(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-300)).mean())
        return {"val_loss": loss, "val_acc": float((probs.argmax(axis=1) == y).mean())}, loss

    def judge(self, metrics):
        """Higher accuracy is better, then lower loss; without validation there is no best."""
        acc, val = metrics.get("val_acc"), metrics.get("val_loss")
        if acc is None:
            return False
        if acc > self.best[0] or (acc == self.best[0] and val < self.best[1]):
            self.best = (acc, val)
            return True
        return False

    def checkpoint(self, step, metrics, train_loss):
        return Checkpoint(self.mcfg, self.params, self.vocab, kind="classifier", step=step,
                          epoch=step / self.steps_per_epoch, classify=self.ccfg, labels=list(self.label_names),
                          metrics={"val_loss": metrics.get("val_loss"), "val_acc": metrics.get("val_acc"),
                                   "best_val_acc": None if self.best[0] < 0 else self.best[0]})

    def preview(self, step):
        return None

    def summary(self):
        return {"best_val_loss": None if math.isinf(self.best[1]) else self.best[1],
                "best_val_acc": None if self.best[0] < 0 else self.best[0], "validated": len(self.val_seqs) > 0}

    def info(self):
        return {"params": model.num_params(self.params), "vocab": len(self.vocab),
                "tokens": int(sum(len(s) for s in self.train_seqs) + sum(len(s) for s in self.val_seqs)),
                "val_tokens": int(sum(len(s) for s in self.val_seqs)), "model": self.mcfg,
                "labels": len(self.label_names), "examples": len(self.train_seqs),
                "val_examples": len(self.val_seqs)}


def predict(params, cfg, seqs, batch=VAL_BATCH):
    """p(label | sequence) (N,K) for a list of id arrays, batched by length so little is padding."""
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.empty((len(seqs), cfg.labels))  # (N,K)
    for i in range(0, len(seqs), batch):
        part = order[i:i + batch]
        out[part] = classifier.predict_proba(params, cfg, *classifier.pad([seqs[j] for j in part]))
    return out


# --------------------------------------------------------------------------- a run

@dataclass
class PreparedClassifier:
    """What a classifier run needs: its directory, the split data (train ids, train labels,
    validation ids, validation labels), the configs, the label names and the vocabulary."""

    run: RunDir
    data: tuple
    mcfg: ModelConfig
    ccfg: ClassifyConfig
    names: list
    vocab: object
    force: bool = False


def prepare(options, run, data, name, notify=lambda line: None):
    """From `charrnn classify train`'s options given (ModelConfig and ClassifyConfig fields, by
    name), its RunOptions, and the bytes of its label<TAB>text file called ``name``."""
    from charrnn.text import labeled
    from charrnn.training import machine
    from charrnn.training.prepare import model_config, refuse_ignored
    from charrnn.training.resume import checked_run_name
    refuse_ignored(options, set(options), CLASSIFY_MODEL)
    ccfg = ClassifyConfig(**{f.name: options[f.name] for f in fields(ClassifyConfig) if f.name in options})
    labels, texts = labeled.parse_tsv(data, ccfg.errors, name)
    names, y = labeled.label_index(labels)
    vocab = labeled.vocab_for(texts, ccfg.level, ccfg.max_vocab)
    seqs = [labeled.encode(vocab, t, ccfg.max_len)[0] for t in texts]
    tr, va = labeled.split(len(seqs), ccfg.val_frac, np.random.default_rng([ccfg.seed, 1]))
    mcfg = model_config({**options, "labels": len(names)}, len(vocab), ccfg.level, CLASSIFY_MODEL, "classify")
    rundir = RunDir(os.path.join(run.checkpoint_dir, checked_run_name(run.name, ["-" if name == "<stdin>" else name])))
    machine.check_memory(mcfg, ccfg.batch, max(len(s) for s in seqs), ccfg.optimizer, 1, notify)
    split = ([seqs[i] for i in tr], y[tr], [seqs[i] for i in va], y[va])
    return PreparedClassifier(rundir, split, mcfg, ccfg, names, vocab, run.force)


def run(p, reporter=None, log=None, stop=None):
    """Train a PreparedClassifier run under its lock; the loop's summary."""
    from charrnn.training.loop import Loop
    from charrnn.training.prepare import claim
    with p.run.lock():
        claim(p.run, True, p.force, resumable=False)
        task = ClassifierTask(p.data, p.mcfg, p.ccfg, p.names, p.vocab)
        return Loop(task, p.ccfg, p.run, reporter, log, stop).run()
