"""From a language-model run as asked for (a Request, by the command line or charrnn.train) to
a Prepared run: its directory, the checkpoint it resumes from, the recipe and model configs,
and the corpus (re-expressed in a resumed model's vocabulary); then ``run`` trains it.

No click: problems are charrnn's own exceptions, OptionError naming options the way the caller
spells them. Problems are reported in the order a user meets them: a --resume that is no
checkpoint before anything is built, a missing corpus file next.
"""
import math
import os
import time
from dataclasses import dataclass, field, fields, replace
from typing import BinaryIO

import numpy as np

from charrnn.checkpoint import schema
from charrnn.config.fields import OptionError
from charrnn.config.model import EMBED, MODEL_OPTIONS, ModelConfig
from charrnn.config.recipe import LM_LR, TrainConfig
from charrnn.config.run import RunOptions
from charrnn.errors import CharrnnError, CorpusError, UsageError
from charrnn.store.rundir import RunDir
from charrnn.text.corpus import load_corpus
from charrnn.text.sources import Sources, default_cache_dir
from charrnn.text.windows import Streams, split_train_val
from charrnn.training import machine, recipe, resume as resuming

PROGRESS_BYTES = 4 << 20  # show the encoding bar for inputs above 4 MB, on a terminal
RESUME_FIXED = ("level", "max_vocab", "errors", "optimizer")  # what a resumed run cannot change


@dataclass(frozen=True)
class Request:
    """A language-model run as asked for: the model and recipe options given (ModelConfig and
    TrainConfig fields, by name: what was not given takes its default or its rule), where the run
    lives, and its corpus: files ("-" is ``stdin``), or ``data`` (the text's bytes); neither:
    the default corpus, or with --resume alone the run's own."""
    options: dict = field(default_factory=dict)
    run: RunOptions = RunOptions()
    paths: tuple = ()
    data: bytes | None = None
    stdin: BinaryIO | None = None
    quiet: bool = False
    progress: bool = False  # an encoding bar for a large corpus (a terminal)


@dataclass
class Prepared:
    """What a language-model run needs, checked: its directory, corpus, configs, and the
    Checkpoint it resumes from (None for a fresh run). ``done`` says why there is nothing to
    train (the run is at its limit already); the rest is then unset."""

    run: RunDir
    corpus: object = None  # text.corpus.Corpus
    mcfg: ModelConfig | None = None
    tcfg: TrainConfig | None = None
    resume: schema.Checkpoint | None = None
    force: bool = False
    done: str | None = None
    paths: list | None = None  # the corpus, as the checkpoints record it (resume.recorded_paths)
    task: object = None  # under MPI: the task built from rank 0's starting state (replicas.prepare)
    choice: dict | None = None  # what the recipe chose and why (training/recipe.py)
    probe_seconds: float = 0.0  # what timing its candidates took: counted against --minutes


def prepare(req, notify, ranks=1, reduction=None):
    """A Prepared run from a Request. ``notify`` takes a line for the user; ``ranks`` is the MPI
    job's size and ``reduction(nbytes)`` how its ranks will sum a gradient of nbytes
    (training/replicas.py)."""
    o, given, r = req.options, set(req.options), req.run
    if o.get("bidirectional"):
        raise OptionError(ModelConfig, lambda n: f"a bidirectional language model would see the future it must "
                                                 f"predict; {n('bidirectional')} is for `charrnn classify`")
    ModelConfig(**{k: o[k] for k in MODEL_OPTIONS if k in o})  # a value no model can take: said before any reading
    if r.resume is None:
        refuse_ignored(o, given)
    paths, name = list(req.paths), r.name
    recorded = not paths and req.data is None and r.resume is not None
    if recorded:  # `train --resume` alone: the run's own corpus, as its checkpoint records it
        if r.resume:
            resuming.refuse_corpus_as_checkpoint(r.resume)  # `train --resume notes.txt`: say how to mean the corpus
        name, paths = resuming.corpus_of_run(r.resume, r.name, r.checkpoint_dir, notify, req.quiet, default_corpus)
    elif not paths and req.data is None:
        paths = [default_corpus(notify, req.quiet)]
    # a missing corpus is the first thing to report
    sources = Sources.from_bytes(req.data) if req.data is not None else \
        Sources(paths, req.stdin, spool_dir=default_cache_dir())
    try:
        run = RunDir(os.path.join(r.checkpoint_dir, resuming.checked_run_name(name, paths)))
        resume = resuming.load_resume(r.resume, run) if r.resume is not None else None
        tcfg = replace(train_config(o, resume, notify), ranks=ranks, reduction="exact")  # MPI: below
        done = nothing_to_train(run, resume, tcfg)
        if done:
            return Prepared(run, resume=resume, done=done)
        corpus = load_corpus(sources, tcfg.level, tcfg.max_vocab, tcfg.errors, cache_dir=default_cache_dir(),
                             progress=req.progress and sources.size > PROGRESS_BYTES)
    finally:
        sources.close()  # the stdin spool, if any: training needs only the (memory-mapped) tokens
    if corpus.crlf and not req.quiet:
        notify(f"note: the corpus's {corpus.crlf:,} CRLF line breaks are read as \\n, as every line break is")
    if resume is not None:
        if resume.corpus.get("sha256") != corpus.sha256 and not r.force:
            what = f"{', '.join(paths)} changed since the run was trained on it" if recorded else \
                "this corpus differs from the one the checkpoint was trained on"
            raise CharrnnError(f"{what} (another sha256); add --force to resume on it anyway")
        if corpus.vocab.tokens != resume.vocab.tokens:
            corpus = remap(corpus, resume.vocab)
        mcfg = model_unchanged(resume.cfg, o)
    else:
        mcfg, tcfg, choice, probed = network(o, corpus, tcfg)
    if ranks > 1 and reduction is not None:
        from charrnn.core.model import count_params
        tcfg = replace(tcfg, reduction=reduction(4 * count_params(mcfg)))
    machine.check_memory(mcfg, tcfg.batch, tcfg.seq_len, tcfg.optimizer, tcfg.threads, notify, fresh=resume is None)
    if resume is not None:  # once nothing more here can refuse the run
        warn_new_horizon(resume.train, tcfg, notify)
        warn_sum_order(resume.train, tcfg, notify)
    return Prepared(run, corpus, mcfg, tcfg, resume, r.force, paths=resuming.recorded_paths(paths),
                    **({} if resume is not None else {"choice": choice, "probe_seconds": probed}))


