"""charrnn.load: a checkpoint as the model it holds, a LanguageModel or a Classifier."""
import os

from charrnn.api.classifier import Classifier
from charrnn.api.language_model import LanguageModel
from charrnn.api.trained import Model
from charrnn.checkpoint import find, schema
from charrnn.errors import UsageError


def load(path: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike = "checkpoints",
         kind: str | None = None) -> "Model":
    """The model in ``path``, a checkpoint file or a run directory (its best): a LanguageModel or
    a Classifier. Without a path, the most recent run under ``checkpoint_dir`` holding one of
    ``kind`` ("lm", "classifier"; None: either). CheckpointError if there is none, or it is
    damaged."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if kind not in (None, "lm", "classifier"):
        raise UsageError(f"kind must be 'lm', 'classifier' or None, not {kind!r}")
    resolved = find.resolve(None if path is None else os.fspath(path), os.fspath(checkpoint_dir), kind=kind)
    ck = schema.load(resolved, kind=kind)
    return (Classifier if ck.kind == "classifier" else LanguageModel)(ck, resolved)
