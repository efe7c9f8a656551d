"""`charrnn plot` and the chart module: where the glyphs land, the SVG's content, bad logs refused in one line."""
import inspect
import io
import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from charrnn.ui import axes, chart, svg
from charrnn.cli import cli
from charrnn.cli.plot import read_log, training_time

SVG = "{http://www.w3.org/2000/svg}"
ANSI = re.compile(r"\x1b\[")


@pytest.fixture(autouse=True)
def no_forced_colour(monkeypatch):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS", "LINES"):
        monkeypatch.delenv(var, raising=False)


def invoke(*args, input=None):
    """The CLI in-process, stdout and stderr apart (click 8.1 needs mix_stderr=False for that)."""
    kw = {"mix_stderr": False} if "mix_stderr" in inspect.signature(CliRunner).parameters else {}
    return CliRunner(**kw).invoke(cli, list(args), input=input)


def canvas(text, gutter=None):
    """The plotting area of a plain chart: the rows that carry the y axis, minus the axis."""
    rows = [line for line in str(text).splitlines() if re.match(r"^[^│┤└]*[│┤]", line)]
    return [re.split(r"[│┤]", line, maxsplit=1)[1] for line in rows]


def glyph_rows(rows, col):
    return [r for r, line in enumerate(rows) if len(line) > col and line[col] != " "]


def steps_log(n, loss=lambda s: 3.0 - s / 100, evals=(), start=1):
    lines = [{"event": "step", "step": s, "epoch": s / 10, "loss": loss(s) + 0.1, "mean_loss": loss(s),
              "grad_norm": 1.0, "clipped": False, "lr": 1e-3, "chars_per_s": 100.0, "elapsed": s / 20}
             for s in range(start, start + n)]
    lines += [{"event": "eval", "step": s, "val_loss": v, "val_bpc": v / math.log(2), "best": False}
              for s, v in evals]
    return "".join(json.dumps(r) + "\n" for r in lines)


def svg_series(doc):
    """{series name: [(x, y), ...]} of an SVG document's polylines."""
    root = ET.fromstring(doc)
    out = {}
    for p in root.iter(f"{SVG}polyline"):
        pts = [tuple(map(float, xy.split(","))) for xy in p.get("points").split()]
        out[p.get("data-series")] = pts
    return out


# --------------------------------------------------------------------------- the terminal chart

@pytest.mark.parametrize("direction", [1, -1])
def test_a_higher_value_is_drawn_higher(direction):
    xs = np.arange(50)
    text = chart.line_chart({"s": (xs, direction * xs)}, width=60, height=12, color=False)
    rows = canvas(text)
    assert len(rows) == 12
    width = max(len(r) for r in rows)
    first, last = glyph_rows(rows, 0), glyph_rows(rows, width - 1)
    assert first and last
    if direction > 0:
        assert max(last) < min(first)  # row 0 is the top
    else:
        assert max(first) < min(last)


def test_y_tick_labels_read_upward_in_order():
    text = chart.line_chart({"s": ([0, 10], [2.0, 7.0])}, width=50, height=15, color=False)
    labels = [float(m.group(1)) for m in re.finditer(r"^\s*([\d.]+) ┤", str(text), re.M)]
    assert len(labels) >= 3 and labels == sorted(labels, reverse=True)
    assert 2.0 <= labels[-1] and labels[0] <= 7.0


def test_log_y_ticks_read_like_powers_of_ten():
    xs = np.arange(100)
    text = chart.line_chart({"norm": (xs, 10.0 ** np.linspace(-30, 3, 100))}, width=70, height=18,
                            log_y=True, color=False)
    labels = re.findall(r"^\s*(\S+) ┤", str(text), re.M)
    assert len(labels) >= 3
    assert all(re.fullmatch(r"1e-?\d+", s) for s in labels), labels
    exps = [int(s[2:]) for s in labels]
    assert exps == sorted(exps, reverse=True) and -30 <= exps[-1] and exps[0] <= 3
    assert "1e-30" in labels or "1e-20" in labels
    # the curve climbs through the decades: its first point at the bottom, its last at the top
    rows = canvas(text)
    assert glyph_rows(rows, 0)[-1] == len(rows) - 1 and glyph_rows(rows, max(map(len, rows)) - 1)[0] == 0


