"""Line charts of a few named series: in the terminal (braille dots, as a rich Text) and as SVG.

``series`` is an ordered mapping name -> (xs, ys). NaN, None and infinite points (and, on a
log axis, values <= 0) are skipped and their neighbours joined; a series of one point is
drawn as a dot. Both renderers share the scales and the ticks: round numbers (1, 2, 5 x 10^k)
on a linear axis, decades on a log axis that spans several (labelled 1e-12), 1-2-5 steps on
one that spans less. Later series are drawn over earlier ones and series named in ``faint``
lie underneath all others. Pure functions: no printing, no files, the same output for the
same input.
"""
import math
from xml.sax.saxutils import escape, quoteattr

import numpy as np

# terminal colours by series index (the terminal's own palette) and their SVG counterparts
TERM_COLORS = ("cyan", "yellow", "magenta", "green", "red", "blue")
SVG_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c", "#d62728", "#17becf")
SVG_DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 5", "12 4")  # told apart without colour
MARKERS = ("+", "x", "o", "*", "#", "%")  # plain text: series after the first drawn in braille
FAINT_GLYPH = "·"
BRAILLE = 0x2800
# braille dot bits by (column, row) inside a 2 x 4 cell
DOT = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (1, 0): 0x08, (1, 1): 0x10, (1, 2): 0x20,
       (0, 3): 0x40, (1, 3): 0x80}
SVG_MARKER_POINTS = 60  # series with at most this many points also get a dot per point


# --------------------------------------------------------------------------- data and scales

def _prepare(series, log_y):
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


def _ranges(data, log_y):
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


def _y_ticks(y0, y1, log_y, target):
    """(positions on the axis, labels): positions are logs on a log axis."""
    if log_y:
        values = log_ticks(y0, y1, target)
        return [math.log10(v) for v in values], format_ticks(values, uniform=False, exp_from=1e4)
    values = nice_ticks(y0, y1, target)
    return values, format_ticks(values)


def _m4(x, y, x0, x1, buckets):
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


# --------------------------------------------------------------------------- terminal

def _line_pixels(p, q):
    """Bresenham: the pixels from p to q, both included."""
    (x0, y0), (x1, y1) = p, q
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        yield x0, y0
        if x0 == x1 and y0 == y1:
            return
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def _series_styles(names, color, colors, faint):
    """Per series: (glyph kind, rich style). Kinds: 'braille', 'faint' or a marker character."""
    out, marker = [], 0
    for i, name in enumerate(names):
        c = TERM_COLORS[(colors or {}).get(name, i) % len(TERM_COLORS)]
        if name in faint:
            out.append(("braille" if color else "faint", f"dim {c}"))
        elif color or marker == 0:
            out.append(("braille", c))
            marker += not color
        else:
            out.append((MARKERS[(marker - 1) % len(MARKERS)], c))
            marker += 1
    return out


class _Grid:
    """The terminal plot's pixel grid: braille cells give 2 x 4 pixels each."""

    def __init__(self, x0, x1, y0, y1, cols, rows):
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.W, self.H = 2 * cols, 4 * rows

    def px(self, x):
        return int(round((x - self.x0) / (self.x1 - self.x0) * (self.W - 1)))

    def py(self, y):
        return int(round((self.y1 - y) / (self.y1 - self.y0) * (self.H - 1)))


