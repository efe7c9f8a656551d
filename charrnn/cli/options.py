"""The command line's options, from the one place each is declared.

An option that decides a model, a run or a sample is a field of a config dataclass (config/:
its type, default, bounds, help and flags); ``fields_of(cls, *names, **changes)`` makes the
click options of those fields, with a command's own help or default where it differs.
``option(name)`` gives the few options several commands share that no config holds (which
checkpoint to read, --json, --quiet). An option of one command alone is declared in that
command's module. Also here: the option types that keep values sane (Finite, InputFile).
"""
import math

import click

from charrnn.config.fields import kind, specs


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


def _click_type(field, spec):
    typ, _ = kind(field)
    if spec.choices is not None:
        return click.Choice(spec.allowed())
    bounds = dict(min=spec.min, max=spec.max, min_open=spec.min_open, max_open=spec.max_open)
    if typ is int:
        return click.IntRange(**bounds)
    if typ is float:
        return Finite(**bounds)
    return str


def field_option(cls, name, **changes):
    """The click option of field ``name`` of the config dataclass ``cls``: its flags, type and
    bounds, default (None where a rule chooses it, named in the help) and help."""
    field, spec = specs(cls)[name]
    flags = spec.flags or ("--" + name.replace("_", "-"),)
    kw = dict(help=spec.help + (f" [default: {spec.auto}]" if spec.auto else ""), metavar=spec.metavar,
              envvar=spec.envvar)
    if kind(field)[0] is bool:
        kw.update(is_flag=True, default=field.default)
    else:
        default = None if spec.auto else field.default
        kw.update(type=_click_type(field, spec), default=default, show_default=default is not None)
    return click.option(*flags, name, **{**kw, **changes})


def fields_of(cls, *names, **changes):
    """A decorator stacking field_option(cls, name, **changes.get(name, {})) for each name, in order."""
    def decorate(f):
        for name in reversed(names):
            f = field_option(cls, name, **changes.get(name, {}))(f)
        return f
    return decorate


SHARED = {
    "checkpoint": (("--checkpoint", "ckpt"), dict(
        default=None, metavar="PATH", type=click.Path(),  # a path: the shell completes it
        help="A checkpoint file or a run directory (its best) [default: the latest run].")),
    "json": (("--json", "as_json"), dict(is_flag=True, help="Print one JSON object.")),
    "quiet": (("-q", "--quiet"), dict(is_flag=True, help="Nothing on stderr but warnings and errors.")),
}


def option(name, **changes):
    """The shared click option ``name`` of SHARED, with ``changes`` to its keyword arguments."""
    decls, kw = SHARED[name]
    return click.option(*decls, **{**kw, **changes})


def options(*names, **changes):
    """A decorator applying option(name, **changes.get(name, {})) for each name, in order."""
    def decorate(f):
        for name in reversed(names):
            f = option(name, **changes.get(name, {}))(f)
        return f
    return decorate


def given(ctx, values, *classes):
    """The options of ``classes`` the user gave on the command line (or by an environment
    variable), by name: what the library calls the same run with."""
    names = {n for cls in classes for n in specs(cls)}
    sources = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {k: v for k, v in values.items() if k in names and ctx.get_parameter_source(k) in sources}
