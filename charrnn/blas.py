"""The BLAS's thread count, changed at run time for a block (OpenBLAS only).

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
"""
import contextlib
import ctypes
import functools

import numpy  # noqa: F401  (loads the BLAS whose thread count this sets)


@functools.lru_cache(maxsize=1)
def _set_local():
    """OpenBLAS's thread-count setter (it answers with the count it replaces) from the libraries
    this process has loaded, or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    paths = sorted(paths, key=lambda p: ("numpy" not in p, p))  # numpy's own copy before any other
    for path in paths:
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


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
