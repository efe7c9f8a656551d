"""The recurrent product at a worker's few rows: one product against column blocks (core/products.py).

    python benchmarks/bench_products.py              # the shapes charrnn's benchmarks train
    python benchmarks/bench_products.py --rounds 15 --shapes 16x256x1024 8x1024x256

For each shape R×K×N (R rows of h or of the gate gradients, W is K×N) it times, on one BLAS
thread, the one product a·W and the same product as blocks of W's columns of each width
w = N/2, N/4, … down to 16 and the plan's, in alternating order, and prints one product's time over the
blocks' (above 1: blocks are faster), marking the width core/products.py's plan picks with
the limit charrnn/blas.py sets for this BLAS (or 2^19 when that is off, so the table still
shows what blocks would do). Run it twice at once to see it with both cores busy, as in training.

Prints a table on stderr and one JSON object per shape on stdout.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import charrnn  # noqa: E402
charrnn._one_blas_thread()  # before numpy loads: one BLAS thread per worker, as `charrnn train` runs
import numpy as np  # noqa: E402
from charrnn import blas  # noqa: E402
from charrnn.core import products  # noqa: E402

SHAPES = [  # R×K×N: forward h·Wh and backward dxp·Whᵀ of the benchmarked models at their rows per worker
    "16x256x1024", "16x1024x256",  # lstm 2×256, batch 32 over 2 workers
    "16x256x768", "16x768x256",  # gru 2×256
    "16x256x256",  # rnn 2×256
    "32x512x2048", "32x2048x512",  # lstm 2×512, batch 64 (threads: 32 rows each)
    "8x256x1024", "4x256x1024", "1x512x1024",  # smaller batches; sampling's stacked product
]


def blocked(a, W, w, out):
    blocks = [np.ascontiguousarray(W[:, j:j + w]) for j in range(0, W.shape[1], w)]
    return lambda: products.matmul(a, W, blocks, out)


def measure(R, K, N, rounds, extra=(), seconds=0.05):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((R, K), dtype=np.float32)
    W = rng.standard_normal((K, N), dtype=np.float32)
    out = np.empty((R, N), np.float32)
    runs = {N: lambda: np.matmul(a, W, out=out)}
    w = N // 2
    widths = set(extra)
    while w >= 16:
        widths.add(w)
        w //= 2
    for w in sorted(widths - {N}, reverse=True):
        runs[w] = blocked(a, W, w, out)
    times = {w: [] for w in runs}
    order = list(runs.items())
    for _ in range(rounds):
        for w, f in order:
            f()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                f()
                n += 1
            times[w].append((time.perf_counter() - t0) / n)
        order.reverse()
    return {w: statistics.median(v) for w, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=SHAPES)
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    limit = blas.product_limit()
    lim = limit or blas.SMALL_PRODUCT  # measured either way
    print(f"OpenBLAS kernels {blas.corename()}; charrnn's product blocks {'on' if limit else 'off'} "
          f"(limit R·K·w ≤ {lim:,}); one thread; one product's time / blocks' time, "
          f"* = the plan's width", file=sys.stderr)
    with blas.threads(1):
        for shape in a.shapes:
            R, K, N = map(int, shape.split("x"))
            plan = products.plan(np.empty((K, N), np.float32), R, lim)
            pick = N if plan is None else plan[0].shape[1]
            t = measure(R, K, N, a.rounds, extra=(pick,))
            flops = 2 * R * K * N
            cols = "  ".join(f"w{w}{'*' if w == pick else ''} {t[N] / t[w]:.2f}" for w in t if w != N)
            print(f"{shape:>12}  one product{'*' if pick == N else ''} {t[N] * 1e6:7.1f} µs "
                  f"{flops / t[N] / 1e9:5.1f} GFLOP/s   {cols}", file=sys.stderr)
            print(json.dumps({"bench": "products", "shape": shape, "one_product_us": round(t[N] * 1e6, 2),
                              "plan_width": pick, "speedup": {str(w): round(t[N] / t[w], 3) for w in t if w != N}}),
                  flush=True)


if __name__ == "__main__":
    main()
