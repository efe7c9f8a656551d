"""The bit-for-bit promises hold on every BLAS kernel family this machine can run.

OpenBLAS picks its kernels when it loads (OPENBLAS_CORETYPE overrides the choice), and
kernel families round a product's rows differently. The tests marked ``exact`` (README,
"What charrnn promises") run again here in a fresh interpreter: once with OpenBLAS's AVX2
kernels forced (Haswell: what laptops, older servers and AMD's Zen 1-3 run) and once with
OpenBLAS's own choice for this CPU (on an AVX-512 machine, SkylakeX). Only the child
processes' environment is changed, never this suite's.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def child_env(coretype):
    env = {k: v for k, v in os.environ.items() if k not in TUNING and k != "PYTEST_ADDOPTS"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def kernel(env):
    r = subprocess.run([sys.executable, "-c", "from charrnn import blas; print(blas.corename())"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.slow
@pytest.mark.parametrize("coretype", ["Haswell", None], ids=["Haswell", "own-choice"])
def test_the_exact_promises_hold_under_each_kernel_family(coretype, tmp_path):
    env = child_env(coretype)
    name = kernel(env)
    if name == "None":
        pytest.skip("numpy's BLAS is not an OpenBLAS: its kernels cannot be chosen")
    if coretype and name.lower() != coretype.lower():
        pytest.skip(f"OPENBLAS_CORETYPE={coretype} did not take effect on this CPU (OpenBLAS chose {name})")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "exact", "-p", "no:cacheprovider",
                        "--basetemp", str(tmp_path / "t"), str(TESTS)], env=env, capture_output=True, text=True,
                       timeout=600, cwd=TESTS.parent)
    tail = "\n".join(r.stdout.splitlines()[-30:])
    assert r.returncode == 0, f"under {name} kernels:\n{tail}\n{r.stderr[-2000:]}"
    assert " passed" in tail and " failed" not in tail