def nothing_to_train(run, resume, tcfg):
    """Why a resumed run has nothing left to train (its --steps or --minutes are spent), or None."""
    if resume is None:
        return None
    if tcfg.steps is not None and resume.step >= tcfg.steps:
        return (f"nothing to train: {run.path} is at step {resume.step:,}, and --steps {tcfg.steps:,} is the run's "
                f"total; give a larger --steps to go on")
    minutes = tcfg.limits[2]
    if minutes is not None and (resume.elapsed or 0.0) >= 60 * minutes:
        return (f"nothing to train: {run.path} has trained for {_duration(resume.elapsed)}, and --minutes "
                f"{minutes:g} is the run's total; give a larger --minutes to go on")
    return None


def train_config(o, resume, notify=lambda line: None):
    """The recipe: the options given, the rest by their defaults and rules (lr by level, one
    worker a core); on resume the checkpoint's recipe except what is given."""
    keys = {f.name for f in fields(TrainConfig)}
    mine = {k: v for k, v in o.items() if k in keys}
    TrainConfig(**mine)  # what was given, checked before any rule reads it
    base = dict(resume.train.to_json()) if resume is not None else {}
    for k in set(RESUME_FIXED) & set(mine) & set(base):
        if mine[k] != base[k]:
            raise OptionError(TrainConfig, lambda n, k=k: f"{n(k)} cannot change when resuming (the checkpoint has "
                                                          f"{base[k]})")
    values = {**base, **mine}
    if resume is None and "lr" not in mine:
        values["lr"] = LM_LR[values.get("level", TrainConfig.level)]
    batch = values.get("batch", TrainConfig.batch)
    # workers change the speed, not the numbers: as many as this machine has, also on resume
    values["threads"] = machine.capped_threads(mine["threads"], batch, notify) if "threads" in mine \
        else machine.default_threads(batch)
    return TrainConfig(**values)


