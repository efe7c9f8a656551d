"""`charrnn sample`: stream text from a trained language model to stdout."""
import os
import sys

import click

from charrnn import blas
from charrnn.cli.common import input_name, warnings_to_stderr
from charrnn.cli.options import InputFile, fields_of, given, options
from charrnn.config.run import RunOptions
from charrnn.config.sampling import SamplingOptions


@click.command()
@options("checkpoint")
@fields_of(RunOptions, "checkpoint_dir")
@fields_of(SamplingOptions, "temperature", "top_k", "top_p", "argmax")
@click.option("--prime", default=None, help="Text fed to the model first (and echoed).")
@click.option("--prime-file", type=InputFile(), default=None, help="Read the prime from FILE (- = stdin).")
@fields_of(SamplingOptions, "length", "samples", "stop", "seed", "beam")
@click.option("--separator", default="\n", show_default=r"a blank line",
              help="Written between samples, each sample ending its line first (e.g. $'---\\n').")
@click.option("-0", "--null", "null", is_flag=True,
              help="Separate samples by a NUL byte and nothing else, for xargs -0 and read -d '' (a shell "
                   "argument cannot hold a NUL, so --separator cannot).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Cores sharing each step's products (BLAS threads; the bytes do not change) [default: 2 when "
                   "a core is idle, else 1].")
@click.pass_context
def sample(ctx, ckpt, checkpoint_dir, prime, prime_file, separator, null, threads, **o):
    """Stream text from a trained model to stdout."""
    from charrnn.api import load
    from charrnn.errors import UsageError

    if prime is not None and prime_file is not None:
        raise UsageError("give --prime or --prime-file, not both")
    if null and separator != "\n":
        raise UsageError("give --separator or --null, not both")
    opts = SamplingOptions(**given(ctx, o, SamplingOptions))  # every conflict said before a model is loaded
    with warnings_to_stderr():
        m = load(ckpt, checkpoint_dir, kind="lm")
        if prime_file is not None:
            from charrnn.text.decode import decode_bytes
            prime = decode_bytes(prime_file.read(), name=input_name(prime_file), errors_option=False)
        with blas.threads(threads or _sampling_threads()) as applied:
            if threads and threads > 1 and not applied:
                click.echo("charrnn: warning: --threads has no effect here (numpy's BLAS is not an OpenBLAS "
                           "whose thread count can be set)", err=True)
            _write(m.samples(prime or "", opts), "\0" if null else separator)


def _write(samples, separator):
    """The samples on stdout, token by token; between two, the separator after a line break
    (after none when the separator is a NUL: the samples' bytes exactly, NUL-terminated)."""
    out = sys.stdout.buffer
    for n, pieces in enumerate(samples):
        if n and separator != "\0":
            if not text.endswith("\n"):
                out.write(b"\n")
            out.write(separator.encode("utf-8"))
        text = ""
        for piece in pieces:
            out.write(piece.encode("utf-8"))
            out.flush()
            text = (text + piece)[-2:]  # enough to know how the sample ended
        if separator == "\0":
            out.write(b"\0")
    if out.isatty() and separator != "\0":
        out.write(b"\n")
    out.flush()


def _sampling_threads():
    """2 when the load average leaves a core idle, else 1. OpenBLAS's threads wait for each
    other at every product, so with the other core busy (a training run beside it) two threads
    made a batch-1 step 12 to 23 times slower, where on an idle machine they make it 1.4x faster.
    A one-row product gives the same bits with 1 or 2 threads (each output is one thread's)."""
    from charrnn.training.machine import cores as available
    cores = min(2, available())
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    return 2 if cores >= 2 and load <= cores - 1.5 else 1
