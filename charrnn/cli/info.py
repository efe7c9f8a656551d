"""`charrnn info`: describe a checkpoint."""
import json
import math

import click

from charrnn.cli.options import fields_of, options
from charrnn.config.run import RunOptions


@click.command()
@click.argument("path", required=False)
@fields_of(RunOptions, "checkpoint_dir")
@options("json")
def info(path, checkpoint_dir, as_json):
    """Describe a checkpoint: model, training recipe, step, validation loss, vocabulary.

    PATH is a checkpoint file or a run directory [default: the latest run]."""
    from charrnn.api import load

    m = load(path, checkpoint_dir)
    d = m.info
    if as_json:
        click.echo(json.dumps(d))
        return
    c, t = m.config, d["train"]
    inp = "one-hot input" if c.embed == 0 else f"embed {c.embed}"
    act = f" ({c.activation})" if c.cell == "rnn" else ""
    lines = [f"checkpoint   {d['path']}",
             f"model        {c.cell}{act} {c.layers}x{c.hidden}, {inp}, dropout {c.dropout}"
             + (f", forget bias {c.forget_bias:g}" if c.cell == "lstm" else "")
             + (", bidirectional" if c.bidirectional else ""),
             f"parameters   {d['params']:,}",
             f"vocabulary   {d['vocab_size']} {d['level']} tokens",
             f"step         {d['step']}" + (f" (epoch {d['epoch']:.2f})" if d["epoch"] is not None else ""),
             f"val loss     {_fmt(d['val_loss'])} (best {_fmt(d['best_val_loss'])}) nats/token"]
    if c.labels:
        lines[-1] = f"val loss     {_fmt(d['val_loss'])} nats, accuracy {_fmt(d['val_acc'])}"
        lines.append(f"labels       {c.labels}: {', '.join(d['labels'])}")
    if t:
        beta2 = f" (beta2 {t['beta2']:g})" if t["optimizer"] == "adam" else ""
        lines.append(f"training     {t['optimizer']}{beta2} lr {t['lr']:g} {t['lr_schedule']}, batch {t['batch']} x "
                     f"seq-len {t['seq_len']}, clip {t['clip']:g}, seed {t['seed']}")
    if d["corpus_sha256"]:
        files = ", ".join("standard input" if p == "-" else p for p in d["corpus_paths"] or []) or "files not recorded"
        tokens = f"{d['corpus_tokens']:,} tokens, " if d["corpus_tokens"] else ""
        lines.append(f"corpus       {files} ({tokens}sha256 {d['corpus_sha256'][:12]}…)")
    if d.get("choice"):
        lines.append(f"chosen       {d['choice']['why']}")
    if d["elapsed"] is not None:
        lines.append(f"trained for  {_duration(d['elapsed'])}")
    if d["saved_at"]:
        lines.append(f"saved        {d['saved_at'].replace('T', ' ').replace('Z', ' UTC')}"
                     + (f" by charrnn {d['charrnn']}" if d["charrnn"] else ""))
    click.echo("\n".join(lines))


def _fmt(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _duration(seconds):
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m{s:02d}s" if hours else f"{m}m{s:02d}s" if m else f"{s}s"
