"""What the two chart renderers share: the drawable points of each series, the axis ranges,
and round tick values with their labels (ui/chart.py draws in the terminal, ui/svg.py as SVG).

``series`` is an ordered mapping name -> (xs, ys). NaN, None and infinite points (and, on a
log axis, values <= 0) are skipped and their neighbours joined. Ticks: round numbers (1, 2, 5
x 10^k) on a linear axis, decades on a log axis that spans several (labelled 1e-12), 1-2-5
steps on one that spans less. Pure functions.
"""
import math

import numpy as np


def prepare(series, log_y):
    """[(name, xs, ys)] with only drawable points; ys as log10 on a log axis."""
    out = []
    for name, (xs, ys) in series.items():
        x, y = _floats(xs), _floats(ys)
        if len(x) != len(y):
            raise ValueError(f"series {name!r}: {len(x)} x values but {len(y)} y values")
        keep = np.isfinite(x) & np.isfinite(y)
        if log_y:
            keep &= y > 0
        x, y = x[keep], y[keep]
        out.append((str(name), x, np.log10(y) if log_y else y))
    return out


def _floats(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float).reshape(-1)


def _span(values, log):
    """The axis range: the data's, widened around a single value; (0, 1) with no data."""
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if hi > lo:
        return lo, hi
    pad = 0.5 if log else (abs(lo) * 0.1 or 1.0)
    return lo - pad, hi + pad


def ranges(data, log_y):
    xs = [v for _, x, _ in data if len(x) for v in (x.min(), x.max())]
    ys = [v for _, _, y in data if len(y) for v in (y.min(), y.max())]
    return _span(xs, False), _span(ys, log_y)


def nice_ticks(lo, hi, target):
    """Round values (1, 2 or 5 x 10^k apart) inside [lo, hi], about ``target`` of them."""
    raw = (hi - lo) / max(1, target)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
        k += 1
    return ticks


def log_ticks(lo, hi, target):
    """Tick values (not logs) for a log axis from 10**lo to 10**hi, at most ``target``."""
    first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    if last - first >= 2:  # three decades or more: every decade, or every k-th (k = 1, 2, 3, 5, 10, 20, ...)
        need = (last - first + 1) / max(1, target)
        k = next(m * 10 ** p for p in range(0, 12) for m in (1, 2, 3, 5) if m * 10 ** p >= need)
        return [10.0 ** e for e in range(first, last + 1) if e % k == 0]
    vals = [m * 10.0 ** e for e in range(first - 1, last + 1) for m in (1, 2, 5)]
    vals = [v for v in vals if lo - 1e-9 <= math.log10(v) <= hi + 1e-9]
    if 3 <= len(vals) <= target:
        return vals
    # under a decade or so: round steps of the values themselves, as many as fit
    for t in (target, 2 * target):
        vals = [v for v in nice_ticks(10.0 ** lo, 10.0 ** hi, t) if v > 0]
        if len(vals) >= 3:
            break
    return vals


def format_ticks(values, uniform=True, exp_from=1e7):
    """Labels telling the values apart: '0.5', '1,000', or '1e-12' for all of them when one is
    below 1e-3 or from ``exp_from`` up. ``uniform``: one number of decimals for all (a linear
    axis); else the fewest for each (a log axis)."""
    if not values:
        return []
    big = max(abs(v) for v in values)
    small = min((abs(v) for v in values if v), default=1.0)
    if big >= exp_from or small < 1e-3:
        return [_exp_label(v) for v in values]
    if not uniform:
        return [format_ticks([v])[0] for v in values]
    for decimals in range(0, 10):
        labels = [f"{v:,.{decimals}f}" for v in values]
        if all(abs(float(s.replace(",", "")) - v) <= 1e-9 * max(1.0, abs(v)) for s, v in zip(labels, values)):
            return labels
    return [f"{v:g}" for v in values]


def _exp_label(v):
    if v == 0:
        return "0"
    e = math.floor(math.log10(abs(v)) + 1e-12)
    m = v / 10.0 ** e
    if abs(m) >= 10 - 1e-9:  # 9.9999999 rounded up
        m, e = m / 10, e + 1
    return f"{m:.3g}e{e}"


def y_ticks(y0, y1, log_y, target):
    """(positions on the axis, labels): positions are logs on a log axis."""
    if log_y:
        values = log_ticks(y0, y1, target)
        return [math.log10(v) for v in values], format_ticks(values, uniform=False, exp_from=1e4)
    values = nice_ticks(y0, y1, target)
    return values, format_ticks(values)


def thin(x, y, x0, x1, buckets):
    """At most four points per bucket of x (first, lowest, highest, last): the same picture."""
    if len(x) <= 4 * buckets or np.any(np.diff(x) < 0):
        return x, y
    b = np.minimum(((x - x0) / (x1 - x0) * buckets).astype(int), buckets - 1)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], len(x)]
    keep = set()
    for s, e in zip(starts, ends):
        seg = y[s:e]
        keep.update((s, e - 1, s + int(np.argmin(seg)), s + int(np.argmax(seg))))
    idx = np.array(sorted(keep))
    return x[idx], y[idx]
