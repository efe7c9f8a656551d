"""The command line's standard streams, made safe before anything is read or printed.

A stream the caller closed (`<&-`, `>&-`, `2>&-`): /dev/null takes its file descriptor, so no
file opened later (a checkpoint) can become "stdout" or "stderr", and using it says what is
wrong in one line: reading a closed stdin or writing data to a closed stdout is a usage
error; a closed stderr only hides what is for the eyes.

stderr carries only what is for the eyes, so losing it must never stop a command: once its
reader has gone (EPIPE: `2>&1 | head`) or its terminal has hung up (EIO), what follows goes
nowhere and the command goes on; a trainer still saves on a signal and exits 128+N. stdout
is data: a reader that goes away there still ends the command quietly (cli/__init__.py).

Only the command line does this (charrnn/__main__.py); the library leaves its caller's
streams alone.
"""
import io
import os
import sys

from charrnn.errors import UsageError

CLOSED = set()  # the standard streams the caller closed: of "stdin", "stdout", "stderr"
WHY = {"stdin": "standard input is closed: give a file, or pipe the text in",
       "stdout": "standard output is closed: there is nowhere to write the results; redirect it to a file or "
                 "a pipe"}


class _Stderr(io.RawIOBase):
    """File descriptor 2, writes that never fail: after EPIPE or EIO they go nowhere. Whole
    writes and no buffer (so no lock): a signal handler's line may interrupt another line,
    never raise "reentrant call"."""

    def __init__(self, fd):
        super().__init__()
        self.fd, self.gone = fd, False

    def writable(self):
        return True

    def write(self, b):
        view = memoryview(b).cast("B")
        while view and not self.gone:
            try:
                view = view[os.write(self.fd, view):]
            except InterruptedError:
                continue
            except OSError:  # EPIPE, EIO, ...: its reader or its terminal is gone
                self.gone = True
        return len(b)

    def isatty(self):
        return not self.gone and os.isatty(self.fd)

    def fileno(self):
        return self.fd


class _Closed(io.RawIOBase):
    """A standard stream the caller closed: using it is a UsageError saying so (writing, once:
    what is still buffered when the command leaves then goes nowhere)."""

    def __init__(self, fd, name):
        super().__init__()
        self.fd, self.name, self.said = fd, name, False

    def readable(self):
        return self.name == "stdin"

    def writable(self):
        return self.name != "stdin"

    def readinto(self, b):
        raise UsageError(WHY["stdin"])

    def write(self, b):
        if self.said:
            return len(b)
        self.said = True
        raise UsageError(WHY[self.name])

    def isatty(self):
        return False

    def fileno(self):
        return self.fd


def install():
    """Mend closed standard streams and make stderr safe (see the module's docstring)."""
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            CLOSED.add(name)
            null = os.open(os.devnull, os.O_RDWR)  # takes the lowest free descriptor: usually fd itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    encoding = getattr(sys.__stderr__, "encoding", None) or "utf-8"
    if "stdin" in CLOSED:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(_Closed(0, "stdin")), encoding="utf-8")
    if "stdout" in CLOSED:
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(_Closed(1, "stdout")), encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(_Stderr(2), encoding=encoding, errors="backslashreplace", line_buffering=True,
                                  write_through=True)


def check_stdin():
    """A UsageError if the caller closed standard input (before a command reads it)."""
    if "stdin" in CLOSED:
        raise UsageError(WHY["stdin"])