def line_chart(series, width=72, height=18, log_y=False, title=None, x_label=None, y_label=None, color=True,
               colors=None, faint=()):
    """One or more named series on shared axes, as a rich Text.

    ``width`` is the whole chart's width in columns, ``height`` the rows of the plotting
    area (title, axis, labels and legend add a few). ``color=False`` gives plain text with
    no styles: the first series is drawn in braille dots, each further one with a marker
    character (+, x, o, ...), a faint one with middle dots. ``colors`` maps a name to a
    palette index (default: its position), so two series can share a colour.
    """
    from rich.text import Text

    faint = set(faint)
    data = _prepare(series, log_y)
    (x0, x1), (y0, y1) = _ranges(data, log_y)
    y_pos, y_labels = _y_ticks(y0, y1, log_y, max(2, height // 3))
    gutter = max((len(s) for s in y_labels), default=1) + 1
    cols = width - gutter - 1
    if cols < 8 or height < 2:
        raise ValueError(f"a chart of {width}x{height} is too small to draw")
    grid = _Grid(x0, x1, y0, y1, cols, height)
    styles = _series_styles([name for name, _, _ in data], color, colors, faint)
    dots = [_raster(grid, x, y, styles[i][0] == "braille") for i, (_, x, y) in enumerate(data)]
    owner = {}  # the series shown in each cell: faint ones lose to the others, later ones win
    for i in sorted(range(len(data)), key=lambda i: (data[i][0] not in faint, i)):
        for cell in dots[i]:
            owner[cell] = i

    text = Text(no_wrap=True, overflow="ignore")

    def add(s, style=None):
        text.append(s, style if color else None)

    axis_style = "dim" if color else None
    if title:
        add(" " * gutter + title.center(cols + 1).rstrip() + "\n", "bold")
    if y_label:
        add(y_label + "\n", axis_style)
    tick_rows = {}
    for pos, label in zip(y_pos, y_labels):
        tick_rows.setdefault(grid.py(pos) // 4, label)
    empty = not any(len(x) for _, x, _ in data)
    for r in range(height):
        label = tick_rows.get(r)
        add(f"{label or '':>{gutter - 1}} {'┤' if label else '│'}", axis_style)
        for glyph, style in _runs(_row(r, cols, owner, dots, styles, empty and r == height // 2)):
            add(glyph, style)
        add("\n")
    _x_axis(add, grid, x0, x1, cols, gutter, axis_style, x_label)
    _legend(add, [name for name, _, _ in data], styles, width)
    text.rstrip()
    return text


def _raster(grid, x, y, mark_lone_dot):
    """One series as braille cells: {(row, col): dot bits}, lines between its points."""
    x, y = _m4(x, y, grid.x0, grid.x1, grid.W)
    pts = [(grid.px(a), grid.py(b)) for a, b in zip(x, y)]
    pixels = set()
    if len(pts) == 1 and mark_lone_dot:  # a lone dot as a small cross, to be seen
        (a, b), = pts
        pixels = {(a + da, b + db) for da, db in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
                  if 0 <= a + da < grid.W and 0 <= b + db < grid.H}
    for p, q in zip(pts, pts[1:]):
        pixels.update(_line_pixels(p, q))
    cells = {}
    for a, b in pixels:
        cells[b // 4, a // 2] = cells.get((b // 4, a // 2), 0) | DOT[a % 2, b % 4]
    return cells


def _row(r, cols, owner, dots, styles, no_data):
    """The (glyph, style) cells of plot row ``r``, without trailing blanks."""
    line = []
    for c in range(cols):
        i = owner.get((r, c))
        if i is None:
            line.append((" ", None))
            continue
        kind, style = styles[i]
        glyph = chr(BRAILLE + dots[i][r, c]) if kind == "braille" else FAINT_GLYPH if kind == "faint" else kind
        line.append((glyph, style))
    if no_data:
        msg = "(no data)"
        start = max(0, (cols - len(msg)) // 2)
        line[start:start + len(msg)] = [(ch, None) for ch in msg[:cols]]
    while line and line[-1] == (" ", None):  # no trailing blanks in a log file
        line.pop()
    return line


def _x_axis(add, grid, x0, x1, cols, gutter, style, x_label):
    x_ticks = nice_ticks(x0, x1, max(2, cols // 12))
    tick_cols = [min(max(grid.px(v) // 2, 0), cols - 1) for v in x_ticks]
    axis = ["─"] * cols
    for c in tick_cols:
        axis[c] = "┬"
    add(" " * gutter + "└" + "".join(axis) + "\n", style)
    add(_place_labels(format_ticks(x_ticks), [gutter + 1 + c for c in tick_cols], gutter + 1 + cols).rstrip()
        + "\n", style)
    if x_label:
        add(" " * gutter + x_label.center(cols + 1).rstrip() + "\n", style)


def _runs(cells):
    """Adjacent cells of one style merged: fewer spans."""
    out = []
    for glyph, style in cells:
        if out and out[-1][1] == style:
            out[-1][0].append(glyph)
        else:
            out.append(([glyph], style))
    return [("".join(g), s) for g, s in out]


def _place_labels(labels, centres, total):
    """Labels centred under their columns, dropping any that would touch the previous one."""
    line, end = [" "] * total, -2
    for label, c in zip(labels, centres):
        start = min(max(0, c - len(label) // 2), total - len(label))
        if start <= end + 1:
            continue
        line[start:start + len(label)] = label
        end = start + len(label) - 1
    return "".join(line)


def _legend(add, names, styles, width):
    used = 0
    for name, (kind, style) in zip(names, styles):
        sample = "──" if kind == "braille" else FAINT_GLYPH * 2 if kind == "faint" else kind
        item = len(sample) + 1 + len(name)
        if used and used + 3 + item > width:
            add("\n")
            used = 0
        if used:
            add("   ")
            used += 3
        add(sample, style)
        add(" " + name)
        used += item


# --------------------------------------------------------------------------- SVG

def _n(v):
    """SVG numbers: one decimal, no '-0.0', so output is byte-for-byte reproducible."""
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


class _Plot:
    """The SVG plot area: its position and size in pixels, and the data ranges it shows."""

    def __init__(self, left, top, pw, ph, x0, x1, y0, y1):
        self.left, self.top, self.pw, self.ph = left, top, pw, ph
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1

    def sx(self, x):
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.pw

    def sy(self, y):
        return self.top + (self.y1 - y) / (self.y1 - self.y0) * self.ph


SVG_FONT, SVG_CHAR_W = 12, 7.0  # sans-serif at 12 px: about 7 px per character (layout estimate)


def svg_chart(series, width=800, height=450, log_y=False, title=None, x_label=None, y_label=None, color=True,
              colors=None, faint=()):
    """The same chart as a standalone SVG document (a str), ``width`` x ``height`` pixels.

    Gridlines at the ticks, a legend above the plot, one ``<polyline data-series=NAME>`` per
    series holding one vertex per drawable point (very long series are thinned to four per
    pixel column, which draws the same), and a dot per point for series of up to 60 points.
    ``color=False`` draws every series in black, told apart by dash patterns.
    """
    faint = set(faint)
    data = _prepare(series, log_y)
    (x0, x1), (y0, y1) = _ranges(data, log_y)
    y0, y1 = y0 - 0.04 * (y1 - y0), y1 + 0.04 * (y1 - y0)  # lines clear of the frame
    y_pos, y_labels = _y_ticks(y0, y1, log_y, max(2, int(height // 60)))
    left = 14 + (22 if y_label else 0) + SVG_CHAR_W * max((len(s) for s in y_labels), default=1)
    right = 24
    items, rows = _svg_legend_layout([name for name, _, _ in data], width - left - right)
    top = 14 + (28 if title else 0) + 20 * rows
    bottom = 34 + (22 if x_label else 0)
    pw, ph = width - left - right, height - top - bottom
    if pw < 40 or ph < 40:
        raise ValueError(f"a picture of {width}x{height} is too small to draw")
    plot = _Plot(left, top, pw, ph, x0, x1, y0, y1)

    def stroke(i, name):
        return SVG_COLORS[(colors or {}).get(name, i) % len(SVG_COLORS)] if color else "#000000"

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="{SVG_FONT}">']
    if title:
        out.append(f"<title>{escape(title)}</title>")
    out.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')
    out += _svg_axes(plot, y_pos, y_labels, width, height, title, x_label, y_label)
    if not any(len(x) for _, x, _ in data):
        out.append(f'<text x="{_n(left + pw / 2)}" y="{_n(top + ph / 2)}" text-anchor="middle" '
                   f'fill="#777777">(no data)</text>')
    for i in sorted(range(len(data)), key=lambda i: (data[i][0] not in faint, i)):
        out += _svg_series(plot, i, *data[i], stroke(i, data[i][0]), data[i][0] in faint, color)
    out.append(_svg_legend(items, left, title, stroke, faint, color))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_legend_layout(names, row_w):
    """Legend items (index, name, x within the row, row) laid out left to right, and the rows."""
    items, rows, cx = [], 0, None
    for i, name in enumerate(names):
        w = 28 + SVG_CHAR_W * len(name) + 16
        if cx is None or cx + w > row_w:
            rows, cx = rows + 1, 0
        items.append((i, name, cx, rows - 1))
        cx += w
    return items, rows


def _svg_axes(plot, y_pos, y_labels, width, height, title, x_label, y_label):
    """Gridlines, the frame, tick labels, the title and the axis labels."""
    left, top, pw, ph, sx, sy = plot.left, plot.top, plot.pw, plot.ph, plot.sx, plot.sy
    x_ticks = nice_ticks(plot.x0, plot.x1, max(2, int(pw // 90)))
    grid = [f'<line x1="{_n(left)}" y1="{_n(sy(p))}" x2="{_n(left + pw)}" y2="{_n(sy(p))}"/>' for p in y_pos]
    grid += [f'<line x1="{_n(sx(v))}" y1="{_n(top)}" x2="{_n(sx(v))}" y2="{_n(top + ph)}"/>' for v in x_ticks]
    out = ['<g class="grid" stroke="#e3e3e3" stroke-width="1">' + "".join(grid) + "</g>",
           f'<rect class="frame" x="{_n(left)}" y="{_n(top)}" width="{_n(pw)}" height="{_n(ph)}" '
           f'fill="none" stroke="#777777" stroke-width="1"/>']
    ticks = [f'<text x="{_n(left - 6)}" y="{_n(sy(p) + 4)}" text-anchor="end">{escape(s)}</text>'
             for p, s in zip(y_pos, y_labels)]
    ticks += [f'<text x="{_n(sx(v))}" y="{_n(top + ph + 17)}" text-anchor="middle">{escape(s)}</text>'
              for v, s in zip(x_ticks, format_ticks(x_ticks))]
    out.append('<g class="ticks" fill="#444444">' + "".join(ticks) + "</g>")
    if title:
        out.append(f'<text class="title" x="{_n(left + pw / 2)}" y="26" text-anchor="middle" font-size="15" '
                   f'font-weight="bold" fill="#222222">{escape(title)}</text>')
    if x_label:
        out.append(f'<text class="x-label" x="{_n(left + pw / 2)}" y="{_n(height - 10)}" text-anchor="middle" '
                   f'fill="#222222">{escape(x_label)}</text>')
    if y_label:
        out.append(f'<text class="y-label" transform="translate(16 {_n(top + ph / 2)}) rotate(-90)" '
                   f'text-anchor="middle" fill="#222222">{escape(y_label)}</text>')
    return out


def _svg_series(plot, i, name, x, y, stroke, faint, color):
    """One series' polyline, and its dots when it has few points."""
    x, y = _m4(x, y, plot.x0, plot.x1, int(plot.pw))
    pts = " ".join(f"{_n(plot.sx(a))},{_n(plot.sy(b))}" for a, b in zip(x, y))
    look = 'stroke-width="1" stroke-opacity="0.35"' if faint else 'stroke-width="1.6"'
    dash = "" if color else SVG_DASHES[i % len(SVG_DASHES)]
    look += f' stroke-dasharray="{dash}"' if dash else ""
    out = [f'<polyline data-series={quoteattr(name)} points="{pts}" fill="none" stroke="{stroke}" '
           f'{look} stroke-linejoin="round" stroke-linecap="round"/>']
    if not faint and 0 < len(x) <= SVG_MARKER_POINTS:
        dots = "".join(f'<circle cx="{_n(plot.sx(a))}" cy="{_n(plot.sy(b))}" r="{2.5 if len(x) > 1 else 3.5}"/>'
                       for a, b in zip(x, y))
        out.append(f'<g class="points" data-series={quoteattr(name)} fill="{stroke}">{dots}</g>')
    return out


def _svg_legend(items, left, title, stroke, faint, color):
    legend = []
    for i, name, lx, row in items:
        ly = 14 + (28 if title else 0) + 20 * row + 6
        gx = left + lx
        dash = "" if color else SVG_DASHES[i % len(SVG_DASHES)]
        opacity = ' stroke-opacity="0.35"' if name in faint else ""
        legend.append(f'<line x1="{_n(gx)}" y1="{_n(ly)}" x2="{_n(gx + 22)}" y2="{_n(ly)}" stroke="{stroke(i, name)}" '
                      f'stroke-width="{1 if name in faint else 2}"{opacity}'
                      + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        legend.append(f'<text x="{_n(gx + 28)}" y="{_n(ly + 4)}" fill="#222222">{escape(name)}</text>')
    return '<g class="legend">' + "".join(legend) + "</g>"
