"""`charrnn train`: learn a language model from text files or standard input."""
import functools
import sys

import click

from charrnn.cli.common import hint_stdin, run_training
from charrnn.cli.options import fields_of, given, option
from charrnn.config.model import MODEL_OPTIONS, ModelConfig
from charrnn.config.recipe import TrainConfig
from charrnn.config.fields import specs
from charrnn.config.run import RunOptions
from charrnn.training.recipe import CHOSEN, FIXED

def by_recipe(cls, name):
    """The click changes of an option the recipe chooses when it is not given: its help says so."""
    spec = specs(cls)[name][1]
    value = FIXED.get(name, specs(cls)[name][0].default)
    fixed = spec.auto or (value if isinstance(value, str) else f"{value:g}")
    return dict(default=None, show_default=False,
                help=f"{spec.help} [default: the recipe's choice (docs/recipe.md); {fixed} with --recipe fixed]")


RECIPE = ("level", "max_vocab", "seq_len", "batch", "optimizer", "beta2", "lr", "lr_schedule", "warmup", "clip",
          "clip_value", "steps", "epochs", "minutes", "val_frac", "eval_every", "errors", "seed", "threads", "recipe")


@click.command()
@click.argument("corpus", nargs=-1, type=click.Path(allow_dash=True, dir_okay=True))
@fields_of(ModelConfig, *MODEL_OPTIONS, bidirectional=dict(hidden=True),  # refused: a language model must not read ahead
           **{k: by_recipe(ModelConfig, k) for k in CHOSEN if k in MODEL_OPTIONS})
@fields_of(TrainConfig, *RECIPE, **{k: by_recipe(TrainConfig, k) for k in CHOSEN if k in RECIPE})
@fields_of(RunOptions, "checkpoint_dir", "name", "resume", "force", "log",
           resume=dict(is_flag=False, flag_value="", type=click.Path()),
           log=dict(type=click.Path(dir_okay=False, writable=True)))
@option("quiet")
@click.pass_context
def train(ctx, corpus, quiet, **o):
    """Learn a language model from CORPUS files (- for stdin; none: the default corpus)."""
    from charrnn.training import distributed, prepare
    from charrnn.training.loop import Stop
    from charrnn.ui import progress as progress_ui

    paths = tuple(corpus)
    world = distributed.World.join()  # under mpirun with two ranks or more; None otherwise
    primary = world is None or world.primary
    if "-" in paths and primary:
        hint_stdin()
    notify = (lambda line: click.echo(line, err=True)) if primary else (lambda line: None)  # noqa: E731
    run = RunOptions(**{k: o[k] for k in ("checkpoint_dir", "name", "resume", "force", "log")})
    req = prepare.Request(given(ctx, o, ModelConfig, TrainConfig), run, paths,
                          stdin=sys.stdin.buffer if "-" in paths else None, quiet=quiet,
                          progress=not quiet and sys.stderr.isatty() and primary)
    if world is None:
        p = prepare.prepare(req, notify)
    else:
        from charrnn.training import replicas
        p = replicas.prepare(world, req, notify)
    if p.done:
        notify(p.done)
        return
    reporter = progress_ui.make_reporter(quiet or not primary)
    run_training(functools.partial(prepare.run, world=world), p, reporter, run.log if primary else None, Stop(),
                 quiet=quiet or not primary)
