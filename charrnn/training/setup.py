"""From `charrnn train`'s options to a run: the run directory, the checkpoint to resume from,
the recipe and model configs, and the corpus (re-expressed in a resumed model's vocabulary).

No click: the command line (cli/train.py) and the library (charrnn.train) both call
``prepare``; problems are charrnn's own exceptions, UsageError for options that cannot be.
``o`` is a dict of the options by their Python names (those of `charrnn train --help`);
``given`` the names the caller set explicitly.
"""
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from charrnn.core.model import ModelConfig
from charrnn.errors import CharrnnError, CheckpointError, UsageError
from charrnn.store import schema
from charrnn.store.container import MAGIC
from charrnn.store.rundir import RunDir
from charrnn.text.corpus import load_corpus
from charrnn.text.sources import Sources, default_cache_dir
from charrnn.text.vocab import check_max_vocab
from charrnn.training.config import CLASSIFY_MODEL, LM_MODEL, ClassifyConfig, TrainConfig, cores, default_threads

PROGRESS_BYTES = 4 << 20  # show the encoding bar for inputs above 4 MB, on a terminal
MODEL_OPTIONS = ("cell", "activation", "layers", "hidden", "embed", "dropout", "forget_bias")
# a short char-level run learns fastest from a high peak (README "The recipe"); a word-level
# model's embedding and large softmax did better at the usual 2e-3
DEFAULT_LR = {"char": 8e-3, "word": 2e-3}


@dataclass
class Prepared:
    """What a language-model run needs, checked: its directory, corpus, configs, and the
    Checkpoint it resumes from (None for a fresh run). ``done`` says why there is nothing to
    train (the run is at its --steps already); the rest is then unset."""

    run: RunDir
    corpus: object = None  # text.corpus.Corpus
    mcfg: ModelConfig | None = None
    tcfg: TrainConfig | None = None
    resume: schema.Checkpoint | None = None
    force: bool = False
    done: str | None = None
    paths: list | None = None  # the corpus, as the checkpoints record it (recorded_paths)
    task: object = None  # under MPI: the task built from rank 0's starting state (prepare_world)


def prepare(o, given, paths, notify, stdin=None, progress=False, data=None, ranks=1, reduction=None):
    """A Prepared run from the options. ``paths`` are the corpus files ("-" is ``stdin``), or
    ``data`` the corpus's bytes; neither means the default corpus. ``notify`` takes a line for
    the user; ``ranks`` is the MPI job's size and ``reduction(nbytes)`` how its ranks will sum a
    gradient of nbytes (training/replicas.py). Problems are reported in the order a user meets
    them: a --resume that is no checkpoint before anything is built, a missing corpus file next."""
    if o.get("bidirectional"):
        raise UsageError("a bidirectional language model would see the future it must predict; "
                         "bidirectional layers are for `charrnn classify`")
    if o.get("resume") is None:
        refuse_ignored(o, given)
    recorded = not paths and data is None and o.get("resume") is not None
    if recorded:  # `train --resume` alone: the run's own corpus, as its checkpoint records it
        if o["resume"]:
            refuse_corpus_as_checkpoint(o["resume"])  # `train --resume notes.txt`: say how to mean the corpus
        paths = corpus_of_run(o, notify)
    elif not paths and data is None:
        paths = [default_corpus(notify, o.get("quiet"))]
    # a missing corpus is the first thing to report
    sources = Sources.from_bytes(data) if data is not None else Sources(paths, stdin, spool_dir=default_cache_dir())
    try:
        run = RunDir(os.path.join(o["checkpoint_dir"], checked_run_name(o.get("name"), paths)))
        resume = load_resume(o, run) if o.get("resume") is not None else None
        tcfg = replace(train_config(o, resume, given, notify), ranks=ranks, reduction="exact")  # MPI: below
        if resume is not None and tcfg.steps is not None and resume.step >= tcfg.steps:
            return Prepared(run, resume=resume, done=f"nothing to train: {run.path} is at step {resume.step:,}, "
                            f"and --steps {tcfg.steps:,} is the run's total; give a larger --steps to go on")
        minutes = tcfg.limits[2]
        if resume is not None and minutes is not None and (resume.elapsed or 0.0) >= 60 * minutes:
            return Prepared(run, resume=resume, done=f"nothing to train: {run.path} has trained for "
                            f"{_minutes(resume.elapsed)}, and --minutes {minutes:g} is the run's total; give a "
                            f"larger --minutes to go on")
        corpus = load_corpus(sources, tcfg.level, tcfg.max_vocab, tcfg.errors, cache_dir=default_cache_dir(),
                             progress=progress and sources.size > PROGRESS_BYTES)
    finally:
        sources.close()  # the stdin spool, if any: training needs only the (memory-mapped) tokens
    if corpus.crlf and not o.get("quiet"):
        notify(f"note: the corpus's {corpus.crlf:,} CRLF line breaks are read as \\n, as every line break is")
    if resume is not None:
        if resume.corpus.get("sha256") != corpus.sha256 and not o.get("force"):
            what = f"{', '.join(paths)} changed since the run was trained on it" if recorded else \
                "this corpus differs from the one the checkpoint was trained on"
            raise CharrnnError(f"{what} (another sha256); add --force to resume on it anyway")
        if corpus.vocab.tokens != resume.vocab.tokens:
            corpus = remap(corpus, resume.vocab)
        mcfg = check_model_unchanged(resume.cfg, o, given)
    else:
        mcfg = model_config(o, len(corpus.vocab), tcfg.level)
    if ranks > 1 and reduction is not None:
        from charrnn.core.model import count_params
        tcfg = replace(tcfg, reduction=reduction(4 * count_params(mcfg)))
    check_memory(mcfg, tcfg.batch, tcfg.seq_len, tcfg.optimizer, tcfg.threads, notify, fresh=resume is None)
    if resume is not None:  # once nothing more here can refuse the run
        warn_new_horizon(resume.train, tcfg, notify)
        warn_sum_order(resume.train, tcfg, notify)
    return Prepared(run, corpus, mcfg, tcfg, resume, bool(o.get("force")), paths=recorded_paths(paths))


