"""Fixtures shared by the test modules."""
import os
import pickle
import sys

# before numpy loads: one BLAS thread, as charrnn itself runs (see charrnn/__init__.py); a
# two-thread BLAS on small products crawls whenever the other core is busy
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest


@pytest.fixture
def pickle_forbidden(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    class ForbiddenUnpickler:
        def __init__(self, *args, **kwargs):
            forbidden()

    for module in (pickle, sys.modules.get("_pickle")):
        if module is not None:
            monkeypatch.setattr(module, "loads", forbidden)
            monkeypatch.setattr(module, "load", forbidden)
            monkeypatch.setattr(module, "Unpickler", ForbiddenUnpickler)
    monkeypatch.setattr(np, "load", forbidden)
    for name in ("fromfile", "frombuffer"):  # an object dtype would need pickle behind these
        real = getattr(np, name)

        def guarded(*args, _real=real, **kwargs):
            dtype = kwargs.get("dtype", args[1] if len(args) > 1 else float)
            assert not np.dtype(dtype).hasobject, "object array decoded"
            return _real(*args, **kwargs)
        monkeypatch.setattr(np, name, guarded)
