"""What `charrnn train --resume` goes on from: the checkpoint, and (for `--resume` alone) the
corpus its run recorded. Each way it can fail is one line saying what to do.
"""
import os
import shlex

from charrnn.checkpoint import schema
from charrnn.checkpoint.find import resolve
from charrnn.errors import CharrnnError, CheckpointError, UsageError
from charrnn.store import container
from charrnn.store.rundir import RunDir


def checked_run_name(given, paths):
    """--name, else the inputs' run_name; a usage error for one that is not a plain directory name."""
    name = given if given is not None else run_name(paths)
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"Invalid value for --name: {name!r} is not a usable run name")
    return name


def run_name(paths):
    """The first input's stem; "stdin" for - and for a pipe given as a path (`<(...)`, /dev/stdin)."""
    import re
    from pathlib import Path
    first = paths[0]
    if first == "-" or first == "/dev/stdin" or re.fullmatch(r"/(dev|proc/self)/fd/\d+", first):
        return "stdin"
    return Path(first).stem


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


def corpus_of_run(resume, name, checkpoint_dir, notify, quiet, default_corpus):
    """(run name, corpus paths) of the run `--resume` alone continues: that of --resume PATH, of
    --name, or the most recent language-model run, with the corpus its checkpoint recorded.
    One line naming what is needed where the corpus cannot be read again."""
    path = resume or None
    if path is None:
        if name is not None:
            run = RunDir(os.path.join(checkpoint_dir, checked_run_name(name, [])))
            path = run.resume_path()
            if path is None:
                if os.path.isdir(run.path):
                    with run.lock():  # a trainer that has not saved yet holds it: say so rather than "nothing"
                        pass
                raise CharrnnError(f"nothing to resume: {run.path} has no checkpoint")
        else:
            run = RunDir(os.path.dirname(resolve(None, checkpoint_dir)))
            path = run.resume_path()
    elif os.path.isdir(path):
        run = RunDir(path)
        path = run.resume_path() or os.path.join(path, "latest.ckpt")
    else:
        run = RunDir(os.path.dirname(os.path.abspath(path)))
    name = os.path.basename(run.path)
    meta = container.read_meta(path)
    if meta.get("kind") == "classifier":
        raise_classifier_run(run.path, name)
    paths = (meta.get("corpus") or {}).get("paths")
    how = f"charrnn train CORPUS --resume --name {name}"
    if not paths:
        raise CharrnnError(f"{path} does not record its corpus (an earlier charrnn wrote it); name the corpus: {how}")
    if "-" in paths:
        raise CharrnnError(f"{run.path} was trained on standard input, which cannot be read again; give it "
                           f"again: ... | charrnn train - --resume --name {name}")
    missing = [p for p in paths if not os.path.exists(p)]
    from charrnn.text.default_corpus import default_corpus_dir, default_corpus_name
    if missing == [os.path.abspath(os.path.join(default_corpus_dir(), default_corpus_name()))]:
        default_corpus(notify, quiet=True)  # the default corpus is rebuilt as it was
        missing = []
    if missing:
        raise CharrnnError(f"{run.path} was trained on {', '.join(paths)}; {missing[0]} is gone: give the corpus "
                           f"as it was, {how.replace('CORPUS', ' '.join(shlex.quote(p) for p in paths))}")
    if not quiet:
        notify(f"resuming on the corpus the run recorded: {', '.join(paths)}")
    return name, paths


def refuse_corpus_as_checkpoint(path):
    """`charrnn train --resume notes.txt` reads notes.txt as --resume's PATH: say how to mean the corpus."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint")  # before any default corpus is built
    try:
        with open(path, "rb") as f:
            head = f.read(len(container.MAGIC))
    except OSError:
        return  # a directory, or unreadable: load_resume says what is wrong
    if not head or not container.MAGIC.startswith(head):  # a truncated checkpoint is still one: load says so
        raise UsageError(f"--resume {path}: not a checkpoint; to resume training on a corpus, name the "
                         f"corpus first: charrnn train {path} --resume")


def load_resume(resume, run):
    """The Checkpoint --resume (PATH, or "" for the run's latest) goes on from, checked."""
    path = resume or run.resume_path()
    if not path:
        with run.lock():  # a trainer that has not saved yet holds it: say so rather than "nothing"
            pass
        raise CharrnnError(f"nothing to resume: {run.path} has no checkpoint")
    if os.path.isdir(path):
        path = os.path.join(path, "latest.ckpt")
    try:
        ck = schema.load(path, kind=None)  # a classifier is said below, with what to do
    except CheckpointError as e:
        good = None if resume and not os.path.isdir(resume) else _earlier_good(run, path)
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