def warn_new_horizon(before, now, notify):
    """The cosine and step schedules decay over the run's total (--steps, --epochs, --minutes):
    a resume that changes the total stretches or shrinks the rest of the schedule, so the run
    is no longer the one a single run of the new total would have been. Say so."""
    if now.lr_schedule == "constant" or before.limits == now.limits:
        return
    was = ", ".join(f"--{k} {v:g}" for k, v in zip(("steps", "epochs", "minutes"), before.limits) if v is not None)
    is_ = ", ".join(f"--{k} {v:g}" for k, v in zip(("steps", "epochs", "minutes"), now.limits) if v is not None)
    notify(f"warning: the run's total changes from {was} to {is_}: its {now.lr_schedule} learning-rate schedule "
           f"decays over the new total from here on (not as a run of {is_} from the start would have)")


def resume_line(p):
    """What a resumed run says first: where it goes on from, and its clock if time limits it."""
    line = f"resuming {p.run.path} at step {p.resume.step:,}"
    minutes = p.tcfg.limits[2]
    if minutes is not None:
        line += (f", {_minutes(p.resume.elapsed or 0.0)} of its {minutes:g} minutes trained: it stops when they are "
                 f"spent (--minutes sets the run's total)")
    return line


def _minutes(seconds):
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def warn_sum_order(before, now, notify):
    """Workers and exact MPI ranks sum a gradient in one order whatever their number
    (core/shards.py); only MPI_Allreduce (the sum mode) has an order of its own, its ranks'.
    Say so when resuming changes it."""
    if before.reduction == now.reduction == "exact" or (before.reduction, before.ranks) == (now.reduction, now.ranks):
        return
    was = f"{before.ranks} MPI ranks summing by MPI_Allreduce" if before.reduction == "sum" else "an exact sum"
    is_ = f"{now.ranks} MPI ranks summing by MPI_Allreduce" if now.reduction == "sum" else "an exact sum"
    notify(f"warning: the run was trained with {was}, now {is_}: training goes on, equal to float32 rounding "
           f"but no longer bit for bit as the run would have gone without the interruption")


def recorded_paths(paths):
    """The corpus as a checkpoint records it: absolute paths of regular files, "-" for standard
    input and for pipes (neither can be read again)."""
    out = []
    for p in paths or []:
        path = os.path.abspath(p) if p != "-" and os.path.isfile(p) else "-"
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # a file name that is not UTF-8: not recorded
            return []
        out.append(path)
    return out


