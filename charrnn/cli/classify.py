"""`charrnn classify`: many-to-one. Train a sequence classifier on label<TAB>text lines; predict labels.

The model and training options are `charrnn train`'s (cli/options.py), with the classifier's
own defaults, and `--bidirectional` is allowed here: a classifier reads the whole text before
it answers.
"""
import sys

import click

from charrnn.cli.common import input_name, run_training, warnings_to_stderr
from charrnn.cli.options import InputFile, fields_of, given, option, options
from charrnn.config.model import CLASSIFY_MODEL, MODEL_OPTIONS, ModelConfig
from charrnn.config.recipe import ClassifyConfig, Recipe
from charrnn.config.run import RunOptions

RECIPE = ("level", "max_vocab", "max_len", "batch", "optimizer", "beta2", "lr", "lr_schedule", "warmup", "clip",
          "clip_value", "steps", "epochs", "minutes", "val_frac", "eval_every", "errors", "seed")


@click.group()
def classify():
    """Sequence classification (many-to-one): `classify train DATA.tsv`, then `classify predict`."""


@classify.command("train")
@click.argument("data", type=InputFile())
@fields_of(ModelConfig, *MODEL_OPTIONS, **{
    **{k: dict(default=v) for k, v in CLASSIFY_MODEL.items()},
    "embed": dict(help="Embedding width; 0 = one-hot input. [default: 0 at char level, 64 at word level]"),
    "forget_bias": dict(default=CLASSIFY_MODEL["forget_bias"],
                        help="LSTM: the forget gate's initial bias (1: remember the start of a long text).")})
@fields_of(ClassifyConfig, *RECIPE)
@fields_of(RunOptions, "checkpoint_dir", "name", "force", "log", name=dict(help="Run name [default: the data "
                                                                                  "file's stem]."),
           force=dict(help="Start over a run that exists."), log=dict(type=click.Path(dir_okay=False, writable=True)))
@option("quiet")
@click.pass_context
def train(ctx, data, quiet, **o):
    """Learn to label texts from DATA: lines of label<TAB>text (- = stdin)."""
    from charrnn.training import classify as classifying, distributed
    if distributed.world_size() != 1:
        raise click.UsageError("classify train runs on one machine (its labelled lines are few); "
                               "mpirun is for charrnn train")
    from charrnn.training.loop import Stop
    from charrnn.ui import progress

    run = RunOptions(**{k: o[k] for k in ("checkpoint_dir", "name", "force", "log")})
    p = classifying.prepare(given(ctx, o, ModelConfig, ClassifyConfig), run, data.read(), input_name(data),
                            lambda line: click.echo(line, err=True))
    run_training(classifying.run, p, progress.make_reporter(quiet), run.log, Stop(), quiet=quiet)


@classify.command("predict")
@click.argument("file", type=InputFile(), default="-")
@option("checkpoint", help="A classifier checkpoint or its run directory (its best) [default: the latest run].")
@fields_of(RunOptions, "checkpoint_dir")
@click.option("--probs", is_flag=True, help="After the label, each label's probability as name:p, tab-separated.")
@click.option("--labeled", "labeled_input", is_flag=True,
              help="FILE holds label<TAB>text lines: predict from the text, report accuracy on stderr.")
@fields_of(Recipe, "errors")
def predict(file, ckpt, checkpoint_dir, probs, labeled_input, errors):
    """Write one label per line of FILE (- or none: stdin) to stdout."""
    from charrnn.api import load
    from charrnn.text import labeled
    from charrnn.text.decode import decode_bytes

    m = load(ckpt, checkpoint_dir, kind="classifier")
    data = file.read()
    if labeled_input:
        truth, texts = labeled.parse_tsv(data, errors, input_name(file), min_labels=1)
    else:
        text = decode_bytes(data, errors, name=input_name(file))
        texts = [ln.removesuffix("\r") for ln in text.split("\n")]
        if texts and texts[-1] == "":
            texts.pop()  # the line break that ends the last line
    with warnings_to_stderr():
        rows = m.classify(texts, probabilities=True)
    best = [max(row, key=row.get) for row in rows]  # the first of equals, as argmax
    out = sys.stdout
    for row, label in zip(rows, best):
        extra = "".join(f"\t{n}:{v:.4f}" for n, v in row.items()) if probs else ""
        out.write(label + extra + "\n")
    out.flush()
    if labeled_input:
        strangers = sorted(set(truth) - set(m.labels))
        if strangers:
            n = sum(t in strangers for t in truth)
            click.echo(f"warning: {n} line(s) have a label the model was not trained on "
                       f"({', '.join(map(repr, strangers[:5]))}); they count as wrong", err=True)
        hits = sum(label == t for label, t in zip(best, truth))
        click.echo(f"accuracy {hits / len(truth):.4f} ({hits}/{len(truth)})", err=True)
