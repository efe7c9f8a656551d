"""What both checkpoint formats' readers share (container.py: format 2; legacy.py: format 1):
the one JSON encoding, strict JSON, the bounds on a declared array, the checksum, and the
decoding of an array from checked bytes. No pickle anywhere."""
import hashlib
import json
import math
from typing import Any

import numpy as np

from charrnn.errors import CheckpointError

MAGIC = b"CHARRNN\x00"  # format 1's first bytes (format 2 is safetensors, never these)
MAX_NDIM = 32
MAX_ELEMENTS = 2**48  # bound on the non-zero dims, so even empty arrays stay sane


def canonical_json(obj: Any) -> bytes:
    """The one JSON encoding of headers and manifests, and of what the checksum covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _no_duplicates(pairs: list) -> dict:
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


def strict_json(text: str) -> Any:
    """JSON refusing duplicate keys and NaN/Infinity (ValueError)."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def is_size(value: Any) -> bool:
    return type(value) is int and value >= 0  # JSON true/false are bools, not sizes


def shape_problem(shape: Any) -> str | None:
    """What is wrong with a declared shape (a list of at most MAX_NDIM sizes whose non-zero dims
    multiply to at most MAX_ELEMENTS), or None."""
    if not (isinstance(shape, list) and len(shape) <= MAX_NDIM and all(is_size(d) for d in shape)):
        return "shape is not a list of non-negative integers"
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        return "declares an impossibly large shape"
    return None


def check_checksum(path: str, covered: Any, data: memoryview, digest: str) -> None:
    """CheckpointError unless sha256(canonical JSON of ``covered``, then ``data``) is ``digest``."""
    hasher = hashlib.sha256(canonical_json(covered))
    hasher.update(data)
    if hasher.hexdigest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch, the file is damaged")


def decode_array(path: str, name: str, dtype: str, shape: tuple, raw: memoryview) -> np.ndarray:
    """An array of an allow-listed little-endian dtype from exactly its bytes, copied."""
    if dtype == "|b1" and len(raw) and np.frombuffer(raw, dtype=np.uint8).max() > 1:
        raise CheckpointError(f"{path}: damaged checkpoint (array {name[:60]!r} has invalid booleans)")
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
