"""From `charrnn train`'s options to what the trainer needs: the recipe and model configs, the
corpus (re-expressed in a resumed model's vocabulary), the checkpoint to resume from."""
import os
import re
import sys
from pathlib import Path

import click
import numpy as np

from charrnn.store import schema
from charrnn.training.config import TrainConfig, default_threads
from charrnn.core.model import ModelConfig
from charrnn.errors import CharrnnError, CheckpointError

PROGRESS_BYTES = 4 << 20  # show the encoding bar for inputs above 4 MB, on a terminal


def default_corpus(quiet):
    from charrnn.text.default_corpus import build_default_corpus, default_corpus_dir
    path = build_default_corpus(default_corpus_dir())
    if not quiet:
        click.echo(f"no corpus given: training on the default corpus {path} "
                   "(Python's own documentation and standard-library source)", err=True)
    return path


def checked_run_name(given, paths):
    """--name, else the inputs' run_name; a usage error for one that is not a plain directory name."""
    name = given if given is not None else run_name(paths)
    if not name or "/" in name or name in (".", ".."):
        raise click.BadParameter(f"{name!r} is not a usable run name", param_hint="--name")
    return name


def run_name(paths):
    """The first input's stem; "stdin" for - and for a pipe given as a path (`<(...)`, /dev/stdin)."""
    first = paths[0]
    if first == "-" or first == "/dev/stdin" or re.fullmatch(r"/(dev|proc/self)/fd/\d+", first):
        return "stdin"
    return Path(first).stem


def refuse_corpus_as_checkpoint(path):
    """`charrnn train --resume notes.txt` reads notes.txt as --resume's PATH: say how to mean the corpus."""
    from charrnn.store.container import MAGIC
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint")  # before any default corpus is built
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError:
        return  # a directory, or unreadable: load_resume says what is wrong
    if not head or not MAGIC.startswith(head):  # a truncated checkpoint is still one: load says so
        raise click.UsageError(f"--resume {path}: not a checkpoint; to resume training on a corpus, name the "
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
        b = schema.load(path)
    except CheckpointError as e:
        good = None if o["resume"] and not os.path.isdir(o["resume"]) else _earlier_good(run, path)
        if good is None:
            raise
        raise CheckpointError(f"{e}; resume from an earlier checkpoint with --resume {good}") from None
    if b.kind != "lm" or b.train is None or not b.opt_state:
        raise CharrnnError(f"{path}: not a language-model training checkpoint, cannot resume from it")
    return b


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


def train_config(o, resume, given):
    keys = [f.name for f in TrainConfig.__dataclass_fields__.values()]
    if resume is not None:
        # the checkpoint's recipe, except what this command line says explicitly
        base = resume.train.to_json()
        fixed = {"level", "max_vocab", "errors", "optimizer"} & given
        for k in fixed:
            if o[k] != base[k]:
                raise click.UsageError(f"--{k.replace('_', '-')} cannot change when resuming "
                                       f"(the checkpoint has {base[k]})")
        return TrainConfig(**{k: (o[k] if k in given else base.get(k, 1)) for k in keys})
    o = dict(o, threads=o["threads"] or default_threads(o["batch"]), lr=o["lr"] or DEFAULT_LR[o["level"]])
    return TrainConfig(**{k: o[k] for k in keys})


# a short char-level run learns fastest from a high peak (README "The recipe"); a word-level
# model's embedding and large softmax did better at the usual 2e-3
DEFAULT_LR = {"char": 8e-3, "word": 2e-3}
MODEL_OPTIONS = ("cell", "activation", "layers", "hidden", "embed", "dropout", "forget_bias")


def model_config(o, vocab_size, level):
    embed = o["embed"] if o["embed"] is not None else (0 if level == "char" else 128)
    return ModelConfig(vocab_size=vocab_size, cell=o["cell"], activation=o["activation"], layers=o["layers"],
                       hidden=o["hidden"], embed=embed, dropout=o["dropout"], forget_bias=o["forget_bias"])


def check_model_unchanged(cfg, o, given):
    for k in MODEL_OPTIONS:
        if k in given and o[k] != getattr(cfg, k):
            raise click.UsageError(f"--{k.replace('_', '-')} cannot change when resuming "
                                   f"(the checkpoint has {getattr(cfg, k)})")
    return cfg


def read_corpus(sources, tcfg, quiet, resume):
    """The corpus's tokens (through the token cache), in a resumed model's vocabulary."""
    from charrnn.text.corpus import default_cache_dir, load_corpus
    progress = not quiet and sys.stderr.isatty() and sources.size > PROGRESS_BYTES
    try:
        corpus = load_corpus(sources, tcfg.level, tcfg.max_vocab, tcfg.errors, cache_dir=default_cache_dir(),
                             progress=progress)
    finally:
        sources.close()  # the stdin spool, if any: training needs only the (memory-mapped) tokens
    if resume is not None and corpus.vocab.tokens != resume.vocab.tokens:
        corpus = remap(corpus, resume.vocab)
    return corpus


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
