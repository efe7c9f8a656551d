"""The training progress view: exact plain lines, the live panel's content, reporter choice."""
import io
import math
import re
import sys

import pytest
from rich.console import Console

from charrnn.ui import formats, progress
from charrnn.config.recipe import TrainConfig
from charrnn.config.model import ModelConfig


def info(**over):
    d = {"step": 0, "max_steps": 1000, "max_seconds": math.inf, "windows_per_epoch": 490,
         "params": 823361, "vocab": 65, "tokens": 1115393, "val_tokens": 111539,
         "model": ModelConfig(vocab_size=65), "train": TrainConfig(), "run_dir": "checkpoints/tiny"}
    d.update(over)
    return d


def step_m(step, **over):
    d = {"step": step, "epoch": step / 490, "loss": 1.9, "mean_loss": 1.83421, "grad_norm": 0.9123,
         "clipped": False, "lr": 2e-3, "chars_per_s": 4210.4, "elapsed": 10.0, "eta": 192.0}
    d.update(over)
    return d


def script(rep):
    rep.message("resuming from checkpoints/tiny/latest.ckpt at step 199")
    rep.start(info())
    rep.clip(57, 12.3111, 5.0)
    rep.step(step_m(57, grad_norm=12.3111, clipped=True))
    rep.clip(58, 7.0, 5.0)
    rep.step(step_m(58, grad_norm=7.0, clipped=True))
    rep.step(step_m(200, epoch=0.41, eta=None))
    rep.evaluate({"step": 200, "val_loss": 1.60214, "val_bpc": 2.3114, "best": True,
                  "best_val_loss": 1.60214, "path": "checkpoints/tiny/step-200.ckpt"})
    rep.sample(200, "The Reader:\nBefore we\tbegin")
    rep.evaluate({"step": 400, "val_loss": None, "val_bpc": None, "best": False,
                  "best_val_loss": 1.60214, "path": "checkpoints/tiny/step-400.ckpt"})
    rep.finish({"step": 1000, "best_val_loss": 1.51234, "elapsed": 123.4, "interrupted": 0,
                "latest": "checkpoints/tiny/latest.ckpt"})


def test_plain_lines_exact():
    out = io.StringIO()
    script(progress.PlainReporter(out, every=1, min_interval=0))
    assert out.getvalue().splitlines() == [
        "resuming from checkpoints/tiny/latest.ckpt at step 199",
        "training lstm 2x256 (one-hot input, dropout 0.1), 823,361 params, vocab 65, 1,003,854 train tokens, "
        "111,539 val tokens -> checkpoints/tiny",
        "clip step 57: grad norm 12.31 > 5.00",
        "step 57/1000 epoch 0.12 loss 1.9000 (mean of the last 20 1.8342) grad 12.311 lr 2.00e-03 4,210 chars/s "
        "eta 3m12s",
        "clip step 58: grad norm 7.00 > 5.00",
        "step 58/1000 epoch 0.12 loss 1.9000 (mean of the last 20 1.8342) grad 7.000 lr 2.00e-03 4,210 chars/s "
        "eta 3m12s",
        "step 200/1000 epoch 0.41 loss 1.9000 (mean of the last 20 1.8342) grad 0.912 lr 2.00e-03 4,210 chars/s "
        "eta -",
        "eval step 200: val 1.6021 nats (2.311 bits/char) best",
        "sample step 200: The Reader:\\nBefore we\\tbegin",
        "eval step 400: val -",
        "done: step 1000, best val 1.5123 nats, 2m03s, latest checkpoints/tiny/latest.ckpt",
    ]
    assert "\x1b" not in out.getvalue()


def test_plain_every_and_unbounded_steps():
    out = io.StringIO()
    rep = progress.PlainReporter(out, every=100, min_interval=0)
    rep.start(info(max_steps=math.inf))
    for s in range(1, 301):
        rep.step(step_m(s))
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == ["100", "200", "300"]


def test_plain_time_trigger():
    t = [0.0]
    out = io.StringIO()
    rep = progress.PlainReporter(out, clock=lambda: t[0])  # default: one line per ~2 s
    rep.start(info())
    for s in range(1, 11):
        t[0] += 0.5
        rep.step(step_m(s))
    assert [ln.split()[1] for ln in out.getvalue().splitlines()[1:]] == ["4/1000", "8/1000"]


