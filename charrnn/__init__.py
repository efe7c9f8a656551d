"""charrnn: recurrent language models (vanilla RNN, LSTM, GRU) from scratch in numpy."""
import os
import sys

__version__ = "0.1.0"

# charrnn spreads work over cores itself (data-parallel workers, --threads); a BLAS
# that also spawns threads per small product oversubscribes the cores and runs much slower.
if "numpy" not in sys.modules:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
