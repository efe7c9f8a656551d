"""`charrnn inspect`: colour a text by one hidden unit's activation, and find the units that
track quotes, brackets, the position in the line and word starts (Karpathy, Johnson and
Fei-Fei, "Visualizing and Understanding Recurrent Networks", 2015).

The numbers come from analysis/activations.py, the pictures from ui/paint.py; this module
reads the text, picks the unit and shows it: rich colours on a terminal, text with a
▁▂▃▄▅▆▇█ line under each line when stderr is not a terminal, a standalone HTML page with
--html, JSON on stdout with --json.

Shapes: T tokens, N characters (N = T at char level), L layers, H hidden units.
"""
import json

import click
import numpy as np

from charrnn.analysis import activations
from charrnn.cli.common import input_name, read_inputs, report_console, warn_unknown, write_document
from charrnn.cli.options import fields_of, option, options
from charrnn.config.recipe import Recipe
from charrnn.config.run import RunOptions
from charrnn.ui.paint import FEATURE_TITLES, page, painted, legend_text, plain, plain_legend
from charrnn.errors import CharrnnError
from charrnn.text.decode import lf

EXCERPT_LINES, EXCERPT_CHARS = 4, 320


@click.command("inspect")
@click.argument("text", required=False)
@click.option("--file", "file", type=click.Path(allow_dash=True, dir_okay=True), default=None, metavar="FILE",
              help="Read the text from FILE (- = stdin) instead of TEXT.")
@options("checkpoint")
@fields_of(RunOptions, "checkpoint_dir")
@click.option("--layer", type=int, default=None, metavar="N",
              help="Layer, 0 first [default: the last; with --find: all].")
@click.option("--unit", type=int, default=None, metavar="N",
              help="Unit in the layer, 0 first [default: the one that varies most over the text].")
@click.option("--state", type=click.Choice(activations.STATES), default=None,
              help="h: the hidden state; c: an LSTM's cell state, shown as tanh(c) "
                   "[default: c for an LSTM, h otherwise].")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write a standalone HTML page to FILE (- = stdout).")