def network(o, corpus, tcfg):
    """(ModelConfig, TrainConfig, choice, seconds it took) of a fresh run: with --recipe auto the network the
    budget buys on this machine (training/recipe.py; it times candidates here, and that time
    counts against --minutes), else the options and the fixed defaults. The run says the choice
    when it starts (the reporter's start), once nothing can refuse it any more."""
    from charrnn.core.model import count_params
    from charrnn.training import probe
    if tcfg.recipe == "fixed" or all(k in o for k in recipe.CHOSEN):
        fixed = {**(recipe.FIXED if tcfg.recipe == "fixed" else {}), **o}
        return model_config(fixed, len(corpus.vocab), tcfg.level), tcfg, None, 0.0
    tcfg = replace(tcfg, seq_len=recipe.window(tcfg.level, o, tcfg.seq_len))
    o = {**o, "cell": o.get("cell", recipe.CELL)}
    steps, epochs, minutes = tcfg.limits
    train, _ = split_train_val(corpus.tokens, tcfg.val_frac)  # the run's own split and windows
    try:
        windows = Streams(train, tcfg.batch, tcfg.seq_len).windows_per_epoch
    except CorpusError:  # not one window: the run refuses it, the recipe has nothing to say
        return model_config({**recipe.FIXED, **o}, len(corpus.vocab), tcfg.level), tcfg, None, 0.0
    train_tokens = len(train)
    by_steps = [n for n in (steps, None if epochs is None else math.ceil(min(epochs * windows, 1e18))) if n is not None]
    budget = recipe.Budget(None if minutes is None else 60 * minutes, min(by_steps) if by_steps else None)
    started, probing = time.perf_counter(), min(20.0, 0.1 * budget.seconds) if budget.seconds else 0.0
    timed = {}  # (layers, hidden): seconds a step

    def candidate(layers, hidden):
        return model_config({**o, "layers": layers, "hidden": hidden}, len(corpus.vocab), tcfg.level)

    def left():  # of the probe's seconds
        return probing - (time.perf_counter() - started)

    def seconds_per_step(layers, hidden):  # the first candidate always, the next while a tenth of the budget lasts
        if timed and left() <= 0:
            return None
        timed[layers, hidden] = probe.seconds_per_step(candidate(layers, hidden), corpus.tokens, tcfg.batch,
                                                       tcfg.seq_len, tcfg.threads, budget=max(left(), 0.0))
        return timed[layers, hidden]

    def params(layers, hidden):  # a candidate too large for this machine's memory counts as too large for the text
        try:
            machine.check_memory(candidate(layers, hidden), tcfg.batch, tcfg.seq_len, tcfg.optimizer, tcfg.threads,
                                 lambda line: None)
        except OptionError:
            return math.inf
        return count_params(candidate(layers, hidden))

    given = {k: o[k] for k in recipe.CHOSEN if k in o}
    if "layers" in given and "hidden" in given:  # the user's own shape: refused first if it cannot fit
        machine.check_memory(model_config(o, len(corpus.vocab), tcfg.level), tcfg.batch, tcfg.seq_len,
                             tcfg.optimizer, tcfg.threads, lambda line: None)
    c = recipe.choose(budget, train_tokens, tcfg.batch, tcfg.seq_len, tcfg.level, given, seconds_per_step, params,
                      o["cell"])
    longer = recipe.fresh_window(c.passes, c.steps, tcfg.level, given) if budget.seconds else None
    if longer and fits(replace(tcfg, seq_len=longer), train, candidate(c.layers, c.hidden)):
        # a long run on text read less than once: the chosen network, timed with the longer window
        t = probe.seconds_per_step(candidate(c.layers, c.hidden), corpus.tokens, tcfg.batch, longer, tcfg.threads,
                                   budget=max(left(), 0.0))
        if recipe.token_costs_no_more(timed[c.layers, c.hidden], tcfg.seq_len, t, longer):
            tcfg = replace(tcfg, seq_len=longer)
            c = recipe.choose(budget, train_tokens, tcfg.batch, longer, tcfg.level,
                              {**given, "layers": c.layers, "hidden": c.hidden}, lambda *shape: t, params, o["cell"])
    mcfg = replace(candidate(c.layers, c.hidden), dropout=c.dropout)
    return mcfg, replace(tcfg, lr=c.lr, beta2=c.beta2), c.to_json(), time.perf_counter() - started


def fits(tcfg, train, mcfg):
    """Whether the text has one of tcfg's windows and the network fits in memory with it."""
    try:
        Streams(train, tcfg.batch, tcfg.seq_len)
        machine.check_memory(mcfg, tcfg.batch, tcfg.seq_len, tcfg.optimizer, tcfg.threads, lambda line: None)
    except (CorpusError, OptionError):
        return False
    return True


def model_config(o, vocab_size, level, defaults=None, command="train"):
    """The network: the options given, the rest by the command's defaults (ModelConfig's, or
    ``defaults`` over them) and the embed rule (by level)."""
    m = {**(defaults or {}), **{k: o[k] for k in (*MODEL_OPTIONS, "labels") if k in o}}
    m.setdefault("embed", EMBED[command][level])
    return ModelConfig(vocab_size=vocab_size, **m)


def model_unchanged(cfg, o):
    """A resumed run's network is its checkpoint's: an option given that differs is refused."""
    for k in MODEL_OPTIONS:
        if k in o and o[k] != getattr(cfg, k):
            raise OptionError(ModelConfig, lambda n, k=k: f"{n(k)} cannot change when resuming (the checkpoint "
                                                          f"has {getattr(cfg, k)})")
    return cfg


def refuse_ignored(o, given, defaults=None):
    """An option the chosen cell has no use for is a usage error, not silently dropped."""
    from charrnn.core import cells
    cell = o.get("cell") or (defaults or {}).get("cell") or ModelConfig.cell
    for name in ("activation", "forget_bias"):
        if name in given and name not in cells.get(cell).options:
            users = [c.name for c in cells.registry().values() if name in c.options]
            raise OptionError(ModelConfig, lambda n, name=name: (
                f"{n(name)} applies to {n('cell')} {' or '.join(users)} only ({_article(cell)} {cell} has no use "
                f"for it)"))


