"""Tests for charrnn.store: format 1's validating reader (store/legacy.py, reached through
container.load, on files crafted here by an independent writer of its layout), atomic
writes, and run directories. Format 2, the safetensors files charrnn writes now, is
tests/test_store_format.py's; the file-level hostile suites run on it in tests/test_hostile.py."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.store import container
from charrnn.store.container import load, save
from charrnn.store.legacy import FORMAT_VERSION, MAGIC
from charrnn.store.rundir import RunDir, resolve_checkpoint
from charrnn.errors import CheckpointError

REPO_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- helpers


def canon(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def assemble(manifest_bytes: bytes, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    """An independent implementation of the container layout."""
    head = MAGIC + struct.pack("<IQ", version, len(manifest_bytes)) + manifest_bytes
    pad = -len(head) % 64
    return head + b"\0" * pad + payload


def craft(body, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    """Sign ``body`` (a manifest without sha256) correctly, so only structure can fail."""
    sha = hashlib.sha256(canon(body) + payload).hexdigest()
    return assemble(canon({**body, "sha256": sha}), payload, version)


def save_v1(path, arrays, meta) -> None:
    """A format-1 file of ``arrays`` and ``meta``, laid out as charrnn 0.1.0 wrote them."""
    prepared = [(n, np.asarray(arrays[n], dtype=np.asarray(arrays[n]).dtype.newbyteorder("<"), order="C"))
                for n in sorted(arrays)]
    table, payload = {}, b""
    for name, arr in prepared:
        offset = -(-len(payload) // 64) * 64
        payload += b"\0" * (offset - len(payload))
        table[name] = {"dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes}
        payload += arr.tobytes()
    Path(path).write_bytes(craft({"format": 1, "arrays": table, "meta": json.loads(canon(meta))}, payload))


def good_body_and_payload():
    a = np.arange(3, dtype="<f4").tobytes()
    b = np.array([7, -8], dtype="<i8").tobytes()
    body = {
        "format": 1,
        "arrays": {
            "a": {"dtype": "<f4", "shape": [3], "offset": 0, "nbytes": 12},
            "b": {"dtype": "<i8", "shape": [2], "offset": 64, "nbytes": 16},
        },
        "meta": {"kind": "test"},
    }
    return body, a + b"\0" * 52 + b


def write_bytes(tmp_path: Path, data: bytes, name: str = "x.ckpt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect_error(path, message: str | None = None, contains: str | None = None) -> str:
    with pytest.raises(CheckpointError) as info:
        load(path)
    text = str(info.value)
    assert text.isprintable(), repr(text)  # one clean line
    assert "unexpected" not in text, text  # every failure must be an explicit check
    if message is not None:
        assert text == message
    if contains is not None:
        assert contains in text, text
    return text


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


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # bit-exact, NaN payloads included


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


# ---------------------------------------------------------------- load rejections


def test_missing_file(tmp_path):
    path = tmp_path / "nope.ckpt"
    expect_error(path, f"{path}: no such checkpoint")
    nested = tmp_path / "nodir" / "x.ckpt"
    expect_error(nested, f"{nested}: no such checkpoint")


def test_directory(tmp_path):
    expect_error(tmp_path, f"{tmp_path}: is a directory, not a checkpoint file")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_unreadable(tmp_path):
    path = tmp_path / "m.ckpt"
    save(path, {"x": np.zeros(1)}, {})
    path.chmod(0)
    try:
        expect_error(path, f"{path}: cannot read checkpoint: Permission denied")
    finally:
        path.chmod(0o644)


def test_unreadable_via_permission_error(tmp_path, monkeypatch):
    path = tmp_path / "m.ckpt"
    save(path, {"x": np.zeros(1)}, {})

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(container, "open", denied, raising=False)
    expect_error(path, f"{path}: cannot read checkpoint: Permission denied")


@pytest.mark.parametrize(
    "data",
    [b"hello world, this is text", b"\x93NUMPY\x01\x00", b"CHARRNX\x00" + b"\0" * 40, b"x"],
)
def test_wrong_magic(tmp_path, data):
    path = write_bytes(tmp_path, data)
    expect_error(path, f"{path}: not a charrnn checkpoint")


def test_newer_format_version(tmp_path):
    body, payload = good_body_and_payload()
    path = write_bytes(tmp_path, craft({**body, "format": 2}, payload, version=2))
    expect_error(
        path, f"{path}: written by a newer charrnn (format 2); upgrade charrnn to read it"
    )


def test_format_version_zero(tmp_path):
    body, payload = good_body_and_payload()
    path = write_bytes(tmp_path, craft({**body, "format": 0}, payload, version=0))
    expect_error(path, f"{path}: unsupported checkpoint format version 0")


def test_empty_file(tmp_path):
    path = write_bytes(tmp_path, b"")
    expect_error(path, f"{path}: empty file, not a checkpoint")


@pytest.mark.parametrize("size", [5, 8, 12, 19])
def test_truncated_header(tmp_path, size):
    good = tmp_path / "good.ckpt"
    save_v1(good, {"x": np.zeros(3)}, {})
    path = write_bytes(tmp_path, good.read_bytes()[:size])
    expect_error(path, f"{path}: truncated checkpoint ({size} bytes, header incomplete)")


def test_truncated_payload(tmp_path):
    good = tmp_path / "good.ckpt"
    save_v1(good, {"x": np.zeros(30)}, {})
    data = good.read_bytes()
    path = write_bytes(tmp_path, data[:-1])
    expect_error(
        path,
        f"{path}: truncated or damaged checkpoint (array 'x' runs past the end of the file)",
    )


def test_manifest_length_larger_than_file(tmp_path):
    path = write_bytes(tmp_path, MAGIC + struct.pack("<IQ", 1, 2**63) + b"{}")
    expect_error(
        path,
        f"{path}: truncated or damaged checkpoint "
        f"(manifest length {2**63} is larger than the file, 22 bytes)",
    )


def test_nonzero_header_padding(tmp_path):
    good = tmp_path / "good.ckpt"
    save_v1(good, {"x": np.zeros(3)}, {})
    data = bytearray(good.read_bytes())
    length = struct.unpack_from("<Q", data, 12)[0]
    assert (20 + length) % 64, "test needs some padding"
    data[20 + length] = 1
    path = write_bytes(tmp_path, bytes(data))
    expect_error(path, f"{path}: damaged checkpoint (non-zero header padding)")


@pytest.mark.parametrize(
    "manifest, detail",
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"a":NaN}', "not valid JSON"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b"null", "not a JSON object"),
    ],
    ids=["utf8", "json", "nan", "deep", "list", "string", "null"],
)
def test_manifest_not_a_json_object(tmp_path, manifest, detail):
    path = write_bytes(tmp_path, assemble(manifest, b""))
    expect_error(path, f"{path}: damaged checkpoint manifest: {detail}")


def test_checksum_mismatch_in_payload(tmp_path):
    good = tmp_path / "good.ckpt"
    save(good, {"x": np.arange(10, dtype=np.float32)}, {"m": 1})
    data = bytearray(good.read_bytes())
    data[-3] ^= 0x10
    path = write_bytes(tmp_path, bytes(data))
    expect_error(path, f"{path}: checksum mismatch, the file is damaged")


def test_checksum_mismatch_in_manifest_meta(tmp_path):
    good = tmp_path / "good.ckpt"
    save(good, {"x": np.zeros(2)}, {"name": "alpha"})
    data = good.read_bytes().replace(b"alpha", b"alphb")
    path = write_bytes(tmp_path, data)
    expect_error(path, f"{path}: checksum mismatch, the file is damaged")


def test_trailing_garbage(tmp_path):
    good = tmp_path / "good.ckpt"
    save(good, {"x": np.zeros(2)}, {})
    path = write_bytes(tmp_path, good.read_bytes() + b"junk")
    expect_error(path, f"{path}: damaged checkpoint (4 bytes of trailing garbage)")


def test_trailing_garbage_without_arrays(tmp_path):
    good = tmp_path / "good.ckpt"
    save(good, {}, {})
    path = write_bytes(tmp_path, good.read_bytes() + b"\0" * 64)
    expect_error(path, f"{path}: damaged checkpoint (64 bytes of trailing garbage)")


def test_non_canonical_manifest_is_rejected_even_when_signed(tmp_path):
    body, payload = good_body_and_payload()
    sha = hashlib.sha256(canon(body) + payload).hexdigest()
    pretty = json.dumps({**body, "sha256": sha}, indent=1).encode()
    path = write_bytes(tmp_path, assemble(pretty, payload))
    expect_error(path, f"{path}: damaged checkpoint manifest: not in canonical form")


def _entry(**changes):
    entry = {"dtype": "<f4", "shape": [3], "offset": 0, "nbytes": 12}
    entry.update(changes)
    return entry


LYING_ARRAYS = {
    "dtype object": ({"a": _entry(dtype="|O")}, "disallowed dtype '|O'"),
    "dtype f2": ({"a": _entry(dtype="<f2")}, "disallowed dtype '<f2'"),
    "dtype big endian": ({"a": _entry(dtype=">f4")}, "disallowed dtype '>f4'"),
    "dtype numpy name": ({"a": _entry(dtype="float32")}, "disallowed dtype 'float32'"),
    "dtype not str": ({"a": _entry(dtype=4)}, "disallowed dtype 4"),
    "shape str": ({"a": _entry(shape="3")}, "shape is not a list"),
    "shape negative": ({"a": _entry(shape=[-3])}, "shape is not a list"),
    "shape float": ({"a": _entry(shape=[3.0])}, "shape is not a list"),
    "shape bool": ({"a": _entry(shape=[True, 3])}, "shape is not a list"),
    "shape null": ({"a": _entry(shape=None)}, "shape is not a list"),
    "shape too many dims": ({"a": _entry(shape=[1] * 40)}, "shape is not a list"),
    "offset str": ({"a": _entry(offset="0")}, "offset is not a non-negative integer"),
    "offset float": ({"a": _entry(offset=0.0)}, "offset is not a non-negative integer"),
    "offset negative": ({"a": _entry(offset=-64)}, "offset is not a non-negative integer"),
    "offset misaligned": ({"a": _entry(offset=4)}, "offset 4 is not 64-byte aligned"),
    "offset gap": ({"a": _entry(offset=64)}, "'a' is at offset 64, expected 0"),
    "nbytes str": ({"a": _entry(nbytes="12")}, "nbytes is not a non-negative integer"),
    "nbytes bool": ({"a": _entry(nbytes=True)}, "nbytes is not a non-negative integer"),
    "nbytes lies": ({"a": _entry(nbytes=8)}, "nbytes 8 does not match its shape"),
    "shape lies": ({"a": _entry(shape=[2, 2])}, "nbytes 12 does not match its shape"),
    "huge shape": (
        {"a": _entry(shape=[2**40, 2**40], nbytes=2**82)},
        "impossibly large shape",
    ),
    "huge empty shape": (
        {"a": _entry(shape=[0, 2**60, 2**60], nbytes=0)},
        "impossibly large shape",
    ),
    "huge digits": ({"a": _entry(shape=[10**4000], nbytes=4 * 10**4000)}, "impossibly large"),
    "missing key": (
        {"a": {"dtype": "<f4", "shape": [3], "offset": 0}},
        "needs exactly dtype, nbytes, offset, shape",
    ),
    "extra key": ({"a": _entry(fortran=True)}, "needs exactly dtype, nbytes, offset, shape"),
    "entry not object": ({"a": [0, 12]}, "needs exactly"),
    "overlap": (
        {"a": _entry(), "b": _entry(offset=0)},
        "array 'b' overlaps array 'a'",
    ),
    "unsorted layout": (
        {"a": _entry(offset=64), "b": _entry(offset=0)},
        "array 'a' is at offset 64, expected 0",
    ),
}


@pytest.mark.parametrize("arrays, detail", LYING_ARRAYS.values(), ids=LYING_ARRAYS.keys())
def test_lying_array_entries_are_rejected(tmp_path, arrays, detail):
    payload = np.arange(3, dtype="<f4").tobytes()
    body = {"format": 1, "arrays": arrays, "meta": {}}
    path = write_bytes(tmp_path, craft(body, payload))
    text = expect_error(path)
    assert text.startswith(f"{path}: damaged checkpoint manifest: "), text
    assert detail in text, text


@pytest.mark.parametrize(
    "nbytes_decl, shape",
    [(400, [100]), (2**40, [2**38]), (64 * 10**6, [16 * 10**6])],
)
def test_arrays_running_past_the_end_are_rejected_before_allocating(
    tmp_path, monkeypatch, nbytes_decl, shape
):
    body = {"format": 1, "arrays": {"a": _entry(shape=shape, nbytes=nbytes_decl)}, "meta": {}}
    path = write_bytes(tmp_path, craft(body, b"\0" * 12))

    def no_alloc(*args, **kwargs):
        raise AssertionError("allocated an array for a lying manifest")

    monkeypatch.setattr(np, "frombuffer", no_alloc)
    expect_error(
        path,
        f"{path}: truncated or damaged checkpoint (array 'a' runs past the end of the file)",
    )


def test_second_array_running_past_the_end(tmp_path):
    body, payload = good_body_and_payload()
    body["arrays"]["b"] = _entry(dtype="<i8", shape=[3], offset=64, nbytes=24)
    path = write_bytes(tmp_path, craft(body, payload))
    expect_error(path, contains="array 'b' runs past the end of the file")


@pytest.mark.parametrize(
    "change, detail",
    [
        ({"meta": [1]}, "meta is not a JSON object"),
        ({"meta": None}, "meta is not a JSON object"),
        ({"arrays": []}, "arrays is not a JSON object"),
        ({"format": True}, "format True does not match header (1)"),
        ({"format": "1"}, "format '1' does not match header (1)"),
        ({"format": 2}, "format 2 does not match header (1)"),
        ({"extra": 1}, "keys must be exactly arrays, format, meta, sha256, "
            "got ['arrays', 'extra', 'format', 'meta', 'sha256']"),
    ],
)
def test_lying_manifest_fields(tmp_path, change, detail):
    body, payload = good_body_and_payload()
    path = write_bytes(tmp_path, craft({**body, **change}, payload))
    expect_error(path, f"{path}: damaged checkpoint manifest: {detail}")


def test_missing_manifest_key(tmp_path):
    body, payload = good_body_and_payload()
    del body["meta"]
    path = write_bytes(tmp_path, craft(body, payload))
    expect_error(path, contains="sha256, got ['arrays', 'format', 'sha256']")


@pytest.mark.parametrize("sha", ["ABC", 5, None, "g" * 64])
def test_bad_sha_field(tmp_path, sha):
    body, payload = good_body_and_payload()
    path = write_bytes(tmp_path, assemble(canon({**body, "sha256": sha}), payload))
    expect_error(
        path, f"{path}: damaged checkpoint manifest: sha256 is not a lowercase hex SHA-256 digest"
    )


def test_uppercase_sha_is_a_checksum_mismatch(tmp_path):
    body, payload = good_body_and_payload()
    sha = hashlib.sha256(canon(body) + payload).hexdigest().upper()
    path = write_bytes(tmp_path, assemble(canon({**body, "sha256": sha}), payload))
    expect_error(path, contains="sha256 is not a lowercase hex")


def test_invalid_boolean_bytes(tmp_path):
    body = {
        "format": 1,
        "arrays": {"m": {"dtype": "|b1", "shape": [3], "offset": 0, "nbytes": 3}},
        "meta": {},
    }
    path = write_bytes(tmp_path, craft(body, b"\x00\x01\x02"))
    expect_error(path, f"{path}: damaged checkpoint (array 'm' has invalid booleans)")


def test_unexpected_errors_become_checkpoint_errors(tmp_path, monkeypatch):
    good = tmp_path / "good.ckpt"
    save(good, {"x": np.zeros(2)}, {})

    def boom(*args):
        raise TypeError("surprise\nsecond line")

    monkeypatch.setattr(container, "_decode", boom)
    with pytest.raises(CheckpointError) as info:
        load(good)
    assert str(info.value) == (
        f"{good}: unexpected error reading checkpoint (TypeError: surprise second line)"
    )


def test_keyboard_interrupt_is_not_swallowed(tmp_path, monkeypatch):
    good = tmp_path / "good.ckpt"
    save(good, {"x": np.zeros(2)}, {})

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(container, "_decode", interrupt)
    with pytest.raises(KeyboardInterrupt):
        load(good)


# ---------------------------------------------------------------- no pickle, ever


def plant_pickles(tmp_path: Path) -> tuple[Path, ...]:
    """An np.save object array and raw pickle streams, written before pickle is fenced off."""
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        np.save(f, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps({"W": np.zeros(3)}, protocol=pickle.HIGHEST_PROTOCOL))
    proto0 = tmp_path / "proto0.ckpt"
    proto0.write_bytes(pickle.dumps([1, 2], protocol=0))
    return path, raw, proto0


def test_planted_pickles_in_format_1_files_are_never_unpickled(tmp_path, request):
    paths = plant_pickles(tmp_path)
    request.getfixturevalue("pickle_forbidden")
    for path in paths:
        expect_error(path, f"{path}: not a charrnn checkpoint")

    # Right magic, pickle where the manifest should be.
    evil = write_bytes(tmp_path, assemble(pickle.dumps({"format": 1}), b""), "m.ckpt")
    expect_error(evil, contains="damaged checkpoint manifest")

    # A correctly signed manifest declaring an object array over pickle bytes.
    blob = pickle.dumps([object.__new__(object)])
    body = {
        "format": 1,
        "arrays": {"x": {"dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8}},
        "meta": {},
    }
    evil2 = write_bytes(tmp_path, craft(body, blob), "o.ckpt")
    expect_error(evil2, contains="disallowed dtype '|O'")


@pytest.mark.parametrize("module", ["store.container", "store.legacy", "store.reading", "store.rundir",
                                    "checkpoint.schema", "checkpoint.find"])
def test_module_source_never_touches_pickle(module):
    import importlib
    tree = ast.parse(inspect.getsource(importlib.import_module(f"charrnn.{module}")))
    forbidden_modules = {"pickle", "_pickle", "shelve", "marshal"}
    forbidden_attrs = {"load", "loads", "save", "savez", "savez_compressed", "Unpickler"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & forbidden_modules
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in forbidden_modules
        if isinstance(node, ast.Attribute) and node.attr in forbidden_attrs:
            assert isinstance(node.value, ast.Name) and node.value.id in ("json", "container", "legacy", "schema"), \
                node.attr
        if isinstance(node, ast.keyword):
            assert node.arg != "allow_pickle"


# ---------------------------------------------------------------- damage property


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


# ---------------------------------------------------------------- atomic writes


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_failed_save_leaves_old_file_untouched(tmp_path, monkeypatch, target):
    path = tmp_path / "m.ckpt"
    save(path, {"x": np.arange(5.0)}, {"v": 1})
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, target, fail)
    with pytest.raises(CheckpointError) as info:
        save(path, {"x": np.arange(500.0)}, {"v": 2})
    monkeypatch.undo()
    assert str(info.value) == f"cannot write checkpoint {path}: No space left on device"
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []
    assert load(path)[1] == {"v": 1}


def test_interrupted_save_removes_temp_and_propagates(tmp_path, monkeypatch):
    path = tmp_path / "m.ckpt"
    save(path, {"x": np.arange(5.0)}, {"v": 1})
    before = path.read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save(path, {"x": np.arange(500.0)}, {"v": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert temp_files(tmp_path) == []


def test_temp_file_naming(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.basename(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save(tmp_path / "m.ckpt", {}, {})
    (directory, name), = seen
    assert directory == str(tmp_path)
    assert name.startswith(".tmp-") and name.endswith(".ckpt.part")


def test_save_into_missing_directory(tmp_path):
    path = tmp_path / "missing" / "m.ckpt"
    with pytest.raises(CheckpointError) as info:
        save(path, {}, {})
    assert str(info.value) == f"cannot write checkpoint {path}: No such file or directory"


# ---------------------------------------------------------------- run directories


def weights(step: int) -> dict[str, np.ndarray]:
    return {"W": np.full((2, 2), step, dtype=np.float32)}


def step_of(path: str | None) -> int:
    arrays, meta = load(path)
    assert arrays["W"][0, 0] == meta["step"]
    return meta["step"]


def test_run_dir_keeps_last_three_and_tracks_best(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.latest_path() is None and run.best_path() is None
    losses = [3.0, 2.0, 2.5, 1.5, 1.7, None]
    best_so_far = float("inf")
    for step, loss in enumerate(losses, start=1):
        is_best = loss is not None and loss < best_so_far
        best_so_far = min(best_so_far, loss) if loss is not None else best_so_far
        written = run.write(weights(step * 100), {"step": step * 100}, step * 100, loss, is_best)
        assert os.path.basename(written) == (  # no validation loss, no val in the name
            f"step-{step * 100:07d}.ckpt" if loss is None else f"step-{step * 100:07d}-val-{loss:.4f}.ckpt"
        )
        assert step_of(run.latest_path()) == step * 100
    names = [os.path.basename(p) for p in run.periodic_paths()]
    assert names == [
        "step-0000400-val-1.5000.ckpt",
        "step-0000500-val-1.7000.ckpt",
        "step-0000600.ckpt",
    ]
    assert run.latest_path() == str(tmp_path / "run" / "latest.ckpt")
    assert run.best_path() == str(tmp_path / "run" / "best.ckpt")
    assert step_of(run.best_path()) == 400
    assert temp_files(tmp_path / "run") == []


def test_run_dir_custom_keep_and_best_fallback(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in range(1, 5):
        run.write(weights(step), {"step": step}, step, float("nan"), is_best=False, keep=1)
    assert [os.path.basename(p) for p in run.periodic_paths()] == ["step-0000004.ckpt"]
    assert run.best_path() == run.latest_path()
    assert step_of(run.best_path()) == 4


def test_run_dir_keeps_the_checkpoint_just_written(tmp_path):
    run = RunDir(tmp_path / "run")
    for step in (10, 20, 30):
        run.write(weights(step), {"step": step}, step, 1.0, is_best=False)
    resumed = run.write(weights(5), {"step": 5}, 5, 1.0, is_best=False)
    assert os.path.exists(resumed)
    assert len(run.periodic_paths()) == 3


def test_run_dir_latest_survives_pruning_of_its_source(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write(weights(1), {"step": 1}, 1, 1.0, is_best=True, keep=1)
    run.write(weights(2), {"step": 2}, 2, 2.0, is_best=False, keep=1)
    assert not (tmp_path / "run" / "step-0000001-val-1.0000.ckpt").exists()
    assert step_of(run.best_path()) == 1 and step_of(run.latest_path()) == 2


def test_run_dir_falls_back_to_copy_without_hard_links(tmp_path, monkeypatch):
    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    run = RunDir(tmp_path / "run")
    run.write(weights(7), {"step": 7}, 7, 0.5, is_best=True)
    assert step_of(run.latest_path()) == 7 and step_of(run.best_path()) == 7
    assert temp_files(tmp_path / "run") == []


@pytest.mark.parametrize("bad", [{"step": -1}, {"keep": 0}, {"step": 1.5}])
def test_run_dir_rejects_bad_arguments(tmp_path, bad):
    args = {"step": 1, "keep": 3, **bad}
    with pytest.raises((ValueError, TypeError)):
        RunDir(tmp_path / "run").write(weights(1), {}, args["step"], 1.0, False, keep=args["keep"])


def test_lock_refuses_a_second_holder_in_process(tmp_path):
    path = tmp_path / "run"
    with RunDir(path).lock() as run:
        assert isinstance(run, RunDir)
        assert (path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(CheckpointError) as info:
            with RunDir(path).lock():
                pass
        assert str(info.value) == (
            f"{path}: another charrnn train is already writing this run "
            f"(lock held by pid {os.getpid()})"
        )
    with RunDir(path).lock():  # released on exit
        pass


def test_lock_is_held_by_another_process_until_it_dies(tmp_path):
    path = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import sys, time
        from charrnn.store.rundir import RunDir
        with RunDir({str(path)!r}).lock():
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline().strip() == b"locked"
        with pytest.raises(CheckpointError) as info:
            with RunDir(path).lock():
                pass
        assert f"(lock held by pid {child.pid})" in str(info.value)
    finally:
        child.kill()
        child.wait()
    with RunDir(path).lock():
        pass


def test_clean_stale_temps_needs_the_lock(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    stale = [path / ".tmp-latest.ckpt-abc.ckpt.part", path / ".tmp-x.ckpt.part"]
    keep = [path / "notes.part", path / "step-0000001-val-nan.ckpt", path / ".tmp-other"]
    for p in stale + keep:
        p.write_bytes(b"partial")
    run = RunDir(path)
    with pytest.raises(RuntimeError):
        run.clean_stale_temps()
    with run.lock():
        assert run.clean_stale_temps() == sorted(str(p) for p in stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)


# ---------------------------------------------------------------- resolve_checkpoint


def make_run(root: Path, name: str, best: bool, mtime: float) -> RunDir:
    run = RunDir(root / name)
    run.write(weights(1), {"step": 1, "run": name}, 1, 1.0, is_best=best)
    os.utime(run.latest_path(), (mtime, mtime))
    return run


def test_resolve_explicit_file_and_directories(tmp_path):
    run = make_run(tmp_path, "a", best=True, mtime=time.time())
    file = run.periodic_paths()[0]
    assert resolve_checkpoint(file, str(tmp_path)) == file
    assert resolve_checkpoint(run.path, str(tmp_path)) == os.path.join(run.path, "best.ckpt")
    only_latest = make_run(tmp_path, "b", best=False, mtime=time.time())
    assert resolve_checkpoint(only_latest.path, "elsewhere") == only_latest.latest_path()


def test_resolve_explicit_errors(tmp_path):
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(str(missing), str(tmp_path))
    assert str(info.value) == f"{missing}: no such checkpoint"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(str(empty), str(tmp_path))
    assert str(info.value) == f"{empty}: no best.ckpt or latest.ckpt in this run directory"


def test_resolve_none_picks_most_recent_run(tmp_path):
    now = time.time()
    make_run(tmp_path, "old", best=True, mtime=now - 100)
    newer = make_run(tmp_path, "new", best=False, mtime=now)
    (tmp_path / "stray").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert resolve_checkpoint(None, str(tmp_path)) == newer.latest_path()
    newest = make_run(tmp_path, "newest", best=True, mtime=now + 100)
    assert resolve_checkpoint(None, str(tmp_path)) == os.path.join(newest.path, "best.ckpt")


@pytest.mark.parametrize("suffix", ["", "/"])
def test_resolve_none_with_nothing(tmp_path, suffix):
    (tmp_path / "empty-run").mkdir()
    for root in (str(tmp_path), str(tmp_path / "does-not-exist")):
        with pytest.raises(CheckpointError) as info:
            resolve_checkpoint(None, root + suffix)
        assert str(info.value) == (
            f"no checkpoint found under {root}/; train one first: charrnn train CORPUS"
        )


def test_a_lock_taken_on_a_file_its_releaser_removed_is_taken_again(tmp_path):
    """B opens .lock, A (holding it) removes it and its empty directory, B's flock then wins a
    file no longer there: B must retry, or a third trainer could lock a new file beside it."""
    run_a, run_b = RunDir(tmp_path / "r"), RunDir(tmp_path / "r")
    real_flock, raced = run_b._flock, []

    def flock_after_a_releases(fd):
        if not raced:
            raced.append(True)
            with run_a.lock():
                pass
            assert not (tmp_path / "r").exists()  # A removed the lock file and the directory
            return real_flock(fd)  # wins, on the unlinked file
        return real_flock(fd)

    (tmp_path / "r").mkdir()
    run_b._flock = flock_after_a_releases
    with run_b.lock():
        assert raced and (tmp_path / "r" / ".lock").exists()
        with pytest.raises(CheckpointError, match="another charrnn train is already writing this run"):
            with RunDir(tmp_path / "r").lock():
                pass


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
