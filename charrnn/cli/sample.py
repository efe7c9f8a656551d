"""`charrnn sample`: stream text from a trained language model to stdout."""
import os
import sys

import click

from charrnn import blas
from charrnn.cli.common import input_name, warnings_to_stderr
from charrnn.cli.options import Finite, InputFile, option, options


@click.command()
@options("checkpoint", "checkpoint_dir")
@click.option("--temp", "--temperature", "temp", type=Finite(min=0, min_open=True), default=1.0,
              show_default=True, help="Below 1 is more conservative, above 1 more surprising.")
@click.option("--top-k", type=click.IntRange(min=0), default=0,
              help="Draw only from the K most likely tokens; 0 = all.")
@click.option("--top-p", type=Finite(0, 1, min_open=True), default=1.0,
              help="Draw only from the smallest set of tokens with probability P.")
@click.option("--argmax", is_flag=True, help="Always take the most likely token.")
@click.option("--prime", default=None, help="Text fed to the model first (and echoed).")
@click.option("--prime-file", type=InputFile(), default=None, help="Read the prime from FILE (- = stdin).")
@click.option("--length", type=click.IntRange(min=0), default=500, show_default=True,
              help="Tokens generated after the prime; 0 = until --stop or the pipe closes.")
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples to draw, one after another, each starting from the prime.")
@click.option("--stop", "stop_text", default=None, help="End a sample after this text appears.")
@click.option("--separator", default="\n", show_default=r"a blank line",
              help="Written between samples, each sample ending its line first (e.g. $'---\\n').")
@click.option("-0", "--null", "null", is_flag=True,
              help="Separate samples by a NUL byte and nothing else, for xargs -0 and read -d '' (a shell "
                   "argument cannot hold a NUL, so --separator cannot).")
@option("seed", default=None, show_default=False, help="Same seed, same bytes [default: random].")
@click.option("--beam", type=click.IntRange(min=1), default=None,
              help="Beam search with N beams for the most likely continuation (alone: no --temp, --top-k, "
                   "--top-p, --argmax, --seed, --stop or --num-samples).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="BLAS threads sharing each step's products [default: 2 when a core is idle, else 1].")
def sample(ckpt, checkpoint_dir, prime, prime_file, num_samples, separator, null, threads, **o):
    """Stream text from a trained model to stdout."""
    import numpy as np

    from charrnn import api
    from charrnn.errors import UsageError

    if prime is not None and prime_file is not None:
        raise UsageError("give --prime or --prime-file, not both")
    if null and separator != "\n":
        raise UsageError("give --separator or --null, not both")
    if o["beam"] and o["length"] == 0:
        raise UsageError("--beam needs a --length above 0")
    if o["argmax"]:  # the most likely token every time: nothing is drawn, every sample is the same
        on = [("--temp", o["temp"] != 1.0), ("--top-k", o["top_k"]), ("--top-p", o["top_p"] < 1.0),
              ("--seed", o["seed"] is not None), ("--num-samples", num_samples > 1), ("--beam", o["beam"])]
        ignored = [name for name, used in on if used]
        if ignored:
            raise UsageError(f"--argmax cannot be combined with {', '.join(ignored)}: it takes the most likely "
                             f"token every time, so nothing is drawn and every sample is the same")
    if o["beam"]:  # beam search is deterministic and keeps its beams to the end: these would do nothing
        on = [("--temp", o["temp"] != 1.0), ("--top-k", o["top_k"]), ("--top-p", o["top_p"] < 1.0),
              ("--argmax", o["argmax"]), ("--seed", o["seed"] is not None), ("--stop", o["stop_text"]),
              ("--num-samples", num_samples > 1)]
        ignored = [name for name, used in on if used]
        if ignored:
            raise UsageError(f"--beam cannot be combined with {', '.join(ignored)}: beam search takes "
                             f"the single most likely continuation of --length tokens")
    with warnings_to_stderr():
        m = api.Model(*_load(ckpt, checkpoint_dir))  # after the usage errors, which need no model
        if prime_file is not None:
            from charrnn.text.decode import decode_bytes
            prime = decode_bytes(prime_file.read(), name=input_name(prime_file), errors_option=False)
        with blas.threads(threads or _sampling_threads()) as applied:
            if threads and threads > 1 and not applied:
                click.echo("charrnn: warning: --threads has no effect here (numpy's BLAS is not an OpenBLAS "
                           "whose thread count can be set)", err=True)
            seed = o.pop("seed")
            rng = None if o["argmax"] or o["beam"] else np.random.default_rng(seed)
            _write(m, prime or "", num_samples, "\0" if null else separator, rng, **o)


def _load(ckpt, checkpoint_dir):
    from charrnn.store import schema
    path = schema.resolve(ckpt, checkpoint_dir)
    return schema.load(path), path


def _write(m, prime, num_samples, separator, rng, temp, top_k, top_p, argmax, length, stop_text, beam):
    """The samples on stdout, token by token; between two, the separator after a line break
    (after none when the separator is a NUL: the samples' bytes exactly, NUL-terminated)."""
    out = sys.stdout.buffer
    for n in range(num_samples):
        if n and separator != "\0":
            out.write(separator.encode("utf-8"))
        text = ""
        for piece in m.stream(prime, length, temp, top_k, top_p, argmax, stop_text, rng, beam):
            out.write(piece.encode("utf-8"))
            out.flush()
            text = (text + piece)[-2:]  # enough to know how the sample ended
        if separator == "\0":
            out.write(b"\0")
        elif n < num_samples - 1 and not text.endswith("\n"):
            out.write(b"\n")
    if out.isatty() and separator != "\0":
        out.write(b"\n")
    out.flush()


def _sampling_threads():
    """2 when the load average leaves a core idle, else 1. OpenBLAS's threads wait for each
    other at every product, so with the other core busy (a training run beside it) two threads
    made a batch-1 step 12 to 23 times slower, where on an idle machine they make it 1.4x faster."""
    from charrnn.training.config import cores as available
    cores = min(2, available())
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    return 2 if cores >= 2 and load <= cores - 1.5 else 1
