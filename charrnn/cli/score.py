"""`charrnn score`: many-to-one. One log-probability per input line, streamed as it is read.

Each line is scored as the model would meet it in running text: after a line break (the
context) it predicts every character of the line and the line break that ends it, so
    total = log p(line + "\\n" | "\\n")   and   per_char = total / (characters predicted).
A line with a character the model never saw cannot be scored: -inf (`sort -g` puts it first).
Line breaks are read as everywhere (text/decode.lf): a CRLF line is its LF twin, scored alike
and echoed without its "\r".
"""
import math
import sys

import click

from charrnn.cli.options import InputFile, fields_of, options
from charrnn.config.recipe import Recipe
from charrnn.config.run import RunOptions
from charrnn.errors import CharrnnError

READ = 1 << 16  # bytes asked of the input at a time; whatever arrives is scored at once
MAX_LINES = 64  # lines scored side by side


@click.command()
@click.argument("file", type=InputFile(), default="-")
@options("checkpoint")
@fields_of(RunOptions, "checkpoint_dir")
@fields_of(Recipe, "errors")
def score(file, ckpt, checkpoint_dir, errors):
    """Score each line of FILE (- or none: stdin): total_logprob TAB logprob_per_char TAB line.

    Log-probabilities are natural logs (nats) under the model; the lowest are the most
    surprising lines:

    \b
      charrnn score lines.txt | sort -g | head       # the 10 most surprising lines
    """
    from charrnn.api import load

    m = load(ckpt, checkpoint_dir, kind="lm")
    m.score_lines([])  # a model that cannot score lines says so before any input is read
    out = sys.stdout.buffer
    unscorable, first_bad, n = 0, None, 0
    for raw_lines in _line_batches(file):
        texts, bad = _decode(raw_lines, n, errors)
        raw_lines = raw_lines[:len(texts)]  # the lines before an undecodable one are still scored
        for raw, (total, count) in zip(raw_lines, m.score_lines(texts) if texts else []):
            n += 1
            if not math.isfinite(total):
                unscorable += 1
                first_bad = first_bad or n
            per = total / count if count else float("nan")
            out.write(f"{total:.4f}\t{per:.4f}\t".encode() + raw.removesuffix(b"\r") + b"\n")  # LF lines out
        out.flush()
        if bad:
            raise CharrnnError(bad)
    if unscorable:
        what = "characters" if m.level == "char" else "tokens"
        click.echo(f"warning: {unscorable} line(s) have {what} the model never saw (first: line "
                   f"{first_bad}); they score -inf", err=True)


def _line_batches(f):
    """Lists of raw lines (without their b"\\n"), as soon as the input delivers them."""
    buf, first = b"", True
    while True:
        chunk = f.read1(READ) if hasattr(f, "read1") else f.read(READ)
        buf += chunk
        if chunk:
            *lines, buf = buf.split(b"\n")
        else:  # the end: a last line without its line break, if any
            lines, buf = ([buf] if buf else []), b""
        if lines and first:
            lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")  # a byte-order mark is not part of the line
            first = False
        for i in range(0, len(lines), MAX_LINES):
            yield lines[i:i + MAX_LINES]
        if not chunk:
            return


def _decode(raw_lines, before, errors):
    """The decoded lines up to the first that is not UTF-8, and the error for that one (or None)."""
    texts = []
    for i, raw in enumerate(raw_lines):
        try:
            texts.append(raw.decode("utf-8", errors))
        except UnicodeDecodeError as e:
            return texts, (f"line {before + i + 1}: invalid UTF-8 at byte {e.start} of the line; "
                           "use --errors replace to score it anyway")
    return texts, None
