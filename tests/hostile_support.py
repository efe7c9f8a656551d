"""What the hostile-input tests (tests/test_cli_hostile_*.py) share: the command line run as a
subprocess and in-process, the one-line failure every refusal must be, and `lab`, a module's
real checkpoints written by a real tiny `charrnn train` (lstm with an embedding, gru, relu
rnn), with the helpers that take them apart and sign them again.

The contract for every hostile checkpoint: a model that actually works (info, sample and a
resumed training step run on it: assert_usable) or one CheckpointError whose message is a
single line, and nothing else. FUZZED counts the inputs tried per kind; each module using lab
prints its counts at its end (pytest -s)."""
import collections
import copy
import hashlib
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.checkpoint import schema
from charrnn.store import container
from charrnn.cli import cli
from charrnn.errors import CheckpointError

SMALL = ["--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16", "--threads", "1", "--quiet"]
CELLS = {
    "lstm": ["--cell", "lstm", "--embed", "8"],
    "gru": ["--cell", "gru"],
    "rnn": ["--cell", "rnn", "--activation", "relu"],
}
FUZZED = collections.Counter()  # inputs fuzzed per kind, printed at the end of each module using lab (-s)


def make_corpus(path, n=300, seed=0):
    r = np.random.default_rng(seed)
    words = ["red", "fox", "sees", "a", "blue", "cat", "under", "the", "moon"]
    lines = [" ".join(words[i] for i in r.integers(0, len(words), 6)) + "." for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def env_for(work):
    env = dict(os.environ, CHARRNN_CACHE_DIR=str(work / "cache"), PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1")
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    return env


def charrnn(*args, work, input=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], cwd=work, env=env_for(work),
                          input=input, capture_output=True, timeout=timeout)


def assert_one_line_failure(r, code=1, contains=None):
    """A CLI failure as promised: exit code, exactly one stderr line, no traceback, no stdout."""
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == code, err
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.endswith("\n") and err.startswith("charrnn: error: "), repr(err)
    assert r.stdout == b"", r.stdout[:200]
    if contains:
        assert contains in err, err
    return err


def invoke(*args, work=None):
    """The CLI in-process (fast enough to run on every fuzzed file that loads)."""
    env = {"CHARRNN_CACHE_DIR": str(work / "cache")} if work else None
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=True)


def assert_clean_exit(r):
    """exit 0, or exit 1 with one error line (after any warnings); never an exception escaping
    the CLI."""
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code:
        err = "".join(line for line in r.stderr.splitlines(keepends=True) if not line.startswith("warning: "))
        assert r.exit_code == 1 and err.count("\n") == 1 and err.startswith("charrnn: error: "), r.stderr


# =========================================================================== real checkpoints


class Lab:
    def __init__(self, root):
        self.root, self.ckpts, self.n = root, {}, 0

    def path(self, stem="x"):
        self.n += 1
        return self.root / "files" / f"{stem}-{self.n}.ckpt"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "files").mkdir()
    make_corpus(root / "corpus.txt")
    lab = Lab(root)
    for cell, extra in CELLS.items():
        r = charrnn("train", "corpus.txt", "--steps", 3, "--eval-every", 3, "--name", cell, *SMALL, *extra, work=root)
        assert r.returncode == 0, r.stderr.decode()
        lab.ckpts[cell] = (root / "checkpoints" / cell / "latest.ckpt").read_bytes()
    yield lab
    print("\nhostile inputs fuzzed:", dict(sorted(FUZZED.items())), "total", sum(FUZZED.values()))
    FUZZED.clear()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "r+b" if path.exists() else "wb") as f:  # in place: truncate-to-0 forces a flush
        f.write(data)
        f.truncate()
    return path


def refused(path):
    """The message if schema.load refuses the file with one CheckpointError line, else None."""
    try:
        schema.load(str(path))
    except CheckpointError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
        return msg
    return None


def outcome(path):
    """schema.load's result: a Checkpoint, or None after one single-line CheckpointError.
    Any other exception propagates and fails the test."""
    try:
        return schema.load(str(path))
    except CheckpointError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
        return None


def assert_usable(b, path, lab, resume=True):
    """A file that loads must be a model every command can use, not a delayed traceback."""
    assert {k: v.shape for k, v in b.params.items()} == schema.param_shapes(b.cfg)
    assert all(np.isfinite(v).all() for v in b.params.values())
    assert len(b.vocab) == b.cfg.vocab_size
    for args in (["info", path], ["info", path, "--json"]):
        r = invoke(*args, work=lab.root)
        assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    r = invoke("sample", "--checkpoint", path, "--length", 8, "--seed", 0, work=lab.root)
    if r.exit_code:  # finite weights can still overflow (a relu RNN with Wh[0,0] = 3e38): one clean line
        assert_clean_exit(r)
        assert r.stderr == "charrnn: error: cannot sample: the model's output is not finite (its weights overflow)\n"
        FUZZED["sampling refused a model whose weights overflow"] += 1
    text = r.stdout_bytes.decode("utf-8")
    assert set(text) <= set("".join(b.vocab.tokens)) | {"\n"}
    if resume and b.train is not None and b.opt_state and b.kind == "lm":
        lab.n += 1
        r = invoke("train", lab.root / "corpus.txt", "--resume", path, "--steps", b.step + 1, "--force", "--quiet",
                   "--name", f"resume-{lab.n}", "--checkpoint-dir", lab.root / "resumed", work=lab.root)
        assert_clean_exit(r)
        FUZZED["resumed from a loaded hostile file"] += 1