@pytest.mark.parametrize("lo,hi,expected", [
    (-12, -1, ["1e-12", "1e-10", "1e-8", "1e-6", "1e-4", "1e-2"]),
    (-3, 0, ["0.001", "0.01", "0.1", "1"]),
    (-1, 1, ["0.1", "1", "10"]),
    (0, 7, ["1e0", "1e2", "1e4", "1e6"]),
])
def test_log_tick_values_and_labels(lo, hi, expected):
    assert axes.format_ticks(axes.log_ticks(lo, hi, 6), uniform=False, exp_from=1e4) == expected


def test_a_log_axis_under_a_decade_still_gets_several_ticks():
    ticks = axes.log_ticks(math.log10(1.3), math.log10(4.2), 6)
    assert len(ticks) >= 3 and all(1.3 <= t <= 4.2 for t in ticks)


def test_nan_none_and_inf_points_are_skipped_and_their_neighbours_joined():
    xs = [0, 1, 2, 3, 4, 5]
    ys = [1.0, float("nan"), 3.0, None, float("inf"), 6.0]
    holes = chart.line_chart({"s": (xs, ys)}, width=50, height=10, color=False)
    clean = chart.line_chart({"s": ([0, 2, 5], [1.0, 3.0, 6.0])}, width=50, height=10, color=False)
    assert str(holes) == str(clean)
    assert "nan" not in str(holes).lower() and "inf" not in str(holes).lower()
    doc = svg.svg_chart({"s": (xs, ys)})
    assert len(svg_series(doc)["s"]) == 3


def test_non_positive_values_are_skipped_on_a_log_axis():
    doc = svg.svg_chart({"s": ([0, 1, 2, 3], [1.0, 0.0, -5.0, 100.0])}, log_y=True)
    assert len(svg_series(doc)["s"]) == 2


def test_a_single_point_still_shows():
    text = chart.line_chart({"lone": ([7], [2.5])}, width=40, height=8, color=False)
    assert any(line.strip() for line in canvas(text))
    doc = svg.svg_chart({"lone": ([7], [2.5])})
    assert len(svg_series(doc)["lone"]) == 1
    assert len(ET.fromstring(doc).findall(f".//{SVG}circle")) == 1


def test_no_data_at_all_draws_empty_axes_that_say_so():
    text = chart.line_chart({"s": ([1, 2], [None, float("nan")])}, width=40, height=6, color=False)
    assert "(no data)" in str(text)


def test_plain_output_has_no_styles_and_colour_output_has():
    s = {"a": ([0, 1, 2], [1, 2, 3]), "b": ([0, 2], [3, 1])}
    plain = chart.line_chart(s, title="t", x_label="x", y_label="y", color=False)
    assert plain.spans == [] and not plain.style
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="standard", width=100).print(plain)
    assert not ANSI.search(out.getvalue())
    coloured = chart.line_chart(s, title="t", color=True)
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="standard", width=100).print(coloured)
    assert ANSI.search(out.getvalue())  # the check above can see escapes when there are some


def test_plain_series_are_told_apart_by_markers_and_the_legend_names_them():
    s = {"train": ([0, 10], [1, 2]), "val": ([0, 10], [2, 1]), "other": ([0, 10], [1.5, 1.5])}
    text = str(chart.line_chart(s, width=60, height=12, color=False))
    body = "\n".join(canvas(text))
    assert re.search("[\u2801-\u28ff]", body) and "+" in body and "x" in body
    legend = text.splitlines()[-1]
    assert legend.index("train") < legend.index("+ val") < legend.index("x other")


def test_x_tick_labels_sit_under_the_axis_in_order():
    text = str(chart.line_chart({"s": ([0, 1000], [1, 2])}, width=72, height=8, color=False))
    lines = text.splitlines()
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    labels = [int(v.replace(",", "")) for v in lines[axis + 1].split()]
    assert len(labels) >= 3 and labels == sorted(labels) and labels[0] >= 0 and labels[-1] <= 1000
    # each label stands over a tick mark of the axis line (centred, or pushed in at the edges)
    for m in re.finditer(r"\S+", lines[axis + 1]):
        assert lines[axis][m.start():m.end()].count("┬") == 1, m.group()


def test_a_chart_too_small_to_draw_is_refused():
    with pytest.raises(ValueError):
        chart.line_chart({"s": ([0, 1], [0, 1])}, width=10, height=5)


# --------------------------------------------------------------------------- SVG

