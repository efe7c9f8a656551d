"""`charrnn diagnose`: the vanishing and exploding gradient, measured and drawn.

For a loss at the end of a window, ‖dL/dh_t‖ against the distance back (core/gradflow.py),
for freshly initialised cells of each type or for a trained checkpoint. The chart and table
go to stderr; ``--json`` puts the numbers on stdout.
"""
import json
import math

import click
import numpy as np

from charrnn.checkpoint import find, schema
from charrnn.cli.common import input_name, report_console, warn_unknown
from charrnn.cli.options import Finite, InputFile, field_option, option
from charrnn.config.model import ModelConfig
from charrnn.config.recipe import Recipe
from charrnn.config.run import RunOptions
from charrnn.core import cells, gradflow, model
from charrnn.errors import CharrnnError

FRESH_VOCAB = 64  # fresh cells read random tokens of a 64-symbol alphabet, one-hot
SHOWN = (1, 10, 25, 50, 100)  # the distances the table prints
FRESH_ONLY = ("hidden", "layers", "activation", "forget_bias", "gain")


@click.command()
@option("checkpoint", help="Measure a trained model (a file or a run directory) instead of fresh cells.")
@field_option(RunOptions, "checkpoint_dir")
@click.option("--file", "text_file", type=InputFile(), default=None,
              help="With --checkpoint: put the loss at the last token of each line of FILE, read from the "
                   "T tokens before it [default: windows the model samples itself].")
@click.option("--cell", "cell_kinds", type=click.Choice(cells.kinds()), multiple=True,
              help="Fresh cells to compare; repeat it [default: rnn, lstm and gru].")
@field_option(ModelConfig, "hidden", default=128, help="Fresh cells' width.")
@field_option(ModelConfig, "layers", default=1, help="Fresh cells' depth.")
@field_option(ModelConfig, "activation", help="Fresh vanilla RNN's nonlinearity.")
@field_option(ModelConfig, "forget_bias", help="Fresh LSTM's forget-gate bias (as `charrnn train`).")
@click.option("--gain", type=Finite(min=0, min_open=True), default=1.0, show_default=True,
              help="Multiply the fresh recurrent weights Wh by this; above 1 makes gradients explode.")
@click.option("--length", "T", type=click.IntRange(min=2), default=100, show_default=True,
              help="Window length T: distances 0 … T-1.")
@click.option("--batch", "B", type=click.IntRange(min=1), default=16, show_default=True,
              help="Sequences averaged over (geometric mean).")
@click.option("--clip", type=Finite(min=0), default=5.0, show_default=True,
              help="Also show the gradient after global-norm clipping at this; 0 = off.")
