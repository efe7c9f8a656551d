"""A text painted by one value per character (`charrnn inspect`): colours on a diverging scale,
a rich Text for the terminal, plain text with a line of ▁▂▃▄▅▆▇█ under each line, and a
standalone HTML page. Control characters are always drawn as their pictures, never raw, so a
text cannot steer the terminal. Pure functions: no printing, no files.

Shapes: N characters.
"""
import html
import unicodedata

import numpy as np

from charrnn.ui.formats import SPARK

NEWLINE_MARK = "↵"  # the line break is a character the model reads; its value is shown here
PLAIN_WIDTH = 100  # columns per plain line, so the value line stays under its text
# ColorBrewer RdBu: -1 red, 0 near white, +1 blue, as in the paper's figures
STOPS = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
RGB = np.array([[202, 0, 32], [244, 165, 130], [247, 247, 247], [146, 197, 222], [5, 113, 176]], dtype=float)
FEATURE_TITLES = {"inside_quotes": "inside quotes", "inside_brackets": "inside brackets",
                  "line_position": "position in the line", "word_start": "start of a word"}


# --------------------------------------------------------------------------- colours

UNREAD_RGB = (190, 190, 190)  # a character the model cannot read (not in its vocabulary): no value
UNREAD_MARK = "×"


def colours(x, lim):
    """(N,3) uint8 RGB for values x (N,) on the diverging scale [-lim, lim]; NaN (a character
    the model cannot read) is grey."""
    x = np.asarray(x, dtype=np.float64)
    t = np.clip(np.nan_to_num(x) / lim, -1.0, 1.0)
    rgb = np.stack([np.interp(t, STOPS, RGB[:, k]) for k in range(3)], axis=1)
    rgb[np.isnan(x)] = UNREAD_RGB
    return rgb.round().astype(np.uint8)


