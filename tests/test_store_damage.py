"""Damage to a small checkpoint of each format, as a property: every single bit flip and every
truncation is caught, and so is random damage (hypothesis: truncations, flips, overwrites,
insertions, appended bytes), always as one CheckpointError line. Checkpoints of trained models
are damaged the same ways, through the whole loader, in tests/test_cli_hostile_damage.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.store.container import load, save

from .store_support import assert_same, expect_error, save_v1


@pytest.fixture(scope="module", params=[save, save_v1], ids=["format 2", "format 1"])
def pristine(tmp_path_factory, request):
    """A small real checkpoint of each format, so flips land in the header, manifest and
    payload alike."""
    save = request.param
    directory = tmp_path_factory.mktemp("pristine")
    path = directory / "base.ckpt"
    arrays = {
        "W": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
        "b": np.arange(4, dtype=np.int64),
        "mask": np.array([True, False]),
        "s": np.array(0.5),
    }
    save(path, arrays, {"step": 12, "vocab": "ab\u00e9", "loss": 1.25, "best": None})
    return directory, path.read_bytes(), arrays


def assert_rejected(path: Path, data: bytes) -> None:
    # Rewrite in place: truncating to zero makes ext4 flush on close, ~100x slower.
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.write(data)
        f.truncate()
    expect_error(path)


def test_every_single_bit_flip_is_caught(pristine):
    directory, data, _ = pristine
    target = directory / "flip.ckpt"
    for bit in range(len(data) * 8):
        mutated = bytearray(data)
        mutated[bit // 8] ^= 1 << (bit % 8)
        assert_rejected(target, bytes(mutated))


def test_every_truncation_is_caught(pristine):
    directory, data, _ = pristine
    target = directory / "cut.ckpt"
    for size in range(len(data)):
        assert_rejected(target, data[:size])


def test_pristine_loads(pristine):
    directory, data, arrays = pristine
    loaded, _ = load(directory / "base.ckpt")
    for name, arr in arrays.items():
        assert_same(loaded[name], arr)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_random_damage_is_always_a_checkpoint_error(pristine, data):
    directory, original, _ = pristine
    size = len(original)
    kind = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "append"]))
    if kind == "truncate":
        mutated = original[: data.draw(st.integers(0, size - 1))]
    elif kind == "flip":
        bit = data.draw(st.integers(0, size * 8 - 1))
        buf = bytearray(original)
        buf[bit // 8] ^= 1 << (bit % 8)
        mutated = bytes(buf)
    elif kind == "overwrite":
        at = data.draw(st.integers(0, size - 1))
        chunk = data.draw(st.binary(min_size=1, max_size=32))
        mutated = original[:at] + chunk + original[at + len(chunk) :]
    elif kind == "insert":
        at = data.draw(st.integers(0, size))
        mutated = original[:at] + data.draw(st.binary(min_size=1, max_size=16)) + original[at:]
    else:
        mutated = original + data.draw(st.binary(min_size=1, max_size=64))
    if mutated == original:
        return  # an overwrite with the same bytes is no damage at all
    assert_rejected(directory / f"{kind}.ckpt", mutated)
