"""Seconds a training step of each network on the recipe's ladder takes on this machine: what
`charrnn train` measures in its first seconds (training/probe.py), here for every rung and with
more steps, so the figures can stand beside the grid (benchmarks/recipe_grid.py) that turns a
budget in minutes into steps.

    python benchmarks/recipe_speed.py [CORPUS] [--threads 2] [--seq-len 50] [--steps 5] [--cell cifg]

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE must be unset for the figures to be this CPU's own
(the script refuses otherwise and says how); it names the kernels OpenBLAS chose.
"""
import argparse
import os
import sys

from charrnn import blas
from charrnn.config.model import ModelConfig
from charrnn.text.corpus import load_corpus
from charrnn.text.sources import Sources
from charrnn.training import probe, recipe
from recipe_grid import HOST_ONLY  # benchmarks/ is this script's sys.path[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                               "corpora", "tinyshakespeare.txt"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--cell", default=recipe.CELL, help="the cell timed (default: the recipe's)")
    a = ap.parse_args()
    host = [k for k in HOST_ONLY if k in os.environ]
    if host:
        sys.exit(f"unset {' and '.join(host)} first (env -u {' -u '.join(host)} python {sys.argv[0]} ...)")
    with Sources([a.corpus]) as sources:
        corpus = load_corpus(sources, "char", None, "strict")
    print(f"OpenBLAS kernels {blas.corename()}, {a.cell}, --threads {a.threads}, batch {a.batch} x {a.seq_len}, "
          f"{len(corpus.vocab)} symbols; fastest of {a.steps} steps")
    for layers, hidden in recipe.LADDER:
        cfg = ModelConfig(vocab_size=len(corpus.vocab), layers=layers, hidden=hidden, cell=a.cell)
        t = probe.seconds_per_step(cfg, corpus.tokens, a.batch, a.seq_len, a.threads, steps=a.steps)
        print(f"{layers}x{hidden}: {t * 1000:7.1f} ms a step, {a.batch * a.seq_len / t:9,.0f} tokens/s", flush=True)


if __name__ == "__main__":
    main()