def _hex(rgb):
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def _dark(rgb):
    """White text reads better on this background."""
    r, g, b = (int(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 128


def glyph(ch, html_safe=False):
    """What to draw for a character: control characters as their Unicode pictures (␛ for ESC),
    never raw, so a text cannot steer the terminal; a tab as → off the HTML page (one column)."""
    o = ord(ch)
    if ch == "\n":
        return ch
    if ch == "\t":
        return ch if html_safe else "→"
    if o < 32:
        return chr(0x2400 + o)
    if o == 0x7F:
        return "\u2421"
    if 0x80 <= o < 0xA0 or unicodedata.category(ch) in ("Cs", "Co", "Cn") or 0x2028 <= o <= 0x2029:
        return "\ufffd"
    return ch


def _width(ch):
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def painted(text, vals, lim):
    """A rich Text: every character on its colour, a line break shown as ↵ before it."""
    from rich.style import Style
    from rich.text import Text
    out = Text(no_wrap=False)
    rgb = colours(vals, lim)  # (N,3)
    cache = {}
    for i, (ch, c) in enumerate(zip(text, map(tuple, rgb))):
        style = cache.get(c)
        if style is None:
            style = cache[c] = Style(bgcolor=_hex(c), color="#ffffff" if _dark(c) else "#000000")
        if ch == "\n":
            out.append(NEWLINE_MARK, style)
            if i < len(text) - 1:  # print() ends the last line itself
                out.append("\n")
        else:
            out.append(glyph(ch), style)
    return out


def legend_text(lim):
    from rich.style import Style
    from rich.text import Text
    t = Text(f"{-lim:+g} ")
    for c in map(tuple, colours(np.linspace(-lim, lim, 11), lim)):
        t.append("  ", Style(bgcolor=_hex(c)))
    t.append(f" {lim:+g}")
    return t


def plain_legend(lim):
    return (f"values: {SPARK[0]} {-lim:+g} ... {SPARK[-1]} {lim:+g} (↵ marks a line break, {UNREAD_MARK} a "
            f"character the model cannot read)")


def spark(vals, lim):
    """One of ▁▂▃▄▅▆▇█ per value on [-lim, lim]; × where there is none (NaN)."""
    v = np.asarray(vals, dtype=np.float64)
    q = np.clip(np.floor((np.nan_to_num(v) / lim + 1.0) / 2.0 * len(SPARK)), 0, len(SPARK) - 1).astype(int)
    return "".join(UNREAD_MARK if np.isnan(x) else SPARK[k] for k, x in zip(q, v))


def plain(text, vals, lim, width=PLAIN_WIDTH):
    """The text, and under every line a line of its values; no control codes."""
    out = []
    pos = 0
    for line in text.split("\n"):
        n = len(line) + (pos + len(line) < len(text))  # the line break is the line's last character
        chars = [glyph(ch) for ch in line] + ([NEWLINE_MARK] if n > len(line) else [])
        marks = spark(vals[pos:pos + n], lim)
        pos += n
        row_t, row_v, col = [], [], 0
        for g, m in zip(chars, marks):
            w = _width(g)
            if col + w > width:  # wrap, keeping each value under its character
                out += ["".join(row_t), "".join(row_v)]
                row_t, row_v, col = [], [], 0
            row_t.append(g)
            row_v.append(m * w)
            col += w
        if row_t:
            out += ["".join(row_t), "".join(row_v)]
    return "".join(line + "\n" for line in out)


# --------------------------------------------------------------------------- HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; background: #fff; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 2em; }
.meta { color: #666; }
pre.text { font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 14px;
  line-height: 1.6; white-space: pre-wrap; word-break: break-all; }
pre.text span.nl::before { content: "\\21B5"; }
.legend { display: flex; align-items: center; font-size: 0.9em; margin: 1em 0; }
.legend span.sw { display: inline-block; width: 2.2em; height: 1.2em; }
.legend .lab { margin: 0 0.6em; }
table.rank { border-collapse: collapse; font-size: 0.9em; }
table.rank td, table.rank th { padding: 0.15em 0.8em; text-align: right; border-bottom: 1px solid #eee; }
table.rank td:first-child, table.rank th:first-child { text-align: left; }
""".strip()


def page(title, meta, sections, lim, ranking=None):
    """A standalone page: inline CSS, a legend, each section's text with every character in a
    span on its colour (its value in the title attribute), line breaks kept."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{e(title)}</title>", f"<style>\n{CSS}\n</style>", "</head>", "<body>",
             f"<h1>{e(title)}</h1>", f'<p class="meta">{e(meta)}</p>', _html_legend(lim)]
    if ranking is not None:
        parts.append(_html_ranking(ranking))
    for heading, text, vals in sections:
        parts += [f"<h2>{e(heading)}</h2>", f'<pre class="text">{html_spans(text, vals, lim)}</pre>']
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def html_spans(text, vals, lim):
    rgb = colours(vals, lim)  # (N,3)
    out = []
    for ch, c, v in zip(text, rgb, np.asarray(vals).tolist()):
        style = f"background:{_hex(c)}" + (";color:#fff" if _dark(c) else "")
        cls = ' class="nl"' if ch == "\n" else ""
        title = "not in the model's vocabulary" if v != v else f"{v:+.3f}"  # v != v: NaN
        out.append(f'<span{cls} style="{style}" title="{title}">{html.escape(glyph(ch, html_safe=True))}</span>')
    return "".join(out)


def _html_legend(lim):
    cells = "".join(f'<span class="sw" style="background:{_hex(c)}"></span>'
                    for c in colours(np.linspace(-lim, lim, 11), lim))
    return (f'<div class="legend"><span class="lab">{-lim:+g}</span>{cells}<span class="lab">{lim:+g}</span>'
            f'<span class="lab">(the unit\'s value after reading each character; hover for the number; '
            f'\u21b5 is a line break)</span></div>')


def _html_ranking(ranking):
    rows = ["<tr><th>feature</th><th>rank</th><th>layer</th><th>unit</th><th>r</th></tr>"]
    for name, r in ranking.items():
        if r["constant"]:
            rows.append(f"<tr><td>{FEATURE_TITLES[name]}</td><td></td><td></td><td></td>"
                        "<td>constant in this text</td></tr>")
        for k, x in enumerate(r["top"]):
            rows.append(f"<tr><td>{FEATURE_TITLES[name] if k == 0 else ''}</td><td>{k + 1}</td>"
                        f"<td>{x['layer']}</td><td>{x['unit']}</td><td>{x['corr']:+.3f}</td></tr>")
    return '<table class="rank">' + "".join(rows) + "</table>"
