"""The progress view of ``charrnn train``: reporters the trainer calls, all writing to stderr.

stdout carries data only, so every reporter writes to a text stream that defaults to
``sys.stderr``. ``PlainReporter`` prints one plain line per event (no control codes, for
logs and pipes); ``LiveReporter`` keeps a rich ``Live`` panel that redraws itself a few
times a second; ``SilentReporter`` prints nothing. ``make_reporter`` picks one. All three
are context managers with an idempotent ``close()``, so a crash never leaves the terminal
in a live display.
"""
import math
import os
import signal
import sys
import threading
import time
from collections import deque

from charrnn.training.loop import MEAN_OF, NullReporter
from charrnn.ui.formats import format_duration, model_summary, one_line, sparkline


def step_line(m, max_steps):
    of = f"/{int(max_steps)}" if math.isfinite(max_steps) else ""
    return (f"step {m['step']}{of} epoch {m['epoch']:.2f} loss {m['loss']:.4f} "
            f"(mean of the last {min(m['step'], MEAN_OF)} {m['mean_loss']:.4f}) "
            f"grad {m['grad_norm']:.3f} lr {m['lr']:.2e} {m['chars_per_s']:,.0f} chars/s "
            f"eta {format_duration(m.get('eta'))}")


def start_line(info):
    train = info["tokens"] - info["val_tokens"]
    if "examples" in info:  # a classifier
        return (f"training {model_summary(info['model'])} over {info['labels']} labels, {info['params']:,} params, "
                f"vocab {info['vocab']:,}, {info['examples']:,} train lines, {info['val_examples']:,} val lines "
                f"-> {info['run_dir']}")
    ranks = getattr(info.get("train"), "ranks", 1)
    on = f" on {ranks} MPI ranks" if ranks > 1 else ""
    return (f"training {model_summary(info['model'])}{on}, {info['params']:,} params, vocab {info['vocab']:,}, "
            f"{train:,} train tokens, {info['val_tokens']:,} val tokens -> {info['run_dir']}")


def choice_lines(info):
    """What the recipe chose and why, when it chose (training/recipe.py): a line before the start."""
    return [f"recipe: {info['choice']['why']}"] if info.get("choice") else []


def clip_line(step, norm, limit):
    return f"clip step {step}: grad norm {norm:.2f} > {limit:.2f}"


def eval_line(m):
    val, bpc = m.get("val_loss"), m.get("val_bpc")
    s = f"eval step {m['step']}: val " + ("-" if val is None else f"{val:.4f} nats")
    if val is not None and bpc is not None:
        s += f" ({bpc:.3f} bits/char)"
    if m.get("val_acc") is not None:
        s += f" accuracy {m['val_acc']:.1%}"
    return s + (" best" if m.get("best") else "")


def sample_line(step, text):
    return f"sample step {step}: {one_line(text)}"


def finish_line(summary):
    latest = summary.get("latest") or "(no checkpoint)"
    if summary.get("interrupted"):
        try:
            name = signal.Signals(summary["interrupted"]).name
        except ValueError:
            name = f"signal {summary['interrupted']}"
        return f"interrupted at step {summary['step']} ({name}), saved {latest}"
    return (f"done: step {summary['step']}, {best_words(summary)}, "
            f"{format_duration(summary.get('elapsed'))}, latest {latest}")


def best_words(summary):
    """'best val 1.4321 nats', 'best val accuracy 93.1% (loss 0.2100)', 'no validation (--val-frac 0)'."""
    if not summary.get("validated", True):
        return "no validation (--val-frac 0)"
    best, acc = summary.get("best_val_loss"), summary.get("best_val_acc")
    if acc is not None:  # a classifier's best is its accuracy
        return f"best val accuracy {acc:.1%}" + (f" (loss {best:.4f})" if best is not None else "")
    return f"best val {'-' if best is None else f'{best:.4f} nats'}"