def test_svg_is_wellformed_with_one_polyline_per_series_and_a_vertex_per_point():
    s = {"train": (np.arange(1, 301), 3 - np.arange(1, 301) / 150), "val": ([50, 100, 150], [2.5, 2.2, None])}
    doc = svg.svg_chart(s, title="loss <& 'quotes'>", x_label="step", y_label="nats")
    root = ET.fromstring(doc)
    assert root.tag == f"{SVG}svg"
    lines = svg_series(doc)
    assert list(lines) == ["train", "val"]
    assert len(lines["train"]) == 300 and len(lines["val"]) == 2
    # higher values higher up: SVG's y grows downward
    assert lines["train"][0][1] < lines["train"][-1][1] and lines["val"][0][1] < lines["val"][1][1]
    up = svg_series(svg.svg_chart({"up": ([0, 1], [1.0, 2.0])}))["up"]
    assert up[0][1] > up[1][1]
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "loss <& 'quotes'>" in texts and "step" in texts and "nats" in texts
    assert {"train", "val"} <= set(texts)  # the legend
    assert "<script" not in doc and "href" not in doc and "@import" not in doc
    assert doc == svg.svg_chart(s, title="loss <& 'quotes'>", x_label="step", y_label="nats")


def test_svg_gridlines_and_tick_labels_match():
    doc = svg.svg_chart({"s": ([0, 100], [0.0, 10.0])})
    root = ET.fromstring(doc)
    grid = root.find(f".//{SVG}g[@class='grid']")
    ticks = ["".join(t.itertext()) for t in root.find(f".//{SVG}g[@class='ticks']")]
    assert len(grid) == len(ticks) >= 6
    assert "0" in ticks and "100" in ticks and "10" in ticks


def test_svg_thins_a_very_long_series_but_keeps_its_extremes():
    xs = np.arange(100_000)
    ys = np.sin(xs / 1000.0)
    ys[54_321] = 5.0
    pts = svg_series(svg.svg_chart({"s": (xs, ys)}))["s"]
    assert len(pts) < 5000
    top = min(p[1] for p in pts)
    assert [p for p in pts if p[1] == top] and len([p for p in pts if p[1] == top]) == 1


# --------------------------------------------------------------------------- reading logs

def test_a_later_record_for_the_same_step_wins():
    first = steps_log(8)  # a run killed after step 8 whose last checkpoint was at step 4
    resumed = steps_log(6, loss=lambda s: 9.0 if s == 6 else 3.0 - s / 100, start=5)
    runs, notes = read_log((first + resumed).encode(), "log")
    assert len(runs) == 1 and notes == []
    assert sorted(runs[0].steps) == list(range(1, 11))
    assert runs[0].steps[6]["mean_loss"] == 9.0 and runs[0].steps[4]["mean_loss"] == 3.0 - 4 / 100


def test_a_fresh_start_in_the_same_file_is_another_run():
    runs, _ = read_log((steps_log(5) + steps_log(3)).encode(), "log")
    assert [sorted(r.steps) for r in runs] == [[1, 2, 3, 4, 5], [1, 2, 3]]
    assert runs[1].first_line == 6


def test_training_time_adds_up_over_resumes():
    # an old log: each resume restarted the clock at 0 (here from the checkpoint of step 3)
    t = training_time(np.array([0.1, 0.2, 0.3, 0.05, 0.15, np.nan, 0.25]), np.arange(1, 8.0))
    assert np.allclose(t[:5], [0.1, 0.2, 0.3, 0.35, 0.45]) and np.isnan(t[5]) and math.isclose(t[6], 0.55)
    # today's: the clock goes on from the checkpoint's, also when an earlier one is resumed
    steps = np.array([1, 2, 3, 4, 3, 4, 5.0])  # resumed from step 2's checkpoint (0.2 s) after step 4
    t = training_time(np.array([0.1, 0.2, 0.3, 0.4, 0.25, 0.35, 0.45]), steps)
    assert np.allclose(t, [0.1, 0.2, 0.3, 0.4, 0.25, 0.35, 0.45])


# --------------------------------------------------------------------------- the command

