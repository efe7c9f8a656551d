"""Checkpoints that lie and are signed so that the checksum holds. Manifests of real checkpoints
(tests/hostile_support.py's lab) with one lie each, re-signed with a correct sha256 so they
reach the layout checks: wrong fields, dropped, renamed and aliased entries, a wrong metadata,
version or manifest, payloads that are not the declared layout, a lying header length,
duplicate keys, deep nesting, bad padding. Each is refused with one line or, if it loads, is a
model that works. And declared sizes that would take the machine (shapes of 2**47, offsets of
2**62, a trillion layers) cost neither memory beyond a few times the file's size nor time."""
import datetime
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.store import container

from .hostile_support import (FUZZED, LENGTH, assert_usable, env_for, head_size, huge_cases, outcome, resign,
                              split, write)
from .hostile_support import lab  # noqa: F401  (a fixture)

# --------------------------------------------------------------------------- manifests that lie

HUGE = [2**31, 2**32, 2**40, 2**47, 2**48, 2**62, 2**63, 2**64, 10**30]
LYING_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 63, 64, -64, 1.0, 0.5, "0", "", [], {}, [0], [-1], [1.5],
                     [2**31, 2**31], [0, 2**62], [2] * 33, [1] * 32, "|O", "<f2", ">f4", "<c8", "|V8", "<U1",
                     "<M8", "O", "|b1", "|u1", "<i8", "<f8", *HUGE]),
    st.integers(), st.lists(st.integers(-2, 2**40), max_size=4), st.text(max_size=4),
)


