"""What one step of a language model's training is: stateful truncated BPTT over B streams.

The task training/loop.py runs for `charrnn train`. Everything that decides the numbers
(parameters, optimizer state, carried state, RNG, step) is in its checkpoints, so a resumed
run continues bit for bit.
"""
import math

import numpy as np

from charrnn import blas
from charrnn.analysis import likelihood
from charrnn.core import model, optim, shards
from charrnn.core.sampling import Sampler, newline_id, start_token
from charrnn.checkpoint.schema import Checkpoint
from charrnn.text.windows import Streams, split_train_val
from charrnn.training import workers
from charrnn.training.machine import cores
from charrnn.training.loop import StepFailed

MAX_VAL_TOKENS = 1 << 20  # validation reads at most the first 1,048,576 tokens of its split
PREVIEW_CHARS = 200
DEFAULT_EVAL_EVERY = 200
QR_THREADS_FROM = 1024  # hidden width from which the initial QRs run on all cores


class LanguageModelTask:
    """``corpus`` (text.corpus.Corpus) learned by a model of ``mcfg`` under the recipe ``tcfg``
    (a TrainConfig), from scratch or from the Checkpoint ``resume``; ``block_limit``
    is core/products.py's column-block limit for this BLAS."""

    def __init__(self, corpus, mcfg, tcfg, resume=None, block_limit=0, paths=(), world=None, choice=None, spent=0.0):
        self.corpus, self.mcfg, self.tcfg, self.block_limit = corpus, mcfg, tcfg, block_limit
        self.world = world  # training/distributed.World: this rank's share of each window, or None
        self.paths = list(paths)  # the corpus files, recorded so that --resume alone finds them
        self.choice = choice if resume is None else resume.choice  # what the recipe chose, kept with the run
        train_tok, self.val_tok = split_train_val(corpus.tokens, tcfg.val_frac)
        self.line_break = newline_id(corpus.vocab.tokens)  # validation's context token, as sampling's
        if len(self.val_tok) == 0:
            self.streams = Streams(train_tok, tcfg.batch, tcfg.seq_len)
        else:
            self.streams = Streams(train_tok, tcfg.batch, tcfg.seq_len,
                                   f"the training part of the corpus (all but the last --val-frac {tcfg.val_frac:g})",
                                   "a smaller --batch or --seq-len or --val-frac")
        self.steps_per_epoch = self.streams.windows_per_epoch
        # without --eval-every: every DEFAULT_EVAL_EVERY steps, or each fifth of a time-limited run
        self.eval_every, self.eval_by_time = tcfg.eval_every or DEFAULT_EVAL_EVERY, tcfg.eval_every is None
        self.threads = tcfg.threads
        self.fresh_loss = math.log(len(corpus.vocab))
        self.rng = np.random.default_rng(tcfg.seed)
        self.opt = optim.make_optimizer(tcfg.optimizer, beta2=tcfg.beta2)
        if resume is None:
            # the orthogonal blocks' QRs: all cores from H = 1024 (a quarter faster on idle cores);
            # below, one (a small QR on threads that wait for busy cores took 100× as long)
            with blas.threads(min(4, cores()) if mcfg.hidden >= QR_THREADS_FROM else 1):
                self.params = model.init_params(mcfg, self.rng)
            self.opt_state = self.opt.init_state(self.params)
            # ``spent``: the seconds the recipe took to time its candidates count against --minutes
            self.start_step, self.best, self.state, self.start_elapsed = 0, math.inf, None, spent
        else:
            self.params = {k: v.astype(np.float32) for k, v in resume.params.items()}
            self.opt_state = resume.opt_state or self.opt.init_state(self.params)
            self.start_step, self.start_elapsed = resume.step, resume.elapsed or 0.0
            best = resume.metrics.get("best_val_loss")
            self.best = math.inf if best is None else best
            self.state = resume.state
            self.rng.bit_generator.state = resume.rng
        if self.state is not None and self.state[0][0].shape[0] != tcfg.batch:
            self.state = None  # a different --batch: start the streams afresh
        self.pool, self.new_state = None, None

    # ------------------------------------------------------------------ a run
    def __enter__(self):
        n = min(self.tcfg.threads, len(shards.bounds(self.tcfg.batch)))  # a worker without a shard would idle
        # forked worker processes beside MPI are not safe (its transports hold shared memory)
        if self.world is None and workers.worth_it(self.mcfg, self.tcfg.batch, n):
            self.pool = workers.Workers(self.params, self.mcfg, n, self.tcfg.batch, self.block_limit)
            self.params = self.pool.params  # shared: the optimizer's in-place update reaches every worker
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def step(self, step):
        k = step % self.steps_per_epoch
        if k == 0 or self.state is None:
            self.state = model.zero_state(self.mcfg, self.tcfg.batch)  # each epoch starts fresh
        x, y = self.streams.window(k)
        rng = self.rng if self.mcfg.dropout > 0 else None
        if self.world is not None:
            return (*self.shard_step(x, y, rng), x.size)
        if self.pool is None:
            loss, grads, self.new_state = shards.loss_and_grads(self.params, self.mcfg, x, y, self.state, rng,
                                                                workers=self.threads, block_limit=self.block_limit)
            return loss, grads, x.size
        before = self.rng.bit_generator.state
        try:
            loss, grads, self.new_state = self.pool.loss_and_grads(x, y, self.state, rng)
        except workers.WorkerError as e:
            self.rng.bit_generator.state = before  # as if this step's masks were never drawn
            raise StepFailed(str(e)) from None
        return loss, grads, x.size

    def shard_step(self, x, y, rng):
        """This rank's run of the window's shards (core/shards.py), split between its threads;
        then every rank's, combined (training/distributed.py)."""
        part = shards.loss_and_grads(self.params, self.mcfg, x, y, self.state, rng, workers=self.threads,
                                     block_limit=self.block_limit, shards=self.world.shards(x.shape[1]))
        loss, grads, self.new_state = self.world.combine(part, *x.shape)
        return loss, grads

    def advance(self):
        self.state = self.new_state

    # ------------------------------------------------------------------ evaluation and saving
    def evaluate(self):
        """(validation loss and bits per character, the loss to check); without a validation
        split, one window of the training text scores the parameters about to be saved."""
        if len(self.val_tok) >= 2:
            # each stream read after a line break, as sample and score read text: a zero state met on a
            # token in mid-text can fall into a mode the network never leaves (docs/recipe.md)
            nll, n = likelihood.stream_nll(self.params, self.mcfg, self.val_tok, self.tcfg.batch, self.tcfg.seq_len,
                                           MAX_VAL_TOKENS, workers=self.tcfg.threads, block_limit=self.block_limit,
                                           context=self.line_break)
            if n:
                val = nll / n
                return {"val_loss": val, "val_bpc": nll / (self.chars_of_val(n) * math.log(2))}, val
        nll, n = likelihood.stream_nll(self.params, self.mcfg, self.streams.tokens[:self.tcfg.seq_len + 1], 1,
                                       self.tcfg.seq_len)
        return {}, (nll / n if n else None)

    def chars_of_val(self, n):
        if self.corpus.vocab.level == "char":
            return n
        lens = np.array([len(s) for s in self.corpus.vocab.tokens])
        toks = np.asarray(self.val_tok[:min(len(self.val_tok), MAX_VAL_TOKENS)])
        return max(1, int(lens[toks].sum() * n / max(len(toks), 1)))

    def judge(self, metrics):
        """The lowest validation loss is the best; without validation there is no best."""
        score = metrics.get("val_loss")
        if score is None or not score < self.best:
            return False
        self.best = score
        return True

    def checkpoint(self, step, metrics, train_loss):
        return Checkpoint(
            self.mcfg, self.params, self.corpus.vocab, kind="lm", step=step, epoch=step / self.steps_per_epoch,
            metrics={"train_loss": train_loss, "val_loss": metrics.get("val_loss"),
                     "val_bpc": metrics.get("val_bpc"), "best_val_loss": self.best},
            train=self.tcfg, position=step % self.steps_per_epoch, rng=self.rng.bit_generator.state,
            corpus={"sha256": self.corpus.sha256, "tokens": int(len(self.corpus.tokens)), "paths": self.paths},
            opt_state=self.opt_state, state=self.state, choice=self.choice)

    def preview(self, step):
        """A short sample at temperature 0.8 from its own RNG, so training's RNG is untouched."""
        vocab = self.corpus.vocab
        rng = np.random.default_rng([self.tcfg.seed, step])
        s = Sampler(model.Stepper(self.params, self.mcfg), rng, temp=0.8)
        s.feed(start_token(vocab.tokens, rng))  # as `charrnn sample` starts: not from the corpus's first token
        return vocab.decode([s.draw() for _ in range(PREVIEW_CHARS if vocab.level == "char" else 60)])

    def summary(self):
        return {"best_val_loss": None if math.isinf(self.best) else self.best, "validated": len(self.val_tok) >= 2}

    def info(self):
        return {"windows_per_epoch": self.steps_per_epoch, "params": model.num_params(self.params),
                "vocab": len(self.corpus.vocab), "tokens": int(len(self.corpus.tokens)),
                "val_tokens": int(len(self.val_tok)), "model": self.mcfg, "train": self.tcfg,
                "choice": self.choice if self.start_step == 0 else None}
