"""What charrnn asks of the loaded BLAS at run time (OpenBLAS only): its thread count for a
block, and whether its kernels multiply small products without packing.

charrnn pins the BLAS to one thread at import (charrnn/__init__.py), because training
spreads the batch over worker threads of its own. Sampling is the other way round: one
stream, one token at a time, each step bound by reading the weights (3 MiB for an LSTM
2×256, more than one core's L2 cache). With two BLAS threads each core reads its own
share of a large product from its own cache (model.Stepper stacks [Wx; Wh] so the
products are large enough for OpenBLAS to split).

The count is the whole process's (OpenBLAS ≥ 0.3.27's openblas_set_num_threads_local
returns the count it replaces, but sets it for every thread), so only a command that
makes all its BLAS calls from one thread, like ``sample``, changes it. Any other BLAS, an
older OpenBLAS, or a system without /proc: nothing changes and ``threads`` says so.

``product_limit`` is the column-block limit for core/products.py's recurrent product that
this BLAS gains from: SMALL_PRODUCT when OpenBLAS runs its AVX-512 (SkylakeX-family) kernels,
which multiply small products straight from their operands; 0 (one product) with any other.
Callers pass it down to the core explicitly.
"""
import contextlib
import ctypes
import functools

import numpy  # noqa: F401  (loads the BLAS whose thread count this sets)


# OpenBLAS cores whose sgemm and dgemm multiply small products unpacked (core/products.py)
UNPACKED_CORES = ("skylakex", "cooperlake", "sapphirerapids")
_CORENAMES = ("openblas_get_corename", "scipy_openblas_get_corename64_", "openblas_get_corename64_")
SMALL_PRODUCT = 3 << 18  # rows·K·w per block, 786,432: the fastest sizes measured there (bench_products)


@functools.lru_cache(maxsize=1)
def _openblas():
    """The OpenBLAS library this process has loaded (numpy's own copy first), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    paths = sorted(paths, key=lambda p: ("numpy" not in p, p))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if any(hasattr(lib, name) for name in ("openblas_set_num_threads_local", *_CORENAMES)):
            return lib
    return None


@functools.lru_cache(maxsize=1)
def _set_local():
    """OpenBLAS's thread-count setter (it answers with the count it replaces), or None."""
    lib = _openblas()
    if lib is None:
        return None
    fn = getattr(lib, "openblas_set_num_threads_local", None)  # OpenBLAS ≥ 0.3.27
    if fn is not None:
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


def corename():
    """The name of the kernel set OpenBLAS chose for this CPU ("SkylakeX", "Haswell", …), or None."""
    lib = _openblas()
    for name in _CORENAMES:
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            fn.argtypes, fn.restype = [], ctypes.c_char_p
            return (fn() or b"").decode("ascii", "replace")
    return None


@functools.lru_cache(maxsize=1)
def product_limit():
    """core/products.py's block limit for the BLAS loaded here (0: one product)."""
    name = (corename() or "").lower()
    return SMALL_PRODUCT if name in UNPACKED_CORES else 0


@contextlib.contextmanager
def threads(n):
    """Within the block, each BLAS call may use n threads; yields whether that took effect."""
    fn = _set_local()
    if fn is None:
        yield False
        return
    previous = fn(int(n))
    try:
        yield True
    finally:
        fn(previous)