@pytest.mark.parametrize("content,message,code", [
    (None, "charrnn: error: log.jsonl: no such file", 1),
    ("", "charrnn: error: log.jsonl: the log is empty", 1),
    ("\n  \n", "charrnn: error: log.jsonl: the log is empty", 1),
    ('{"event": "step", "step": 1, "loss": 1}\nnot json\n{"event": "step", "step": 2}\n',
     "charrnn: error: log.jsonl: line 2 is not JSON", 1),
    ("hello\n", "charrnn: error: log.jsonl: line 1 is not JSON (is it a file written by `charrnn train --log`?)", 1),
    ('[1, 2]\n', "charrnn: error: log.jsonl: line 1 is not a JSON object", 1),
    ('{"event": "step", "step": "three"}\n', "charrnn: error: log.jsonl: line 1: step record without a valid "
                                            "step number", 1),
    ('{"event": "eval", "step": 10, "val_loss": 2.0}\n{"event": "note"}\n',
     "charrnn: error: log.jsonl: no training steps in the log (write one with `charrnn train --log FILE`)", 1),
])
def test_bad_logs_are_one_line(tmp_path, monkeypatch, content, message, code):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / "log.jsonl").write_text(content)
    r = invoke("plot", "log.jsonl")
    assert r.exit_code == code
    assert r.stderr == message + "\n" and r.stdout == ""


@pytest.mark.parametrize("args,message", [
    (["--run", "3"], "charrnn: error: Invalid value for '--run': the log holds 2 runs"),
    (["--from", "9", "--to", "2"], "charrnn: error: --from 9 is after --to 2"),
    (["--x", "frames"], "charrnn: error: Invalid value for '--x': 'frames' is not one of 'step', 'epoch', 'time'."),
])
def test_bad_options_are_usage_errors(tmp_path, args, message):
    (tmp_path / "log.jsonl").write_text(steps_log(5) + steps_log(3))
    r = invoke("plot", str(tmp_path / "log.jsonl"), *args)
    assert r.exit_code == 2 and r.stderr == message + "\n"


def test_a_range_with_no_steps_is_one_line(tmp_path):
    (tmp_path / "log.jsonl").write_text(steps_log(5))
    r = invoke("plot", str(tmp_path / "log.jsonl"), "--from", "50")
    assert r.exit_code == 1
    assert r.stderr == f"charrnn: error: {tmp_path / 'log.jsonl'}: no training steps between steps 50 and the end\n"


def test_a_directory_is_refused(tmp_path):
    r = invoke("plot", str(tmp_path))
    assert r.exit_code == 1 and r.stderr == f"charrnn: error: {tmp_path}: is a directory\n"


