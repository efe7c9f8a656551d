"""Checkpoint files: safetensors files with charrnn's manifest and checksum, written atomically
and read by a validating reader of our own (no pickle anywhere).

Format 2 is a valid safetensors file (the field's format for tensors: the `safetensors`
package, and every tool built on it, reads our weights without charrnn)::

    8 bytes   little-endian uint64 n, the header's length
    n bytes   the header: canonical JSON (sorted keys, no whitespace, ASCII), then spaces so
              that the data starts at a multiple of 64 bytes
    the data  every array's bytes, contiguous, by (itemsize descending, name), so each is
              aligned for its dtype; nothing after the last

    header = {"__metadata__": {"format": "charrnn", "version": "2", "manifest": <canonical
              JSON of the meta>, "sha256": <hex>},
              <name>: {"dtype": "F32", "shape": [...], "data_offsets": [start, end]}, ...}

``sha256`` is taken over the canonical header without the sha256 entry, then the data.
Since the header must be stored exactly in canonical form, with its padding, any changed,
missing or extra byte is found. The reader checks the size, the header length (at most
MAX_HEADER), strict JSON without duplicate keys, every key, the dtype allow-list, every
shape and offset against the file's size, the canonical form and the checksum before it
decodes a single array; every problem is one line. It never calls the safetensors package:
that reader has no checksum, takes duplicate keys and maps files (a file truncated under it
ends the process with SIGBUS). Files of format 1 (charrnn 0.1.0) start with MAGIC and are
read by store/legacy.py.

Writes are atomic (store/atomic.py): temp file, fsync, ``os.replace``, fsync of the directory.
Run directories (latest, best and periodic files, the lock) are store/rundir.py.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import stat
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

from charrnn.errors import CheckpointError
from charrnn.store import atomic, legacy
from charrnn.store.reading import MAGIC, canonical_json, check_checksum, decode_array, is_size, shape_problem, strict_json

FORMAT = "charrnn"
FORMAT_VERSION = 2
ALIGN = 64
MAX_HEADER = 32 << 20  # a 60k-word vocabulary is ~1 MB of header; parsing JSON costs 10-30x its size
# safetensors' dtype codes and the little-endian numpy dtypes they are; nothing else is decoded
DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U32": "<u4", "U64": "<u8", "U8": "|u1",
          "BOOL": "|b1"}
CODES = {v: k for k, v in DTYPES.items()}

_N = struct.Struct("<Q")
_META_KEYS = frozenset({"format", "version", "manifest", "sha256"})
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TEMP_SUFFIX = ".ckpt.part"


def _padded(head: bytes) -> bytes:
    return head + b" " * (-(_N.size + len(head)) % ALIGN)


# ---------------------------------------------------------------- writing


def save(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Write ``arrays`` and the JSON ``meta`` to ``path`` atomically.

    Raises ValueError for unsupported dtypes or names, or meta that is not JSON (NaN and
    infinity included), and CheckpointError when the file cannot be written; a previous file
    under ``path`` is then left untouched.
    """
    path = os.fspath(path)
    prepared = _prepare_arrays(arrays)
    header: dict[str, Any] = {"__metadata__": {"format": FORMAT, "version": str(FORMAT_VERSION),
                                               "manifest": _manifest_text(meta)}}
    offset = 0
    for name, arr in prepared:
        header[name] = {"data_offsets": [offset, offset + arr.nbytes], "dtype": CODES[arr.dtype.str],
                        "shape": [int(d) for d in arr.shape]}
        offset += arr.nbytes
    hasher = hashlib.sha256(canonical_json(header))
    for _, arr in prepared:
        hasher.update(_bytes(arr))
    header["__metadata__"]["sha256"] = hasher.hexdigest()
    head = _padded(canonical_json(header))
    if len(head) > MAX_HEADER:
        raise ValueError(f"checkpoint header of {len(head):,} bytes is over the {MAX_HEADER:,}-byte limit")

    def write(f: BinaryIO) -> None:
        f.write(_N.pack(len(head)))
        f.write(head)
        for _, arr in prepared:
            f.write(_bytes(arr))

    _atomic_write(path, write)


def _bytes(arr: np.ndarray) -> memoryview:
    return memoryview(arr.reshape(-1).view(np.uint8))


