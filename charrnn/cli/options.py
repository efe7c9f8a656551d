"""Every command-line option, declared once; commands pick theirs by name.

``option(name, **changes)`` is the click option of SPECS[name], with a command's own default
or help where it differs; ``options(*names, **changes)`` stacks several in order. The training
options take their defaults from the config dataclasses (training/config.py: TrainConfig,
ClassifyConfig, LM_MODEL, CLASSIFY_MODEL), which travel in checkpoints, so a default lives in
one place. Also here: the option types that keep values sane (Finite, InputFile).
"""
import math

import click

from charrnn.core import cells, optim
from charrnn.text.vocab import LEVELS
from charrnn.text.decode import ERRORS


class Finite(click.FloatRange):
    """click.FloatRange that also refuses nan and ±inf: nan compares as inside every range, and
    an infinite --minutes or --clip would reach the checkpoint's JSON."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


class InputFile(click.File):
    """click.File("rb") whose missing or unreadable file is the one line every charrnn command
    gives ("notes.txt: no such file", exit 1), not click's usage error."""

    def __init__(self):
        super().__init__("rb")

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value != "-":
            from charrnn.text.sources import open_input
            open_input(value).close()  # CorpusError in charrnn's words, before click's own
        elif value == "-":
            from charrnn.cli.common import hint_stdin
            hint_stdin()
        return super().convert(value, param, ctx)


_POS = click.IntRange(min=1)
SPECS = {
    # which model, where runs live
    "checkpoint": (("--checkpoint", "ckpt"), dict(
        default=None, metavar="PATH", type=click.Path(),  # a path: the shell completes it
        help="A checkpoint file or a run directory (its best) [default: the latest run].")),
    "checkpoint_dir": (("--checkpoint-dir",), dict(
        envvar="CHARRNN_CHECKPOINT_DIR", default="checkpoints", show_default=True,
        help="Where runs live (env CHARRNN_CHECKPOINT_DIR).")),
    "errors": (("--errors",), dict(
        type=click.Choice(ERRORS), default="strict", show_default=True, help="What to do with invalid UTF-8.")),
    "json": (("--json", "as_json"), dict(is_flag=True, help="Print one JSON object.")),
    "quiet": (("-q", "--quiet"), dict(is_flag=True, help="No progress on stderr.")),
    # the text and the model
    "level": (("--level",), dict(
        type=click.Choice(LEVELS), show_default=True,
        help="Tokens are Unicode characters, or words, punctuation and whitespace runs.")),
    "max_vocab": (("--max-vocab",), dict(
        type=_POS, help="Word level: keep the N most frequent tokens; the rest become an unknown token.")),
    "cell": (("--cell",), dict(type=click.Choice(cells.KINDS), show_default=True, help="LSTM, GRU, or vanilla RNN.")),
    "activation": (("--activation",), dict(
        type=click.Choice(cells.ACTIVATIONS), show_default=True, help="Nonlinearity of --cell rnn.")),
    "layers": (("--layers",), dict(type=_POS, show_default=True, help="Stacked recurrent layers.")),
    "hidden": (("--hidden",), dict(type=_POS, show_default=True, help="Hidden units per layer.")),
    "embed": (("--embed",), dict(type=click.IntRange(min=0), help="Embedding width; 0 = one-hot input.")),
    "dropout": (("--dropout",), dict(
        type=Finite(0, 1, max_open=True), show_default=True,
        help="Inverted dropout on every layer's output during training.")),
    "forget_bias": (("--forget-bias",), dict(
        type=Finite(-10, 10), show_default=True, help="LSTM: the forget gate's initial bias.")),
    "bidirectional": (("--bidirectional",), dict(
        is_flag=True, help="Read each text both ways; the two final states decide.")),
    # the recipe
    "seq_len": (("--seq-len",), dict(
        type=_POS, show_default=True, help="Window of truncated backpropagation through time.")),
    "max_len": (("--max-len",), dict(type=_POS, show_default=True, help="Tokens kept from the start of each text.")),
    "batch": (("--batch",), dict(type=_POS, show_default=True, help="Number of contiguous streams trained in parallel.")),
    "optimizer": (("--optimizer",), dict(
        type=click.Choice(optim.OPTIMIZERS), show_default=True,
        help="SGD with momentum 0.9, Adam, RMSprop (alpha 0.95) or Adagrad.")),
    "lr": (("--lr",), dict(type=Finite(min=0, min_open=True), show_default=True, help="Peak learning rate.")),
    "lr_schedule": (("--lr-schedule",), dict(
        type=click.Choice(optim.SCHEDULES), show_default=True,
        help="cosine decays to 0 over the run; step halves it at 25, 50 and 75 %.")),
    "warmup": (("--warmup",), dict(
        type=click.IntRange(min=0), show_default=True, help="Steps of linear learning-rate warm-up.")),
    "clip": (("--clip",), dict(
        type=Finite(min=0), show_default=True, help="Clip the global gradient norm to this; 0 = off.")),
    "clip_value": (("--clip-value",), dict(
        type=Finite(min=0), help="Also clip each gradient element to [-F, F], as char-rnn does; 0 = off.")),
    "steps": (("--steps",), dict(type=_POS, help="Total steps of the run (also when resuming).")),
    "epochs": (("--epochs",), dict(
        type=Finite(min=0, min_open=True), help="Stop after this many passes over the training text.")),
    "minutes": (("--minutes",), dict(
        type=Finite(min=0, min_open=True),
        help="Stop after this long; with none of --steps/--epochs/--minutes: 10 minutes.")),
    "val_frac": (("--val-frac",), dict(
        type=Finite(0, 1, max_open=True), show_default=True,
        help="The last fraction of the text, held out for validation.")),
    "eval_every": (("--eval-every",), dict(type=_POS, show_default=True, help="Validate and checkpoint every N steps.")),
    "seed": (("--seed",), dict(
        type=click.IntRange(min=0), show_default=True,
        help="Seeds the initialisation and the dropout masks: same seed, same model.")),
    "threads": (("--threads",), dict(
        type=_POS, default=None,
        help="Workers splitting the batch (processes on Linux where they pay) [default: one per core, at most 4].")),
    # the run
    "name": (("--name",), dict(default=None, help="Run name [default: the corpus file's stem].")),
    "resume": (("--resume",), dict(
        default=None, is_flag=False, flag_value="", metavar="[PATH]", type=click.Path(),
        help="Continue a run: from PATH, or from this run's latest checkpoint.")),
    "force": (("--force",), dict(is_flag=True, help="Start over a run that exists, or resume on another corpus.")),
    "log": (("--log", "log_path"), dict(
        type=click.Path(dir_okay=False, writable=True), default=None,
        help="Append one JSON object per step (and per evaluation) to FILE (see `charrnn plot`).")),
}

