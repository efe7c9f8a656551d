"""What container.load refuses, and how: a path that is missing, unreadable or a directory, a
wrong magic, an unknown format version, an empty or truncated file, non-zero header padding, a
manifest that is not canonical JSON, a checksum that does not match, trailing bytes. Each is
one CheckpointError line naming the file; an error nobody foresaw becomes one too, and a
KeyboardInterrupt still goes through. Format 1 files are crafted by tests/store_support.py."""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np
import pytest

from charrnn.errors import CheckpointError
from charrnn.store import container
from charrnn.store.container import load, save
from charrnn.store.legacy import MAGIC

from .store_support import assemble, canon, craft, expect_error, good_body_and_payload, save_v1, write_bytes


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