def _prepare_arrays(arrays: Mapping[str, Any]) -> list[tuple[str, np.ndarray]]:
    """(name, C-contiguous little-endian array) in data order: itemsize descending, then name."""
    if not isinstance(arrays, Mapping):
        raise ValueError("checkpoint arrays must be a dict of name -> numpy array")
    for name in arrays:
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"checkpoint array names must be non-empty strings other than __metadata__, "
                             f"got {name!r}")
    prepared = [(name, _storable(name, arrays[name])) for name in arrays]
    return sorted(prepared, key=lambda t: (-t[1].itemsize, t[0]))


def _storable(name: str, value: Any) -> np.ndarray:
    """A C-contiguous little-endian copy (or view) of ``value`` in an allowed dtype."""
    arr = np.asarray(value)
    dtype = arr.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {name!r}: dtype {dtype} cannot be stored (object/structured)")
    little = dtype.newbyteorder("<")
    if little.str not in CODES:
        raise ValueError(
            f"array {name!r}: dtype {dtype} is not supported; use float32, float64, "
            "int32, int64, uint32, uint64, uint8 or bool"
        )
    return np.asarray(arr, dtype=little, order="C")  # not ascontiguousarray: it makes a 0-d array 1-d


def _manifest_text(meta: Any) -> str:
    """The meta as canonical JSON text, as it will read back."""
    if not isinstance(meta, Mapping):
        raise ValueError("checkpoint meta must be a dict")
    try:
        return canonical_json(dict(meta)).decode("ascii")
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"checkpoint meta is not JSON-serialisable (store non-finite numbers as null): {exc}"
        ) from exc


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our in-progress temp files (left behind by a crash)."""
    return atomic.is_temp(name, _TEMP_SUFFIX)


def _write_error(path: str, exc: OSError) -> CheckpointError:
    return CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}")


def _atomic_write(path: str, write) -> None:
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
    """Read and fully validate a checkpoint of either format; returns ``(arrays, meta)``.

    Every problem, expected or not, is raised as a one-line CheckpointError.
    """
    name = os.fspath(path)
    try:
        data = _read_file(name)
        if data.startswith(MAGIC):
            return legacy.decode(name, data)
        return _decode(name, data)
    except CheckpointError:
        raise
    except Exception as exc:  # the boundary: nothing else may escape (KeyboardInterrupt does)
        detail = " ".join(str(exc).split())
        raise CheckpointError(
            f"{name}: unexpected error reading checkpoint ({type(exc).__name__}: {detail})"
        ) from exc


def read_meta(path: str | os.PathLike) -> dict:
    """A checkpoint's meta from its header alone, not checked against the data's checksum: for
    choosing which file to load (schema.resolve); load() is what verifies one."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            first = f.read(_N.size)
            if first == MAGIC:
                f.seek(0)
                return legacy.read_meta(name, f, size)
            n = _header_length(name, first, size)
            header = _parse_header(name, f.read(n).rstrip(b" "))
            return _parse_manifest(name, header["__metadata__"]["manifest"])
    except CheckpointError:
        raise
    except Exception as exc:  # the boundary, as in load
        raise CheckpointError(f"{name}: cannot read checkpoint ({type(exc).__name__})") from exc


def _read_file(path: str) -> bytes:
    """The whole file, read (never mapped: a file truncated under a map kills the process)."""
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
    return CheckpointError(f"{path}: damaged checkpoint header: {detail}")


