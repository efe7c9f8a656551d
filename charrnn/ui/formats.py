"""How charrnn writes things for the eyes: durations, a model in a few words, a sample on one
line, a sparkline. Pure functions, shared by the progress view, plot and inspect.
"""
import math

SPARK = "▁▂▃▄▅▆▇█"
SAMPLE_CHARS = 120


def format_duration(seconds):
    """45s, 3m12s, 1h02m; '-' for None, NaN or infinity."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def model_summary(mcfg):
    """'lstm 2x256 (one-hot input)', 'rnn/relu 1x64 (embed 32, dropout 0.2)'."""
    cell = mcfg.cell + (f"/{mcfg.activation}" if mcfg.cell == "rnn" else "")
    notes = ["one-hot input" if mcfg.embed == 0 else f"embed {mcfg.embed}"]
    if mcfg.dropout > 0:
        notes.append(f"dropout {mcfg.dropout:g}")
    if getattr(mcfg, "bidirectional", False):
        notes.append("bidirectional")
    return f"{cell} {mcfg.layers}x{mcfg.hidden} ({', '.join(notes)})"


def one_line(text, limit=SAMPLE_CHARS):
    """Newlines, tabs and other control characters as escapes; at most ``limit`` chars."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    s = "".join(out)
    return s if len(s) <= limit else s[:limit - 1] + "…"


def sparkline(values):
    """One block character per value on a log scale between the values' min and max."""
    logs = [math.log(max(v, 1e-12)) for v in values if math.isfinite(v)]
    if not logs:
        return ""
    lo, hi = min(logs), max(logs)
    if hi - lo < 1e-12:
        return SPARK[3] * len(logs)
    return "".join(SPARK[min(7, int((v - lo) / (hi - lo) * 8))] for v in logs)