def corpus_of_run(o, notify):
    """The corpus paths the run to resume recorded: that of --resume PATH, of --name, or of the
    most recent language-model run. Sets o["name"] to the run's, so the run found is the run
    resumed. One line naming what is needed where the corpus cannot be read again."""
    from charrnn.store.container import read_meta
    path = o["resume"] or None
    if path is None:
        if o.get("name") is not None:
            run = RunDir(os.path.join(o["checkpoint_dir"], checked_run_name(o["name"], [])))
            path = run.resume_path()
            if path is None:
                if os.path.isdir(run.path):
                    with run.lock():  # a trainer that has not saved yet holds it: say so rather than "nothing"
                        pass
                raise CharrnnError(f"nothing to resume: {run.path} has no checkpoint")
        else:
            run = RunDir(os.path.dirname(schema.resolve(None, o["checkpoint_dir"])))
            path = run.resume_path()
    elif os.path.isdir(path):
        run = RunDir(path)
        path = run.resume_path() or os.path.join(path, "latest.ckpt")
    else:
        run = RunDir(os.path.dirname(os.path.abspath(path)))
    o["name"] = os.path.basename(run.path)
    meta = read_meta(path)
    if meta.get("kind") == "classifier":
        raise_classifier_run(run.path, o["name"])
    paths = (meta.get("corpus") or {}).get("paths")
    how = f"charrnn train CORPUS --resume --name {o['name']}"
    if not paths:
        raise CharrnnError(f"{path} does not record its corpus (an earlier charrnn wrote it); name the corpus: {how}")
    if "-" in paths:
        raise CharrnnError(f"{run.path} was trained on standard input, which cannot be read again; give it "
                           f"again: ... | charrnn train - --resume --name {o['name']}")
    missing = [p for p in paths if not os.path.exists(p)]
    from charrnn.text.default_corpus import default_corpus_dir, default_corpus_name
    default = os.path.abspath(os.path.join(default_corpus_dir(), default_corpus_name()))
    if missing == [default]:  # the default corpus is rebuilt as it was
        default_corpus(notify, quiet=True)
        missing = []
    if missing:
        raise CharrnnError(f"{run.path} was trained on {', '.join(paths)}; {missing[0]} is gone: give the corpus "
                           f"as it was, {how.replace('CORPUS', ' '.join(_quote(p) for p in paths))}")
    if not o.get("quiet"):
        notify(f"resuming on the corpus the run recorded: {', '.join(paths)}")
    return paths


def _quote(p):
    import shlex
    return shlex.quote(p)


def claim(run, fresh, force, resumable=True):
    """Inside the run's lock: refuse a fresh run over an existing one (unless --force), clear a
    crash's temporary files, and mark an existing run to be replaced at the first save."""
    if fresh and run.resume_path() and not force:
        how = "--resume to continue it, --force to start it over" if resumable else "--force to start it over"
        raise CharrnnError(f"{run.path} already holds a run; use {how}, or --name to start another")
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
        task = p.task or LanguageModelTask(p.corpus, p.mcfg, p.tcfg, p.resume, blas.product_limit(), p.paths, world)
        return Loop(task, p.tcfg, p.run, reporter, log, stop, world).run()

    if world is not None and not world.primary:
        return train()
    with p.run.lock():
        claim(p.run, p.resume is None, p.force)
        return train()


def run_classifier(p, reporter=None, log=None, stop=None):
    """Train a PreparedClassifier run under its lock; the loop's summary."""
    from charrnn.training.classify import ClassifierTask
    from charrnn.training.loop import Loop
    with p.run.lock():
        claim(p.run, True, p.force, resumable=False)
        task = ClassifierTask(p.data, p.mcfg, p.ccfg, p.names, p.vocab)
        return Loop(task, p.ccfg, p.run, reporter, log, stop).run()


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


def prepare_classifier(o, data, name, notify=lambda line: None, given=()):
    """From `charrnn classify train`'s options and the bytes of its label<TAB>text file."""
    from charrnn.text import labeled
    refuse_ignored(o, given, CLASSIFY_MODEL)
    labels, texts = labeled.parse_tsv(data, o["errors"], name)
    names, y = labeled.label_index(labels)
    ccfg = ClassifyConfig(**{f.name: o[f.name] for f in fields(ClassifyConfig) if f.name in o})
    vocab = labeled.vocab_for(texts, ccfg.level, ccfg.max_vocab)
    seqs = [labeled.encode(vocab, t, ccfg.max_len)[0] for t in texts]
    tr, va = labeled.split(len(seqs), ccfg.val_frac, np.random.default_rng([ccfg.seed, 1]))
    m = {**CLASSIFY_MODEL, **{k: o[k] for k in MODEL_OPTIONS + ("bidirectional",) if o.get(k) is not None}}
    embed = m["embed"] if m["embed"] is not None else (0 if ccfg.level == "char" else 64)
    mcfg = ModelConfig(vocab_size=len(vocab), cell=m["cell"], activation=m["activation"], layers=m["layers"],
                       hidden=m["hidden"], embed=embed, dropout=m["dropout"], bidirectional=m["bidirectional"],
                       forget_bias=m["forget_bias"], labels=len(names))
    run = RunDir(os.path.join(o["checkpoint_dir"], checked_run_name(o.get("name"), ["-" if name == "<stdin>"
                                                                                    else name])))
    check_memory(mcfg, ccfg.batch, max(len(s) for s in seqs), ccfg.optimizer, 1, notify)
    split = ([seqs[i] for i in tr], y[tr], [seqs[i] for i in va], y[va])
    return PreparedClassifier(run, split, mcfg, ccfg, names, vocab, bool(o.get("force")))


