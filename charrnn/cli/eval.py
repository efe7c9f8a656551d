"""`charrnn eval`: score a text under a language model."""
import json

import click

from charrnn.cli.common import input_name, read_inputs, warnings_to_stderr
from charrnn.cli.options import fields_of, options
from charrnn.config.recipe import Recipe
from charrnn.config.run import RunOptions


@click.command("eval")
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=True))
@options("checkpoint")
@fields_of(RunOptions, "checkpoint_dir")
@options("json")
@fields_of(Recipe, "errors")
def evaluate(file, ckpt, checkpoint_dir, as_json, errors):
    """Score a text: loss in nats per token, bits per character, perplexity."""
    from charrnn.api import load
    from charrnn.text.decode import decode_bytes

    m = load(ckpt, checkpoint_dir, kind="lm")
    name = input_name(file)
    with read_inputs([file]) as sources:  # scoring reads the whole text
        text = decode_bytes(sources.read(), errors, name=name)
    with warnings_to_stderr():
        r = m.evaluate(text, name)
    if as_json:
        click.echo(json.dumps(r))
    else:
        click.echo(f"loss {r['loss']:.4f} nats/token\nbits_per_char {r['bits_per_char']:.4f}\n"
                   f"perplexity {r['perplexity']:.3f}\ntokens {r['tokens']}\nskipped {r['skipped']}")
