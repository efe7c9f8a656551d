"""Format 2 of the checkpoint file: a safetensors file (store/container.py).

Any tool that reads safetensors reads charrnn's weights (the `safetensors` package here,
which installs with the test extra); charrnn's own reader checks what that one does not:
the checksum, the canonical header, duplicate keys, the exact layout. Old files (format 1)
still load: crafted ones in tests/test_store_round_trip.py, test_store_load_refusals.py and
test_store_lying_manifests.py, ones an earlier charrnn wrote in tests/test_store_legacy.py.
"""
import hashlib
import json
import struct

import numpy as np
import pytest

from charrnn.errors import CheckpointError
from charrnn.checkpoint import schema
from charrnn.store import container
from charrnn.store.container import load, read_meta, save

N = struct.Struct("<Q")


def arrays():
    r = np.random.default_rng(0)
    return {"param/layers.0.Wx": r.standard_normal((5, 8)).astype(np.float32),
            "param/out.c": np.arange(3, dtype=np.float32), "opt/t": np.array(7, dtype=np.int64),
            "state/0/0": np.zeros((0, 4), np.float32), "mask": np.array([True, False]),
            "w64": np.linspace(0, 1, 3)}


def parts(data):
    n = N.unpack_from(data)[0]
    return n, json.loads(data[8:8 + n]), data[8 + n:]


def sign(header, data, pad=True):
    """Bytes of a format-2 file whose checksum is right for ``header`` and ``data``."""
    meta = {k: v for k, v in header["__metadata__"].items() if k != "sha256"}
    h = hashlib.sha256(container.canonical_json(dict(header, __metadata__=meta)) + data).hexdigest()
    head = container.canonical_json(dict(header, __metadata__=dict(meta, sha256=h)))
    head += b" " * ((-(8 + len(head)) % 64) if pad else 0)
    return N.pack(len(head)) + head + data


def test_the_layout_is_safetensors_with_charrnns_manifest_and_checksum(tmp_path):
    path = tmp_path / "m.ckpt"
    save(path, arrays(), {"step": 3, "vocab": ["é", "\n"]})
    blob = path.read_bytes()
    n, header, data = parts(blob)
    assert (8 + n) % 64 == 0 and blob[8:8 + n].rstrip(b" ") == container.canonical_json(header)
    meta = header.pop("__metadata__")
    assert set(meta) == {"format", "version", "manifest", "sha256"}
    assert meta["format"] == "charrnn" and meta["version"] == "2"
    assert json.loads(meta["manifest"]) == {"step": 3, "vocab": ["é", "\n"]}
    order = sorted(header, key=lambda k: header[k]["data_offsets"])
    assert order == ["opt/t", "w64", "param/layers.0.Wx", "param/out.c", "state/0/0", "mask"]  # 8-byte first
    assert header["param/layers.0.Wx"] == {"dtype": "F32", "shape": [5, 8], "data_offsets": [32, 192]}
    assert header[order[-1]]["data_offsets"][1] == len(data)  # contiguous, nothing after the last
    body = dict(parts(blob)[1])
    body["__metadata__"] = {k: v for k, v in body["__metadata__"].items() if k != "sha256"}
    assert meta["sha256"] == hashlib.sha256(container.canonical_json(body) + data).hexdigest()


def test_the_safetensors_package_reads_every_array_with_its_name(tmp_path):
    st = pytest.importorskip("safetensors")
    from safetensors.numpy import load_file
    path = tmp_path / "m.ckpt"
    a = arrays()
    save(path, a, {"step": 3})
    theirs = load_file(str(path))
    assert set(theirs) == set(a)
    for k, v in a.items():
        assert theirs[k].dtype == v.dtype and theirs[k].shape == v.shape and np.array_equal(theirs[k], v), k
    with st.safe_open(str(path), framework="np") as f:
        assert json.loads(f.metadata()["manifest"]) == {"step": 3}


