"""The corpus ``charrnn train`` uses when given none: text every Python install has.

It is assembled on first use, never shipped: the running Python's bundled
documentation (``pydoc_data.topics.topics``, about 0.5 MB) followed by the source of
the fixed list of pure-Python standard-library modules in ``STDLIB_MODULES`` (about
1 MB), written as ``<dest_dir>/python-<major>.<minor>-docs.txt``. Standard library only.
"""

from __future__ import annotations

import os
import sys
import sysconfig

from charrnn.store import atomic

# Single-file pure-Python modules present in every CPython 3.10-3.13 install
# (paths relative to the stdlib directory, without ".py"). Any that a distribution
# left out are skipped quietly. Do not reorder: the corpus must stay the same.
STDLIB_MODULES = (
    "argparse",
    "textwrap",
    "difflib",
    "collections/__init__",
    "dataclasses",
    "functools",
    "json/__init__",
    "json/decoder",
    "json/encoder",
    "heapq",
    "bisect",
    "random",
    "statistics",
    "fractions",
    "calendar",
    "shlex",
    "csv",
    "configparser",
    "contextlib",
    "copy",
    "pprint",
    "string",
    "tokenize",
    "queue",
    "tempfile",
    "glob",
    "fnmatch",
    "gettext",
    "traceback",
    "warnings",
    "weakref",
    "cmd",
    "html/parser",
    "email/message",
    "urllib/parse",
)

SEPARATOR = "\n\n"


def default_corpus_dir() -> str:
    """$CHARRNN_CORPUS_DIR, else corpora/ in charrnn's cache directory (text/sources.py)."""
    from charrnn.text.sources import default_cache_dir
    return os.environ.get("CHARRNN_CORPUS_DIR") or os.path.join(default_cache_dir(), "corpora")


def default_corpus_name() -> str:
    return f"python-{sys.version_info.major}.{sys.version_info.minor}-docs.txt"


def _pieces():
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield topics[key]
    stdlib = sysconfig.get_paths()["stdlib"]
    for mod in STDLIB_MODULES:
        path = os.path.join(stdlib, *mod.split("/")) + ".py"
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        yield raw.decode("utf-8", "replace").replace("\r\n", "\n")


def default_corpus_text() -> str:
    """The default corpus: topics in sorted key order, then modules in list order,
    each with surrounding blank lines stripped, separated by one blank line."""
    return SEPARATOR.join(p.strip("\n") for p in _pieces()) + "\n"


def build_default_corpus(dest_dir: str) -> str:
    """Write the default corpus into ``dest_dir`` unless already there; return its path."""
    path = os.path.join(dest_dir, default_corpus_name())
    if os.path.isfile(path):
        return path
    os.makedirs(dest_dir, exist_ok=True)
    data = default_corpus_text().encode("utf-8")
    atomic.write(path, lambda f: f.write(data))
    return path
