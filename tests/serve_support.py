"""What the serve tests share: a tiny model trained once per session, a server running it in
this process (uvicorn in a thread, a real socket on 127.0.0.1), and `charrnn serve` itself in
a subprocess for the tests that need signals or its own output."""
import functools
import os
import pathlib
import re
import subprocess
import sys
import threading

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install '.[serve]'")

from charrnn import blas  # noqa: E402
from charrnn.serve import server  # noqa: E402
from charrnn.serve.app import Service  # noqa: E402
from charrnn.serve.models import Registry, Source  # noqa: E402
from charrnn.serve.protocol import Limits  # noqa: E402

from .cli_support import make_corpus  # noqa: E402

# quotes and brackets, so the inspect view has features to rank; "The " for the docs' examples
EXTRA = '\nThe fox said "red (fox)" and [the moon].\n"a blue cat" (under the moon)\n'


@functools.cache
def _trained(base):
    """A 2-layer LSTM (named: the recipe would choose a CIFG) of 32 units after 150 steps on generated
    sentences: run directory "notes"."""
    import charrnn
    root = pathlib.Path(base) / "serve-model"
    root.mkdir(exist_ok=True)
    corpus = make_corpus(root / "notes.txt", n=500)
    text = corpus.read_text(encoding="utf-8") + EXTRA * 40
    old = os.environ.get("CHARRNN_CACHE_DIR")
    os.environ["CHARRNN_CACHE_DIR"] = str(root / "cache")
    try:
        charrnn.train(text=text, checkpoint_dir=root / "checkpoints", name="notes", steps=150, cell="lstm", hidden=32,
                      layers=2, batch=8, seq_len=32, eval_every=50, lr=1e-2, seed=1)
    finally:
        if old is None:
            os.environ.pop("CHARRNN_CACHE_DIR", None)
        else:
            os.environ["CHARRNN_CACHE_DIR"] = old
    return str(root / "checkpoints" / "notes")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """The run directory of the session's tiny model (its name, "notes", is the model's id)."""
    return _trained(str(tmp_path_factory.getbasetemp()))


class Running:
    """A Service on 127.0.0.1 (a free port) served by uvicorn in a thread of this process;
    ``lines`` collects what it logs, ``url`` is where it answers."""

    def __init__(self, sources, limits=Limits(), api_key=None, watch=None):
        self.lines = []
        self.registry = Registry(sources, limits.streams, blas.product_limit(), self.lines.append)
        self.service = Service(self.registry, limits, api_key, watch, self.lines.append)
        self.sock = server.listen("127.0.0.1", 0)
        self.url = server.url(self.sock).rstrip("/")
        self.server = server.Server(self.service, self.lines.append)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def engine(self, name="notes"):
        return self.registry.get(name).engine

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the server did not stop"


def serving(run_dir, **kw):
    return Running([Source("notes", run_dir)], **kw)


class Subprocess:
    """`charrnn serve ARGS --port 0` as a user runs it; ``url`` from the line it prints."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.before = []  # stderr lines up to "serving at"
        for line in self.proc.stderr:
            self.before.append(line)
            m = re.match(r"serving at (http://\S+)/ ", line)
            if m:
                self.url = m.group(1)
                return
        self.proc.wait(10)
        raise AssertionError(f"charrnn serve did not start: {''.join(self.before)}")

    def wait_for_line(self, pattern):
        """The next stderr line that matches (the process writes one line per event)."""
        for line in self.proc.stderr:
            if re.search(pattern, line):
                return line
        raise AssertionError(f"stderr ended before a line matching {pattern!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stderr.close()
        self.proc.stdout.close()
