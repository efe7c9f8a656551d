"""Format 1 of the checkpoint file (charrnn up to 0.1.0): its validating reader, kept so that
every checkpoint written before still loads. New files are format 2 (store/container.py,
which sends a file here when it starts with MAGIC). No pickle anywhere.

A format-1 checkpoint is one ``.ckpt`` file; all integers are little-endian::

    offset 0   8 bytes   magic b"CHARRNN\\x00"
    offset 8   uint32    format version (FORMAT_VERSION)
    offset 12  uint64    manifest length M
    offset 20  M bytes   manifest: canonical UTF-8 JSON object
               zero padding up to a 64-byte boundary (= payload start)
               payload: the arrays in sorted name order, each at a 64-byte aligned
               offset, zero padding between them; the file ends after the last one

The manifest is ``{"format": 1, "arrays": {name: {"dtype", "shape", "offset",
"nbytes"}}, "meta": {...}, "sha256": hex}`` with offsets relative to the payload
start.  ``sha256`` is taken over the canonical JSON of the manifest without its
``sha256`` key followed by the payload bytes.  Because the manifest must also be
stored in canonical form and the header padding must be zero, any changed,
missing or extra byte is detected.

Arrays are decoded with ``np.frombuffer`` on an allow-listed dtype only, after
every declared size has been checked against the file size; nothing in this
module can unpickle.
"""

from __future__ import annotations

import re
import struct
from typing import Any, BinaryIO

import numpy as np

from charrnn.errors import CheckpointError
from charrnn.store.reading import MAGIC, canonical_json, check_checksum, decode_array, shape_problem, strict_json

FORMAT_VERSION = 1
ALIGN = 64
ALLOWED_DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "<u4", "<u8", "|u1", "|b1"})

