"""A trained model, loaded: what a language model and a classifier share (their configs, their
vocabulary, ``info``)."""
import datetime
import os

from charrnn.checkpoint import schema
from charrnn.core import model as core_model
from charrnn.errors import UsageError


class Model:
    """A trained model (what ``load`` gives): a LanguageModel or a Classifier."""

    kind = None

    def __init__(self, checkpoint: schema.Checkpoint, path: str | os.PathLike | None = None):
        self._ck, self.path = checkpoint, None if path is None else os.fspath(path)

    @property
    def config(self):
        """The network's shape: a charrnn.ModelConfig."""
        return self._ck.cfg

    @property
    def level(self):
        """"char" or "word": what a token is."""
        return self._ck.vocab.level

    @property
    def vocabulary(self):
        """The tokens, in id order (characters, or words at word level)."""
        return list(self._ck.vocab.tokens)

    @property
    def info(self):
        """What `charrnn info --json` shows: model, recipe, step, metrics, vocabulary, corpus."""
        ck = self._ck
        return {"path": self.path, "kind": ck.kind, "model": ck.cfg.to_json(),
                "train": None if ck.train is None else ck.train.to_json(),
                "params": core_model.num_params(ck.params), "step": ck.step, "epoch": ck.epoch,
                "elapsed": ck.elapsed, "choice": ck.choice, "val_loss": ck.metrics.get("val_loss"),
                "best_val_loss": ck.metrics.get("best_val_loss"), "vocab_size": len(ck.vocab),
                "level": ck.vocab.level, "corpus_sha256": ck.corpus.get("sha256"),
                "corpus_tokens": ck.corpus.get("tokens"), "corpus_paths": ck.corpus.get("paths"),
                "saved_at": _iso(ck.saved_at), "charrnn": ck.version, **self._more_info()}

    def _more_info(self):
        return {}

    def __repr__(self):
        c = self._ck.cfg
        return f"<charrnn.{type(self).__name__} {c.cell} {c.layers}x{c.hidden} from {self.path or 'memory'}>"


def _iso(seconds):
    """2026-12-03T07:01:22Z, or None."""
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def need_text(value, name):
    """``value`` if it is a str; else the UsageError a Python caller should see."""
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a str, not {type(value).__name__}")
    return value