MODEL = ("level", "max_vocab", "cell", "activation", "layers", "hidden", "embed", "dropout", "forget_bias",
         "bidirectional")
RECIPE = ("batch", "optimizer", "lr", "lr_schedule", "warmup", "clip", "clip_value", "steps", "epochs", "minutes",
          "val_frac", "eval_every")
RUN = ("checkpoint_dir", "name", "force", "errors", "seed", "log", "quiet")


def option(name, **changes):
    """The click option ``name`` of SPECS, with ``changes`` to its keyword arguments."""
    decls, kw = SPECS[name]
    return click.option(*decls, **{**kw, **changes})


def options(*names, **changes):
    """A decorator applying option(name, **changes.get(name, {})) for each name, in order."""
    def decorate(f):
        for name in reversed(names):
            f = option(name, **changes.get(name, {}))(f)
        return f
    return decorate


def training_options(names, recipe, model, **changes):
    """``options(*names)`` with defaults from the recipe dataclass (TrainConfig or ClassifyConfig)
    and the model defaults (LM_MODEL or CLASSIFY_MODEL), then ``changes``."""
    merged = {}
    for name in names:
        kw = {}
        if name in model:
            kw["default"] = model[name]
        elif hasattr(recipe, name):
            kw["default"] = getattr(recipe, name)
        merged[name] = {**kw, **changes.get(name, {})}
    return options(*names, **merged)
