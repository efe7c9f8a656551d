"""Hostile inputs, end to end: damaged and lying checkpoints, and text built to break things.

Checkpoints. Real ones, written by a real tiny `charrnn train` (lstm with an embedding, gru,
relu rnn), go through the FULL loader `schema.load` (container, then the model schema):
byte damage of every kind (each truncation and each bit of the header and manifest
exhaustively), manifests that lie but are re-signed with a correct sha256 (so they pass the
checksum and reach the layout checks), and well-formed files written with container.save whose
arrays or meta are wrong (so they reach bundle's semantic checks). The contract for every input:
a model that actually works (info, sample and a resumed training step run on it) or one
CheckpointError whose message is a single line, and nothing else, within a deadline and, for
lying sizes, without allocating beyond a few times the file's size. The CLI on such files exits 1
with one stderr line, and nothing is ever unpickled.

Text. Generated here (no third-party text in the repository): invalid UTF-8, NUL bytes, a
vocabulary of 6,000 CJK symbols, a multi-megabyte line without a newline, one repeated
character, characters outside the BMP, mixed CRLF and LF, byte-order marks. Each trains and
round-trips, or is refused with one line and exit 1. Tests on ../shared/corpora skip without it.
"""
import collections
import copy
import datetime
import hashlib
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
FUZZED = collections.Counter()  # inputs fuzzed per kind, printed at the end of the module (-s)


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


def test_pristine_checkpoints_load_and_work(lab):
    for cell, data in lab.ckpts.items():
        path = write(lab.path(cell), data)
        b = outcome(path)
        assert b is not None and b.cfg.cell == cell and b.step == 3
        assert_usable(b, path, lab)
        # the helpers rebuild the very same bytes
        header, payload = split(data)
        assert resign(header, payload) == data


# --------------------------------------------------------------------------- exhaustive damage

def sweep(monkeypatch, variants):
    """schema.load on each byte string (the file read served from memory: thousands per second);
    every one must be refused with one CheckpointError line. Returns how many."""
    current = {}
    monkeypatch.setattr(container, "_read_file", lambda path: current["data"])
    n = 0
    for label, data in variants:
        current["data"] = data
        try:
            schema.load("sweep.ckpt")
        except CheckpointError as e:
            assert "\n" not in str(e), repr(str(e))
        else:
            raise AssertionError(f"damaged file loaded: {label}")
        n += 1
    return n


@pytest.mark.slow
def test_every_truncation_is_refused(lab, monkeypatch):
    data = lab.ckpts["gru"]
    n = sweep(monkeypatch, ((f"cut at {k}", data[:k]) for k in range(len(data))))
    assert n == len(data)
    FUZZED["truncation (every offset, gru)"] += n
    for cell in ("lstm", "rnn"):  # the others densely: every offset in the head, every 13th after
        other = lab.ckpts[cell]
        head = head_size(other)
        cuts = [*range(head + 1), *range(head + 1, len(other), 13)]
        FUZZED[f"truncation (dense, {cell})"] += sweep(monkeypatch, ((f"{cell} cut at {k}", other[:k]) for k in cuts))