def default_corpus(notify, quiet=False):
    from charrnn.text.default_corpus import build_default_corpus, default_corpus_dir
    path = build_default_corpus(default_corpus_dir())
    if not quiet:
        notify(f"no corpus given: training on the default corpus {path} "
               "(Python's own documentation and standard-library source)")
    return path


def checked_run_name(given, paths):
    """--name, else the inputs' run_name; a usage error for one that is not a plain directory name."""
    name = given if given is not None else run_name(paths)
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"Invalid value for --name: {name!r} is not a usable run name")
    return name


def run_name(paths):
    """The first input's stem; "stdin" for - and for a pipe given as a path (`<(...)`, /dev/stdin)."""
    first = paths[0]
    if first == "-" or first == "/dev/stdin" or re.fullmatch(r"/(dev|proc/self)/fd/\d+", first):
        return "stdin"
    return Path(first).stem


def refuse_corpus_as_checkpoint(path):
    """`charrnn train --resume notes.txt` reads notes.txt as --resume's PATH: say how to mean the corpus."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint")  # before any default corpus is built
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError:
        return  # a directory, or unreadable: load_resume says what is wrong
    if not head or not MAGIC.startswith(head):  # a truncated checkpoint is still one: load says so
        raise UsageError(f"--resume {path}: not a checkpoint; to resume training on a corpus, name the "
                         f"corpus first: charrnn train {path} --resume")


def load_resume(o, run):
    path = o["resume"] or run.resume_path()
    if not path:
        with run.lock():  # a trainer that has not saved yet holds it: say so rather than "nothing"
            pass
        raise CharrnnError(f"nothing to resume: {run.path} has no checkpoint")
    if os.path.isdir(path):
        path = os.path.join(path, "latest.ckpt")
    try:
        ck = schema.load(path, kind=None)  # a classifier is said below, with what to do
    except CheckpointError as e:
        good = None if o["resume"] and not os.path.isdir(o["resume"]) else _earlier_good(run, path)
        if good is None:
            raise
        raise CheckpointError(f"{e}; resume from an earlier checkpoint with --resume {good}") from None
    if ck.kind == "classifier":
        raise_classifier_run(path, os.path.basename(os.path.dirname(os.path.abspath(path))))
    if ck.train is None or not ck.opt_state:
        raise CharrnnError(f"{path}: not a language-model training checkpoint, cannot resume from it")
    return ck


def raise_classifier_run(where, name):
    """`charrnn train --resume` found a sequence classifier's run: `classify train` made it, and a
    classifier's run is trained again, not resumed."""
    raise UsageError(f"{where} is a sequence classifier's run (charrnn classify train), which `charrnn train` cannot "
                     f"resume; train it again with charrnn classify train DATA --name {name} --force")


def _earlier_good(run, bad):
    """The newest checkpoint of the run that loads and is not the damaged one: best.ckpt and
    the newest step file are usually hard links to latest.ckpt, damaged with it."""
    for p in [*run.periodic_paths()[::-1], run.best_path()]:
        if p is None or not os.path.exists(p) or (os.path.exists(bad) and os.path.samefile(p, bad)):
            continue
        try:
            schema.load(p)
        except CheckpointError:
            continue
        return p
    return None


def refuse_ignored(o, given, model=LM_MODEL):
    """An option the chosen cell has no use for is a usage error, not silently dropped."""
    cell = o.get("cell") or model["cell"]
    if "activation" in given and cell != "rnn":
        raise UsageError(f"--activation applies to --cell rnn only (an {cell}'s gates have their own "
                         f"nonlinearities)")
    check_max_vocab(o.get("level") or "char", o.get("max_vocab"))
    if "forget_bias" in given and cell != "lstm":
        raise UsageError(f"--forget-bias applies to --cell lstm only (a{'n' if cell == 'rnn' else ''} {cell} "
                         f"has no forget gate)")


