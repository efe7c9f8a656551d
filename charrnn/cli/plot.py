"""`charrnn plot LOG`: the loss curves of a `charrnn train --log` file, in the terminal or as SVG.

The log is JSON lines: "step" records (loss, mean_loss, epoch, elapsed, ...) and "eval"
records (val_loss, val_bpc, and val_acc from a classifier). A log appended by resumed runs
repeats steps; the later record of a step wins. A record at step 1 after others starts a new
run (a fresh start appending to the same file); the last run is drawn unless --run says
otherwise. The chart goes to stderr (stdout carries data only: the SVG with --svg -), plain
text with no control codes when stderr is not a terminal. An unfinished last line, as a
trainer writing the file right now may leave, is skipped with a note.
"""
import json
import math
import sys
from dataclasses import dataclass, field

import click
import numpy as np

from charrnn.errors import CharrnnError

MAX_WIDTH = 120  # a wider chart gets no easier to read
SVG_SIZE = (800, 450)
SVG_ACC_HEIGHT = 300


@dataclass
class Run:
    """One training run of a log: its records by step, the later of two for a step winning."""

    first_line: int
    steps: dict = field(default_factory=dict)
    evals: dict = field(default_factory=dict)


def read_log(data, name):
    """The runs in a log's bytes, and notes for the user; CharrnnError for what is not a log."""
    lines = data.split(b"\n")
    unfinished = not data.endswith(b"\n")  # the last piece has no newline yet
    runs, notes, seen = [], [], False
    if not data.strip():
        raise CharrnnError(f"{name}: the log is empty")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if n == len(lines) and unfinished:
                notes.append(f"note: {name}: skipped the unfinished last line {n}")
                continue
            hint = "" if seen else " (is it a file written by `charrnn train --log`?)"
            raise CharrnnError(f"{name}: line {n} is not JSON{hint}") from None
        if not isinstance(rec, dict):
            raise CharrnnError(f"{name}: line {n} is not a JSON object")
        seen = True
        event = rec.get("event")
        if event not in ("step", "eval"):
            continue  # events of later versions: not ours to draw
        step = rec.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise CharrnnError(f"{name}: line {n}: {event} record without a valid step number")
        if not runs or (event == "step" and step == 1 and runs[-1].steps):
            runs.append(Run(first_line=n))
        (runs[-1].steps if event == "step" else runs[-1].evals)[step] = rec
    runs = [r for r in runs if r.steps]
    if not runs:
        raise CharrnnError(f"{name}: no training steps in the log (write one with `charrnn train --log FILE`)")
    return runs, notes


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _column(records, key):
    return np.array([_num(r.get(key)) for r in records])


def training_time(elapsed, steps):
    """Seconds of training over the whole run. A resumed run's clock goes on from its
    checkpoint's; it goes back only when an earlier checkpoint was resumed (the records of the
    steps done again are the ones that count). Logs of earlier charrnn versions restarted the clock
    at each resume: a clock that went back below the checkpoint's time is one of those, and
    the time before it is added."""
    out, offset, prev = np.empty_like(elapsed), 0.0, None
    for i, e in enumerate(elapsed):
        if math.isfinite(e) and prev is not None and e < elapsed[prev]:
            before = [j for j in range(i) if steps[j] < steps[i] and math.isfinite(elapsed[j])]
            if before and e < elapsed[before[-1]]:  # the clock restarted: an old log
                offset = out[before[-1]]
        out[i] = e + offset
        if math.isfinite(e):
            prev = i
    return out


def _time_unit(seconds):
    longest = np.nanmax(seconds) if np.isfinite(seconds).any() else 0.0
    if longest > 7200:
        return 3600.0, "hours"
    if longest > 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _read_bytes(path):
    if path == "-":
        return sys.stdin.buffer.read()
    from charrnn.text.sources import open_input  # the corpus reader's one-line errors: no such file, a directory, ...
    with open_input(path) as f:
        return f.read()


@dataclass
class Curves:
    """What one chart shows: the kept step and eval records and the x of each."""

    x_label: str
    steps: list
    recs: list
    xs: np.ndarray
    eval_steps: list
    evals: list
    ex: np.ndarray
    seconds: np.ndarray = None  # training time at each kept step, for the summary

    def loss(self, with_raw):
        raw = _column(self.recs, "loss")
        series = {"train loss": (self.xs, raw)} if with_raw else {}
        series[MEAN_LABEL] = (self.xs, trailing_mean(raw))
        val = _column(self.evals, "val_loss")
        if np.isfinite(val).any():  # no validation split: no empty legend entry
            series["validation loss"] = (self.ex, val)
        return series

    def accuracy(self):
        acc = _column(self.evals, "val_acc")
        return {"validation accuracy": (self.ex, acc)} if np.isfinite(acc).any() else None