def _article(name):
    """"an" before a name read letter by letter from a vowel sound (an lstm, an rnn), else "a"."""
    return "an" if name[:1] in "aefhilmnorsx" else "a"


def warn_new_horizon(before, now, notify):
    """The cosine and step schedules decay over the run's total (--steps, --epochs, --minutes):
    a resume that changes the total stretches or shrinks the rest of the schedule, so the run
    is no longer the one a single run of the new total would have been. Say so."""
    if now.lr_schedule == "constant" or before.limits == now.limits:
        return
    was, is_ = (", ".join(f"--{k} {v:g}" for k, v in zip(("steps", "epochs", "minutes"), c.limits) if v is not None)
                for c in (before, now))
    notify(f"warning: the run's total changes from {was} to {is_}: its {now.lr_schedule} learning-rate schedule "
           f"decays over the new total from here on (not as a run of {is_} from the start would have)")


def warn_sum_order(before, now, notify):
    """Workers and exact MPI ranks sum a gradient in one order whatever their number
    (core/shards.py); only MPI_Allreduce (the sum mode) has an order of its own, its ranks'.
    Say so when resuming changes it."""
    if before.reduction == now.reduction == "exact" or (before.reduction, before.ranks) == (now.reduction, now.ranks):
        return
    was, is_ = (f"{c.ranks} MPI ranks summing by MPI_Allreduce" if c.reduction == "sum" else "an exact sum"
                for c in (before, now))
    notify(f"warning: the run was trained with {was}, now {is_}: training goes on, equal to float32 rounding "
           f"but no longer bit for bit as the run would have gone without the interruption")


def resume_line(p):
    """What a resumed run says first: where it goes on from, and its clock if time limits it."""
    line = f"resuming {p.run.path} at step {p.resume.step:,}"
    minutes = p.tcfg.limits[2]
    if minutes is not None:
        line += (f", {_duration(p.resume.elapsed or 0.0)} of its {minutes:g} minutes trained: it stops when they are "
                 f"spent (--minutes sets the run's total)")
    return line


def _duration(seconds):
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def default_corpus(notify, quiet=False):
    from charrnn.text.default_corpus import build_default_corpus, default_corpus_dir
    path = build_default_corpus(default_corpus_dir())
    if not quiet:
        notify(f"no corpus given: training on the default corpus {path} "
               "(Python's own documentation and standard-library source)")
    return path


def remap(corpus, vocab):
    """Re-express a corpus in a checkpoint's vocabulary (resuming on other text with --force)."""
    index = {t: i for i, t in enumerate(vocab.tokens)}
    missing = [t for t in corpus.vocab.tokens if t not in index]
    if missing and vocab.unk is None:
        shown = ", ".join(repr(t) for t in missing[:5])
        raise CharrnnError(f"the corpus has {len(missing)} symbol(s) the model does not know ({shown}); "
                           "train a new model on it instead")
    table = np.array([index.get(t, vocab.unk if vocab.unk is not None else 0) for t in corpus.vocab.tokens],
                     dtype=np.int32)
    corpus.tokens = table[np.asarray(corpus.tokens)]
    corpus.vocab = vocab
    return corpus


def claim(run, fresh, force, resumable=True):
    """Inside the run's lock: refuse a fresh run over an existing one (unless --force), clear a
    crash's temporary files, and mark an existing run to be replaced at the first save."""
    if fresh and run.resume_path() and not force:
        raise OptionError(RunOptions, lambda n: (
            f"{run.path} already holds a run; use "
            + (f"{n('resume', True)} to continue it, " if resumable else "")
            + f"{n('force', True)} to start it over, or {n('name')} to start another"), exit_code=1)
    run.clean_stale_temps()
    if fresh and force:
        run.start_over()


def run(p, reporter=None, log=None, stop=None, world=None):
    """Train a Prepared language-model run under its lock (the one way both the command line
    and charrnn.train run one); the loop's summary. Under MPI (``world``) rank 0 holds the lock
    and the run directory; the other ranks only train."""
    from charrnn import blas
    from charrnn.training.lm import LanguageModelTask
    from charrnn.training.loop import Loop

    def train():
        if p.resume is not None and reporter is not None:
            reporter.message(resume_line(p))
        task = p.task or LanguageModelTask(p.corpus, p.mcfg, p.tcfg, p.resume, blas.product_limit(), p.paths, world,
                                           p.choice, p.probe_seconds)
        return Loop(task, p.tcfg, p.run, reporter, log, stop, world).run()

    if world is not None and not world.primary:
        return train()
    with p.run.lock():
        claim(p.run, p.resume is None, p.force)
        return train()
