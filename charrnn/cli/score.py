"""`charrnn score`: many-to-one. One log-probability per input line, streamed as it is read.

Each line is scored as the model would meet it in running text: after a line break (the
context) it predicts every character of the line and the line break that ends it, so
    total = log p(line + "\\n" | "\\n")   and   per_char = total / (characters predicted).
A line with a character the model never saw cannot be scored: -inf (`sort -g` puts it first).
A CRLF line is scored with its "\r\n" if the model knows "\r", else as if it ended in "\n", and is
echoed without its "\r".
"""
import math
import sys

import click
import numpy as np

from charrnn import blas
from charrnn.store import schema
from charrnn.analysis import likelihood
from charrnn.cli.common import InputFile, checkpoint_dir_option
from charrnn.errors import CharrnnError

READ = 1 << 16  # bytes asked of the input at a time; whatever arrives is scored at once
MAX_LINES = 64  # lines scored side by side


@click.command()
@click.argument("file", type=InputFile(), default="-")
@click.option("--checkpoint", "ckpt", default=None, metavar="PATH",
              help="A checkpoint file or a run directory (its best) [default: the latest run].")
@checkpoint_dir_option
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="What to do with invalid UTF-8.")
def score(file, ckpt, checkpoint_dir, errors):
    """Score each line of FILE (- or none: stdin): total_logprob TAB logprob_per_char TAB line.

    Log-probabilities are natural logs (nats) under the model; the lowest are the most
    surprising lines:

    \b
      charrnn score lines.txt | sort -g | head       # the 10 most surprising lines
    """
    path = schema.resolve(ckpt, checkpoint_dir)
    b = schema.load(path)
    if b.cfg.bidirectional:
        raise CharrnnError(f"{path}: a bidirectional model does not assign probabilities to text")
    if "\n" not in b.vocab.tokens and b.vocab.level == "char":
        raise CharrnnError(f"{path}: this model never saw a line break, so it cannot score lines")
    out = sys.stdout.buffer
    crlf = ("\r" if b.vocab.level == "char" else "\r\n") in b.vocab.tokens  # does it read a CRLF line break
    unscorable, first_bad, n = 0, None, 0
    for raw_lines in _line_batches(file):
        texts, bad = _decode(raw_lines, n, errors)
        raw_lines = raw_lines[:len(texts)]  # the lines before an undecodable one are still scored
        totals, counts = _score(b, texts, crlf) if texts else ([], [])
        for raw, total, count in zip(raw_lines, totals, counts):
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
        what = "characters" if b.vocab.level == "char" else "tokens"
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


def _score(b, texts, crlf):
    """(totals, predicted characters) for a batch of lines (without their line breaks); -inf for a
    line with a symbol the model never saw."""
    vocab = b.vocab
    seqs, counts, slots = [], [], []
    for i, text in enumerate(texts):
        ids, chars = _encode_line(vocab, text, crlf)
        counts.append(chars)
        if ids is not None:
            seqs.append(ids)
            slots.append(i)
    totals = np.full(len(texts), -np.inf)
    if seqs:
        totals[slots] = likelihood.sequence_logprobs(b.params, b.cfg, seqs, limit=blas.product_limit())
    return totals, counts


def _encode_line(vocab, text, crlf):
    """(ids of context + line + line break, or None if the model cannot read them; the number of
    characters predicted: the line's and its break's).

    The break is "\r\n" for a CRLF line if the model knows one (crlf), else "\n". At word level a
    whitespace run is one token, so a line's edges merge with its line breaks: a blank line is
    one token, leaving nothing to predict, and "\n   " may be a run the model never saw. A
    word-level line that cannot be read whole is read as the token "\n", then its own tokens.
    """
    end = "\n"
    if text.endswith("\r"):
        text = text[:-1]
        end = "\r\n" if crlf else "\n"
    ids, unknown = vocab.encode_known("\n" + text + end)
    if (unknown or len(ids) < 2) and vocab.level == "word":
        ctx, unknown_ctx = vocab.encode_known("\n")
        body, unknown = vocab.encode_known(text + end)
        ids, unknown = np.concatenate([ctx, body]), {**unknown_ctx, **unknown}
    if unknown or len(ids) < 2:
        return None, len(text) + len(end)
    return np.asarray(ids, dtype=np.int64), len(text) + len(end)
