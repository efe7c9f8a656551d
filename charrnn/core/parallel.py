"""Threads for data parallelism: numpy releases the GIL inside matrix products and ufuncs.

One long-lived pool per worker count (starting threads costs ~50 µs each).
"""
import concurrent.futures

import numpy as np

_POOLS = {}


def thread_map(f, items):
    """[f(i) for i in items], each item on its own thread of a long-lived pool."""
    n = len(items)
    if n <= 1:
        return [f(i) for i in items]
    if n not in _POOLS:
        _POOLS[n] = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="charrnn")
    err = np.geterr()  # floating-point error handling is per thread: carry the caller's over

    def run(item):
        with np.errstate(**err):
            return f(item)

    return list(_POOLS[n].map(run, items))


def split_keys(arrays, n):
    """The keys of ``arrays`` in n groups of about equal total size (largest first, greedy)."""
    groups, sizes = [[] for _ in range(n)], [0] * n
    for k in sorted(arrays, key=lambda k: -arrays[k].size):
        i = sizes.index(min(sizes))
        groups[i].append(k)
        sizes[i] += arrays[k].size
    return [g for g in groups if g]
