"""Options declared once: a config dataclass's field is its option.

    steps: int | None = option(None, "Total steps of the run (also when resuming).", min=1)

The field's type, default and ``Spec`` (help, bounds, choices, command-line flags) are the one
statement of the option: the command line builds its click options from them (cli/options.py),
the library checks its arguments with them, and a checkpoint's recorded configuration is read
back through them. ``check`` validates an instance (its ``__post_init__`` calls it); a value
an option cannot take is an OptionError, which speaks the caller's language: the parameter's
name to Python (``steps must be at least 1, not -1``), the flag on the command line
(``--steps must be at least 1, not -1``).
"""
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Callable

from charrnn.errors import UsageError


@dataclass(frozen=True)
class Spec:
    """What a field's option is, beyond its type and default.

    flags: the command line's spelling, first the main one (default --name-with-dashes);
    min/max (and whether open): bounds of a number; choices: the allowed strings, or a
    function giving them (the cell registry); auto: the default is chosen by a rule, which
    this text names ("0 at char level, 128 at word level"); the option's default is then None
    and the field's default only what a bare dataclass holds; recorded: a fact the checkpoint
    keeps, never an option (the MPI job's size); envvar: the environment variable that gives
    the command line's default."""
    help: str
    flags: tuple = ()
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple | Callable | None = None
    auto: str = ""
    metavar: str | None = None
    recorded: bool = False
    envvar: str | None = None

    def allowed(self):
        return tuple(self.choices() if callable(self.choices) else self.choices or ())


def option(default, help, **spec):
    """A dataclass field that is an option: its default, help and Spec."""
    return dataclasses.field(default=default, metadata={"option": Spec(help, **spec)})


def specs(cls):
    """{name: (dataclasses.Field, Spec)} of the fields of ``cls`` that are options, in order."""
    return {f.name: (f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata}


def flag(cls, name):
    """The command-line flag of option ``name`` of ``cls`` (--name-with-dashes if it has none)."""
    entry = specs(cls).get(name)
    return entry[1].flags[0] if entry and entry[1].flags else "--" + name.replace("_", "-")


def kind(field):
    """(type, may be None) of a field: int, float, str or bool (``int | None`` is (int, True))."""
    hint = field.type
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        return next(a for a in args if a is not type(None)), type(None) in args
    return hint, False


class OptionError(UsageError):
    """A value an option cannot take, options that cannot go together, or a run its options
    make impossible (``exit_code`` 1). ``say(n)`` writes the message, naming each option as
    ``n(name)`` or, with the value to give, ``n(name, value)``: str() is the Python caller's
    (``steps``, ``resume=True``), ``for_command_line()`` the command line's (``--steps``,
    ``--resume``, as ``cls`` spells its flags; None: --name-with-dashes)."""

    def __init__(self, cls, say, exit_code=2):
        self.cls, self.say, self.exit_code = cls, say, exit_code
        super().__init__(say(lambda name, value=None: name if value is None else f"{name}={value!r}"))

    def names(self):
        """The options the message names, in order (a served request's "param" is the first)."""
        seen = []
        self.say(lambda name, value=None: seen.append(name) or name)
        return seen

    def for_command_line(self):
        def n(name, value=None):
            f = flag(self.cls, name) if self.cls is not None else "--" + name.replace("_", "-")
            return f if value is None or value is True else f"{f} {value}"
        return self.say(n)


def _number_words(spec):
    lo = None if spec.min is None else ("above " if spec.min_open else "at least ") + f"{spec.min:g}"
    hi = None if spec.max is None else ("below " if spec.max_open else "at most ") + f"{spec.max:g}"
    return " and ".join(w for w in (lo, hi) if w)


def _fails(spec, value):
    """Whether a number breaks the spec's bounds."""
    return ((spec.min is not None and (value <= spec.min if spec.min_open else value < spec.min))
            or (spec.max is not None and (value >= spec.max if spec.max_open else value > spec.max)))


def check(obj):
    """Validate every option field of the dataclass instance ``obj`` (in place: an int given
    for a float field becomes a float): OptionError for the first that is wrong."""
    cls = type(obj)
    for name, (field, spec) in specs(cls).items():
        value = getattr(obj, name)
        typ, nullable = kind(field)

        def fail(problem, name=name):
            raise OptionError(cls, lambda n: f"{n(name)} {problem}")

        if value is None:
            if not nullable:
                fail("must be given, not None")
            continue
        if typ is bool:
            if type(value) is not bool:
                fail(f"must be True or False, not {type(value).__name__} {value!r}")
        elif typ is int:
            if type(value) is not int:
                fail(f"must be a whole number, not {type(value).__name__} {value!r}")
        elif typ is float:
            if type(value) not in (int, float):
                fail(f"must be a number, not {type(value).__name__} {value!r}")
            if not math.isfinite(value):
                fail(f"must be a finite number, not {value!r}")
            object.__setattr__(obj, name, float(value))
        elif typ is str and not isinstance(value, str):
            fail(f"must be a string, not {type(value).__name__} {value!r}")
        if typ in (int, float) and _fails(spec, value):
            fail(f"must be {_number_words(spec)}, not {value!r}")
        if spec.choices is not None and value not in spec.allowed():
            fail(f"must be one of {', '.join(spec.allowed())}, not {value!r}")


def from_json(cls, d):
    """An instance of ``cls`` from a checkpoint's JSON: ValueError for keys it does not know
    (a newer charrnn wrote it) or a value its checks refuse."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} is not a JSON object")
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}")
    try:
        return cls(**d)
    except UsageError as e:
        raise ValueError(str(e)) from None


def unknown_names(cls_list, names):
    """The names among ``names`` that are no option of any of ``cls_list`` (nor recorded only)."""
    known = {n for cls in cls_list for n, (_, spec) in specs(cls).items() if not spec.recorded}
    return sorted(set(names) - known)
