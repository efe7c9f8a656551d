"""What the store tests share: an independent writer of format 1's layout (the files charrnn
0.1.0 wrote, which store/legacy.py reads), crafted files signed correctly so that only their
structure can fail, and the check every refusal must pass: one clean CheckpointError line."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from charrnn.errors import CheckpointError
from charrnn.store.container import load
from charrnn.store.legacy import FORMAT_VERSION, MAGIC


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


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()  # bit-exact, NaN payloads included


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".tmp-")]