_HEADER = struct.Struct("<8sIQ")
_MANIFEST_KEYS = frozenset({"format", "arrays", "meta", "sha256"})
_ARRAY_KEYS = frozenset({"dtype", "shape", "offset", "nbytes"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _is_int(value: Any) -> bool:
    return type(value) is int  # JSON true/false are bools, not sizes


# ---------------------------------------------------------------- reading


def read_meta(path: str, f: BinaryIO, size: int) -> dict:
    """The meta of a format-1 file open at its start, from its header and manifest alone."""
    version, length = _parse_header(path, f.read(_HEADER.size), size)
    return _parse_manifest(path, f.read(length), version)["meta"]


def _damaged(path: str, detail: str) -> CheckpointError:
    return CheckpointError(f"{path}: damaged checkpoint manifest: {detail}")


def decode(path: str, data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    view = memoryview(data)
    version, manifest_bytes, payload = _split(path, view)
    manifest = _parse_manifest(path, manifest_bytes, version)
    layout = _check_layout(path, manifest["arrays"], len(payload))
    check_checksum(path, {k: v for k, v in manifest.items() if k != "sha256"}, payload, manifest["sha256"])
    if canonical_json(manifest) != manifest_bytes:
        raise _damaged(path, "not in canonical form")
    arrays = {name: decode_array(path, name, dtype, shape, payload[offset:offset + nbytes])
              for name, dtype, shape, offset, nbytes in layout}
    return arrays, manifest["meta"]


def _split(path: str, data: memoryview) -> tuple[int, bytes, memoryview]:
    """Check the header; return (version, manifest bytes, payload view)."""
    size = len(data)
    version, length = _parse_header(path, bytes(data[: _HEADER.size]), size)
    manifest_end = _HEADER.size + length
    payload_start = _align(manifest_end)
    if payload_start > size:
        raise CheckpointError(f"{path}: truncated checkpoint (ends inside the header padding)")
    if any(data[manifest_end:payload_start]):
        raise CheckpointError(f"{path}: damaged checkpoint (non-zero header padding)")
    return version, bytes(data[_HEADER.size : manifest_end]), data[payload_start:]


def _parse_header(path: str, head: bytes, size: int) -> tuple[int, int]:
    """(format version, manifest length) from a file's first _HEADER.size bytes and its size."""
    if not MAGIC.startswith(head[: len(MAGIC)]):
        raise CheckpointError(f"{path}: not a charrnn checkpoint")
    if size < _HEADER.size:
        raise CheckpointError(f"{path}: truncated checkpoint ({size} bytes, header incomplete)")
    _, version, length = _HEADER.unpack(head)
    if version > FORMAT_VERSION:  # format 2 is safetensors, never under this magic
        raise CheckpointError(f"{path}: written by a newer charrnn (format {version}); upgrade charrnn to read it")
    if version < 1:
        raise CheckpointError(f"{path}: unsupported checkpoint format version {version}")
    if length > size - _HEADER.size:
        raise CheckpointError(
            f"{path}: truncated or damaged checkpoint "
            f"(manifest length {length} is larger than the file, {size} bytes)"
        )
    return version, length


def _parse_manifest(path: str, raw: bytes, version: int) -> dict:
    try:
        manifest = strict_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _damaged(path, "not UTF-8") from None
    except (ValueError, RecursionError):
        raise _damaged(path, "not valid JSON") from None
    if not isinstance(manifest, dict):
        raise _damaged(path, "not a JSON object")
    if set(manifest) != _MANIFEST_KEYS:
        keys = ", ".join(sorted(_MANIFEST_KEYS))
        raise _damaged(path, f"keys must be exactly {keys}, got {sorted(manifest)!r}")
    if not _is_int(manifest["format"]) or manifest["format"] != version:
        raise _damaged(path, f"format {manifest['format']!r} does not match header ({version})")
    sha = manifest["sha256"]
    if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
        raise _damaged(path, "sha256 is not a lowercase hex SHA-256 digest")
    if not isinstance(manifest["meta"], dict):
        raise _damaged(path, "meta is not a JSON object")
    if not isinstance(manifest["arrays"], dict):
        raise _damaged(path, "arrays is not a JSON object")
    return manifest


def _check_layout(path: str, arrays: dict, payload_size: int) -> list[tuple]:
    """Validate every entry and the contiguous sorted layout against the real size."""
    layout, end, previous = [], 0, None
    for name in sorted(arrays):
        dtype, shape, offset, nbytes = _check_entry(path, name, arrays[name])
        if offset < end:
            raise _damaged(path, f"array {name!r} overlaps array {previous!r}")
        if offset != _align(end):
            raise _damaged(path, f"array {name!r} is at offset {offset}, expected {_align(end)}")
        if offset + nbytes > payload_size:
            raise CheckpointError(
                f"{path}: truncated or damaged checkpoint "
                f"(array {name!r} runs past the end of the file)"
            )
        layout.append((name, dtype, shape, offset, nbytes))
        end, previous = offset + nbytes, name
    if payload_size > end:
        raise CheckpointError(
            f"{path}: damaged checkpoint ({payload_size - end} bytes of trailing garbage)"
        )
    return layout


def _check_entry(path: str, name: str, entry: Any) -> tuple[str, tuple, int, int]:
    if not isinstance(entry, dict) or set(entry) != _ARRAY_KEYS:
        raise _damaged(path, f"array {name!r} needs exactly dtype, nbytes, offset, shape")
    dtype, shape = entry["dtype"], entry["shape"]
    offset, nbytes = entry["offset"], entry["nbytes"]
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise _damaged(path, f"array {name!r} has disallowed dtype {dtype!r}")
    if shape_problem(shape):
        raise _damaged(path, f"array {name!r} {shape_problem(shape)}")
    for key, value in (("offset", offset), ("nbytes", nbytes)):
        if not _is_int(value) or value < 0:
            raise _damaged(path, f"array {name!r} {key} is not a non-negative integer")
    if offset % ALIGN:
        raise _damaged(path, f"array {name!r} offset {offset} is not {ALIGN}-byte aligned")
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes != expected:
        raise _damaged(path, f"array {name!r} nbytes {nbytes} does not match its shape")
    return dtype, tuple(shape), offset, nbytes