def lie(data, draw):
    """One lie in a real checkpoint's safetensors header, re-signed so the checksum holds.
    Returns the file's bytes."""
    header, payload = split(data)
    names = sorted(k for k in header if k != "__metadata__")
    name = draw(st.sampled_from(names), label="array")
    entry, meta = header[name], header["__metadata__"]
    op = draw(st.sampled_from(["field", "consistent", "drop_field", "extra_field", "rename", "drop_entry",
                               "alias", "meta_field", "meta_type", "whole", "extra_meta", "drop_meta", "version",
                               "manifest", "payload", "length", "duplicate_key", "deep", "padding"]), label="op")
    FUZZED[f"re-signed lying header ({op})"] += 1
    if op == "field":
        entry[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(LYING_VALUES)
    elif op == "consistent":  # shape and offsets agree with each other, not with the file
        shape = draw(st.lists(st.sampled_from([0, 1, 2, 3, 15, 16, 48, 2**20, 2**31, 2**40]), max_size=4))
        code = draw(st.sampled_from(sorted(container.DTYPES)))
        start = entry["data_offsets"][0]
        entry.update(shape=shape, dtype=code,
                     data_offsets=[start, start + math.prod(shape) * np.dtype(container.DTYPES[code]).itemsize])
    elif op == "drop_field":
        del entry[draw(st.sampled_from(sorted(entry)))]
    elif op == "extra_field":
        entry[draw(st.sampled_from(["pickle", "order", "fortran_order", "descr"]))] = draw(LYING_VALUES)
    elif op == "rename":
        header[draw(st.sampled_from(["param/out.W", "param/" + name, "opt/" + name, "state/1/0", "x", "~",
                                     "__metadata__"]))] = header.pop(name)
    elif op == "drop_entry":
        del header[name]
    elif op == "alias":  # a second name over the same bytes
        header[name + "2"] = dict(entry)
    elif op == "meta_field":
        meta[draw(st.sampled_from(["format", "version", "manifest", "sha256"]))] = draw(LYING_VALUES)
    elif op == "meta_type":
        header["__metadata__"] = draw(st.sampled_from([[], "x", 1, None, [[1]], {}]))
    elif op == "whole":  # a header of the wrong type altogether
        header = draw(st.sampled_from([[], [header], "header", 1, 1.5, None, True]))
    elif op == "extra_meta":
        meta[draw(st.sampled_from(["pickle", "extra", "Format"]))] = draw(st.sampled_from(["1", "", "x" * 70]))
    elif op == "drop_meta":
        del meta[draw(st.sampled_from(["format", "version", "manifest"]))]
    elif op == "version":
        meta["version"] = draw(st.sampled_from(["0", "1", "3", "255", "2.0", " 2", "+2", "02", "٢"]))
    elif op == "manifest":  # the manifest text: not JSON, not an object, not canonical
        meta["manifest"] = draw(st.sampled_from(["", "[", "[]", "1", "null", '{"a":NaN}', '{"a":1, "b":2}',
                                                 meta["manifest"] + " ", meta["manifest"][:-1]]))
    elif op == "payload":  # the signature covers data that is not the declared layout
        cut = draw(st.integers(1, len(payload)))
        payload = draw(st.sampled_from([payload[:-cut], payload + bytes(cut), payload[cut:]]))
    elif op == "length":  # the header length lies (no signature can cover that)
        good = resign(header, payload)
        length = draw(st.sampled_from([0, 1, 2**64 - 1, 2**63, 2**32, len(good), len(good) - LENGTH.size + 1,
                                       LENGTH.unpack_from(good)[0] - 64, LENGTH.unpack_from(good)[0] + 64]))
        return LENGTH.pack(length) + good[LENGTH.size:]
    elif op == "duplicate_key":  # JSON with a key twice: the last one would win in json.loads
        raw = container.canonical_json(split(resign(header, payload))[0])
        raw = raw[:-1] + b',' + json.dumps(name).encode() + b':' + json.dumps(entry).encode() + b'}'
        return resign(None, payload, raw=raw)
    elif op == "deep":  # nesting deep enough to overflow a recursive parser
        depth = draw(st.sampled_from([1000, 100_000]))
        raw = b'{"__metadata__":' + b"[" * depth + b"]" * depth + b'}'
        return resign(None, payload, raw=raw)
    elif op == "padding":  # the padding is not spaces, or the header is not ASCII
        good = bytearray(resign(header, payload))
        at = draw(st.integers(LENGTH.size, head_size(good) - 1))
        good[at] = draw(st.sampled_from([0, 9, 10, 0xC3, 0x80]))
        return bytes(good)
    return resign(header, payload)


@settings(max_examples=800, deadline=datetime.timedelta(seconds=5), database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_lying_manifests_are_refused_or_harmless(lab, data):
    cell = data.draw(st.sampled_from(sorted(lab.ckpts)), label="cell")
    path = write(lab.root / "files" / "lie.ckpt", lie(lab.ckpts[cell], data.draw))
    b = outcome(path)
    if b is not None:
        assert_usable(b, path, lab)


# --------------------------------------------------------------------------- huge declared sizes

PROBE = textwrap.dedent("""
    import json, resource, sys, time, tracemalloc
    limit = 3 << 30  # a lying size that were believed would die here instead of taking the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from charrnn.checkpoint import schema
    from charrnn.errors import CheckpointError
    schema.load(sys.argv[1])  # warm up: imports and first-use caches are not the file's doing
    for path in sys.argv[2:]:
        tracemalloc.start()
        t = time.perf_counter()
        try:
            schema.load(path)
            result = "loaded"
        except CheckpointError as e:
            result = str(e)
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(json.dumps({"path": path, "peak": peak, "seconds": seconds, "result": result}), flush=True)
""")


def test_huge_declared_sizes_cost_no_memory_or_time(lab):
    cases = huge_cases(lab)
    paths = {name: write(lab.path("huge"), blob) for name, blob in cases.items()}
    warm = write(lab.path("warm"), lab.ckpts["gru"])
    env = env_for(lab.root)
    r = subprocess.run([sys.executable, "-c", PROBE, str(warm), *map(str, paths.values())], env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    rows = {json.loads(line)["path"]: json.loads(line) for line in r.stdout.decode().splitlines()}
    for name, path in paths.items():
        row = rows[str(path)]
        size = path.stat().st_size
        print(f"  {name:38s} file {size:6d} B  peak {row['peak']:8d} B ({row['peak'] / size:4.1f}x)  "
              f"{row['seconds'] * 1e3:6.1f} ms  {row['result'][len(str(path)) + 2:][:70]}")
        assert row["peak"] < 3 * size + (256 << 10), (name, row)
        assert row["seconds"] < 2.0, (name, row)
        assert row["result"] != "loaded" or name.startswith("batch"), (name, row)
        assert "\n" not in row["result"]
    FUZZED["huge declared sizes"] += len(paths)
