"""`charrnn classify`: many-to-one. Train a sequence classifier on label<TAB>text lines; predict labels.

The model and training options are `charrnn train`'s, and `--bidirectional` is allowed here:
a classifier reads the whole text before it answers.
"""
import os
import sys

import click
import numpy as np

from charrnn.store import schema
from charrnn.text import labeled
from charrnn.store import rundir
from charrnn.cli.common import Finite, InputFile, checkpoint_dir_option, input_name, run_training
from charrnn.training.config import ClassifyConfig
from charrnn.core import cells, optim
from charrnn.core.model import ModelConfig
from charrnn.errors import CharrnnError


@click.group()
def classify():
    """Sequence classification (many-to-one): `classify train DATA.tsv`, then `classify predict`."""


@classify.command("train")
@click.argument("data", type=InputFile())
@click.option("--level", type=click.Choice(["char", "word"]), default="char", show_default=True,
              help="Tokens are characters, or words, punctuation and whitespace runs.")
@click.option("--max-vocab", type=click.IntRange(min=1), default=None,
              help="Word level: keep the N most frequent tokens; the rest become an unknown token.")
@click.option("--cell", type=click.Choice(cells.KINDS), default="lstm", show_default=True,
              help="LSTM, GRU, or vanilla RNN.")
@click.option("--activation", type=click.Choice(cells.ACTIVATIONS), default="tanh", show_default=True,
              help="Nonlinearity of --cell rnn.")
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True, help="Stacked recurrent layers.")
@click.option("--hidden", type=click.IntRange(min=1), default=128, show_default=True, help="Hidden units per layer.")
@click.option("--embed", type=click.IntRange(min=0), default=None,
              help="Embedding width; 0 = one-hot input. [default: 0 at char level, 64 at word level]")
@click.option("--dropout", type=Finite(0, 1, max_open=True), default=0.0, show_default=True,
              help="Inverted dropout on every layer's output during training.")
@click.option("--forget-bias", type=Finite(-10, 10), default=1.0, show_default=True,
              help="LSTM: the forget gate's initial bias (1: remember the start of a long text).")
@click.option("--bidirectional", is_flag=True, help="Read each text both ways; the two final states decide.")
@click.option("--max-len", type=click.IntRange(min=1), default=400, show_default=True,
              help="Tokens kept from the start of each text.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Texts per step.")
@click.option("--optimizer", type=click.Choice(optim.OPTIMIZERS), default="adam", show_default=True,
              help="SGD with momentum 0.9, Adam, RMSprop (alpha 0.95) or Adagrad.")
@click.option("--lr", type=Finite(min=0, min_open=True), default=2e-3, show_default=True, help="Peak learning rate.")
@click.option("--lr-schedule", type=click.Choice(optim.SCHEDULES), default="cosine", show_default=True,
              help="cosine decays to 0 over the run; step halves it at 25, 50 and 75 %.")
@click.option("--warmup", type=click.IntRange(min=0), default=50, show_default=True,
              help="Steps of linear learning-rate warm-up.")
@click.option("--clip", type=Finite(min=0), default=5.0, show_default=True,
              help="Clip the global gradient norm to this; 0 = off.")
@click.option("--clip-value", type=Finite(min=0), default=0.0,
              help="Also clip each gradient element to [-F, F], as char-rnn does; 0 = off.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Total steps of the run.")
@click.option("--epochs", type=Finite(min=0, min_open=True), default=None,
              help="Passes over the training lines; with none of --steps/--epochs/--minutes: 10.")
@click.option("--minutes", type=Finite(min=0, min_open=True), default=None, help="Stop after this long.")
@click.option("--val-frac", type=Finite(0, 1, max_open=True), default=0.1, show_default=True,
              help="A random fraction of the lines held out for validation accuracy.")
@click.option("--eval-every", type=click.IntRange(min=1), default=None,
              help="Validate and checkpoint every N steps [default: once per epoch].")