def test_plain_interrupted_and_sample_escaping():
    out = io.StringIO()
    rep = progress.PlainReporter(out, every=1, min_interval=0)
    rep.sample(5, "a\x1b[31mb" + "x" * 300)
    rep.finish({"step": 420, "best_val_loss": None, "elapsed": 5.0, "interrupted": 2,
                "latest": "checkpoints/tiny/latest.ckpt"})
    sample, done = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()
    assert sample.startswith("sample step 5: a\\x1b[31mb")
    assert len(sample) == len("sample step 5: ") + 120 and sample.endswith("…")
    assert done == "interrupted at step 420 (SIGINT), saved checkpoints/tiny/latest.ckpt"
    assert progress.finish_line({"step": 3, "best_val_loss": None, "elapsed": 4, "interrupted": 0,
                                "latest": None}) == "done: step 3, best val -, 4s, latest (no checkpoint)"


def test_model_summary_variants():
    m = ModelConfig(vocab_size=10, cell="rnn", activation="relu", layers=1, hidden=64, embed=32, dropout=0.2)
    assert formats.model_summary(m) == "rnn/relu 1x64 (embed 32, dropout 0.2)"


@pytest.mark.parametrize("secs,text", [(0, "0s"), (45, "45s"), (59.4, "59s"), (60, "1m00s"),
                                       (192, "3m12s"), (3599, "59m59s"), (3720, "1h02m"),
                                       (90000, "25h00m"), (None, "-"), (math.inf, "-")])
def test_format_duration(secs, text):
    assert formats.format_duration(secs) == text


def test_sparkline():
    assert formats.sparkline([]) == ""
    assert formats.sparkline([1.0, 1.0]) == "▄▄"
    line = formats.sparkline([0.1, 1.0, 10.0, 1000.0])  # log scale: 1.0 and 10.0 evenly spaced
    assert line[0] == "▁" and line[-1] == "█" and line[1:3] in ("▂▄", "▃▄", "▂▅", "▃▅")


def live_console():
    buf = io.StringIO()
    return buf, Console(file=buf, force_terminal=True, width=100, color_system=None)


def test_live_shows_key_figures_and_leaves_stdout_alone(capsys):
    buf, console = live_console()
    stdout_before = sys.stdout
    rep = progress.LiveReporter(console=console)
    with rep:
        rep.start(info())
        assert sys.stdout is stdout_before
        print("data on stdout")
        rep.clip(57, 12.3111, 5.0)
        rep.step(step_m(57, grad_norm=12.3111, clipped=True))
        for s in range(58, 201):
            rep.step(step_m(s, grad_norm=0.5 + s / 100, mean_loss=1.75, epoch=s / 490))
        rep.evaluate({"step": 200, "val_loss": 1.60214, "val_bpc": 2.3114, "best": True,
                      "best_val_loss": 1.60214, "path": "p"})
        rep.sample(200, "The Reader:\nBefore we begin")
        panel = buf.getvalue()
        rep.console.print(rep.render())  # one deterministic render of the current state
        rendered = buf.getvalue()[len(panel):]
        rep.finish({"step": 200, "best_val_loss": 1.60214, "elapsed": 12.0, "interrupted": 0,
                    "latest": "checkpoints/tiny/latest.ckpt"})
    assert sys.stdout is stdout_before
    assert "data on stdout" in capsys.readouterr().out
    out = buf.getvalue()
    assert "data on stdout" not in out
    for figure in ["200 / 1,000", "epoch 0.41", "1.7500", "1.6021", "2.311 bits/char", "2.00e-03",
                   "4,210 chars/s", "eta 3m12s", "step 57: 12.31", "1x", "The Reader:",
                   "lstm 2x256 (one-hot input, dropout 0.1)", "823,361 params", "checkpoints/tiny"]:
        assert figure in rendered, figure
    assert any(ch in rendered for ch in formats.SPARK)
    assert "eval step 200: val 1.6021 nats (2.311 bits/char) best" in out
    assert out.rstrip().endswith("done: step 200, best val 1.6021 nats, 12s, latest checkpoints/tiny/latest.ckpt")


