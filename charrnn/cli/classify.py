"""`charrnn classify`: many-to-one. Train a sequence classifier on label<TAB>text lines; predict labels.

The model and training options are `charrnn train`'s (cli/options.py), with the classifier's
own defaults, and `--bidirectional` is allowed here: a classifier reads the whole text before
it answers.
"""
import sys

import click

from charrnn.cli.common import input_name, run_training, warnings_to_stderr
from charrnn.cli.options import MODEL, RECIPE, InputFile, option, options, training_options
from charrnn.training.config import CLASSIFY_MODEL, ClassifyConfig


@click.group()
def classify():
    """Sequence classification (many-to-one): `classify train DATA.tsv`, then `classify predict`."""


@classify.command("train")
@click.argument("data", type=InputFile())
@training_options(
    MODEL + ("max_len",) + RECIPE, ClassifyConfig, CLASSIFY_MODEL,
    level=dict(help="Tokens are characters, or words, punctuation and whitespace runs."),
    embed=dict(help="Embedding width; 0 = one-hot input. [default: 0 at char level, 64 at word level]"),
    forget_bias=dict(help="LSTM: the forget gate's initial bias (1: remember the start of a long text)."),
    batch=dict(help="Texts per step."),
    lr=dict(help="Peak learning rate."),
    steps=dict(help="Total steps of the run."),
    epochs=dict(help="Passes over the training lines; with none of --steps/--epochs/--minutes: 10."),
    minutes=dict(help="Stop after this long."),
    val_frac=dict(help="A random fraction of the lines held out for validation accuracy."),
    eval_every=dict(help="Validate and checkpoint every N steps [default: once per epoch]."),
)
@option("checkpoint_dir")
@option("name", help="Run name [default: the data file's stem].")
@training_options(("force", "errors", "seed"), ClassifyConfig, CLASSIFY_MODEL,
                  force=dict(help="Start over a run that exists."),
                  seed=dict(help="Seeds the initialisation, the split, the batches and dropout: same seed, "
                                 "same model."))
@options("log", "quiet")
@click.pass_context
def train(ctx, data, **o):
    """Learn to label texts from DATA: lines of label<TAB>text (- = stdin)."""
    from charrnn.training import distributed, setup
    if distributed.world_size() != 1:
        raise click.UsageError("classify train runs on one machine (its labelled lines are few); "
                               "mpirun is for charrnn train")
    from charrnn.training.loop import Stop
    from charrnn.ui import progress

    given = {k for k in o if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    p = setup.prepare_classifier(o, data.read(), input_name(data), lambda line: click.echo(line, err=True), given)
    run_training(setup.run_classifier, p, progress.make_reporter(o["quiet"]), o["log_path"], Stop(), quiet=o["quiet"])


@classify.command("predict")
@click.argument("file", type=InputFile(), default="-")
@option("checkpoint", help="A classifier checkpoint or its run directory (its best) [default: the latest run].")
@option("checkpoint_dir")
@click.option("--probs", is_flag=True, help="After the label, each label's probability as name:p, tab-separated.")
@click.option("--labeled", "labeled_input", is_flag=True,
              help="FILE holds label<TAB>text lines: predict from the text, report accuracy on stderr.")
@option("errors")
def predict(file, ckpt, checkpoint_dir, probs, labeled_input, errors):
    """Write one label per line of FILE (- or none: stdin) to stdout."""
    from charrnn import api
    from charrnn.store import schema
    from charrnn.text import labeled
    from charrnn.text.decode import decode_bytes

    path = schema.resolve(ckpt, checkpoint_dir, "classifier")
    m = api.Model(schema.load(path, kind="classifier"), path)
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