def test_an_unfinished_last_line_is_skipped_with_a_note(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(steps_log(20) + '{"event": "step", "step": 21, "lo')
    r = invoke("plot", str(log), "--svg", "-")
    assert r.exit_code == 0, r.stderr
    assert f"note: {log}: skipped the unfinished last line 21" in r.stderr
    assert len(svg_series(r.stdout)["train loss (mean of 20 steps)"]) == 20


def test_resumed_log_later_step_wins_in_the_picture(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(steps_log(8, loss=lambda s: 2.0) + steps_log(6, loss=lambda s: 9.0 if s == 6 else 2.0, start=5))
    r = invoke("plot", str(log), "--svg", "-", "-q")
    assert r.exit_code == 0 and r.stderr == ""
    pts = svg_series(r.stdout)["train loss (mean of 20 steps)"]
    assert len(pts) == 10
    assert min(range(10), key=lambda i: pts[i][1]) == 5  # step 6 is the highest point


def test_several_runs_draw_the_last_unless_told(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(steps_log(5) + steps_log(3))
    r = invoke("plot", str(log), "--svg", "-")
    assert len(svg_series(r.stdout)["train loss (mean of 20 steps)"]) == 3
    assert "holds 2 runs" in r.stderr and "from line 6" in r.stderr and "run 2 of 2" in r.stderr
    r = invoke("plot", str(log), "--svg", "-", "--run", "1")
    assert len(svg_series(r.stdout)["train loss (mean of 20 steps)"]) == 5 and "holds 2 runs" not in r.stderr


def test_x_axis_epoch_and_time_and_step_range(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(steps_log(40, evals=[(10, 2.5), (20, 2.4), (30, 2.3), (40, 2.2)]))
    for x, label in (("epoch", "epoch"), ("time", "training time (seconds)")):
        r = invoke("plot", str(log), "--x", x, "--svg", "-", "-q")
        assert r.exit_code == 0
        texts = ["".join(t.itertext()) for t in ET.fromstring(r.stdout).iter(f"{SVG}text")]
        assert label in texts
    r = invoke("plot", str(log), "--from", "15", "--to", "35", "--svg", "-", "-q")
    lines = svg_series(r.stdout)
    assert len(lines["train loss (mean of 20 steps)"]) == 21 and len(lines["validation loss"]) == 2


def test_classifier_accuracy_gets_its_own_chart(tmp_path):
    log = tmp_path / "log.jsonl"
    evals = "".join(json.dumps({"event": "eval", "step": s, "val_loss": 1.0 / s, "val_acc": 0.5 + s / 100}) + "\n"
                    for s in (10, 20, 30))
    log.write_text(steps_log(30) + evals)
    r = invoke("plot", str(log), "--svg", "-")
    assert r.exit_code == 0, r.stderr
    lines = svg_series(r.stdout)
    assert len(lines["validation accuracy"]) == 3 and len(lines["validation loss"]) == 3
    assert "validation accuracy · " in r.stderr
    assert "validation accuracy 0.8000 at step 30; best 0.8000 at step 30" in r.stderr


def test_colour_is_used_only_when_asked_or_on_a_terminal(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(steps_log(30, evals=[(10, 2.9), (20, 2.8)]))
    assert not ANSI.search(invoke("plot", str(log)).stderr)
    assert ANSI.search(invoke("plot", str(log), "--color", "always").stderr)


def test_svg_file_is_written_and_reported(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(steps_log(30, evals=[(10, 2.9), (20, 2.8)]))
    r = invoke("plot", str(log), "--svg", str(tmp_path / "out.svg"))
    assert r.exit_code == 0 and r.stdout == ""
    assert r.stderr.rstrip().endswith(f"wrote {tmp_path / 'out.svg'}")
    lines = svg_series((tmp_path / "out.svg").read_text())
    assert list(lines) == ["train loss", "train loss (mean of 20 steps)", "validation loss"]  # SVG draws the raw loss too
    r = invoke("plot", str(log), "--svg", str(tmp_path / "nowhere" / "out.svg"))
    assert r.exit_code == 1
    assert r.stderr == f"charrnn: error: {tmp_path / 'nowhere' / 'out.svg'}: cannot write it " \
                       "(No such file or directory)\n"


def test_end_to_end_on_a_log_from_charrnn_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    r = np.random.default_rng(0)
    words = ["red", "fox", "sees", "a", "blue", "cat", "under", "the", "moon"]
    (tmp_path / "corpus.txt").write_text("\n".join(" ".join(words[i] for i in r.integers(0, 9, 6)) + "."
                                                   for _ in range(300)) + "\n")
    r = invoke("train", "corpus.txt", "--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16",
               "--steps", "30", "--eval-every", "10", "--quiet", "--log", "log.jsonl")
    assert r.exit_code == 0, r.stderr
    # a real process, stderr a pipe: plain text, nothing on stdout
    p = subprocess.run([sys.executable, "-m", "charrnn", "plot", "log.jsonl"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    assert p.stdout == b"" and "\x1b" not in err and "\r" not in err
    assert "loss · log.jsonl" in err and "validation loss" in err
    assert re.search(r"^last step 30, epoch \d+\.\d\d: train loss \d\.\d{4}, mean of the last 20 steps \d\.\d{4}$",
                     err, re.M)
    assert re.search(r"^validation \d\.\d{4} nats \(\d\.\d{3} bits/char\) at step 30; best \d\.\d{4} at step \d0$",
                     err, re.M)
    assert re.search("[\u2801-\u28ff]", err)  # braille: the curve is drawn
    r = invoke("plot", "log.jsonl", "--svg", "-", "-q")
    lines = svg_series(r.stdout)
    assert len(lines["train loss"]) == 30 and len(lines["train loss (mean of 20 steps)"]) == 30
    assert len(lines["validation loss"]) == 3
    r = invoke("plot", "-", "--svg", "-", "-q", input=(tmp_path / "log.jsonl").read_bytes())
    assert r.exit_code == 0 and len(svg_series(r.stdout)["validation loss"]) == 3


def test_plot_is_listed_and_has_help():
    r = invoke("--help")
    assert re.search(r"^\s+plot\s+Draw the loss curves of a --log file\.", r.stdout, re.M)