@pytest.mark.parametrize("width", [60, 100, 120])
def test_a_long_sample_line_never_cuts_the_labels(width):
    rep = progress.LiveReporter(console=Console(file=io.StringIO(), force_terminal=True, width=width))
    with rep:
        rep.start(info())
        rep.step(step_m(200, grad_norm=0.7))
        rep.evaluate({"step": 200, "val_loss": 1.60214, "val_bpc": 2.3114, "best": True, "best_val_loss": 1.60214,
                      "path": "p"})
        rep.sample(200, "x" * 300 + "\nshort")
        out = io.StringIO()
        Console(file=out, force_terminal=True, width=width, color_system=None).print(rep.render())
    rows = [line[2:] for line in out.getvalue().splitlines()[1:-1]]  # after "│ "
    labels = [r.split("  ")[0] for r in rows if not r.startswith(" ")]
    assert labels == ["step", "progress", "loss", "validation", "best", "grad norm", "lr", "speed", "time",
                                        "sample @200"]


def test_live_close_is_idempotent_and_stops_on_exception():
    buf, console = live_console()
    rep = progress.LiveReporter(console=console)
    with pytest.raises(RuntimeError):
        with rep:
            rep.start(info(max_steps=math.inf, max_seconds=600.0))
            rep.step(step_m(1, elapsed=300.0))
            raise RuntimeError("boom")
    assert not rep.live.is_started
    rep.close()
    rep.close()
    progress.LiveReporter(console=console).close()  # never started
    assert "50.0% of the time limit" in buf.getvalue()


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_make_reporter(monkeypatch):
    assert isinstance(progress.make_reporter(False, io.StringIO()), progress.PlainReporter)
    assert isinstance(progress.make_reporter(True, io.StringIO()), progress.SilentReporter)
    assert not isinstance(progress.make_reporter(True, FakeTTY()), (progress.PlainReporter, progress.LiveReporter))
    monkeypatch.setenv("TERM", "xterm-256color")
    assert isinstance(progress.make_reporter(False, FakeTTY()), progress.LiveReporter)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(progress.make_reporter(False, FakeTTY()), progress.PlainReporter)


def test_silent_reporter_prints_nothing(capsys):
    with progress.make_reporter(True) as rep:
        script(rep)
    assert capsys.readouterr() == ("", "")


class ClosedPipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_progress_reader_that_goes_away_does_not_stop_training():
    rep = progress.PlainReporter(stream=ClosedPipe(), min_interval=0)
    rep.start(info())
    rep.step(step_m(1))  # no exception: the reporter falls silent
    assert rep.stream is None
    rep.finish({"step": 1, "best_val_loss": None, "elapsed": 1.0, "interrupted": 0, "latest": None})


def test_a_log_that_cannot_be_written_warns_once_and_is_dropped():
    from charrnn.training.loop import write_log
    said = []
    rep = type("R", (), {"message": lambda self, text: said.append(text)})()
    assert write_log(ClosedPipe(), {"event": "step"}, rep) is None
    assert said == ["warning: --log: Broken pipe; training goes on without it"]
    good = io.StringIO()
    assert write_log(good, {"event": "step", "loss": 1.5}, rep) is good and good.getvalue() == '{"event": "step", "loss": 1.5}\n'


@pytest.mark.parametrize("width", [40, 60, 72])
def test_a_narrow_terminal_wraps_the_figures_and_cuts_none(width):
    """At 60 columns every label and every figure is whole: a long value wraps onto the next
    line; only the sample preview is shortened (with an ellipsis)."""
    rep = progress.LiveReporter(console=Console(file=io.StringIO(), force_terminal=True, width=width))
    with rep:
        rep.start(info(model=ModelConfig(vocab_size=65, dropout=0.1)))  # the longest title
        for s in (110, 111, 112):
            rep.clip(s, 12.3111, 5.0)
        rep.step(step_m(200, grad_norm=0.7))
        rep.evaluate({"step": 200, "val_loss": 1.60214, "val_bpc": 2.3114, "best": True, "best_val_loss": 1.60214,
                      "path": "p"})
        rep.sample(200, "The Reader: Before we go on, read this line aloud.")
        out = io.StringIO()
        Console(file=out, force_terminal=True, width=width, color_system=None).print(rep.render())
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    assert re.match(r"╭─ lstm 2x256 .*· 823,361 params ─+╮$", text.splitlines()[0])  # the title whole
    flat = " ".join(line.strip("│ ").strip() for line in text.splitlines())
    for figure in ["200 / 1,000", "epoch 0.41", "1.9000", "1.8342", "1.6021 nats", "2.311 bits/char",
                   "best", "step 112: 12.31", "step 110: 12.31", "3x (limit 5.00)", "eta 3m12s", "4,210 chars/s"]:
        assert figure in flat, figure
    cut = [line for line in text.splitlines() if "…" in line]
    assert all("The Reader" in line for line in cut), cut