@checkpoint_dir_option
@click.option("--name", default=None, help="Run name [default: the data file's stem].")
@click.option("--force", is_flag=True, help="Start over a run that exists.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with invalid UTF-8.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the initialisation, the split, the batches and dropout: same seed, same model.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Append one JSON object per step (and per evaluation) to FILE (see `charrnn plot`).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def train(data, **o):
    """Learn to label texts from DATA: lines of label<TAB>text (- = stdin)."""
    from charrnn.ui import progress
    from charrnn.training.classify import ClassifierTask
    from charrnn.training.loop import Loop, Stop

    from charrnn.cli.train_setup import checked_run_name

    name = input_name(data)
    labels, texts = labeled.parse_tsv(data.read(), o["errors"], name)
    names, y = labeled.label_index(labels)
    ccfg = ClassifyConfig(**{k: o[k] for k in ClassifyConfig.__dataclass_fields__})
    vocab = labeled.vocab_for(texts, ccfg.level, ccfg.max_vocab)
    seqs = [labeled.encode(vocab, t, ccfg.max_len)[0] for t in texts]
    tr, va = labeled.split(len(seqs), ccfg.val_frac, np.random.default_rng([ccfg.seed, 1]))
    embed = o["embed"] if o["embed"] is not None else (0 if ccfg.level == "char" else 64)
    mcfg = ModelConfig(vocab_size=len(vocab), cell=o["cell"], activation=o["activation"], layers=o["layers"],
                       hidden=o["hidden"], embed=embed, dropout=o["dropout"], bidirectional=o["bidirectional"],
                       forget_bias=o["forget_bias"], labels=len(names))
    run_name = checked_run_name(o["name"], ["-" if name == "<stdin>" else name])
    run = rundir.RunDir(os.path.join(o["checkpoint_dir"], run_name))
    reporter = progress.make_reporter(o["quiet"])
    stop = Stop()
    with run.lock():
        if run.resume_path() and not o["force"]:
            raise CharrnnError(f"{run.path} already holds a run; use --force to start it over, or --name to "
                               "start another")
        run.clean_stale_temps()
        data_split = ([seqs[i] for i in tr], y[tr], [seqs[i] for i in va], y[va])
        task = ClassifierTask(data_split, mcfg, ccfg, names, vocab)
        run_training(lambda log: Loop(task, ccfg, run, reporter, log, stop), reporter, o["log_path"], stop)


@classify.command("predict")
@click.argument("file", type=InputFile(), default="-")
@click.option("--checkpoint", "ckpt", default=None, metavar="PATH",
              help="A classifier checkpoint or its run directory (its best) [default: the latest run].")
@checkpoint_dir_option
@click.option("--probs", is_flag=True, help="After the label, each label's probability as name:p, tab-separated.")
@click.option("--labeled", "labeled_input", is_flag=True,
              help="FILE holds label<TAB>text lines: predict from the text, report accuracy on stderr.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True)
def predict(file, ckpt, checkpoint_dir, probs, labeled_input, errors):
    """Write one label per line of FILE (- or none: stdin) to stdout."""
    from charrnn.training.classify import predict as predict_probs
    from charrnn.text.vocab import decode_bytes

    b = schema.load(schema.resolve(ckpt, checkpoint_dir, "classifier"), kind="classifier")
    names = b.labels
    max_len = b.classify.max_len if b.classify is not None else ClassifyConfig.max_len
    data = file.read()
    if labeled_input:
        truth, texts = labeled.parse_tsv(data, errors, input_name(file), min_labels=1)
    else:
        text = decode_bytes(data, errors, name=input_name(file))
        texts = [ln.removesuffix("\r") for ln in text.split("\n")]
        if texts and texts[-1] == "":
            texts.pop()  # the line break that ends the last line
    unknown = 0
    seqs = []
    for t in texts:
        ids, unk = labeled.encode(b.vocab, t, max_len)
        unknown += bool(unk)
        seqs.append(ids)
    p = predict_probs(b.params, b.cfg, seqs) if seqs else np.zeros((0, len(names)))
    best = p.argmax(axis=1)
    out = sys.stdout
    for row, k in zip(p, best):
        extra = "".join(f"\t{n}:{v:.4f}" for n, v in zip(names, row)) if probs else ""
        out.write(names[k] + extra + "\n")
    out.flush()
    if unknown:
        click.echo(f"warning: in {unknown} line(s), symbols the model never saw were skipped", err=True)
    if labeled_input:
        strangers = sorted(set(truth) - set(names))
        if strangers:
            n = sum(t in strangers for t in truth)
            click.echo(f"warning: {n} line(s) have a label the model was not trained on "
                       f"({', '.join(map(repr, strangers[:5]))}); they count as wrong", err=True)
        hits = sum(names[k] == t for k, t in zip(best, truth))
        click.echo(f"accuracy {hits / len(truth):.4f} ({hits}/{len(truth)})", err=True)
