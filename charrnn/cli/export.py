"""`charrnn export`: a trained language model for another framework (PyTorch)."""
import os
import sys

import click

from charrnn.cli.options import fields_of, options
from charrnn.config.run import RunOptions


@click.command()
@click.option("--torch", "torch_path", type=click.Path(dir_okay=False, allow_dash=True), required=True,
              metavar="OUT.py", help="Write a standalone PyTorch module of the model to OUT.py (- = stdout).")
@options("checkpoint")
@fields_of(RunOptions, "checkpoint_dir")
def export(torch_path, ckpt, checkpoint_dir):
    """Write the model as a PyTorch module (nn.LSTM/nn.GRU/nn.RNN + nn.Linear) that gives
    charrnn's next-token probabilities; it reads its weights from the checkpoint itself.

    \b
      charrnn export --torch notes_model.py --checkpoint checkpoints/notes
      python -c "import notes_model as m; print(m.load().eval())"
    """
    from charrnn.checkpoint import find, schema
    from charrnn.cli.common import write_document
    from charrnn.errors import UsageError
    from charrnn.export.pytorch import exportable, torch_source
    from charrnn.store import container

    path = find.resolve(ckpt, checkpoint_dir)
    ck = schema.load(path)
    try:
        exportable(ck.cfg)
    except NotImplementedError as e:
        raise UsageError(f"{path}: {e}; it cannot be exported") from None
    weights = os.path.abspath(path)
    with open(path, "rb") as f:
        old = f.read(len(container.MAGIC)) == container.MAGIC
    if old:  # format 1 is not safetensors: the weights go beside the module, in format 2
        if torch_path == "-":
            raise UsageError(f"{path} is a format-1 checkpoint (charrnn 0.1.0): export it to a file, so that its "
                             f"weights can be written beside it in safetensors")
        weights = os.path.splitext(os.path.abspath(torch_path))[0] + ".safetensors"
        arrays, meta = schema.pack(ck)
        container.save(weights, {k: v for k, v in arrays.items() if k.startswith("param/")}, meta)
    write_document(torch_path, torch_source(ck.cfg, ck.vocab, weights))
    if torch_path != "-":
        click.echo(f"wrote {torch_path}" + (f" and {weights}" if old else "") + f"; in Python: "
                   f"import {os.path.splitext(os.path.basename(torch_path))[0]} as m; model = m.load()", err=True)
    sys.stdout.flush()
