"""container.save and container.load (store/container.py): every supported dtype comes back bit
for bit from either format, format 1's layout is its spec's byte for byte, save refuses what it
cannot write and leaves no file, and read_meta reads the manifest alone."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from charrnn.errors import CheckpointError
from charrnn.store.container import load, save
from charrnn.store.legacy import FORMAT_VERSION, MAGIC

from .store_support import assert_same, canon, craft, good_body_and_payload, save_v1, write_bytes


def sample_arrays():
    f32 = np.array(
        [0.0, -0.0, 1.5, np.inf, -np.inf, 1e-45, 3.4028235e38], dtype=np.float32
    )
    nan_payload = np.array([0x7FC00001, 0xFFA00000], dtype=np.uint32).view(np.float32)
    return {
        "f32": np.concatenate([f32, nan_payload]).reshape(3, 3),
        "f64": np.linspace(-1, 1, 10).reshape(2, 5),
        "i4": np.array([[-(2**31), 2**31 - 1]], dtype=np.int32),
        "i8": np.array([-(2**63), 2**63 - 1, 0], dtype=np.int64),
        "u4": np.array([0, 2**32 - 1], dtype=np.uint32),
        "u8": np.array([2**64 - 1], dtype=np.uint64),
        "u1": np.arange(256, dtype=np.uint8).reshape(16, 16),
        "b1": np.array([True, False, True]),
        "scalar": np.array(2.5, dtype=np.float64),
        "scalar_i": np.array(-3, dtype=np.int64),
        "empty": np.zeros((0,), dtype=np.float32),
        "empty2d": np.zeros((4, 0), dtype=np.int32),
    }


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("write", [save, save_v1], ids=["format 2", "format 1"])
def test_round_trip_all_dtypes_bit_exact(tmp_path, write):
    arrays = sample_arrays()
    path = tmp_path / "m.ckpt"
    write(path, arrays, {"step": 1})
    loaded, meta = load(path)
    assert sorted(loaded) == sorted(arrays)
    for name, arr in arrays.items():
        assert_same(loaded[name], arr)
        assert loaded[name].flags.writeable and loaded[name].flags.c_contiguous
    assert loaded["scalar"].shape == () and loaded["empty2d"].shape == (4, 0)
    assert meta == {"step": 1}


def test_big_endian_and_non_contiguous_inputs_are_normalised(tmp_path):
    big = np.arange(6, dtype=">f4").reshape(2, 3)
    strided = np.arange(20, dtype=np.int64)[::3]
    fortran = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    save(tmp_path / "m.ckpt", {"big": big, "strided": strided, "fortran": fortran}, {})
    loaded, _ = load(tmp_path / "m.ckpt")
    assert loaded["big"].dtype.str == "<f4"
    np.testing.assert_array_equal(loaded["big"], big)
    np.testing.assert_array_equal(loaded["strided"], strided)
    np.testing.assert_array_equal(loaded["fortran"], fortran)


def test_no_arrays_and_meta_round_trip(tmp_path):
    meta = {
        "config": {"cell": "lstm", "hidden": [128, 128], "lr": 0.002},
        "vocab": "aé\u2603\U0001f600\n\t\"\\",
        "val_loss": None,
        "ok": True,
        "big": 2**70,
        "pair": (1, 2),
        "neg_zero": -0.0,
    }
    save(tmp_path / "m.ckpt", {}, meta)
    arrays, loaded = load(tmp_path / "m.ckpt")
    assert arrays == {}
    assert loaded == {**meta, "pair": [1, 2]}


def test_layout_matches_the_spec(tmp_path):
    path = tmp_path / "m.ckpt"
    save_v1(path, {"z": np.ones(5, np.float32), "a": np.arange(3, dtype=np.uint8)}, {"k": 1})
    data = path.read_bytes()
    assert data[:8] == MAGIC
    version, length = struct.unpack_from("<IQ", data, 8)
    assert version == FORMAT_VERSION == 1
    manifest = json.loads(data[20 : 20 + length])
    assert data[20 : 20 + length] == canon(manifest)
    start = -(-(20 + length) // 64) * 64
    assert set(data[20 + length : start]) <= {0}
    assert manifest["format"] == 1 and manifest["meta"] == {"k": 1}
    assert manifest["arrays"] == {
        "a": {"dtype": "|u1", "shape": [3], "offset": 0, "nbytes": 3},
        "z": {"dtype": "<f4", "shape": [5], "offset": 64, "nbytes": 20},
    }
    payload = data[start:]
    assert len(payload) == 84
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    assert manifest["sha256"] == hashlib.sha256(canon(body) + payload).hexdigest()
    assert craft(body, payload) == data
    assert load(path)[1] == {"k": 1}


def test_crafted_helper_produces_a_loadable_file(tmp_path):
    body, payload = good_body_and_payload()
    arrays, meta = load(write_bytes(tmp_path, craft(body, payload)))
    np.testing.assert_array_equal(arrays["a"], [0, 1, 2])
    np.testing.assert_array_equal(arrays["b"], [7, -8])
    assert meta == {"kind": "test"}


# ---------------------------------------------------------------- save refusals


@pytest.mark.parametrize(
    "value",
    [
        np.array([object(), 1], dtype=object),
        np.zeros(2, dtype=[("x", "<f4"), ("y", "<i4")]),
        np.zeros(2, dtype=np.float16),
        np.zeros(2, dtype=np.int16),
        np.zeros(2, dtype=np.complex64),
        np.array(["ab"]),
        np.zeros(2, dtype="datetime64[s]"),
    ],
    ids=["object", "structured", "f2", "i2", "c8", "str", "datetime"],
)
def test_save_refuses_unsupported_dtypes(tmp_path, value):
    with pytest.raises(ValueError):
        save(tmp_path / "m.ckpt", {"x": value}, {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "meta",
    [
        {"loss": float("nan")},
        {"loss": float("inf")},
        {"nested": [1, -float("inf")]},
        {"obj": object()},
        {"arr": np.float32(1)},
        ["not", "a", "dict"],
    ],
)
def test_save_refuses_bad_meta(tmp_path, meta):
    with pytest.raises(ValueError):
        save(tmp_path / "m.ckpt", {"x": np.zeros(1)}, meta)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["", 3, None])
def test_save_refuses_bad_array_names(tmp_path, name):
    with pytest.raises(ValueError):
        save(tmp_path / "m.ckpt", {name: np.zeros(1)}, {})


def test_read_meta_reads_the_manifest_alone_and_refuses_what_is_not_a_checkpoint(tmp_path):
    from charrnn.store.container import read_meta
    path = tmp_path / "m.ckpt"
    save(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"kind": "lm", "step": 7})
    assert read_meta(path) == load(path)[1] == {"kind": "lm", "step": 7}
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the payload damaged: read_meta does not look; load does
    path.write_bytes(bytes(data))
    assert read_meta(path)["step"] == 7
    with pytest.raises(CheckpointError):
        load(path)
    (tmp_path / "t.txt").write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        read_meta(tmp_path / "t.txt")
    path.write_bytes(bytes(data[:40]))
    with pytest.raises(CheckpointError):
        read_meta(path)
