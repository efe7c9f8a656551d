"""Checkpoint files: the format, atomic writes and a validating reader (no pickle anywhere).

A checkpoint is one ``.ckpt`` file; all integers are little-endian::

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
module can unpickle.  Writes are atomic: temp file, fsync, ``os.replace``, fsync
of the directory.

Run directories (latest, best and periodic files, the lock) are charrnn/rundir.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import stat
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np

from charrnn.store import atomic
from charrnn.errors import CheckpointError

__all__ = [
    "ALLOWED_DTYPES",
    "FORMAT_VERSION",
    "MAGIC",
    "canonical_json",
    "is_temp_name",
    "load",
    "read_meta",
    "replicate",
    "save",
]

MAGIC = b"CHARRNN\x00"
FORMAT_VERSION = 1
ALIGN = 64
ALLOWED_DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "<u4", "<u8", "|u1", "|b1"})

_HEADER = struct.Struct("<8sIQ")
_MANIFEST_KEYS = frozenset({"format", "arrays", "meta", "sha256"})
_ARRAY_KEYS = frozenset({"dtype", "shape", "offset", "nbytes"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_MAX_NDIM = 32
_MAX_ELEMENTS = 2**48  # bound on the non-zero dims, so even empty arrays stay sane
_TEMP_SUFFIX = ".ckpt.part"


def canonical_json(obj: Any) -> bytes:
    """The one JSON encoding used for manifests and for the checksum."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _is_int(value: Any) -> bool:
    return type(value) is int  # JSON true/false are bools, not sizes


# ---------------------------------------------------------------- writing


def save(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically.

    Raises ValueError for unsupported dtypes or non-JSON (incl. NaN/inf) meta,
    and CheckpointError when the file cannot be written; a previous file under
    ``path`` is then left untouched.
    """
    path = os.fspath(path)
    prepared = _prepare_arrays(arrays)
    manifest = {
        "format": FORMAT_VERSION,
        "arrays": _layout(prepared),
        "meta": _normalise_meta(meta),
    }
    hasher = hashlib.sha256(canonical_json(manifest))
    for chunk in _payload_chunks(prepared, manifest["arrays"]):
        hasher.update(chunk)
    manifest["sha256"] = hasher.hexdigest()
    head = _header(canonical_json(manifest))

    def write(f: BinaryIO) -> None:
        f.write(head)
        for chunk in _payload_chunks(prepared, manifest["arrays"]):
            f.write(chunk)

    _atomic_write(path, write)


def _prepare_arrays(arrays: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
    if not isinstance(arrays, Mapping):
        raise ValueError("checkpoint arrays must be a dict of name -> numpy array")
    for name in arrays:
        if not isinstance(name, str) or not name:
            raise ValueError(f"checkpoint array names must be non-empty strings, got {name!r}")
    return [(name, _storable(name, arrays[name])) for name in sorted(arrays)]


def _storable(name: str, value: Any) -> np.ndarray:
    """A C-contiguous little-endian copy (or view) of ``value`` in an allowed dtype."""
    arr = np.asarray(value)
    dtype = arr.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {name!r}: dtype {dtype} cannot be stored (object/structured)")
    little = dtype.newbyteorder("<")
    if little.str not in ALLOWED_DTYPES:
        raise ValueError(
            f"array {name!r}: dtype {dtype} is not supported; use float32, float64, "
            "int32, int64, uint32, uint64, uint8 or bool"
        )
    return np.asarray(arr, dtype=little, order="C")


def _normalise_meta(meta: Any) -> dict:
    """Meta as it will read back: JSON round-tripped, so the stored text is canonical."""
    if not isinstance(meta, Mapping):
        raise ValueError("checkpoint meta must be a dict")
    try:
        text = canonical_json(dict(meta))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"checkpoint meta is not JSON-serialisable (store non-finite numbers as null): {exc}"
        ) from exc
    return json.loads(text)


def _layout(prepared: list[tuple[str, np.ndarray]]) -> dict[str, dict]:
    table, end = {}, 0
    for name, arr in prepared:
        offset = _align(end)
        table[name] = {
            "dtype": arr.dtype.str,
            "shape": [int(d) for d in arr.shape],
            "offset": offset,
            "nbytes": int(arr.nbytes),
        }
        end = offset + arr.nbytes
    return table


def _payload_chunks(prepared: list[tuple[str, np.ndarray]], table: dict) -> Iterator[bytes]:
    position = 0
    for name, arr in prepared:
        offset = table[name]["offset"]
        if offset > position:
            yield bytes(offset - position)
        data = memoryview(arr.reshape(-1).view(np.uint8))
        yield data
        position = offset + len(data)


def _header(manifest_bytes: bytes) -> bytes:
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, len(manifest_bytes)) + manifest_bytes
    return head + bytes(_align(len(head)) - len(head))


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our in-progress temp files (left behind by a crash)."""
    return atomic.is_temp(name, _TEMP_SUFFIX)


def _write_error(path: str, exc: OSError) -> CheckpointError:
    return CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}")