def capped_threads(threads, batch, notify):
    """--threads at most one worker per core (32 workers on 2 cores ran 5x slower) and one per
    shard of the batch (core/shards.py: a worker takes whole shards)."""
    from charrnn.core import shards
    n, k = cores(), len(shards.bounds(batch))
    if threads > n:
        notify(f"warning: --threads {threads} is more than the {n} cores here; using {n}")
        threads = n
    if threads > k:
        notify(f"warning: --threads {threads}: --batch {batch} makes {k} shard(s) of {shards.size(batch)} streams, "
               f"one for each worker at most; using {k} (--batch {shards.MAX_STREAMS * threads} keeps {threads} busy)")
        threads = k
    return threads


def train_config(o, resume, given, notify=lambda line: None):
    """The recipe: the options, or on resume the checkpoint's recipe except what is given."""
    keys = [f.name for f in fields(TrainConfig)]
    if "threads" in given:
        batch = o.get("batch") or TrainConfig.batch if "batch" in given or resume is None else resume.train.batch
        o = dict(o, threads=capped_threads(o["threads"], batch, notify))
    if resume is not None:
        base = resume.train.to_json()
        for k in {"level", "max_vocab", "errors", "optimizer"} & given:
            if o[k] != base[k]:
                raise UsageError(f"--{k.replace('_', '-')} cannot change when resuming (the checkpoint has {base[k]})")
        o = {k: (o[k] if k in given else base[k]) for k in keys}
        if "threads" not in given:  # workers change the speed, not the numbers: as many as this machine has
            o["threads"] = default_threads(o["batch"])
        return TrainConfig(**o)
    level = o.get("level", TrainConfig.level)
    o = {k: getattr(TrainConfig, k) for k in keys if hasattr(TrainConfig, k)} | {k: v for k, v in o.items()}
    o["threads"] = o.get("threads") or default_threads(o["batch"])
    o["lr"] = o.get("lr") or DEFAULT_LR[level]
    return TrainConfig(**{k: o[k] for k in keys})


def model_config(o, vocab_size, level):
    m = {**LM_MODEL, **{k: o[k] for k in MODEL_OPTIONS if o.get(k) is not None}}
    embed = m["embed"] if m.get("embed") is not None else (0 if level == "char" else 128)
    return ModelConfig(vocab_size=vocab_size, cell=m["cell"], activation=m["activation"], layers=m["layers"],
                       hidden=m["hidden"], embed=embed, dropout=m["dropout"], forget_bias=m["forget_bias"])


ANNOUNCE_PARAMS = 10_000_000  # a model this large takes seconds to build: say so first


def check_memory(mcfg, batch, seq_len, optimizer, workers, notify, fresh=True, available=None):
    """Refuse a run that cannot fit in the memory this machine has free (one line, before
    anything is allocated: a 2x100000 LSTM was a 54-line MemoryError), and say what a large
    model costs before it is built (a 2x4096 one took 85 s in silence)."""
    from charrnn.core import model, optim
    need = model.training_bytes(mcfg, batch, seq_len, len(optim.make_optimizer(optimizer).slots), workers)
    total = need["weights"] + need["activations"]
    available = available_memory() if available is None else available
    shape = f"a {mcfg.layers}x{mcfg.hidden} {mcfg.cell}"
    if available is not None and total > available:
        raise CharrnnError(f"{shape} needs about {_size(total)} to train at --batch {batch} x --seq-len {seq_len} "
                           f"(weights, gradients and optimizer state {_size(need['weights'])}, activations "
                           f"{_size(need['activations'])}); this machine has {_size(available)} free: use a smaller "
                           f"--hidden, --layers, --batch or --seq-len")
    n = model.count_params(mcfg)
    if fresh and n >= ANNOUNCE_PARAMS:
        notify(f"building {shape} of {n:,} parameters (about {_size(total)} to train)")


def available_memory():
    """Bytes of memory free for a new process (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n):
    """1.2 GiB, 340 MiB, 3.5 TiB."""
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n / 1024:.0f} KiB"


def check_model_unchanged(cfg, o, given):
    for k in MODEL_OPTIONS:
        if k in given and o[k] != getattr(cfg, k):
            raise UsageError(f"--{k.replace('_', '-')} cannot change when resuming (the checkpoint has {getattr(cfg, k)})")
    return cfg


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
