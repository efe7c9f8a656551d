"""`charrnn train`: learn a language model from text files or standard input."""
import functools
import sys

import click

from charrnn.cli.common import hint_stdin, run_training
from charrnn.cli.options import MODEL, RECIPE, option, options, training_options
from charrnn.training.config import LM_MODEL, TrainConfig


@click.command()
@click.argument("corpus", nargs=-1, type=click.Path(allow_dash=True, dir_okay=True))
@training_options(
    MODEL + ("seq_len",) + RECIPE, TrainConfig, LM_MODEL,
    embed=dict(help="Embedding width; 0 = one-hot input. [default: 0 at char level, 128 at word level]"),
    forget_bias=dict(help="LSTM: the forget gate's initial bias. 1 helps very long memory; 0 learns text faster."),
    bidirectional=dict(hidden=True),  # refused with a reason: a language model must not read ahead
    lr=dict(default=None, show_default=False, help="Peak learning rate. [default: 8e-3 at char level, 2e-3 at word level]"),
    eval_every=dict(help="Validate and checkpoint every N steps [default: 200, or each fifth of a --minutes run "
                         "if that comes sooner]."),
)
@option("checkpoint_dir")
@option("name")
@option("resume")
@training_options(("force", "errors", "seed"), TrainConfig, LM_MODEL)
@option("threads")
@options("log", "quiet")
@click.pass_context
def train(ctx, corpus, **o):
    """Learn a language model from CORPUS files (- for stdin; none: the default corpus)."""
    from charrnn.training import distributed, setup
    from charrnn.training.loop import Stop
    from charrnn.ui import progress as progress_ui

    given = {k for k in o if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    paths = list(corpus)
    world = distributed.World.join()  # under mpirun with two ranks or more; None otherwise
    primary = world is None or world.primary
    if "-" in paths and primary:
        hint_stdin()
    notify = (lambda line: click.echo(line, err=True)) if primary else (lambda line: None)  # noqa: E731
    stdin = sys.stdin.buffer if "-" in paths else None
    progress = not o["quiet"] and sys.stderr.isatty()
    if world is None:
        p = setup.prepare(o, given, paths, notify, stdin, progress)
    else:
        from charrnn.training import replicas
        p = replicas.prepare(world, o, given, paths, notify, stdin, progress and primary)
    if p.done:
        notify(p.done)
        return
    reporter = progress_ui.make_reporter(o["quiet"] or not primary)
    run_training(functools.partial(setup.run, world=world), p, reporter, o["log_path"] if primary else None, Stop(),
                 quiet=o["quiet"] or not primary)
