"""A large corpus we can make anywhere: the running Python's own source, concatenated.

    python benchmarks/python_source_corpus.py OUT.txt [--chars 100000000]

Every .py file under the standard library and then site-packages (os.walk, sorted), whole
files only, ASCII files only (so a character is a byte), concatenated as they are until at least
--chars characters are written. What it holds depends on the Python and the packages installed:
docs/recipe.md's 100 MB run read a file of the development machine's Python source made like
this one (not byte for byte: the files came in another order).
"""
import argparse
import os
import sysconfig
from pathlib import Path


def sources():
    seen = set()
    for key in ("stdlib", "purelib", "platlib"):
        root = Path(sysconfig.get_paths()[key])
        if root in seen or not root.is_dir():
            continue
        seen.add(root)
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()  # a folder's own files first, then its subfolders, each in sorted order
            yield from (Path(folder) / f for f in sorted(files) if f.endswith(".py"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--chars", type=int, default=100_000_000)
    a = ap.parse_args()
    written = 0
    with open(a.out, "w", encoding="ascii", newline="") as out:
        for path in sources():
            if written >= a.chars:
                break
            try:
                text = path.read_bytes().decode("ascii")
            except (UnicodeDecodeError, OSError):
                continue
            out.write(text)
            written += len(text)
    print(f"{a.out}: {written:,} chars")


if __name__ == "__main__":
    main()