def flips(data, bits):
    for bit in bits:
        buf = bytearray(data)
        buf[bit // 8] ^= 1 << (bit % 8)
        yield f"bit {bit}", bytes(buf)


@pytest.mark.slow
def test_every_bit_flip_in_header_and_manifest_is_refused(lab, monkeypatch):
    data = lab.ckpts["lstm"]
    head = head_size(data)  # the length, the header (its manifest in it) and the padding
    FUZZED["bit flip (every bit of header+manifest, lstm)"] += sweep(monkeypatch, flips(data, range(head * 8)))


def test_bit_flips_anywhere_are_refused(lab, monkeypatch):
    """Bits flipped all over each file (header, manifest, padding, every array)."""
    for cell, data in lab.ckpts.items():  # every 5th byte, its bit rotating
        bits = (8 * i + (i * 3 + 1) % 8 for i in range(0, len(data), 5))
        FUZZED[f"bit flip (every 5th byte, {cell})"] += sweep(monkeypatch, flips(data, bits))


# --------------------------------------------------------------------------- random byte damage

@settings(max_examples=800, deadline=datetime.timedelta(seconds=2), database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_random_byte_damage_is_refused(lab, data):
    cell = data.draw(st.sampled_from(sorted(lab.ckpts)), label="cell")
    original = lab.ckpts[cell]
    size = len(original)
    kind = data.draw(st.sampled_from(["truncate", "flip", "flips", "overwrite", "insert", "delete", "append",
                                      "splice", "zero", "swap"]), label="kind")
    at = data.draw(st.integers(0, size - 1), label="at")
    if kind == "truncate":
        mutated = original[:at]
    elif kind == "flip":
        mutated = next(flips(original, [at * 8 + data.draw(st.integers(0, 7))]))[1]
    elif kind == "flips":
        buf = bytearray(original)
        for bit in data.draw(st.lists(st.integers(0, size * 8 - 1), min_size=2, max_size=20)):
            buf[bit // 8] ^= 1 << (bit % 8)
        mutated = bytes(buf)
    elif kind == "overwrite":
        chunk = data.draw(st.binary(min_size=1, max_size=64))
        mutated = original[:at] + chunk + original[at + len(chunk):]
    elif kind == "insert":
        mutated = original[:at] + data.draw(st.binary(min_size=1, max_size=64)) + original[at:]
    elif kind == "delete":
        mutated = original[:at] + original[at + data.draw(st.integers(1, 256)):]
    elif kind == "append":
        mutated = original + data.draw(st.binary(min_size=1, max_size=128))
    elif kind == "splice":  # the start of one real checkpoint, the rest of another
        other = lab.ckpts[data.draw(st.sampled_from(sorted(set(lab.ckpts) - {cell})))]
        mutated = original[:at] + other[at:]
    elif kind == "zero":
        mutated = original[:at] + bytes(min(size - at, 64)) + original[at + 64:]
    else:  # swap two 64-byte blocks
        other = data.draw(st.integers(0, size - 1))
        a, b = sorted((at // 64 * 64, other // 64 * 64))
        mutated = original[:a] + original[b:b + 64] + original[a + 64:b] + original[a:a + 64] + original[b + 64:]
        mutated = mutated[:size] if len(mutated) > size else mutated
    if mutated in lab.ckpts.values():  # no change, or a splice at 0: another real checkpoint
        return
    FUZZED[f"random byte damage ({kind})"] += 1
    assert refused(write(lab.root / "files" / f"damage-{kind}.ckpt", mutated)), kind


# --------------------------------------------------------------------------- manifests that lie

HUGE = [2**31, 2**32, 2**40, 2**47, 2**48, 2**62, 2**63, 2**64, 10**30]
LYING_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 63, 64, -64, 1.0, 0.5, "0", "", [], {}, [0], [-1], [1.5],
                     [2**31, 2**31], [0, 2**62], [2] * 33, [1] * 32, "|O", "<f2", ">f4", "<c8", "|V8", "<U1",
                     "<M8", "O", "|b1", "|u1", "<i8", "<f8", *HUGE]),
    st.integers(), st.lists(st.integers(-2, 2**40), max_size=4), st.text(max_size=4),
)


def lie(data, draw):
    """One lie in a real checkpoint's safetensors header, re-signed so the checksum holds.
    Returns the file's bytes."""
    header, payload = split(data)
    names = sorted(k for k in header if k != "__metadata__")
    name = draw(st.sampled_from(names), label="array")
    entry, meta = header[name], header["__metadata__"]
    op = draw(st.sampled_from(["field", "consistent", "drop_field", "extra_field", "rename", "drop_entry",
                               "alias", "meta_field", "meta_type", "whole", "extra_meta", "drop_meta", "version",
                               "manifest", "payload", "length", "duplicate_key", "deep", "padding"]), label="op")
    FUZZED[f"re-signed lying header ({op})"] += 1
    if op == "field":
        entry[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(LYING_VALUES)
    elif op == "consistent":  # shape and offsets agree with each other, not with the file
        shape = draw(st.lists(st.sampled_from([0, 1, 2, 3, 15, 16, 48, 2**20, 2**31, 2**40]), max_size=4))
        code = draw(st.sampled_from(sorted(container.DTYPES)))
        start = entry["data_offsets"][0]
        entry.update(shape=shape, dtype=code,
                     data_offsets=[start, start + math.prod(shape) * np.dtype(container.DTYPES[code]).itemsize])
    elif op == "drop_field":
        del entry[draw(st.sampled_from(sorted(entry)))]
    elif op == "extra_field":
        entry[draw(st.sampled_from(["pickle", "order", "fortran_order", "descr"]))] = draw(LYING_VALUES)
    elif op == "rename":
        header[draw(st.sampled_from(["param/out.W", "param/" + name, "opt/" + name, "state/1/0", "x", "~",
                                     "__metadata__"]))] = header.pop(name)
    elif op == "drop_entry":
        del header[name]
    elif op == "alias":  # a second name over the same bytes
        header[name + "2"] = dict(entry)
    elif op == "meta_field":
        meta[draw(st.sampled_from(["format", "version", "manifest", "sha256"]))] = draw(LYING_VALUES)
    elif op == "meta_type":
        header["__metadata__"] = draw(st.sampled_from([[], "x", 1, None, [[1]], {}]))
    elif op == "whole":  # a header of the wrong type altogether
        header = draw(st.sampled_from([[], [header], "header", 1, 1.5, None, True]))
    elif op == "extra_meta":
        meta[draw(st.sampled_from(["pickle", "extra", "Format"]))] = draw(st.sampled_from(["1", "", "x" * 70]))
    elif op == "drop_meta":
        del meta[draw(st.sampled_from(["format", "version", "manifest"]))]
    elif op == "version":
        meta["version"] = draw(st.sampled_from(["0", "1", "3", "255", "2.0", " 2", "+2", "02", "٢"]))
    elif op == "manifest":  # the manifest text: not JSON, not an object, not canonical
        meta["manifest"] = draw(st.sampled_from(["", "[", "[]", "1", "null", '{"a":NaN}', '{"a":1, "b":2}',
                                                 meta["manifest"] + " ", meta["manifest"][:-1]]))
    elif op == "payload":  # the signature covers data that is not the declared layout
        cut = draw(st.integers(1, len(payload)))
        payload = draw(st.sampled_from([payload[:-cut], payload + bytes(cut), payload[cut:]]))
    elif op == "length":  # the header length lies (no signature can cover that)
        good = resign(header, payload)
        length = draw(st.sampled_from([0, 1, 2**64 - 1, 2**63, 2**32, len(good), len(good) - LENGTH.size + 1,
                                       LENGTH.unpack_from(good)[0] - 64, LENGTH.unpack_from(good)[0] + 64]))
        return LENGTH.pack(length) + good[LENGTH.size:]
    elif op == "duplicate_key":  # JSON with a key twice: the last one would win in json.loads
        raw = container.canonical_json(split(resign(header, payload))[0])
        raw = raw[:-1] + b',' + json.dumps(name).encode() + b':' + json.dumps(entry).encode() + b'}'
        return resign(None, payload, raw=raw)
    elif op == "deep":  # nesting deep enough to overflow a recursive parser
        depth = draw(st.sampled_from([1000, 100_000]))
        raw = b'{"__metadata__":' + b"[" * depth + b"]" * depth + b'}'
        return resign(None, payload, raw=raw)
    elif op == "padding":  # the padding is not spaces, or the header is not ASCII
        good = bytearray(resign(header, payload))
        at = draw(st.integers(LENGTH.size, head_size(good) - 1))
        good[at] = draw(st.sampled_from([0, 9, 10, 0xC3, 0x80]))
        return bytes(good)
    return resign(header, payload)


@settings(max_examples=800, deadline=datetime.timedelta(seconds=5), database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_lying_manifests_are_refused_or_harmless(lab, data):
    cell = data.draw(st.sampled_from(sorted(lab.ckpts)), label="cell")
    path = write(lab.root / "files" / "lie.ckpt", lie(lab.ckpts[cell], data.draw))
    b = outcome(path)
    if b is not None:
        assert_usable(b, path, lab)


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


def poison(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


SEMANTIC = {  # name: (cell, arrays edit, meta edit, expected words in the message)
    "wrong parameter shape": ("gru", seta("param/out.V", lambda a: a[:, :-1]), None, "has shape"),
    "transposed parameter": ("gru", seta("param/layers.0.Wh", lambda a: np.ascontiguousarray(a.T)), None,
                             "has shape"),
    "missing parameter": ("lstm", dela("param/out.c"), None, "missing parameter"),
    "missing embedding": ("lstm", dela("param/embed.W"), None, "missing parameter"),
    "extra array": ("rnn", lambda a: a.update(junk=np.zeros(3, np.float32)), None, "unexpected array"),
    "extra parameter": ("rnn", lambda a: a.update({"param/layers.1.Wx": np.zeros(3, np.float32)}), None,
                        "unexpected parameter"),
    "NaN parameter": ("lstm", seta("param/layers.0.Wx", poison), None, "not finite"),
    "inf parameter": ("gru", seta("param/out.c", lambda a: np.full_like(a, np.inf)), None, "not finite"),
    "integer parameter": ("gru", seta("param/out.c", lambda a: a.astype(np.int32)), None, "has shape"),
    "mixed dtypes": ("gru", seta("param/out.c", lambda a: a.astype(np.float64)), None, "mixed dtypes"),
    "vocab size mismatch": ("gru", None, lambda m: m["model"].update(vocab_size=m["model"]["vocab_size"] - 1),
                            "model expects"),
    "vocab one token short": ("gru", None, lambda m: m["vocab"]["tokens"].pop(), "model expects"),
    "duplicate vocab token": ("gru", None, lambda m: m["vocab"]["tokens"].__setitem__(0, "a"), "more than once"),
    "vocab not an object": ("gru", None, setm("vocab", "abc"), "vocabulary must be a JSON object"),
    "vocab missing": ("gru", None, setm("vocab", DELETE), "vocab"),
    "lone surrogate token": ("gru", None, lambda m: m["vocab"]["tokens"].__setitem__(0, "\ud800"), "surrogate"),
    "cell transformer": ("lstm", None, setm("model.cell", "transformer"), "cell must be one of"),
    "hidden -1": ("lstm", None, setm("model.hidden", -1), "hidden must be at least 1"),
    "layers as string": ("lstm", None, setm("model.layers", "1"), "model config: layers must be a whole number, not str '1'"),
    "layers true": ("lstm", None, setm("model.layers", True), "model config: layers must be a whole number, not bool True"),
    "hidden float": ("lstm", None, setm("model.hidden", 16.0), "model config: hidden must be a whole number, not float 16.0"),
    "dropout null": ("lstm", None, setm("model.dropout", None), "model config: dropout must be given, not None"),
    "unknown model option": ("lstm", None, setm("model.heads", 8), "heads"),
    "bidirectional": ("rnn", None, setm("model.bidirectional", True), "bidirectional"),
    "a trillion layers": ("rnn", None, setm("model.layers", 10**12), "layers"),
    "model not an object": ("rnn", None, setm("model", [1, 2]), "model config missing"),
    "no format tag": ("rnn", None, setm("format", DELETE), "missing format tag"),
    "optimizer state mismatch": ("gru", None, setm("train.optimizer", "sgd"), "optimizer state does not match"),
    "optimizer slot missing": ("gru", dela("opt/v.out.c"), None, "optimizer state does not match"),
    "optimizer slot wrong shape": ("gru", seta("opt/m.out.V", lambda a: a[1:]), None, "wrong shape"),
    "optimizer slot NaN": ("lstm", seta("opt/m.out.V", poison), None, "finite floats"),
    "optimizer slot uint8": ("lstm", seta("opt/v.out.c", lambda a: a.astype(np.uint8)), None, "finite floats"),
    "optimizer step NaN": ("lstm", seta("opt/t", lambda a: np.array(np.nan)), None, "non-negative integer"),
    "optimizer step bool": ("lstm", seta("opt/t", lambda a: np.array(True)), None, "non-negative integer"),
    "optimizer step negative": ("lstm", seta("opt/t", lambda a: np.array(-3)), None, "non-negative integer"),
    "unknown optimizer": ("lstm", None, setm("train.optimizer", "lion"), "optimizer"),
    "unknown schedule": ("lstm", None, setm("train.lr_schedule", "zigzag"), "schedule"),
    "batch float": ("lstm", None, setm("train.batch", 1.5), "train config: batch must be a whole number, not float 1.5"),
    "negative seed": ("lstm", None, setm("train.seed", -1), "seed"),
    "train a list": ("lstm", None, setm("train", []), "train config: TrainConfig is not a JSON object"),
    "unknown train option": ("lstm", None, setm("train.momentum", 0.9), "train config: unknown option(s) ['momentum']"),
    "state NaN": ("lstm", seta("state/0/1", poison), None, "finite floats"),
    "state int": ("gru", seta("state/0/0", lambda a: a.astype(np.int32)), None, "finite floats"),
    "state wrong width": ("gru", seta("state/0/0", lambda a: np.zeros((4, 17), np.float32)), None, "wrong shape"),
    "state incomplete": ("lstm", dela("state/0/1"), None, "incomplete"),
    "step negative": ("rnn", None, setm("step", -1), "step must be"),
    "step true": ("rnn", None, setm("step", True), "step must be"),
    "epoch string": ("rnn", None, setm("epoch", "x"), "epoch"),
    "metrics a list": ("rnn", None, setm("metrics", [1]), "metrics"),
    "val loss string": ("rnn", None, setm("metrics.val_loss", "low"), "metrics"),
    "corpus a string": ("rnn", None, setm("corpus", "x"), "corpus"),
    "rng garbage": ("rnn", None, setm("rng", "x"), "rng"),
    "rng missing": ("rnn", None, setm("rng", DELETE), "rng"),
    "rng of another generator": ("rnn", None, setm("rng.bit_generator", "MT19937"), "rng"),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC))
def test_well_formed_but_wrong_checkpoints_are_refused(lab, case):
    cell, arrays_fn, meta_fn, words = SEMANTIC[case]
    path = edit(lab, cell, arrays_fn, meta_fn)
    assert container.load(path)  # the container is fine: this is bundle's business
    msg = refused(path)
    assert msg is not None, f"{case}: loaded"
    assert msg.startswith(f"{path}: not a valid charrnn model") and words in msg, msg
    FUZZED["well-formed but wrong (named cases)"] += 1


# Values hypothesis plants in the meta: types, signs, sizes and strings that do not belong.
META_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 2, 15, 16, 1.5, -0.0, 1e308, 10**12, 2**63, 2**64, "", "x",
                     "lstm", "gru", "transformer", "adam", "sgd", "char", "word", "\ud800", "a\nb", [], {}, [1],
                     [16, 48], {"a": 1}, ["a", "a"]]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
)
ARRAY_NAMES = ["junk", "param/x", "opt/x", "state/0/0", "state/0/1", "state/9/0", "param/embed.W", "opt/t",
               "param/layers.0.bh", "param/layers.1.Wx", "opt/m.out.V"]


def json_paths(obj, prefix=()):
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from json_paths(v, prefix + (i,))


def mutate_semantics(arrays, meta, draw):
    for _ in range(draw(st.integers(1, 3), label="n_ops")):
        op = draw(st.sampled_from(["set", "set", "delete", "add", "drop_array", "add_array", "reshape",
                                   "dtype", "poison", "scalar"]), label="op")
        FUZZED[f"well-formed but wrong, fuzzed ({op})"] += 1
        if op in ("set", "delete", "add"):
            path = draw(st.sampled_from(sorted(json_paths(meta), key=repr)), label="path")
            *parents, last = path
            node = meta
            for p in parents:
                node = node[p]
            if op == "set":
                node[last] = draw(META_VALUES, label="value")
            elif op == "delete" and isinstance(node, dict):
                del node[last]
            elif isinstance(node, dict):
                node[draw(st.sampled_from(["extra", "embed", "hidden", "unk", "kind", "rng"]))] = draw(META_VALUES)
        else:
            name = draw(st.sampled_from(sorted(arrays)), label="name") if arrays else None
            if op == "drop_array" and name:
                del arrays[name]
            elif op == "add_array":
                arrays[draw(st.sampled_from(ARRAY_NAMES))] = draw(st.sampled_from(
                    [np.zeros(3, np.float32), np.zeros((4, 16), np.float32), np.array(7), np.zeros((0, 16))]))
            elif op == "reshape" and name:
                a = arrays[name]
                arrays[name] = draw(st.sampled_from([a.reshape(-1), np.ascontiguousarray(a.T), a[None],
                                                     a.reshape(-1)[:0], a.reshape(-1)[: max(a.size - 1, 0)]]))
            elif op == "dtype" and name:
                with np.errstate(invalid="ignore"):  # NaN or inf cast to an integer: garbage is fine
                    arrays[name] = arrays[name].astype(draw(st.sampled_from(
                        ["<f8", "<f4", "<i4", "<i8", "<u8", "|u1", "|b1"])))
            elif op == "poison" and name and arrays[name].size and arrays[name].dtype.kind == "f":
                a = arrays[name].copy()
                a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3e38]))
                arrays[name] = a
            elif op == "scalar" and name:
                arrays[name] = np.asarray(arrays[name].reshape(-1)[:1].sum())