def test_a_trained_checkpoint_opens_in_safetensors_with_the_documented_names(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    from click.testing import CliRunner
    from safetensors.numpy import load_file

    from charrnn.cli import cli
    from .cli_support import SMALL, make_corpus
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    make_corpus(tmp_path / "notes.txt")
    assert CliRunner().invoke(cli, ["train", "notes.txt", "--steps", "2", *SMALL]).exit_code == 0
    path = tmp_path / "checkpoints" / "notes" / "latest.ckpt"
    weights = load_file(str(path))
    ck = schema.load(str(path))
    assert {k for k in weights if k.startswith("param/")} == {f"param/{k}" for k in ck.params}
    assert {"param/layers.0.Wx", "param/layers.0.Wh", "param/layers.0.b", "param/out.V", "param/out.c"} <= set(weights)
    for k, v in ck.params.items():
        assert np.array_equal(weights[f"param/{k}"], v)


def test_read_meta_reads_the_header_alone(tmp_path):
    path = tmp_path / "m.ckpt"
    save(path, arrays(), {"kind": "lm", "step": 9})
    assert read_meta(path) == {"kind": "lm", "step": 9}
    assert read_meta("tests/fixtures/legacy-lm.ckpt")["step"] == 10  # format 1 too


def expect(path, message):
    with pytest.raises(CheckpointError) as e:
        load(path)
    assert str(e.value) == f"{path}: {message}"


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.ckpt"
    save(path, {"a": np.arange(3, dtype=np.float32), "b": np.array([1, 2], np.int64)}, {"k": 1})
    return path.read_bytes()


def test_a_safetensors_file_that_is_not_charrnns_is_named_so(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "other.safetensors"
    path.write_bytes(st.save({"w": np.zeros(3, np.float32)}))
    expect(path, "not a charrnn checkpoint (a safetensors file without charrnn's manifest)")


def test_a_newer_format_is_refused_with_its_version(tmp_path, good):
    _, header, data = parts(good)
    header["__metadata__"]["version"] = "3"
    (tmp_path / "x.ckpt").write_bytes(sign(header, data))
    expect(tmp_path / "x.ckpt", "written by a newer charrnn (format 3); upgrade charrnn to read it")


@pytest.mark.parametrize("change, message", [
    (lambda h: h["a"].update(dtype="F16"), "array 'a' has disallowed dtype 'F16'"),
    (lambda h: h["a"].update(data_offsets=[8, 20]), "array 'a' lies at [8, 20], not at [16, 28]"),
    (lambda h: h["b"].update(shape=[3]), "array 'b' lies at [0, 16], not at [0, 24]"),
    (lambda h: h["a"].update(pickle=True), "array 'a' needs exactly data_offsets, dtype, shape"),
    (lambda h: h["__metadata__"].update(version="02"), "format version '02' is not a format-2 version"),
    (lambda h: h["__metadata__"].update(manifest='{"k": 1}'), "the manifest is not in canonical form"),
    (lambda h: h["__metadata__"].update(manifest="[1]"), "the manifest is not a JSON object"),
], ids=["dtype", "overlap", "shape", "extra key", "version", "manifest spaced", "manifest list"])
def test_lies_in_a_re_signed_header_are_refused(tmp_path, good, change, message):
    _, header, data = parts(good)
    change(header)
    path = tmp_path / "x.ckpt"
    path.write_bytes(sign(header, data))
    expect(path, f"damaged checkpoint header: {message}")


def test_duplicate_keys_are_refused_though_json_would_keep_the_last(tmp_path, good):
    n, header, data = parts(good)
    raw = container.canonical_json(header)[:-1] + b',"a":{"data_offsets":[16,28],"dtype":"I32","shape":[3]}}'
    raw += b" " * (-(8 + len(raw)) % 64)
    (tmp_path / "x.ckpt").write_bytes(N.pack(len(raw)) + raw + data)
    expect(tmp_path / "x.ckpt", "not a charrnn checkpoint (its header is not valid JSON)")


def test_a_header_without_padding_or_with_other_padding_is_refused(tmp_path, good):
    _, header, data = parts(good)
    (tmp_path / "x.ckpt").write_bytes(sign(header, data, pad=False))
    with pytest.raises(CheckpointError):
        load(tmp_path / "x.ckpt")
    blob = bytearray(good)
    blob[N.unpack_from(good)[0] + 7] = ord("\t")  # the last padding byte, a tab
    (tmp_path / "y.ckpt").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError):
        load(tmp_path / "y.ckpt")


def test_a_header_over_the_limit_is_refused_before_it_is_read(tmp_path, good):
    (tmp_path / "x.ckpt").write_bytes(N.pack(container.MAX_HEADER + 8) + good[8:])
    expect(tmp_path / "x.ckpt", "not a charrnn checkpoint")
    (tmp_path / "y.ckpt").write_bytes(N.pack(len(good)) + good[8:])
    expect(tmp_path / "y.ckpt", f"truncated or damaged checkpoint (header length {len(good):,} is larger than the "
                                f"file, {len(good):,} bytes)")


def test_names_that_safetensors_cannot_read_back_are_refused_on_save(tmp_path):
    with pytest.raises(ValueError, match="__metadata__"):
        save(tmp_path / "x.ckpt", {"__metadata__": np.zeros(1)}, {})
