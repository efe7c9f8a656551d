"""Damaged checkpoints through the FULL loader `schema.load` (container, then the model schema):
real checkpoints of a trained lstm, gru and relu rnn (tests/hostile_support.py's lab) cut at
every offset and with every bit of their header and manifest flipped, bits flipped all over
them, and random byte damage of every kind (hypothesis: truncations, flips, overwrites,
insertions, deletions, splices of two checkpoints, zeroed and swapped blocks). Each is refused
with one CheckpointError line; the undamaged ones load and work."""
import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.checkpoint import schema
from charrnn.store import container
from charrnn.errors import CheckpointError

from .hostile_support import FUZZED, assert_usable, flips, head_size, outcome, refused, resign, split, write
from .hostile_support import lab  # noqa: F401  (a fixture)

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