@settings(max_examples=500, deadline=datetime.timedelta(seconds=10), database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_models_are_refused_or_work(lab, data):
    cell = data.draw(st.sampled_from(sorted(lab.ckpts)), label="cell")
    arrays, meta = container.load(write(lab.root / "files" / f"src-{cell}.ckpt", lab.ckpts[cell]))
    meta = copy.deepcopy(meta)
    mutate_semantics(arrays, meta, data.draw)
    path = lab.root / "files" / "fuzzed.ckpt"
    try:
        container.save(path, arrays, meta)
    except ValueError:
        return  # save itself refuses (e.g. an unsupported dtype): nothing to load
    b = outcome(path)
    if b is not None:
        FUZZED["well-formed but wrong, fuzzed: loaded (then used)"] += 1
        assert_usable(b, path, lab)


def test_a_model_whose_finite_weights_overflow_is_refused_by_sample_in_one_line(lab):
    """Finite weights load; a relu RNN with Wh[0,0] = 3e38 then overflows within a few steps."""
    arrays, meta = container.load(write(lab.root / "files" / "src-rnn.ckpt", lab.ckpts["rnn"]))
    arrays["param/layers.0.Wh"] = arrays["param/layers.0.Wh"].copy()
    arrays["param/layers.0.Wh"].flat[0] = 3e38
    path = lab.root / "files" / "overflowing.ckpt"
    container.save(path, arrays, meta)
    assert outcome(path) is not None
    r = invoke("sample", "--checkpoint", path, "--length", 50, "--seed", 0, work=lab.root)
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.stderr == "charrnn: error: cannot sample: the model's output is not finite (its weights overflow)\n"


# --------------------------------------------------------------------------- huge declared sizes

PROBE = textwrap.dedent("""
    import json, resource, sys, time, tracemalloc
    limit = 3 << 30  # a lying size that were believed would die here instead of taking the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from charrnn.checkpoint import schema
    from charrnn.errors import CheckpointError
    schema.load(sys.argv[1])  # warm up: imports and first-use caches are not the file's doing
    for path in sys.argv[2:]:
        tracemalloc.start()
        t = time.perf_counter()
        try:
            schema.load(path)
            result = "loaded"
        except CheckpointError as e:
            result = str(e)
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(json.dumps({"path": path, "peak": peak, "seconds": seconds, "result": result}), flush=True)
""")


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


def test_huge_declared_sizes_cost_no_memory_or_time(lab):
    cases = huge_cases(lab)
    paths = {name: write(lab.path("huge"), blob) for name, blob in cases.items()}
    warm = write(lab.path("warm"), lab.ckpts["gru"])
    env = env_for(lab.root)
    r = subprocess.run([sys.executable, "-c", PROBE, str(warm), *map(str, paths.values())], env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rows = {json.loads(line)["path"]: json.loads(line) for line in r.stdout.decode().splitlines()}
    for name, path in paths.items():
        row = rows[str(path)]
        size = path.stat().st_size
        print(f"  {name:38s} file {size:6d} B  peak {row['peak']:8d} B ({row['peak'] / size:4.1f}x)  "
              f"{row['seconds'] * 1e3:6.1f} ms  {row['result'][len(str(path)) + 2:][:70]}")
        assert row["peak"] < 3 * size + (256 << 10), (name, row)
        assert row["seconds"] < 2.0, (name, row)
        assert row["result"] != "loaded" or name.startswith("batch"), (name, row)
        assert "\n" not in row["result"]
    FUZZED["huge declared sizes"] += len(paths)


# --------------------------------------------------------------------------- no pickle, ever

class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def planted_pickles(lab):
    """Pickles where a checkpoint should be, written before pickle is fenced off."""
    header, payload = split(lab.ckpts["lstm"])
    blob = pickle.dumps(Evil())
    files = {}
    with open(lab.path("npy"), "wb") as f:
        np.save(f, np.array([Evil(), None], dtype=object), allow_pickle=True)
        files["np.save object array"] = Path(f.name)
    files["raw pickle"] = write(lab.path("raw"), blob)
    files["pickle as the header"] = write(lab.path("m"), resign(None, payload, raw=blob))
    obj = copy.deepcopy(header)
    obj["__metadata__"]["manifest"] = blob.decode("latin-1")  # pickle where the manifest's JSON should be
    files["pickle as the manifest"] = write(lab.path("j"), resign(obj, payload))
    obj = copy.deepcopy(header)  # a signed object array over pickle bytes, appended as an array
    end = len(payload)
    obj["param/~pickle"] = {"dtype": "O", "shape": [1], "data_offsets": [end, end + len(blob)]}
    files["signed object array"] = write(lab.path("o"), resign(obj, payload + blob))
    obj["param/~pickle"].update(dtype="U8", shape=[len(blob)])  # the same bytes as a plain uint8 array
    files["pickle bytes as uint8 array"] = write(lab.path("u"), resign(obj, payload + blob))
    return files


def test_planted_pickles_in_format_2_files_are_never_unpickled_by_any_command(lab, request, monkeypatch):
    files = planted_pickles(lab)
    request.getfixturevalue("pickle_forbidden")
    monkeypatch.chdir(lab.root)
    for name, path in files.items():
        assert refused(path), name
        for args in (["sample", "--checkpoint", path, "--length", 5], ["info", path],
                     ["eval", lab.root / "corpus.txt", "--checkpoint", path]):
            r = invoke(*args, work=lab.root)
            assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (name, args, r.output, r.exception)
            assert r.stderr.count("\n") == 1 and r.stderr.startswith("charrnn: error: "), r.stderr
    assert not (lab.root / "PWNED").exists()
    FUZZED["planted pickles"] += len(files)


# --------------------------------------------------------------------------- the CLI on hostile files

def test_cli_refuses_hostile_checkpoints_with_one_line(lab):
    data = lab.ckpts["lstm"]
    files = {
        "truncated": write(lab.path("cli"), data[: len(data) // 2]),
        "bit flip": write(lab.path("cli"), next(flips(data, [len(data) * 4 + 3]))[1]),
        "zero bytes": write(lab.path("cli"), b""),
        "a trillion layers": edit(lab, "rnn", None, setm("model.layers", 10**12)),
        "surrogate vocabulary": edit(lab, "gru", None, lambda m: m["vocab"]["tokens"].__setitem__(1, "\udfff")),
        "hidden as a float": edit(lab, "gru", None, setm("model.hidden", 16.0)),
        "lying shape": write(lab.path("cli"), huge_cases(lab)["shape 2**31 x 2**31"]),
    }
    with open(lab.path("cli-npy"), "wb") as f:
        np.save(f, np.array([Evil()], dtype=object), allow_pickle=True)
        files["np.save pickle"] = Path(f.name)
    for name, path in files.items():
        r = charrnn("sample", "--checkpoint", path, "--length", 20, work=lab.root)
        assert_one_line_failure(r, contains=str(path))
    # fields only `info` and a resumed run read
    for name, meta_fn, command in [
        ("metrics a list", setm("metrics", [1]), "info"),
        ("epoch a string", setm("epoch", "x"), "info"),
        ("corpus a string", setm("corpus", "x"), "info"),
        ("rng garbage", setm("rng", "x"), "train"),
        ("schedule unknown", setm("train.lr_schedule", "zigzag"), "train"),
    ]:
        path = edit(lab, "rnn", None, meta_fn)
        args = (["info", path] if command == "info" else
                ["train", "corpus.txt", "--resume", path, "--steps", 5, "--name", "cli-resume", "--force", "--quiet"])
        assert_one_line_failure(charrnn(*args, work=lab.root), contains="not a valid charrnn model")
    opt = edit(lab, "lstm", seta("opt/v.out.c", lambda a: a.astype(np.uint8)))
    assert_one_line_failure(charrnn("train", "corpus.txt", "--resume", opt, "--steps", 5, "--name", "cli-r2",
                                    "--force", "--quiet", work=lab.root), contains="optimizer state")
    assert not (lab.root / "PWNED").exists()


# =========================================================================== hostile text


def corpus_run(work, name, data, *extra, steps=4, input=None):
    """`charrnn train` on ``data`` (bytes, written to NAME.txt): the result and the run directory."""
    path = work / f"{name}.txt"
    path.write_bytes(data)
    r = charrnn("train", path.name, "--steps", steps, "--eval-every", steps, *SMALL, *extra, work=work)
    return r, work / "checkpoints" / name


def trained(work, name, data, *extra, steps=4):
    r, run = corpus_run(work, name, data, *extra, steps=steps)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b"", r.stderr  # --quiet: nothing on stderr
    return run


def sample_text(run, work, length=300, seed=1, *extra):
    r = invoke("sample", "--checkpoint", run, "--length", length, "--seed", seed, *extra, work=work)
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    return r.stdout_bytes.decode("utf-8")  # strict: sampled bytes must be UTF-8


def eval_json(run, work, file, *extra):
    r = invoke("eval", work / file, "--checkpoint", run, "--json", *extra, work=work)
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    out = json.loads(r.stdout)
    assert math.isfinite(out["loss"]) and out["tokens"] > 0
    return out


def info_json(run, work):
    r = invoke("info", run, "--json", work=work)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def round_trip(work, run, text, eval_file=None):
    """What was learned comes back exactly: vocabulary = the text's alphabet, samples decode as
    UTF-8 and stay inside it, eval scores the text."""
    alphabet = set(text)
    b = schema.load(str(run / "latest.ckpt"))
    assert set(b.vocab.tokens) == alphabet and len(b.vocab.tokens) == len(alphabet)
    assert info_json(run, work)["vocab_size"] == len(alphabet)
    sampled = sample_text(run, work)
    assert len(sampled) == 300 and set(sampled) <= alphabet, set(sampled) - alphabet
    eval_json(run, work, eval_file or f"{run.name}.txt")
    return b, sampled


@pytest.fixture
def work(tmp_path):
    (tmp_path / "cache").mkdir()
    return tmp_path


WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "nunc", "vel", "x", "yz"]


def words_text(n, seed=0, sep=" "):
    r = np.random.default_rng(seed)
    return sep.join(WORDS[i] for i in r.integers(0, len(WORDS), n))


def test_invalid_utf8_is_refused_with_its_offset_or_replaced(work):
    good = (words_text(60) + "\n").encode()
    data = good + b"caf\xc3 \xff\xfe end\n" + good
    r, run = corpus_run(work, "bad", data)
    assert_one_line_failure(r, contains=f"invalid UTF-8 at byte offset {len(good) + 3}")
    assert not run.exists()
    run = trained(work, "bad", data, "--errors", "replace", "--force")
    text = data.decode("utf-8", "replace")
    assert "\ufffd" in text
    b = schema.load(str(run / "latest.ckpt"))
    assert set(b.vocab.tokens) == set(text)
    assert set(sample_text(run, work)) <= set(text)
    eval_json(run, work, "bad.txt", "--errors", "replace")
    r = charrnn("eval", "bad.txt", "--checkpoint", run, work=work)  # strict by default
    assert_one_line_failure(r, contains="invalid UTF-8 at byte offset")
    for tail in (b"\xe4\xb8", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"):
        # cut multi-byte char, overlong, encoded surrogate, above U+10FFFF, stray continuation
        r, _ = corpus_run(work, "tail", good + tail)
        assert_one_line_failure(r, contains=f"invalid UTF-8 at byte offset {len(good)}")


def test_nul_bytes_are_refused_in_both_error_modes(work):
    data = (words_text(60) + "\n").encode()
    for errors in ("strict", "replace"):
        r, run = corpus_run(work, "nul", data + b"\0" + data, "--errors", errors)
        assert_one_line_failure(r, contains=f"NUL byte at byte offset {len(data)}")
        assert not run.exists()
    r = charrnn("train", "-", "--name", "stdin-nul", "--steps", 2, *SMALL, input=b"\0" * 500, work=work)
    assert_one_line_failure(r, contains="NUL byte at byte offset 0")


def test_a_vocabulary_of_6000_cjk_symbols(work):
    cps = [chr(0x4E00 + i) for i in range(6000)]
    lines = ["".join(cps[i:i + 60]) for i in range(0, 6000, 60)]
    text = ("\n".join(lines) + "\n") * 2
    run = trained(work, "cjk", text.encode("utf-8"), steps=3)
    b, sampled = round_trip(work, run, text)
    assert len(b.vocab) == 6001 and b.cfg.vocab_size == 6001
    assert b.params["out.V"].shape == (16, 6001)
    assert any("\u4e00" <= c for c in sampled)


@pytest.mark.slow
def test_one_line_of_several_megabytes(work):
    text = words_text(800_000, seed=3)  # ~3.6 MB, no newline anywhere
    assert len(text) > 3_000_000 and "\n" not in text
    (work / "slice.txt").write_text(text[:5000], encoding="utf-8")
    run = trained(work, "long", text.encode(), steps=3)
    b, sampled = round_trip(work, run, text, eval_file="slice.txt")
    assert "\n" not in b.vocab.tokens and "\n" not in sampled  # no line break to start after, and none made up


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_one_repeated_character_trains_without_nan(work, cell):
    run = trained(work, "aaa", b"a" * 3000, *CELLS[cell], "--log", "train.jsonl", steps=6)
    events = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 6
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["grad_norm"]) for e in steps), steps
    assert all(e["loss"] == 0.0 for e in steps)  # one symbol: certainty, exactly
    b = schema.load(str(run / "latest.ckpt"))  # would refuse NaN parameters
    assert b.vocab.tokens == ("a",)
    assert info_json(run, work)["val_loss"] == 0.0
    assert sample_text(run, work, length=50) == "a" * 50
    assert sample_text(run, work, 20, 1, "--prime", "aa") == "a" * 22
    scored = eval_json(run, work, "aaa.txt")
    assert (scored["loss"], scored["bits_per_char"], scored["perplexity"]) == (0.0, 0.0, 1.0)


def test_emoji_and_other_characters_outside_the_bmp(work):
    r = np.random.default_rng(5)
    symbols = ["\U0001F600", "\U0001F40D", "\U0001D11E", "\U00010348", "\U0001F469\u200D\U0001F4BB",
               "\U0001F44D\U0001F3FD", "\U0010FFFD", "\U00020000", "ok", " ", "\n"]
    text = "".join(symbols[i] for i in r.integers(0, len(symbols), 3000))
    run = trained(work, "emoji", text.encode("utf-8"))
    b, sampled = round_trip(work, run, text)
    assert all(len(t) == 1 for t in b.vocab.tokens)  # one token per code point, never a surrogate half
    assert max(map(ord, b.vocab.tokens)) == 0x10FFFD
    assert not any(0xD800 <= ord(c) < 0xE000 for c in sampled)
    primed = sample_text(run, work, 10, 1, "--prime", "\U0001F40D\U0001D11E")
    assert primed.startswith("\U0001F40D\U0001D11E") and set(primed) <= set(text)


def test_mixed_crlf_and_lf_are_kept(work):
    lines = [words_text(5, seed=i) for i in range(300)]
    text = "".join(line + ("\r\n" if i % 3 else "\n") for i, line in enumerate(lines)) + "a lone\rcarriage\n"
    run = trained(work, "crlf", text.encode())
    b, _ = round_trip(work, run, text)
    assert "\r" in b.vocab.tokens and "\n" in b.vocab.tokens


def test_a_byte_order_mark_is_dropped_never_learned(work):
    text = "\n".join(words_text(6, seed=i) for i in range(300)) + "\n"
    data = b"\xef\xbb\xbf" + text.encode()
    run = trained(work, "bom", data)
    b, sampled = round_trip(work, run, text)
    assert "\ufeff" not in b.vocab.tokens and "\ufeff" not in sampled
    assert eval_json(run, work, "bom.txt")["tokens"] <= len(text) - 1  # the BOM is not scored
    # several files, each with its BOM (two notepad files, say): one corpus, still no U+FEFF
    (work / "a.txt").write_bytes(data)
    (work / "b.txt").write_bytes(data)
    r = charrnn("train", "a.txt", "b.txt", "--name", "both", "--steps", 2, "--eval-every", 2, *SMALL, work=work)
    assert r.returncode == 0, r.stderr.decode()
    assert "\ufeff" not in schema.load(str(work / "checkpoints" / "both" / "latest.ckpt")).vocab.tokens
    # a BOM-only file is an empty corpus: refused with one line
    r, _ = corpus_run(work, "only-bom", b"\xef\xbb\xbf")
    assert_one_line_failure(r, contains="empty")


def shared_head(name, n_bytes):
    path = CORPORA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with open(path, "rb") as f:
        head = f.read(n_bytes)
    return head[: len(head.decode("utf-8", "ignore").encode("utf-8"))] if not head.startswith(b"\xef\xbb\xbf") \
        else b"\xef\xbb\xbf" + head[3:][: len(head[3:].decode("utf-8", "ignore").encode("utf-8"))]


def test_shared_war_and_peace_bom_and_crlf(work):
    data = shared_head("warpeace.txt", 200_000)
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    run = trained(work, "warpeace", data, steps=3)
    text = data[3:].decode("utf-8").replace("\r\n", "\n")  # read as "\n", as every line break
    b, sampled = round_trip(work, run, text)
    assert "\r" not in b.vocab.tokens and "\ufeff" not in b.vocab.tokens and "\ufeff" not in sampled


def test_shared_tang_poetry_large_vocabulary(work):
    data = shared_head("tang_poetry_zh.txt", 400_000)
    run = trained(work, "tang", data, steps=3)
    text = data.decode("utf-8").removeprefix("\ufeff")
    b, _ = round_trip(work, run, text)
    assert len(b.vocab) > 2000