def select(run, x_axis, first, last, name):
    """The records of ``run`` from step ``first`` to ``last`` and their x values."""
    lo, hi = (-math.inf if first is None else first), (math.inf if last is None else last)
    all_steps = sorted(run.steps)
    step_recs = [run.steps[s] for s in all_steps]
    if x_axis == "time":
        ref = training_time(_column(step_recs, "elapsed"), _column(step_recs, "step"))  # over every step: --from keeps the clock
    elif x_axis == "epoch":
        ref = _column(step_recs, "epoch")
    else:
        ref = np.array(all_steps, dtype=float)
    keep = [i for i, s in enumerate(all_steps) if lo <= s <= hi]
    if not keep:
        upto = "the end" if last is None else last
        raise CharrnnError(f"{name}: no training steps between steps {first or 0} and {upto}")
    known = np.isfinite(ref)
    if not known.any():
        raise CharrnnError(f"{name}: the step records carry no {'elapsed' if x_axis == 'time' else x_axis} values")
    seconds = ref[keep] if x_axis == "time" else None
    scale, unit = _time_unit(seconds) if x_axis == "time" else (1.0, "")
    known_steps, known_x = np.array(all_steps, dtype=float)[known], ref[known] / scale

    def x_of(steps):  # an eval's x is its step's, interpolated where that step record is missing
        return np.interp(np.asarray(steps, dtype=float), known_steps, known_x) if len(steps) else np.zeros(0)

    steps = [all_steps[i] for i in keep]
    xs = np.where(known[keep], ref[keep] / scale, np.nan)
    eval_steps = [s for s in sorted(run.evals) if lo <= s <= hi]
    x_label = {"step": "step", "epoch": "epoch", "time": f"training time ({unit})"}[x_axis]
    return Curves(x_label, steps, [step_recs[i] for i in keep], xs, eval_steps,
                  [run.evals[s] for s in eval_steps], x_of(eval_steps), seconds)


MEAN_OF = 20  # as the training loop's mean beside each step's loss (training/loop.py)
MEAN_LABEL = f"train loss (mean of {MEAN_OF} steps)"
LOSS_STYLE = dict(colors={"train loss": 0, MEAN_LABEL: 0, "validation loss": 1}, faint=("train loss",))


