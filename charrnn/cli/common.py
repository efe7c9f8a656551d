"""What the commands share: the --checkpoint-dir option, a float option type that refuses nan
and infinity, the rich console of a report on stderr, the warning for symbols a model does
not know, how an input is named, reading inputs (files or standard
input) and running a trainer under the signal handlers that make Ctrl-C save and exit."""
import math
import signal
import sys

import click

from charrnn.errors import CharrnnError

CKPT_DIR_HELP = "Where runs live (env CHARRNN_CHECKPOINT_DIR)."


def checkpoint_dir_option(f):
    """The --checkpoint-dir option every command that reads or writes runs shares."""
    return click.option("--checkpoint-dir", envvar="CHARRNN_CHECKPOINT_DIR", default="checkpoints",
                        show_default=True, help=CKPT_DIR_HELP)(f)


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
            from charrnn.text.corpus import open_input
            open_input(value).close()  # CorpusError in charrnn's words, before click's own
        elif value == "-":
            hint_stdin()
        return super().convert(value, param, ctx)


WIDE = 250  # columns of a report written to a file or a pipe: wider than any table we print


def report_console(wide=True, **kw):
    """A rich Console on stderr for a command's report (diagnose, inspect, plot). Off a terminal
    and ``wide``, it is not cut to rich's default 80 columns, where a table truncates its numbers; a reader
    that goes away (`2>&1 | head`) ends the command as on stdout, quietly with exit 0, where
    rich would exit 1."""
    from rich.console import Console

    class ReportConsole(Console):
        def on_broken_pipe(self):
            raise BrokenPipeError  # the command line's handler stops quietly

    console = ReportConsole(file=sys.stderr, **kw)
    if wide and not console.is_terminal:
        console.width = max(console.width, WIDE)
    return console


def warn_unknown(vocab, ids, unknown, what, text=None):
    """One warning line on stderr for the symbols Vocab.encode_known dropped from ``what`` (ids
    are what it kept): how many occurrences of how many, and which. With the ``text``, a second
    for the words a word-level model reads as its unknown token."""
    unit = "character" if vocab.level == "char" else "token"

    def warn(symbols, total, fate_one, fate_many):
        n = sum(symbols.values())
        are, fate = ("is", fate_one) if n == 1 else ("are", fate_many)
        click.echo(f"warning: {what}: {n:,} of {total:,} {unit}{'s' if total > 1 else ''} ({n / total:.1%}) {are} "
                   f"not in the model's vocabulary and {fate}: {_some(symbols)}", err=True)

    if unknown:
        warn(unknown, len(ids) + sum(unknown.values()), "was skipped", "were skipped")
    unk = vocab.read_as_unk(text) if text is not None else {}
    if unk:  # those are among ids
        warn(unk, len(ids), "is read as its unknown token", "are read as its unknown token")


def _some(symbols):
    """'a', 'b', 'c', 'd', 'e' and 7 more."""
    shown = ", ".join(repr(u) for u in list(symbols)[:5])
    return shown + (f" and {len(symbols) - 5:,} more" if len(symbols) > 5 else "")


def input_name(f):
    """How messages name an input: a path, "-", or an open file; "<stdin>" for standard input."""
    name = f if isinstance(f, str) else getattr(f, "name", "<stdin>")
    return "<stdin>" if name == "-" else name


def hint_stdin():
    """Standard input is a terminal: say it is being read, else `charrnn score` seems to hang."""
    if sys.stdin is not None and sys.stdin.isatty():
        click.echo("reading standard input: type or paste the text, then Ctrl-D", err=True)


def read_inputs(paths, spool_in_cache=False):
    """The inputs, opened (errors for a missing or unreadable one come first), standard input
    spooled to a temporary file (in the token cache directory when training): a
    ``data.Sources``, read in chunks. Closing it removes the spool; so does the end of the
    command, whatever happens before."""
    from charrnn.text.corpus import Sources, default_cache_dir
    if "-" in paths:
        hint_stdin()
    sources = Sources(paths, sys.stdin.buffer if "-" in paths else None,
                      spool_dir=default_cache_dir() if spool_in_cache else None)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(sources.close)
    return sources


def run_training(make, reporter, log_path, stop):
    """Open the --log file, run make(log)'s trainer under the signal handlers, close the
    reporter and the log whatever happens; after a SIGINT/SIGTERM, exit 128+N."""
    try:
        log = open(log_path, "a", encoding="utf-8") if log_path else None
    except OSError as e:
        raise CharrnnError(f"--log {log_path}: {e.strerror or e}") from None
    try:
        trainer = make(log)
        with stop_on_signals(stop):
            trainer.run()
    finally:
        if hasattr(reporter, "close"):
            reporter.close()
        if log:
            try:
                log.close()
            except OSError:  # what it could not write was warned about (train.write_log)
                pass
    if stop.signum:
        sys.exit(128 + stop.signum)


class stop_on_signals:
    """First SIGINT/SIGTERM: finish the step, save, exit 128+N. A second SIGINT: exit at once."""

    def __init__(self, stop):
        self.stop, self.old = stop, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.old[sig] = signal.signal(sig, self.handle)

    def handle(self, signum, frame):
        if self.stop.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop.signum = signum
        lead = "\n" if sys.stderr.isatty() else ""  # past the ^C the terminal echoed
        click.echo(f"{lead}{signal.Signals(signum).name}: finishing this step and saving "
                   "(Ctrl-C again to quit at once)", err=True)

    def __exit__(self, *exc):
        for sig, h in self.old.items():
            signal.signal(sig, h)
