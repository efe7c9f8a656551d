"""charrnn: recurrent language models (vanilla RNN, LSTM, GRU) from scratch in numpy.

The library (documented in docs/library.md):

    charrnn.load(path)                -> LanguageModel (generate, stream, samples, score, evaluate)
                                         or Classifier (classify); both have info
    charrnn.train(corpus, **options)  -> LanguageModel
    charrnn.CharrnnError (UsageError, CorpusError, CheckpointError), charrnn.CharrnnWarning
    charrnn.ModelConfig, TrainConfig, ClassifyConfig, RunOptions, SamplingOptions: the options

What is not exported here is private. Importing charrnn loads nothing heavy and changes
nothing in the caller's process (the command line pins its BLAS to one thread itself).
"""
__version__ = "0.1.0"

_EXPORTS = {
    "load": "charrnn.api", "train": "charrnn.api", "Model": "charrnn.api", "LanguageModel": "charrnn.api",
    "Classifier": "charrnn.api", "Score": "charrnn.api",
    "CharrnnError": "charrnn.errors", "UsageError": "charrnn.errors", "CorpusError": "charrnn.errors",
    "CheckpointError": "charrnn.errors", "CharrnnWarning": "charrnn.errors",
    "ModelConfig": "charrnn.config.model", "TrainConfig": "charrnn.config.recipe",
    "ClassifyConfig": "charrnn.config.recipe", "RunOptions": "charrnn.config.run",
    "SamplingOptions": "charrnn.config.sampling",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    """The exports, imported on first use (numpy only when the library is used)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


def _one_blas_thread():
    """Before numpy loads: one BLAS thread per process. charrnn spreads work over cores itself
    (data-parallel workers, --threads); a BLAS that also spawns threads per small product
    oversubscribes the cores and runs much slower. For the command line and the benchmarks,
    never on import."""
    import os
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
