"""What the tests that drive `charrnn` share: a generated corpus, a directory of its own to run
in, the command line in-process (click's CliRunner) and the environment for it as a subprocess."""
import os

import numpy as np
from click.testing import CliRunner

from charrnn.cli import cli

SMALL = ["--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16", "--eval-every", "4", "--quiet"]


def make_corpus(path, n=400, seed=0):
    """A corpus we generate: simple sentences with structure a tiny model can pick up."""
    r = np.random.default_rng(seed)
    words = ["red", "fox", "sees", "a", "blue", "cat", "under", "the", "moon", "and", "runs"]
    lines = [" ".join(words[i] for i in r.integers(0, len(words), 6)) + "." for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def isolate(path, monkeypatch):
    """Run in ``path``, with a cache of its own and the default checkpoint directory."""
    monkeypatch.chdir(path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(path / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    return path


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def env_for(work):
    env = dict(os.environ, CHARRNN_CACHE_DIR=str(work / "cache"), PYTHONUNBUFFERED="1")
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    return env