def trailing_mean(values, n=MEAN_OF):
    """The mean of each value and the n - 1 before it (fewer at the start); NaN values skipped."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    counts = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(i - n, 0)
    k = counts[i] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k > 0, (sums[i] - sums[lo]) / np.maximum(k, 1), np.nan)
ACC_STYLE = dict(colors={"validation accuracy": 3})


@click.command()
@click.argument("log", type=click.Path(allow_dash=True))
@click.option("--x", "x_axis", type=click.Choice(["step", "epoch", "time"]), default="step", show_default=True,
              help="The x axis: steps, passes over the training text, or training time (summed over resumes).")
@click.option("--log-y", is_flag=True, help="A logarithmic y axis.")
@click.option("--raw/--no-raw", default=None,
              help="Also draw each step's loss, faint under the smoothed one [default: in SVG and on a colour "
                   "terminal].")
@click.option("--from", "first", type=click.IntRange(min=0), default=None, metavar="STEP",
              help="Draw from this step on.")
@click.option("--to", "last", type=click.IntRange(min=0), default=None, metavar="STEP", help="Draw up to this step.")
@click.option("--run", "run_no", type=click.IntRange(min=1), default=None, metavar="N",
              help="Which run of a log holding several (each fresh start at step 1 begins one) [default: the last].")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, allow_dash=True), default=None, metavar="FILE",
              help="Also write the chart as an SVG picture (- = stdout).")
@click.option("--width", type=click.IntRange(min=30), default=None,
              help=f"Columns of the terminal chart [default: the terminal's, at most {MAX_WIDTH}].")
@click.option("--height", type=click.IntRange(min=4), default=None,
              help="Rows of the terminal chart's plotting area [default: 18, less on a short terminal].")
@click.option("--color", "color_mode", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour on stderr; auto: when it is a terminal and NO_COLOR is unset.")
@click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but errors (with --svg).")
def plot(log, x_axis, log_y, raw, first, last, run_no, svg_path, width, height, color_mode, quiet):
    """Draw the loss curves of a --log file.

    Training loss (smoothed, and each step's faintly) and validation loss against the step,
    on stderr; a classifier's validation accuracy gets a chart of its own. LOG is a file
    written by `charrnn train --log`, or - for stdin.

    \b
      charrnn plot run.jsonl --log-y
      charrnn plot run.jsonl --x time --from 1000
      charrnn plot run.jsonl --svg run.svg -q
    """
    from charrnn.ui import chart, svg
    from charrnn.cli.common import report_console, write_document

    if first is not None and last is not None and first > last:
        raise click.UsageError(f"--from {first} is after --to {last}")
    name = "stdin" if log == "-" else log
    runs, notes = read_log(_read_bytes(log), name)
    if run_no is not None and run_no > len(runs):
        raise click.BadParameter(f"the log holds {len(runs)} run{'s' if len(runs) > 1 else ''}", param_hint="'--run'")
    k = run_no or len(runs)
    if len(runs) > 1 and run_no is None:
        notes.append(f"note: {name} holds {len(runs)} runs (a fresh start at step 1 begins each); "
                     f"drawing the last, from line {runs[-1].first_line} (--run picks another)")
    title = f"loss · {name}" + (f" · run {k} of {len(runs)}" if len(runs) > 1 else "")
    c = select(runs[k - 1], x_axis, first, last, name)
    acc = c.accuracy()

    if svg_path is not None:
        w, h = SVG_SIZE
        docs = [(w, h, svg.svg_chart(c.loss(raw is not False), w, h, log_y=log_y, title=title,
                                       x_label=c.x_label, y_label="loss (nats/token)", **LOSS_STYLE))]
        if acc:
            docs.append((w, SVG_ACC_HEIGHT, svg.svg_chart(acc, w, SVG_ACC_HEIGHT, x_label=c.x_label,
                                                            title=f"validation accuracy · {name}",
                                                            y_label="accuracy", **ACC_STYLE)))
        write_document(svg_path, docs[0][2] if len(docs) == 1 else svg.stack(docs))
    if quiet:
        return
    console = report_console(wide=False, force_terminal={"always": True, "never": False}.get(color_mode),
                      no_color=color_mode == "never" or None, highlight=False, soft_wrap=True)
    color = (color_mode != "never" and console.is_terminal and console.color_system is not None
             and not console.no_color)
    for note in notes:
        console.print(note, markup=False)
    width = width or max(30, min(console.width, MAX_WIDTH))
    height = height or (max(5, min(18, console.height - 10)) if console.is_terminal else 18)
    # in plain text the raw loss is a cloud of dots around the smoothed line: only when asked
    show_raw = color if raw is None else raw
    console.print(chart.line_chart(c.loss(show_raw), width, height, log_y=log_y, title=title, x_label=c.x_label,
                                   y_label="nats/token", color=color, **LOSS_STYLE))
    if acc:
        console.print()
        console.print(chart.line_chart(acc, width, max(4, height // 2), title=f"validation accuracy · {name}",
                                       x_label=c.x_label, color=color, **ACC_STYLE))
    for line in _summary(c):
        console.print(line, markup=False)
    if svg_path not in (None, "-"):
        console.print(f"wrote {svg_path}", markup=False)


def _summary(c):
    """The numbers a user looks for under the picture: where the run ended, its best."""
    from charrnn.ui.formats import format_duration

    last, seconds, eval_steps, evals = c.recs[-1], c.seconds, c.eval_steps, c.evals
    where = f"step {c.steps[-1]:,}"
    if math.isfinite(_num(last.get("epoch"))):
        where += f", epoch {_num(last.get('epoch')):.2f}"
    if seconds is not None and math.isfinite(seconds[-1]):
        where += f", {format_duration(seconds[-1])} of training"
    mean = trailing_mean(_column(c.recs, "loss"))[-1]
    lines = [f"last {where}: train loss {_fmt(last.get('loss'))}, mean of the last {min(len(c.recs), MEAN_OF)} "
             f"steps {_fmt(mean)}"]
    scored = [(s, e) for s, e in zip(eval_steps, evals) if math.isfinite(_num(e.get("val_loss")))]
    if scored:
        s, e = scored[-1]
        bpc = _num(e.get("val_bpc"))
        line = f"validation {_fmt(e.get('val_loss'))} nats" + (f" ({bpc:.3f} bits/char)" if math.isfinite(bpc) else "")
        best_s, best_e = min(scored, key=lambda p: _num(p[1].get("val_loss")))
        line += f" at step {s:,}; best {_fmt(best_e.get('val_loss'))} at step {best_s:,}"
        lines.append(line)
    accs = [(s, _num(e.get("val_acc"))) for s, e in zip(eval_steps, evals) if math.isfinite(_num(e.get("val_acc")))]
    if accs:
        s, a = accs[-1]
        best_s, best_a = max(accs, key=lambda p: p[1])
        lines.append(f"validation accuracy {a:.4f} at step {s:,}; best {best_a:.4f} at step {best_s:,}")
    return lines


def _fmt(v):
    v = _num(v)
    return f"{v:.4f}" if math.isfinite(v) else "-"
