"""The line chart of ui/chart.py as a standalone SVG document: gridlines at the ticks, a
legend above the plot, a polyline per series. Pure functions; numbers with one decimal and
no "-0.0", so the output is byte-for-byte reproducible.
"""
from xml.sax.saxutils import escape, quoteattr

from charrnn.ui.axes import format_ticks, nice_ticks, prepare, ranges, thin, y_ticks

SVG_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c", "#d62728", "#17becf")  # by series index
SVG_DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 5", "12 4")  # told apart without colour
SVG_MARKER_POINTS = 60  # series with at most this many points also get a dot per point


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
    data = prepare(series, log_y)
    (x0, x1), (y0, y1) = ranges(data, log_y)
    y0, y1 = y0 - 0.04 * (y1 - y0), y1 + 0.04 * (y1 - y0)  # lines clear of the frame
    y_pos, y_labels = y_ticks(y0, y1, log_y, max(2, int(height // 60)))
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
    x, y = thin(x, y, plot.x0, plot.x1, int(plot.pw))
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


def stack(docs):
    """Several SVG documents (width, height, text) one above the other, as one document."""
    width = max(w for w, _, _ in docs)
    height = sum(h for _, h, _ in docs)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">']
    y = 0
    for _, h, doc in docs:
        out.append(doc.replace("<svg ", f'<svg x="0" y="{y}" ', 1).rstrip("\n"))
        y += h
    out.append("</svg>")
    return "\n".join(out) + "\n"
