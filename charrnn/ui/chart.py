"""Line charts of a few named series in the terminal: braille dots, as a rich Text.

A series of one point is drawn as a small cross. Later series are drawn over earlier ones and
series named in ``faint`` lie underneath all others. Without colour, the first series is in
braille and each further one in a marker character. The same chart as SVG is ui/svg.py.
Pure functions: no printing, no files, the same output for the same input.
"""
from charrnn.ui.axes import format_ticks, nice_ticks, prepare, ranges, thin, y_ticks

TERM_COLORS = ("cyan", "yellow", "magenta", "green", "red", "blue")  # by series index: the terminal's palette
MARKERS = ("+", "x", "o", "*", "#", "%")  # plain text: series after the first drawn in braille
FAINT_GLYPH = "·"
BRAILLE = 0x2800
# braille dot bits by (column, row) inside a 2 x 4 cell
DOT = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (1, 0): 0x08, (1, 1): 0x10, (1, 2): 0x20,
       (0, 3): 0x40, (1, 3): 0x80}


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
    data = prepare(series, log_y)
    (x0, x1), (y0, y1) = ranges(data, log_y)
    y_pos, y_labels = y_ticks(y0, y1, log_y, max(2, height // 3))
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
    x, y = thin(x, y, grid.x0, grid.x1, grid.W)
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
