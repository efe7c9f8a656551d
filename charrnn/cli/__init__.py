"""The `charrnn` command: the group, its error handling and the entry point. Each command
lives in a module of its own here (COMMANDS), imported when it is used.

A thin shell: parse options, load things, call the library, print. stdout carries data only
(samples, scores, JSON); everything for the eyes goes to stderr. Errors the user can fix
are one line on stderr: exit 2 for usage errors, 1 for run-time ones, never a traceback.
"""
import importlib
import os
import sys

import click

from charrnn import __version__
from charrnn.errors import CharrnnError

# name -> "module:attribute"; a module is imported only when its command runs (or --help lists it)
COMMANDS = {
    "train": "charrnn.cli.train:train",
    "sample": "charrnn.cli.sample:sample",
    "eval": "charrnn.cli.eval:evaluate",
    "info": "charrnn.cli.info:info",
    "score": "charrnn.cli.score:score",
    "classify": "charrnn.cli.classify:classify",
    "inspect": "charrnn.cli.inspect:inspect",
    "diagnose": "charrnn.cli.diagnose:diagnose",
    "plot": "charrnn.cli.plot:plot",
    "export": "charrnn.cli.export:export",
    "serve": "charrnn.cli.serve:serve",
}


class CharrnnGroup(click.Group):
    """Every expected failure becomes one line on stderr and an exit code, never a traceback.

    Commands are imported on first use, so `charrnn sample` does not pay for the modules of
    `charrnn classify`."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # here, before click's main turns it into exit 1
            _quiet_broken_pipe()

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.UsageError as e:
            if isinstance(e, click.exceptions.NoArgsIsHelpError):  # `charrnn` (or a group) alone: its help
                click.echo(e.format_message(), err=True)
                sys.exit(2)
            _fail(e.format_message(), 2)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except CharrnnError as e:  # an OptionError names the flags here, the parameters to Python
            _fail(e.for_command_line() if hasattr(e, "for_command_line") else str(e), e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130, prefix="charrnn: ")
        except BrokenPipeError:
            _quiet_broken_pipe()
        except MemoryError:  # what the estimate before training did not foresee
            _fail("out of memory; use a smaller --hidden, --layers, --batch or --seq-len", 1)
        except OSError as e:
            _fail(str(e), 1)
        except Exception:  # a bug: its traceback, and under MPI an exit that cannot hang the job
            if "mpi4py.MPI" in sys.modules:
                import traceback
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            raise
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
        sys.exit(0)


def _fail(msg, code, prefix="charrnn: error: "):
    from charrnn.training import distributed
    if distributed.world_size() != 1:  # under mpirun: a rank's own way to leave (no hang, no echo of K lines)
        distributed.report(msg, code, usage=code == 2, prefix=prefix)
    click.echo(prefix + " ".join(str(msg).split()), err=True)
    sys.exit(code)


@click.group(cls=CharrnnGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="charrnn", message="%(prog)s %(version)s")
def cli():
    """Train recurrent language models (LSTM, GRU, vanilla RNN) on your own text and sample
    from them; look inside them, score lines, classify texts. Pure numpy; runs on any CPU.

    \b
      charrnn train corpus.txt          # learn; checkpoints under checkpoints/corpus/
      charrnn sample --temp 0.8         # stream text from the latest run
      cat *.txt | charrnn train - --name mine
    """


# --------------------------------------------------------------------------- entry point

def main(argv=None):
    cli.main(args=argv, prog_name="charrnn")


def _quiet_broken_pipe():
    """The reader went away (`| head`): stop quietly, as a generator in a pipeline should. Both
    streams go to /dev/null, so flushing the broken one at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        os.dup2(devnull, stream.fileno())
    sys.exit(0)