# --------------------------------------------------------------------------- container helpers

ALIGN = 64
LENGTH = struct.Struct("<Q")


def head_size(data):
    """Bytes before the arrays: the length field and the padded header."""
    return LENGTH.size + LENGTH.unpack_from(data)[0]


def split(data):
    """(header dict, data bytes) of a well-formed safetensors file (format 2)."""
    n = LENGTH.unpack_from(data)[0]
    return json.loads(data[LENGTH.size:LENGTH.size + n]), data[LENGTH.size + n:]


def resign(header, payload, raw=None):
    """A file whose sha256 is right for ``header`` (any JSON value) and ``payload``: re-signed
    where the header has a __metadata__ object, else as it is."""
    if isinstance(header, dict) and isinstance(header.get("__metadata__"), dict):
        meta = {k: v for k, v in header["__metadata__"].items() if k != "sha256"}
        h = hashlib.sha256(container.canonical_json(dict(header, __metadata__=meta)))
        h.update(payload)
        header = dict(header, __metadata__=dict(meta, sha256=h.hexdigest()))
    hb = raw if raw is not None else container.canonical_json(header)
    hb += b" " * (-(LENGTH.size + len(hb)) % ALIGN)
    return LENGTH.pack(len(hb)) + hb + payload


def flips(data, bits):
    for bit in bits:
        buf = bytearray(data)
        buf[bit // 8] ^= 1 << (bit % 8)
        yield f"bit {bit}", bytes(buf)


# --------------------------------------------------------------------------- right container, wrong model

def edit(lab, cell, arrays_fn=None, meta_fn=None, stem="semantic"):
    """A real checkpoint re-saved (correct checksum) after editing its arrays and/or meta."""
    arrays, meta = container.load(write(lab.path(cell), lab.ckpts[cell]))
    meta = copy.deepcopy(meta)
    if arrays_fn:
        arrays_fn(arrays)
    if meta_fn:
        meta_fn(meta)
    path = lab.path(stem)
    container.save(path, arrays, meta)
    return path


def setm(dotted, value):
    def f(meta):
        *parents, last = dotted.split(".")
        d = meta
        for p in parents:
            d = d[p]
        if value is DELETE:
            del d[last]
        else:
            d[last] = value
    return f


DELETE = object()


def seta(name, fn):
    def f(arrays):
        arrays[name] = fn(arrays[name])
    return f


def dela(name):
    return lambda arrays: arrays.pop(name)


# --------------------------------------------------------------------------- huge declared sizes

def huge_cases(lab):
    data = lab.ckpts["gru"]
    header, payload = split(data)
    cases = {}

    def lying(name, fn):
        h = copy.deepcopy(header)
        fn(h)
        cases[name] = resign(h, payload)

    def entry(name, shape, itemsize=4, start=None):
        def change(h):
            s = h[name]["data_offsets"][0] if start is None else start
            h[name].update(shape=shape, data_offsets=[s, s + math.prod(shape) * itemsize])
        return change

    names = sorted(k for k in header if k != "__metadata__")
    last = max(names, key=lambda k: header[k]["data_offsets"][1])
    cases["header length 2**64-1"] = LENGTH.pack(2**64 - 1) + data[LENGTH.size:]
    cases["header length = file"] = LENGTH.pack(len(data) - LENGTH.size) + data[LENGTH.size:]
    cases["header length 32 MiB"] = LENGTH.pack(32 << 20) + data[LENGTH.size:]
    lying("shape 2**31 x 2**31", entry("param/out.V", [2**31, 2**31]))
    lying("last array 2**40 floats", entry(last, [2**40]))
    lying("shape 2**47 x 2**47", entry(last, [2**47, 2**47]))
    lying("32 dims of 2", entry(last, [2] * 32))
    lying("empty array, huge dim", entry("param/out.c", [0, 2**62]))
    lying("offset 2**62", entry(last, header[last]["shape"], start=2**62))
    lying("offsets past the end", lambda h: h[last].update(data_offsets=[h[last]["data_offsets"][0], 2**62]))

    def meta_case(name, key, value):
        arrays, meta = container.load(write(lab.path("gru"), data))
        meta["model" if key != "batch" else "train"][key] = value
        path = lab.path("huge")
        container.save(path, arrays, meta)
        cases[name] = path.read_bytes()

    meta_case("layers 10**12", "layers", 10**12)
    meta_case("hidden 10**12", "hidden", 10**12)
    meta_case("vocab_size 10**12", "vocab_size", 10**12)
    meta_case("embed 10**12", "embed", 10**12)
    meta_case("batch 10**12 (valid until resumed)", "batch", 10**12)
    return cases
