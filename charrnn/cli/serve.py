"""`charrnn serve`: trained language models behind an OpenAI-compatible HTTP API, with a
playground page (docs/serve.md). A thin shell: options, the models, the socket, then
charrnn/serve/server.py runs uvicorn until SIGINT or SIGTERM, which end every open stream
cleanly; the command then exits 128+N. The server's lines (one per request) go to stderr."""
import sys
import time

import click

from charrnn.cli.options import fields_of
from charrnn.config.run import RunOptions
from charrnn.errors import CharrnnError


@click.command()
@click.argument("models", nargs=-1, metavar="[CHECKPOINT_OR_RUN]...")
@fields_of(RunOptions, "checkpoint_dir")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 is every interface (then give --api-key).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--api-key", envvar="CHARRNN_API_KEY", default=None, metavar="KEY",
              help="Every /v1/ request must send 'Authorization: Bearer KEY' (env CHARRNN_API_KEY).")
@click.option("--watch", is_flag=True, help="Reload a model when training replaces its checkpoint.")
@click.option("--max-streams", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Completions generated at once per model (one batched step); more are answered 429.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=4096, show_default=True,
              help="The most tokens one completion may ask for.")
def serve(models, checkpoint_dir, host, port, api_key, watch, max_streams, max_tokens):
    """Serve trained models over HTTP: OpenAI's completions API and a playground page.

    Each CHECKPOINT_OR_RUN (a run directory or a .ckpt file; NAME=PATH names it) is served
    under its run's name [default: the latest run]. Open the printed address in a browser.

    \b
      charrnn serve checkpoints/notes --watch    # reloads as training improves it
      curl -s localhost:8000/v1/completions -d '{"model": "notes", "prompt": "The ", "max_tokens": 80}'
    """
    try:
        from charrnn.serve import server
        from charrnn.serve.app import Service
    except ImportError as e:
        raise CharrnnError(f"charrnn serve needs the serve extra ({e.name} is missing): "
                           "pip install 'charrnn[serve]'") from None
    from charrnn import blas
    from charrnn.serve.models import Registry, sources
    from charrnn.serve.protocol import Limits

    registry = Registry(sources(list(models), checkpoint_dir), max_streams, blas.product_limit(), _log)
    service = Service(registry, Limits(max_tokens=max_tokens, streams=max_streams), api_key,
                      1.0 if watch else None, _log)
    try:
        sock = server.listen(host, port)
    except OSError as e:
        raise CharrnnError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    for s in registry.all():
        c = s.checkpoint.cfg
        click.echo(f"{s.name}: {c.cell} {c.layers}x{c.hidden}, step {s.checkpoint.step:,} ({s.path})", err=True)
    if not server.is_loopback(sock) and api_key is None:
        click.echo(f"warning: listening on {host} without --api-key: anyone who can reach this machine can use "
                   "these models", err=True)
    signum = server.run(service, sock, _log, lambda: click.echo(
        f"serving at {server.url(sock)} (OpenAI API under /v1/; Ctrl-C to stop)", err=True))
    if signum:
        sys.exit(128 + signum)


def _log(line):
    """One line on stderr, its time first (UTC)."""
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")
    sys.stderr.flush()