def _atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Write via a temp file in the same directory, then rename it onto ``path``."""
    try:
        atomic.write(path, write, _TEMP_SUFFIX)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def replicate(src: str, dst: str) -> None:
    """Atomically make ``dst`` a replica of ``src``: a hard link, else a copy."""
    tmp = atomic.temp_path(dst, _TEMP_SUFFIX)
    try:
        os.link(src, tmp)
    except OSError:
        try:
            with open(src, "rb") as source:
                _atomic_write(dst, lambda f: shutil.copyfileobj(source, f, 1 << 20))
        except OSError as exc:
            raise _write_error(dst, exc) from exc
        return
    try:
        os.replace(tmp, dst)
    except BaseException as exc:
        atomic.remove_quietly(tmp)
        if isinstance(exc, OSError):
            raise _write_error(dst, exc) from exc
        raise
    atomic.fsync_directory(os.path.dirname(os.path.abspath(dst)))


# ---------------------------------------------------------------- reading


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read and fully validate a checkpoint; returns ``(arrays, meta)``.

    Every problem, expected or not, is raised as a one-line CheckpointError.
    """
    name = os.fspath(path)
    try:
        return _decode(name, _read_file(name))
    except CheckpointError:
        raise
    except Exception as exc:  # the boundary: nothing else may escape (KeyboardInterrupt does)
        detail = " ".join(str(exc).split())
        raise CheckpointError(
            f"{name}: unexpected error reading checkpoint ({type(exc).__name__}: {detail})"
        ) from exc


def read_meta(path: str | os.PathLike) -> dict:
    """A checkpoint's meta from its header and manifest alone, not checked against the payload's
    checksum: for choosing which file to load (bundle.resolve); load() is what verifies one."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            version, length = _parse_header(name, f.read(_HEADER.size), os.fstat(f.fileno()).st_size)
            return _parse_manifest(name, f.read(length), version)["meta"]
    except CheckpointError:
        raise
    except Exception as exc:  # the boundary, as in load
        raise CheckpointError(f"{name}: cannot read checkpoint ({type(exc).__name__})") from exc


def _read_file(path: str) -> bytes:
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{path}: not a regular file, not a checkpoint")
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from None


def _damaged(path: str, detail: str) -> CheckpointError:
    return CheckpointError(f"{path}: damaged checkpoint manifest: {detail}")


def _decode(path: str, data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    view = memoryview(data)
    version, manifest_bytes, payload = _split(path, view)
    manifest = _parse_manifest(path, manifest_bytes, version)
    layout = _check_layout(path, manifest["arrays"], len(payload))
    _check_checksum(path, manifest, payload)
    if canonical_json(manifest) != manifest_bytes:
        raise _damaged(path, "not in canonical form")
    arrays = {entry[0]: _decode_array(path, entry, payload) for entry in layout}
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
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer charrnn (format {version}); upgrade charrnn to read it"
        )
    if version < 1:
        raise CheckpointError(f"{path}: unsupported checkpoint format version {version}")
    if length > size - _HEADER.size:
        raise CheckpointError(
            f"{path}: truncated or damaged checkpoint "
            f"(manifest length {length} is larger than the file, {size} bytes)"
        )
    return version, length


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


def _parse_manifest(path: str, raw: bytes, version: int) -> dict:
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
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
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_NDIM
        or not all(_is_int(d) and d >= 0 for d in shape)
    ):
        raise _damaged(path, f"array {name!r} shape is not a list of non-negative integers")
    for key, value in (("offset", offset), ("nbytes", nbytes)):
        if not _is_int(value) or value < 0:
            raise _damaged(path, f"array {name!r} {key} is not a non-negative integer")
    if offset % ALIGN:
        raise _damaged(path, f"array {name!r} offset {offset} is not {ALIGN}-byte aligned")
    if math.prod(max(d, 1) for d in shape) > _MAX_ELEMENTS:
        raise _damaged(path, f"array {name!r} declares an impossibly large shape")
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes != expected:
        raise _damaged(path, f"array {name!r} nbytes {nbytes} does not match its shape")
    return dtype, tuple(shape), offset, nbytes


def _check_checksum(path: str, manifest: dict, payload: memoryview) -> None:
    body = {key: value for key, value in manifest.items() if key != "sha256"}
    hasher = hashlib.sha256(canonical_json(body))
    hasher.update(payload)
    if hasher.hexdigest() != manifest["sha256"]:
        raise CheckpointError(f"{path}: checksum mismatch, the file is damaged")


def _decode_array(path: str, entry: tuple, payload: memoryview) -> np.ndarray:
    name, dtype, shape, offset, nbytes = entry
    raw = payload[offset : offset + nbytes]
    if dtype == "|b1" and nbytes and np.frombuffer(raw, dtype=np.uint8).max() > 1:
        raise CheckpointError(f"{path}: damaged checkpoint (array {name!r} has invalid booleans)")
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
