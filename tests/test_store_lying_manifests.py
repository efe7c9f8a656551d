"""Format 1 manifests that lie but are signed with a correct sha256, so they pass the checksum
and reach store/legacy.py's layout checks: array entries with a wrong dtype, shape, offset or
size (refused before anything is allocated), manifest fields of the wrong type or missing, a
malformed sha256, invalid booleans. Format 2's re-signed lies are tests/test_store_format.py's."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from .store_support import assemble, canon, craft, expect_error, good_body_and_payload, write_bytes


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