@field_option(Recipe, "seed", help="Seeds the fresh cells and the windows the model samples.")
@option("json", help="Print the measurements as one JSON object on stdout.")
@click.pass_context
def diagnose(ctx, ckpt, checkpoint_dir, text_file, cell_kinds, hidden, layers, activation, forget_bias, gain, T,
             B, clip, seed, as_json):
    """Measure gradient flow through time: ‖dL/dh_t‖ against the distance back from the loss.

    Shows the vanilla RNN's gradient vanishing (or, with --gain above 1, exploding) and what
    LSTM and GRU cells and gradient clipping do about it.

    \b
      charrnn diagnose                          # fresh rnn, lstm and gru cells
      charrnn diagnose --cell rnn --gain 1.5    # an exploding gradient, and clipping
      charrnn diagnose --checkpoint checkpoints/mine --json
    """
    given = {k for k in ctx.params if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    rng = np.random.default_rng(seed)
    if ckpt is not None:
        bad = [k for k in (*FRESH_ONLY, "cell_kinds") if k in given]
        if bad:
            flag = "--cell" if bad[0] == "cell_kinds" else "--" + bad[0].replace("_", "-")
            raise click.UsageError(f"{flag} describes fresh cells; a checkpoint has its own model")
        runs = [_checkpoint_run(ckpt, checkpoint_dir, text_file, T, B, rng, clip)]
    else:
        if text_file is not None:
            raise click.UsageError("--file needs --checkpoint (fresh cells read random tokens)")
        runs = [_fresh_run(kind, hidden, layers, activation, forget_bias, gain, T, B, rng, clip)
                for kind in (cell_kinds or cells.kinds())]
    report = {"length": T, "batch": B, "clip": clip, "distance": list(range(T)), "models": runs}
    _draw(report)
    if as_json:
        click.echo(json.dumps(report, allow_nan=False))


# --------------------------------------------------------------------------- the measurements

def _fresh_run(kind, H, L, act, forget_bias, gain, T, B, rng, clip):
    cfg = ModelConfig(vocab_size=FRESH_VOCAB, cell=kind, activation=act, layers=L, hidden=H,
                      forget_bias=forget_bias)
    params = model.init_params(cfg, rng, np.float64)
    for k in params:
        if k.endswith(".Wh"):
            params[k] *= gain
    ids = rng.integers(0, FRESH_VOCAB, (T, B))  # (T,B)
    y = rng.integers(0, FRESH_VOCAB, B)  # (B,)
    name = kind + (f"/{act}" if kind == "rnn" else "") + (f" gain {gain:g}" if gain != 1 else "")
    return _result(name, cfg, params, ids, y, clip, source="fresh")


def _checkpoint_run(ckpt, checkpoint_dir, text_file, T, B, rng, clip):
    path = find.resolve(ckpt, checkpoint_dir)
    b = schema.load(path)
    if b.cfg.bidirectional:
        raise CharrnnError(f"{path}: a bidirectional model has no single direction of time to measure")
    if text_file is not None:
        ids, y = _windows_from_text(b.vocab, text_file, T, B)
        source = f"the last token of lines of {text_file.name}"
    else:
        ids, y = _windows_from_model(b, T, B, rng)
        source = "windows the model sampled"
    return _result(path, b.cfg, b.params, ids, y, clip, source=source)


def _windows_from_text(vocab, f, T, B):
    """Windows whose next token is the last token of a line: the first B lines with T tokens before that."""
    from charrnn.text.decode import decode_bytes
    name = input_name(f)
    text = decode_bytes(f.read(), name=name, errors_option=False)
    ids, unknown = vocab.encode_known(text)
    warn_unknown(vocab, ids, unknown, name)
    ids = np.asarray(ids, dtype=np.int64)
    nl = [i for i, t in enumerate(vocab.tokens) if t.endswith("\n")]
    ends = np.flatnonzero(np.isin(ids, nl)) - 1  # the last token of each line
    ends = ends[ends >= T][:B]
    if len(ends) == 0:
        raise CharrnnError(f"{f.name}: no line ends with {T} tokens before it; give a longer text or a "
                           f"smaller --length")
    if len(ends) < B:
        click.echo(f"warning: only {len(ends)} line(s) qualify; measuring those", err=True)
    return np.stack([ids[e - T:e] for e in ends], axis=1), ids[ends]  # (T,B'), (B',)


def _windows_from_model(b, T, B, rng):
    """B sequences of T+1 tokens drawn from the model itself at temperature 1: typical input for it."""
    start = next((i for i, t in enumerate(b.vocab.tokens) if t == "\n"), 0)
    stepper = model.Stepper(b.params, b.cfg, B=B)
    seq = np.empty((T + 1, B), dtype=np.int64)  # (T+1,B)
    tok = np.full(B, start, dtype=np.int64)
    for t in range(T + 1):
        z = stepper.step(tok).astype(np.float64)  # (B,V)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        cum = np.cumsum(p, axis=1)
        tok = (cum < rng.random((B, 1)) * cum[:, -1:]).sum(axis=1)
        seq[t] = tok
    return seq[:-1], seq[-1]


def _result(name, cfg, params, ids, y, clip, source):
    with np.errstate(all="ignore"):  # an exploding gradient overflows on purpose; inf is reported
        r = gradflow.gradient_flow(params, cfg, ids, y, clip)
    norms = r["norms"]
    T = norms.shape[1]
    return {"name": name, "cell": cfg.cell, "hidden": cfg.hidden, "layers": cfg.layers, "input": source,
            "loss": _num(r["loss"]), "grad_norm": _num(r["grad_norm"]), "clip_scale": _num(r["clip_scale"]),
            "ratio_50_1": _num(gradflow.ratio(norms[-1])) if T > 50 else None,
            "norms": [[_num(v) for v in row] for row in norms]}


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- the picture

def _draw(report):
    from rich.table import Table

    from charrnn.ui.chart import line_chart

    console = report_console(highlight=False)
    color = console.is_terminal
    xs = report["distance"]
    series = {}
    for m in report["models"]:
        for l, row in enumerate(m["norms"]):
            label = m["name"] + (f" layer {l}" if m["layers"] > 1 else "")  # 0 first, as inspect --layer
            series[label] = (xs, row)
            if report["clip"] > 0 and m["clip_scale"] is not None and m["clip_scale"] < 1:
                series[label + " clipped"] = (xs, [None if v is None else v * m["clip_scale"] for v in row])
    console.print(line_chart(series, log_y=True, title="‖dL/dh_t‖ for a loss at the end of the window",
                             x_label="distance back from the loss (steps)", y_label="gradient norm",
                             color=color))
    table = Table(box=None, pad_edge=False)
    table.add_column("model")
    shown = [d for d in SHOWN if d < len(xs)]
    for d in shown:
        table.add_column(f"d={d}", justify="right")
    table.add_column("ratio 50/1", justify="right")
    table.add_column("‖grad‖", justify="right")
    table.add_column("clip ×", justify="right")
    for m in report["models"]:
        row = m["norms"][-1]
        table.add_row(m["name"], *(_sci(row[d]) for d in shown), _sci(m["ratio_50_1"]), _sci(m["grad_norm"]),
                      "-" if m["clip_scale"] is None or m["clip_scale"] >= 1 else _sci(m["clip_scale"]))
    console.print(table)


def _sci(x):
    return "-" if x is None else f"{x:.2e}"