@click.option("--find", is_flag=True,
              help="Rank the units by how closely they track quotes, brackets, line position, word starts.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="With --find: units shown per feature.")
@option("json", help="Print JSON on stdout: the ranking with --find, else the unit's value at every token.")
@fields_of(Recipe, "errors", errors=dict(help="What to do with invalid UTF-8 in --file."))
def inspect(text, file, ckpt, checkpoint_dir, layer, unit, state, html_path, find, top, as_json, errors):
    """Colour a text by a hidden unit's activation; find units that track quotes, brackets, ...

    \b
      charrnn inspect --file notes.txt --unit 17         # layer: the last
      charrnn inspect --file notes.txt --find            # which units track what
      charrnn inspect --file notes.txt --find --html units.html
    """
    if (text is None) == (file is None):
        raise click.UsageError("give a TEXT or --file FILE, not both" if text is not None
                               else "give a TEXT to inspect, or --file FILE")
    if find and unit is not None:
        raise click.UsageError("--find picks the units itself; drop --unit, or drop --find to show one unit")
    if as_json and html_path == "-":
        raise click.UsageError("--json and --html - both write to stdout; give one of them")
    from charrnn.checkpoint import schema
    from charrnn.checkpoint.find import resolve
    path = resolve(ckpt, checkpoint_dir)
    b = schema.load(path)
    cfg = b.cfg
    state = state or ("c" if cfg.cell == "lstm" else "h")
    if state == "c" and cfg.cell != "lstm":
        raise click.BadParameter(f"c is an LSTM's cell state; this model is a {cfg.cell}", param_hint="'--state'")
    if layer is not None and not 0 <= layer < cfg.layers:
        raise click.BadParameter(f"{layer} is out of range: the model has {cfg.layers} layer(s), "
                                 f"0 to {cfg.layers - 1}", param_hint="'--layer'")
    if unit is not None and not 0 <= unit < cfg.hidden:
        raise click.BadParameter(f"{unit} is out of range: a layer has {cfg.hidden} units, 0 to {cfg.hidden - 1}",
                                 param_hint="'--unit'")
    if find and b.vocab.level != "char":
        raise click.UsageError("--find needs a character-level model (this one reads words); "
                               "show one unit with --layer and --unit instead")
    text = lf(text if file is None else _read_text(file, errors))  # as the model reads line breaks
    ids, owner = _encode(b.vocab, text)
    values = activations.select(activations.run(b.params, cfg, ids), state)  # (L,T,H)
    view = View(path, b, state, ids, text, owner, values)
    if find:
        _find(view, layer, top, html_path, as_json)
    else:
        _show(view, cfg.layers - 1 if layer is None else layer, unit, html_path, as_json)


# --------------------------------------------------------------------------- input

def _read_text(file, errors):
    from charrnn.text.decode import decode_bytes
    with read_inputs([file]) as sources:
        return decode_bytes(sources.read(), errors, name=input_name(file))


def _encode(vocab, text):
    """(ids (T,), owner (N,)): what the model reads (Vocab.read), unknown symbols with one warning
    (they are shown, marked, but have no value)."""
    ids, owner = vocab.read(text)
    _, unknown = vocab.encode_known(text)
    warn_unknown(vocab, ids, unknown, "the text", text)
    if len(ids) == 0:
        raise CharrnnError("nothing to inspect: the text has no symbol the model knows")
    return ids, owner


class View:
    """The inspected text with its values, and how to describe them: ``owner`` (N,) maps each
    character of ``text`` to its token among ``ids`` (-1: a symbol the model cannot read)."""

    def __init__(self, path, b, state, ids, text, owner, values):
        self.path, self.b, self.state, self.ids, self.text, self.values = path, b, state, ids, text, values
        self.owner, self.read = owner, owner >= 0
        self.lim = _scale(values)  # one colour scale for every unit shown

    def per_char(self, layer, unit):
        """(N,) the unit's value at each character of the text (a word's value on all its
        characters), NaN at one the model cannot read."""
        out = np.full(len(self.text), np.nan)  # (N,)
        out[self.read] = self.values[layer, self.owner[self.read], unit]
        return out

    def label(self, layer, unit):
        return f"layer {layer}, unit {unit} ({'tanh(c)' if self.state == 'c' else 'h'})"

    def model(self):
        from charrnn.ui.formats import model_summary
        return model_summary(self.b.cfg)


def _scale(values):
    """The colour scale's half-width: 1 for every bounded unit (tanh, sigmoid, tanh(c)), as in the
    paper, so units compare; wider only for relu units above 1."""
    return max(1.0, float(np.max(np.abs(values))) if values.size else 1.0)


# --------------------------------------------------------------------------- one unit

def _show(view, layer, unit, html_path, as_json):
    if unit is None:  # the most varied unit is the one worth looking at first
        unit = int(np.argmax(view.values[layer].std(axis=0)))
        click.echo(f"{view.label(layer, unit)}: the unit that varies most over this text; "
                   "choose another with --unit", err=True)
    vals = view.per_char(layer, unit)
    if as_json:
        tokens = [view.b.vocab.tokens[i] for i in view.ids.tolist()]
        click.echo(json.dumps({"checkpoint": view.path, "model": view.b.cfg.to_json(), "state": view.state,
                               "layer": layer, "unit": unit, "tokens": tokens,
                               "values": [round(float(x), 6) for x in view.values[layer, :, unit]]}))
    if html_path is not None:
        title = f"charrnn inspect: {view.model()}, {view.label(layer, unit)}"
        _write_html(html_path, page(title, _meta(view), [(view.label(layer, unit), view.text, vals)], view.lim))
    if not as_json and html_path is None:
        console = _console()
        header = f"{view.model()} · {view.label(layer, unit)} · {len(view.text):,} characters"
        _print_painted(console, header, view.text, vals, view.lim)


# --------------------------------------------------------------------------- find

def _find(view, layer, top, html_path, as_json):
    feats = activations.features(view.text)  # of the whole text; ranked where the model reads it
    layers = list(range(view.b.cfg.layers)) if layer is None else [layer]
    ranking = activations.rank(view.values, {k: f[view.read] for k, f in feats.items()}, top=top, layers=layers)
    if as_json:
        click.echo(json.dumps({"checkpoint": view.path, "model": view.b.cfg.to_json(), "state": view.state,
                               "layers": layers, "characters": len(view.text), "features": ranking}))
    else:
        _print_ranking(_console(), view, ranking)
    best = {name: r["top"][0] for name, r in ranking.items() if r["top"]}  # constant features have none
    if html_path is not None:
        sections = [(_best_label(view, name, e), view.text, view.per_char(e["layer"], e["unit"]))
                    for name, e in best.items()]
        _write_html(html_path, page(f"charrnn inspect --find: {view.model()}", _meta(view), sections, view.lim,
                                    ranking=ranking))
    if as_json or html_path is not None:  # the page (or the JSON) holds the pictures
        return
    console = _console()
    for name, e in best.items():
        lo, hi = excerpt(view.text, feats[name])
        console.print()
        _print_painted(console, _best_label(view, name, e), view.text[lo:hi],
                       view.per_char(e["layer"], e["unit"])[lo:hi], view.lim)


def _best_label(view, name, e):
    return f"{FEATURE_TITLES[name]}: {view.label(e['layer'], e['unit'])}, r = {e['corr']:+.3f}"


def _print_ranking(console, view, ranking):
    from rich.text import Text
    console.print(Text(f"units that track features of the text: {view.model()}, "
                       f"{'tanh(c)' if view.state == 'c' else 'h'}, {len(view.text):,} characters", style="bold"),
                  soft_wrap=True)  # one line on a pipe too: the terminal wraps it, not rich
    console.print(_table(ranking))
    console.print(Text("r: Pearson correlation over the text; -: the feature is constant in this text, "
                       "there is nothing to track", style="dim"), soft_wrap=True)


def _table(ranking):
    from rich.table import Table
    t = Table()
    for name, kw in (("feature", {}), ("rank", {"justify": "right"}), ("layer", {"justify": "right"}),
                     ("unit", {"justify": "right"}), ("r", {"justify": "right"})):
        t.add_column(name, **kw)
    for name, r in ranking.items():
        if r["constant"]:
            t.add_row(FEATURE_TITLES[name], "-", "", "", "-", end_section=True)
            continue
        for k, e in enumerate(r["top"]):
            t.add_row(FEATURE_TITLES[name] if k == 0 else "", str(k + 1), str(e["layer"]), str(e["unit"]),
                      f"{e['corr']:+.3f}", end_section=k == len(r["top"]) - 1)
    return t


def excerpt(text, feature, lines=EXCERPT_LINES, chars=EXCERPT_CHARS):
    """(start, end) of a few whole lines from the line where ``feature`` first changes."""
    f = np.asarray(feature)
    changes = np.flatnonzero(f != f[0]) if f.size else []
    first = int(changes[0]) if len(changes) else 0
    start = text.rfind("\n", 0, first) + 1
    end = start
    for _ in range(lines):
        nl = text.find("\n", end)
        end = len(text) if nl < 0 else nl + 1
        if end >= len(text):
            break
    return start, min(end, start + chars)


# --------------------------------------------------------------------------- terminal

def _console():
    return report_console(highlight=False, emoji=False, soft_wrap=False)


def _print_painted(console, header, text, vals, lim):
    """Coloured backgrounds on a colour terminal; otherwise the plain text with value lines."""
    if console.is_terminal and console.color_system is not None and not console.no_color:
        from rich.text import Text
        console.print(Text(header, style="bold"), soft_wrap=True)
        console.print(legend_text(lim))
        console.print(painted(text, vals, lim))
    else:
        console.file.write(header + "\n" + plain_legend(lim) + "\n" + plain(text, vals, lim))
        console.file.flush()


def _meta(view):
    return f"checkpoint {view.path} · step {view.b.step:,} · {len(view.text):,} characters"


def _write_html(path, doc):
    write_document(path, doc)
    if path != "-":
        click.echo(f"wrote {path}", err=True)