class SilentReporter(NullReporter):
    """Prints nothing (``--quiet``); also the base of the others."""

    def finish(self, summary): self.close()
    def close(self): pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class PlainReporter(SilentReporter):
    """Plain lines, flushed one by one. A progress line when ``step % every == 0`` or when
    ``min_interval`` seconds passed since the last one (0 turns the timer off); by default
    only the timer, one line about every 2 s (5 s when ``every`` is given)."""

    def __init__(self, stream=None, every=None, min_interval=None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.min_interval = (2.0 if every is None else 5.0) if min_interval is None else min_interval
        self.clock, self.last = clock, clock()
        self.max_steps = math.inf

    def write(self, line):
        if self.stream is None:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError:  # the reader of the progress went away (`2>&1 | head`): training goes on
            self.stream = None

    def start(self, info):
        self.max_steps, self.last = info.get("max_steps", math.inf), self.clock()
        for line in choice_lines(info):
            self.write(line)
        self.write(start_line(info))

    def step(self, m):
        now = self.clock()
        due = bool(self.every) and m["step"] % self.every == 0
        if due or (self.min_interval > 0 and now - self.last >= self.min_interval):
            self.last = now
            self.write(step_line(m, self.max_steps))

    def clip(self, step, norm, limit):
        self.write(clip_line(step, norm, limit))

    def evaluate(self, m):
        self.write(eval_line(m))

    def sample(self, step, text):
        self.write(sample_line(step, text))

    def message(self, text):
        self.write(one_line(text, limit=10_000))

    def finish(self, summary):
        self.write(finish_line(summary))


class LiveReporter(SilentReporter):
    """A rich panel redrawn by ``Live``'s own thread (4 times a second) from the latest
    metrics; the trainer's calls only store numbers. Eval lines and messages are printed
    above the panel so they stay in the scrollback. stdout is never redirected."""

    def __init__(self, stream=None, console=None):
        from rich.console import Console
        self.console = console or Console(file=stream if stream is not None else sys.stderr)
        self.lock, self.live, self.closed, self.tty = threading.Lock(), None, False, None
        self.info, self.m, self.val = None, None, None
        self.norms, self.clips, self.n_clips, self.limit = deque(maxlen=40), deque(maxlen=3), 0, None
        self.best_step, self.sample_at, self.sample_text = None, None, ""

    def print(self, line):
        self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def start(self, info):
        from rich.live import Live
        self.info = info
        for line in choice_lines(info):
            self.print(line)
        self.tty = _quiet_control_echo()
        self.live = Live(console=self.console, get_renderable=self.render, refresh_per_second=4,
                         transient=False, redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def step(self, m):
        with self.lock:
            self.m = m
            self.norms.append(m["grad_norm"])

    def clip(self, step, norm, limit):
        with self.lock:
            self.n_clips, self.limit = self.n_clips + 1, limit
            self.clips.append((step, norm))

    def evaluate(self, m):
        with self.lock:
            self.val = m
            if m.get("best"):
                self.best_step = m["step"]
        self.print(eval_line(m))

    def sample(self, step, text):
        with self.lock:
            self.sample_at, self.sample_text = step, text

    def message(self, text):
        self.print(one_line(text, limit=10_000))

    def finish(self, summary):
        self.close()
        self.print(finish_line(summary))

    def close(self):
        if self.live is not None and not self.closed:
            self.closed = True
            self.live.stop()
            _restore(self.tty)

    def render(self):
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text
        with self.lock:
            info, m, val = self.info or {}, self.m, self.val
            norms, clips, n_clips = list(self.norms), list(self.clips), self.n_clips
            sample, sample_at = self.sample_text, self.sample_at
            best_step, limit = self.best_step, self.limit
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")  # a narrow terminal wraps a value, never cuts it
        labels = []
        room = max(20, self.console.width - 4 - 2 - 13)  # inside the panel, beside the widest label

        def row(label, value):
            labels.append(label)
            grid.add_row(label, value)

        max_steps, max_seconds = info.get("max_steps", math.inf), info.get("max_seconds", math.inf)
        if m is None:
            row("step", f"{info.get('step', 0):,} (starting)")
        else:
            of = f" / {int(max_steps):,}" if math.isfinite(max_steps) else ""
            row("step", f"{m['step']:,}{of}   epoch {m['epoch']:.2f}")
            by_steps = m["step"] / max_steps if math.isfinite(max_steps) else 0.0
            by_time = m["elapsed"] / max_seconds if math.isfinite(max_seconds) else 0.0
            frac = min(1.0, max(by_steps, by_time))
            bar = Table.grid(padding=(0, 1))
            bar.add_row(ProgressBar(total=1.0, completed=frac, width=max(10, min(40, room - 24))),
                        f"{frac:6.1%} of the {'time' if by_time > by_steps else 'step'} limit")
            row("progress", bar)
            row("loss", f"{m['loss']:.4f}   mean of the last {min(m['step'], MEAN_OF)} steps {m['mean_loss']:.4f}")
        if val is not None:
            v, bpc = val.get("val_loss"), val.get("val_bpc")
            s = "-" if v is None else f"{v:.4f} nats" + ("" if bpc is None else f"  {bpc:.3f} bits/char")
            if val.get("val_acc") is not None:
                s += f"  accuracy {val['val_acc']:.1%}"
            row("validation", s + f" (step {val['step']:,})")
            best = best_words(val).removeprefix("best val ")
            row("best", best + (f" (step {best_step:,})" if best_step is not None else ""))
        if m is not None:
            row("grad norm", Text(f"{m['grad_norm']:8.3f}  ") + Text(sparkline(norms), style="cyan"))
        if n_clips:
            latest = ", ".join(f"step {s:,}: {n:.2f}" for s, n in reversed(clips))
            row("clipped", f"{n_clips:,}x (limit {limit:.2f})   latest {latest}")
        if m is not None:
            row("lr", f"{m['lr']:.2e}")
            row("speed", f"{m['chars_per_s']:,.0f} chars/s")
            row("time", f"{format_duration(m['elapsed'])} elapsed   eta {format_duration(m.get('eta'))}")
        if sample.strip():
            lines = [one_line(line, limit=room) for line in sample.strip("\n").splitlines()[-4:]]
            row(f"sample @{sample_at:,}", Text("\n".join(lines), style="dim"))
        grid.columns[0].min_width = max(map(len, labels))  # a long sample line cuts the values, never the labels
        run_dir = info.get("run_dir")
        return Panel(grid, title=Text(self.title(info)), title_align="left",
                     subtitle=None if run_dir is None else Text(str(run_dir)))

    def title(self, info):
        """The model and its size, as much of it as fits on the panel's top border whole."""
        if "model" not in info:
            return "charrnn"
        m, ranks = info["model"], getattr(info.get("train"), "ranks", 1)
        on = f" · {ranks} MPI ranks" if ranks > 1 else ""
        for title in (f"{model_summary(m)} · {info['params']:,} params{on}",
                      f"{m.cell} {m.layers}x{m.hidden} · {info['params']:,} params{on}",
                      f"{m.cell} {m.layers}x{m.hidden}"):
            if len(title) <= self.console.width - 6:  # the corners, a rule each side, a space each side
                return title
        return "charrnn"


def _quiet_control_echo():
    """While the panel redraws, the terminal does not echo control keys as "^C": the echo
    moved the cursor under the panel, which then left one more copy of its top border on the
    screen at each Ctrl-C. Only ECHOCTL is cleared (typed text still echoes), so a process
    killed before it can restore it leaves a usable terminal. (fd, old settings) or None."""
    try:
        import termios
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return None
        old = termios.tcgetattr(fd)
        new = list(old)
        new[3] &= ~termios.ECHOCTL
        termios.tcsetattr(fd, termios.TCSANOW, new)
        return fd, old
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    except termios.error:  # not a terminal after all, or gone
        return None


def _restore(tty):
    if tty is not None:
        import termios
        try:
            termios.tcsetattr(tty[0], termios.TCSANOW, tty[1])
        except (termios.error, OSError):  # the terminal is gone
            pass


def make_reporter(quiet, stream=None):
    """SilentReporter when quiet; LiveReporter on a real terminal; PlainReporter otherwise."""
    stream = stream if stream is not None else sys.stderr
    if quiet:
        return SilentReporter()
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty() and os.environ.get("TERM") != "dumb":
        return LiveReporter(stream=stream)
    return PlainReporter(stream=stream)
