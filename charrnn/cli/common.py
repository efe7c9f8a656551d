"""What the commands share: the rich console of a report on stderr, the warning for symbols a
model does not know, how an input is named, reading inputs (files or standard input), and
running a trainer under the signal handlers that make Ctrl-C save and exit. The options
themselves are declared in cli/options.py."""
import contextlib
import signal
import sys
import warnings

import click

from charrnn.errors import CharrnnError

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


@contextlib.contextmanager
def warnings_to_stderr():
    """charrnn's warnings (CharrnnWarning, from the library) as "warning: ..." lines on stderr,
    each message once per command."""
    from charrnn.errors import CharrnnWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CharrnnWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("default", CharrnnWarning)  # once per message (and resets what was shown)
        previous, warnings.showwarning = warnings.showwarning, show
        yield


def write_document(path, text):
    """A page or picture (inspect --html, plot --svg): to stdout for "-", else atomically, so a
    viewer never sees half of one."""
    data = text.encode("utf-8")
    if path == "-":
        out = sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    from charrnn.store import atomic
    try:
        atomic.write(path, lambda f: f.write(data))
    except OSError as err:
        raise CharrnnError(f"{path}: cannot write it ({err.strerror or err})") from None


def warn_unknown(vocab, ids, unknown, what, text=None):
    """Vocab.describe_unknown's lines on stderr, as warnings."""
    for line in vocab.describe_unknown(ids, unknown, what, text):
        click.echo(f"warning: {line}", err=True)


def input_name(f):
    """How messages name an input: a path, "-", or an open file; "<stdin>" for standard input."""
    name = f if isinstance(f, str) else getattr(f, "name", "<stdin>")
    return "<stdin>" if name == "-" else name


def hint_stdin():
    """Before a command reads standard input: one line if the caller closed it; if it is a
    terminal, say it is being read, else `charrnn score` seems to hang."""
    from charrnn.cli.streams import check_stdin
    check_stdin()
    if sys.stdin is not None and sys.stdin.isatty():
        click.echo("reading standard input: type or paste the text, then Ctrl-D", err=True)


def read_inputs(paths, spool_in_cache=False):
    """The inputs, opened (errors for a missing or unreadable one come first), standard input
    spooled to a temporary file (in the token cache directory when training): a
    ``data.Sources``, read in chunks. Closing it removes the spool; so does the end of the
    command, whatever happens before."""
    from charrnn.text.sources import Sources, default_cache_dir
    if "-" in paths:
        hint_stdin()
    sources = Sources(paths, sys.stdin.buffer if "-" in paths else None,
                      spool_dir=default_cache_dir() if spool_in_cache else None)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(sources.close)
    return sources


def run_training(run, prepared, reporter, log_path, stop, quiet=False):
    """Open the --log file, run(prepared, reporter, log, stop) (training/setup.py's run or
    run_classifier) under the signal handlers, close the reporter and the log whatever
    happens; after a SIGINT, SIGTERM or SIGHUP, exit 128+N. ``quiet``: the signal handlers say
    nothing (--quiet, or an MPI rank other than 0)."""
    from charrnn.training.loop import LogFile
    from charrnn.ui.progress import LiveReporter
    log = LogFile(log_path) if log_path else None
    try:
        say = (lambda line: None) if quiet else reporter.message if isinstance(reporter, LiveReporter) else None
        with stop_on_signals(stop, say):
            run(prepared, reporter, log, stop)
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
    """First SIGINT, SIGTERM or SIGHUP (the terminal closed: its tmux session killed, its ssh
    connection lost): finish the step, save at once (no validation), exit 128+N. A second
    SIGINT abandons the step under way, or the validation, and saves the steps already done;
    during an update or a save it waits for them (training/loop.py's Stop). ``say`` shows a
    line: through the live view when there is one, so the frame stays whole. Whatever is said
    after stderr is gone goes nowhere (cli/streams.py): the run is saved all the same."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, stop, say=None):
        self.stop, self.old = stop, {}
        self.say = say or (lambda line: click.echo(("\n" if sys.stderr.isatty() else "") + line, err=True))

    def __enter__(self):
        for sig in self.SIGNALS:
            self.old[sig] = signal.signal(sig, self.handle)

    def handle(self, signum, frame):
        if self.stop.signum and signum == signal.SIGINT:
            if self.stop.interruptible:
                raise KeyboardInterrupt  # the loop abandons this step and saves the ones done
            self.say("SIGINT again: saving the steps done, a moment")
            return
        self.stop.signum = signum
        self.say(f"{signal.Signals(signum).name}: finishing this step and saving "
                 "(Ctrl-C again to skip the rest of the step)")

    def __exit__(self, *exc):
        for sig, h in self.old.items():  # once stopped by a signal, the command is leaving: more are moot
            signal.signal(sig, signal.SIG_IGN if self.stop.signum else h)
