"""The recurrent product a·W at a few rows, cut into column blocks a BLAS can multiply unpacked.

Shapes: R rows (a worker's share of the batch), K = W's rows, N = W's columns, w block width.

A general matrix product first copies ("packs") W into its kernel's layout, which costs the
same at 16 rows as at 16,000: at the few rows of a recurrent step, packing the Wh of an LSTM
anew at every step, forward and backward, is a large part of the product. OpenBLAS's AVX-512
(SkylakeX) kernels multiply a small product straight from its operands, so there the product
done as a few narrower ones runs faster; one row (sampling) is a matrix-vector product that
reads W unpacked already, and blocks only slow it; where the BLAS packs every product, blocks
only add calls (benchmarks/bench_products.py measures each; docs/speed.md has the figures).
So the limit is a property of the loaded BLAS (charrnn/blas.py's product_limit) that callers
pass down explicitly; 0, the default everywhere, means one product. The blocks sum each output
in the same order up to the BLAS's kernel choice, so they change results by float rounding at
most.
"""
import numpy as np

MAX_ROWS = 16  # above this the packed product amortises its copy (32 rows: no gain measured)
MIN_WIDTH = 32  # narrower blocks lose more to per-call overhead than packing costs


def plan(W, rows, limit=0):
    """W (K,N) as contiguous column blocks (K,w) for products with ``rows`` rows, or None.

    ``limit`` is the largest R·K·w one block may have (0: blocks off). w is the widest power of
    two with rows·K·w within it (the last block takes what is left); None when one product is
    better: blocks off, one row or more than MAX_ROWS, w below MIN_WIDTH, or the whole product
    within the limit.
    """
    K, N = W.shape
    if not limit or not 1 < rows <= MAX_ROWS or rows * K * MIN_WIDTH > limit or rows * K * N <= limit:
        return None
    w = 1 << (limit // (rows * K)).bit_length() - 1
    if w >= N:
        return None
    return [np.ascontiguousarray(W[:, j:j + w]) for j in range(0, N, w)]  # (K,w) each, the last ≤ w


def matmul(a, W, blocks, out):
    """out = a·W, one product per block of W's columns when ``blocks`` (from plan) is not None."""
    if blocks is None:
        return np.matmul(a, W, out=out)
    j = 0
    for Wb in blocks:
        w = Wb.shape[1]
        np.matmul(a, Wb, out=out[:, j:j + w])
        j += w
    return out