def _decode(path: str, data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    view = memoryview(data)
    n = _header_length(path, bytes(view[:_N.size]), len(data))
    raw = bytes(view[_N.size:_N.size + n])
    header = _parse_header(path, raw.rstrip(b" "))
    start = _N.size + n
    layout = _check_layout(path, header, len(data) - start)
    if raw != _padded(canonical_json(header)):
        raise _damaged(path, "not in canonical form")
    _check_checksum(path, header, view[start:])
    meta = _parse_manifest(path, header["__metadata__"]["manifest"])
    arrays = {name: decode_array(path, name, dtype, shape, view[start + s:start + e])
              for name, dtype, shape, s, e in layout}
    return arrays, meta


def _header_length(path: str, first: bytes, size: int) -> int:
    """The header length n from a file's first 8 bytes and its size, checked."""
    if size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    if size < _N.size:
        if MAGIC.startswith(first[:size]):
            raise CheckpointError(f"{path}: truncated checkpoint ({size} bytes, header incomplete)")
        raise CheckpointError(f"{path}: not a charrnn checkpoint")
    (n,) = _N.unpack(first)
    if n > MAX_HEADER:  # text, another format, or a lie: nothing charrnn writes
        raise CheckpointError(f"{path}: not a charrnn checkpoint")
    if n > size - _N.size:
        raise CheckpointError(f"{path}: truncated or damaged checkpoint (header length {n:,} is larger than the "
                              f"file, {size:,} bytes)")
    if (_N.size + n) % ALIGN:
        raise _damaged(path, f"length {n} does not start the data at a multiple of {ALIGN} bytes")
    return n


def _parse_header(path: str, body: bytes) -> dict:
    """The header's JSON object with its __metadata__ checked (the entries are _check_layout's)."""
    try:
        header = strict_json(body.decode("ascii"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not a charrnn checkpoint (its header is not ASCII JSON)") from None
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path}: not a charrnn checkpoint (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise _damaged(path, "not a JSON object")
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a charrnn checkpoint (a safetensors file without charrnn's manifest)")
    if set(meta) != _META_KEYS or not all(isinstance(v, str) for v in meta.values()):
        raise _damaged(path, "__metadata__ must hold exactly the strings " + ", ".join(sorted(_META_KEYS)))
    if not re.fullmatch(r"[1-9][0-9]{0,8}", meta["version"]) or int(meta["version"]) < 2:
        raise _damaged(path, f"format version {meta['version'][:20]!r} is not a format-2 version")
    if int(meta["version"]) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer charrnn (format {int(meta['version'])}); upgrade "
                              f"charrnn to read it")
    if not _SHA256_HEX.fullmatch(meta["sha256"]):
        raise _damaged(path, "sha256 is not a lowercase hex SHA-256 digest")
    return header


def _check_layout(path: str, header: dict, data_size: int) -> list[tuple]:
    """Every entry checked, and the arrays contiguous in data order against the real size:
    [(name, numpy dtype, shape, start, end)], before anything is allocated."""
    entries = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        short = name[:60]
        if not name or not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise _damaged(path, f"array {short!r} needs exactly data_offsets, dtype, shape")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(code, str) or code not in DTYPES:
            raise _damaged(path, f"array {short!r} has disallowed dtype {str(code)[:20]!r}")
        if shape_problem(shape):
            raise _damaged(path, f"array {short!r} {shape_problem(shape)}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(is_size(o) for o in offsets):
            raise _damaged(path, f"array {short!r} data_offsets are not two non-negative integers")
        dtype = DTYPES[code]
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        entries.append((-np.dtype(dtype).itemsize, name, dtype, tuple(shape), offsets[0], offsets[1], nbytes))
    entries.sort()
    layout, end = [], 0
    for _, name, dtype, shape, s, e, nbytes in entries:
        if s != end or e - s != nbytes:
            raise _damaged(path, f"array {name[:60]!r} lies at [{s}, {e}], not at [{end}, {end + nbytes}]")
        if e > data_size:
            raise CheckpointError(f"{path}: truncated or damaged checkpoint (array {name[:60]!r} runs past the "
                                  f"end of the file)")
        layout.append((name, dtype, shape, s, e))
        end = e
    if data_size > end:
        raise CheckpointError(f"{path}: damaged checkpoint ({data_size - end} bytes of trailing garbage)")
    return layout


def _check_checksum(path: str, header: dict, data: memoryview) -> None:
    body = dict(header, __metadata__={k: v for k, v in header["__metadata__"].items() if k != "sha256"})
    check_checksum(path, body, data, header["__metadata__"]["sha256"])


def _parse_manifest(path: str, text: str) -> dict:
    try:
        meta = strict_json(text)
    except (ValueError, RecursionError):
        raise _damaged(path, "the manifest is not valid JSON") from None
    if not isinstance(meta, dict):
        raise _damaged(path, "the manifest is not a JSON object")
    if canonical_json(meta).decode("ascii") != text:
        raise _damaged(path, "the manifest is not in canonical form")
    return meta
