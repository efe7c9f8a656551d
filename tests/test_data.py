"""Tests for charrnn.data and charrnn.default_corpus: reading, caching, batching."""

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import charrnn.data as data_mod
from charrnn.data import (
    Corpus,
    Streams,
    default_cache_dir,
    load_corpus,
    read_sources,
    split_train_val,
)
from charrnn.default_corpus import (
    STDLIB_MODULES,
    build_default_corpus,
    default_corpus_dir,
)
from charrnn.errors import CorpusError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


# ----------------------------------------------------------------------------- reading


def test_read_sources_concatenates_in_order_with_stdin(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one\r\n")
    (tmp_path / "b.txt").write_bytes("twö".encode())
    stdin = io.BytesIO(b"-in-")
    got = read_sources([str(tmp_path / "b.txt"), "-", str(tmp_path / "a.txt")], stdin=stdin)
    assert got == "twö".encode() + b"-in-" + b"one\r\n"


def test_read_sources_errors(tmp_path):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(CorpusError) as e:
        read_sources([missing])
    assert str(e.value) == f"{missing}: no such file"
    with pytest.raises(CorpusError) as e:
        read_sources([str(tmp_path)])
    assert str(e.value) == f"{tmp_path}: is a directory"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_read_sources_permission_denied(tmp_path):
    p = tmp_path / "secret.txt"
    p.write_bytes(b"x")
    p.chmod(0)
    with pytest.raises(CorpusError) as e:
        read_sources([str(p)])
    assert str(e.value) == f"{p}: permission denied"


# ----------------------------------------------------------------------------- loading


def test_load_corpus_char_level_basics():
    raw = b"\xef\xbb\xbfhi \xf0\x9f\x98\x80\r\nhi\r\n"
    c = load_corpus(raw)
    assert isinstance(c, Corpus)
    assert c.sha256 == hashlib.sha256(raw).hexdigest()
    assert c.n_chars == len("hi 😀\r\nhi\r\n") == 10
    assert c.vocab.tokens == ("\n", "\r", " ", "h", "i", "😀")
    assert c.tokens.dtype == np.int32 and c.tokens.ndim == 1
    assert c.tokens.tolist() == [3, 4, 2, 5, 1, 0, 3, 4, 1, 0]
    assert c.vocab.decode(c.tokens) == "hi 😀\r\nhi\r\n"


@pytest.mark.parametrize("raw", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("level", ["char", "word"])
def test_empty_corpus(raw, level, tmp_path):
    with pytest.raises(CorpusError) as e:
        load_corpus(raw, level=level, cache_dir=str(tmp_path))
    assert str(e.value) == "the corpus is empty"


def test_load_corpus_errors_and_replace():
    with pytest.raises(CorpusError, match=r"^invalid UTF-8 at byte offset 5;"):
        load_corpus(b"\xef\xbb\xbfab\xffcd")
    c = load_corpus(b"ab\xffcd", errors="replace")
    assert c.vocab.decode(c.tokens) == "ab\ufffdcd"
    with pytest.raises(CorpusError, match=r"^NUL byte at byte offset 1:"):
        load_corpus(b"a\0b", errors="replace")


def test_chunked_loading_gives_exact_offsets_and_same_tokens(monkeypatch):
    text = "héllo 中文 😀 wörld\r\n" * 50
    whole = load_corpus(text.encode())
    monkeypatch.setattr(data_mod, "CHUNK_BYTES", 7)
    chunked = load_corpus(text.encode())
    assert chunked.vocab == whole.vocab
    assert np.array_equal(chunked.tokens, whole.tokens)
    assert chunked.n_chars == len(text)
    bad = text.encode() + b"\xc3(" + b"tail" * 10
    with pytest.raises(CorpusError, match=rf"byte offset {len(text.encode())};"):
        load_corpus(bad)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda t: "\0" not in t and not t.startswith("\ufeff")))
def test_load_corpus_round_trip(text):
    for level in ("char", "word"):
        c = load_corpus(text.encode(), level=level)
        assert c.vocab.decode(c.tokens) == text
        assert c.n_chars == len(text)


def test_word_level_max_vocab():
    c = load_corpus(b"the cat the dog, the end.\n", level="word", max_vocab=2)
    assert c.vocab.tokens == (" ", "the", "\ufffd") and c.vocab.unk == 2
    assert c.vocab.decode(c.tokens) == "the \ufffd the \ufffd\ufffd the \ufffd\ufffd\ufffd"
    with pytest.raises(CorpusError, match="--max-vocab applies only to --level word"):
        load_corpus(b"abc", level="char", max_vocab=2)


# ----------------------------------------------------------------------------- cache


def _fail(*args, **kwargs):
    raise AssertionError("encoded again instead of using the cache")


@pytest.mark.parametrize("level", ["char", "word"])
def test_cache_second_load_skips_encoding(level, tmp_path, monkeypatch):
    raw = "Zwei Zeilen\r\nmit Ümlauten 😀\r\n".encode() * 20
    first = load_corpus(raw, level=level, cache_dir=str(tmp_path))
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2 and names[0].endswith(".json") and names[1].endswith(".tokens.int32")
    assert os.path.getsize(tmp_path / names[1]) == 4 * len(first.tokens)
    monkeypatch.setattr(data_mod, "_encode_chars", _fail)
    monkeypatch.setattr(data_mod, "_encode_words", _fail)
    second = load_corpus(raw, level=level, cache_dir=str(tmp_path))
    assert isinstance(second.tokens, np.memmap)
    assert np.array_equal(second.tokens, first.tokens)
    assert second.vocab == first.vocab
    assert (second.sha256, second.n_chars) == (first.sha256, first.n_chars)
    # other bytes or other options are other cache entries
    with pytest.raises(AssertionError):
        load_corpus(raw + b"x", level=level, cache_dir=str(tmp_path))
    with pytest.raises(AssertionError):
        load_corpus(raw, level=level, errors="replace", cache_dir=str(tmp_path))


@pytest.mark.parametrize(
    "damage",
    [
        lambda base: (base.parent / (base.name + ".json")).write_text("{not json"),
        lambda base: (base.parent / (base.name + ".json")).write_bytes(b"\xff\xfe"),
        lambda base: (base.parent / (base.name + ".json")).unlink(),
        lambda base: (base.parent / (base.name + ".tokens.int32")).unlink(),
        lambda base: (base.parent / (base.name + ".tokens.int32")).write_bytes(b"\x01\x02\x03"),
        # right size, ids out of range
        lambda base: (base.parent / (base.name + ".tokens.int32")).write_bytes(
            np.full(4 * 20 * 27, 9999, "<i4").tobytes()[: os.path.getsize(str(base) + ".tokens.int32")]
        ),
    ],
)
def test_damaged_cache_is_rebuilt(damage, tmp_path):
    raw = "Zwei Zeilen\r\nmit Ümlauten 😀\r\n".encode() * 20
    first = load_corpus(raw, cache_dir=str(tmp_path))
    expected = np.array(first.tokens)  # a copy: the damage below rewrites the mapped file
    (json_name,) = [n for n in os.listdir(tmp_path) if n.endswith(".json")]
    base = tmp_path / json_name[: -len(".json")]
    damage(base)
    again = load_corpus(raw, cache_dir=str(tmp_path))
    assert np.array_equal(again.tokens, expected) and again.vocab == first.vocab
    # and the rebuilt entry is good again
    assert np.array_equal(load_corpus(raw, cache_dir=str(tmp_path)).tokens, expected)


def test_unwritable_cache_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    c = load_corpus(b"abcabc", cache_dir=str(blocker / "cache"))
    assert c.vocab.decode(c.tokens) == "abcabc" and not isinstance(c.tokens, np.memmap)


def test_no_temp_files_left(tmp_path):
    load_corpus(b"hello", cache_dir=str(tmp_path))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_default_cache_dir(monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", "/x/cache")
    monkeypatch.setenv("XDG_CACHE_HOME", "/y")
    assert default_cache_dir() == "/x/cache"
    monkeypatch.delenv("CHARRNN_CACHE_DIR")
    assert default_cache_dir() == os.path.join("/y", "charrnn")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_cache_dir() == os.path.join("/home/someone", ".cache", "charrnn")


# ----------------------------------------------------------------------------- batching


def test_split_train_val_takes_the_tail():
    t = np.arange(10, dtype=np.int32)
    train, val = split_train_val(t, 0.2)
    assert train.tolist() == list(range(8)) and val.tolist() == [8, 9]
    train, val = split_train_val(t, 0)
    assert len(train) == 10 and len(val) == 0
    with pytest.raises(ValueError):
        split_train_val(t, 1.0)


def test_streams_windows_by_hand():
    # n = 23, B = 2, T = 3: L = (23-1)//2 = 11 tokens per stream, 11//3 = 3 windows
    s = Streams(np.arange(100, 123, dtype=np.int32), batch=2, seq_len=3)
    assert s.stream_len == 11 and s.windows_per_epoch == 3 and len(s) == 3
    x, y = s.window(0)
    assert x.dtype == np.int32 and x.shape == (3, 2) and x.flags.c_contiguous
    assert x.tolist() == [[100, 111], [101, 112], [102, 113]]
    assert y.tolist() == [[101, 112], [102, 113], [103, 114]]
    x, y = s.window(2)
    assert x.tolist() == [[106, 117], [107, 118], [108, 119]]
    assert y.tolist() == [[107, 118], [108, 119], [109, 120]]
    assert [w[0].tolist() for w in s][1] == [[103, 114], [104, 115], [105, 116]]
    with pytest.raises(IndexError):
        s.window(3)


def test_streams_exact_fit_and_too_short():
    s = Streams(np.arange(7, dtype=np.int32), batch=2, seq_len=3)  # 2*3+1 = 7: one window
    x, y = s.window(0)
    assert x.tolist() == [[0, 3], [1, 4], [2, 5]] and y.tolist() == [[1, 4], [2, 5], [3, 6]]
    with pytest.raises(CorpusError) as e:
        Streams(np.arange(6, dtype=np.int32), batch=2, seq_len=3)
    assert str(e.value) == (
        "the corpus has 6 tokens, too few for one window of --batch 2 x --seq-len 3 (+1); "
        "use a smaller --batch or --seq-len"
    )


def test_streams_on_a_memmap(tmp_path):
    raw = bytes(range(32, 127)) * 30
    c = load_corpus(raw, cache_dir=str(tmp_path))
    assert isinstance(c.tokens, np.memmap)
    s = Streams(c.tokens, batch=4, seq_len=16)
    ref = Streams(np.array(c.tokens), batch=4, seq_len=16)
    for k in (0, len(s) - 1):
        for a, b in zip(s.window(k), ref.window(k)):
            assert type(a) is np.ndarray and np.array_equal(a, b)


# ----------------------------------------------------------------------------- default corpus


def test_default_corpus_is_deterministic_and_sized(tmp_path):
    a = build_default_corpus(str(tmp_path / "a"))
    b = build_default_corpus(str(tmp_path / "b"))
    assert os.path.basename(a).startswith("python-3.") and a.endswith("-docs.txt")
    da, db = Path(a).read_bytes(), Path(b).read_bytes()
    assert da == db
    assert 800_000 <= len(da) <= 3_000_000
    assert b"\r\n" not in da and b"\0" not in da
    assert b"def parse_args" in da  # argparse made it in
    assert len(STDLIB_MODULES) == len(set(STDLIB_MODULES))
    assert not [n for n in os.listdir(tmp_path / "a") if n.startswith(".tmp-")]
    # present: reused as is
    Path(a).write_bytes(b"kept")
    assert build_default_corpus(str(tmp_path / "a")) == a and Path(a).read_bytes() == b"kept"


def test_default_corpus_dir(monkeypatch):
    monkeypatch.delenv("CHARRNN_CORPUS_DIR", raising=False)
    assert default_corpus_dir() == "corpora"
    monkeypatch.setenv("CHARRNN_CORPUS_DIR", "/some/where")
    assert default_corpus_dir() == "/some/where"


# ----------------------------------------------------------------------------- real corpora


def test_warpeace_bom_dropped_crlf_kept():
    raw = read_sources([str(shared("warpeace.txt"))])
    assert raw.startswith(b"\xef\xbb\xbf")
    c = load_corpus(raw)
    assert len(c.vocab) == 84 - 1  # MANIFEST counts the BOM among its 84 symbols
    assert "\ufeff" not in c.vocab.tokens and "\r" in c.vocab.tokens
    assert c.n_chars == 3_258_227 - 1 == len(c.tokens)
    head = raw[3:2003].decode("utf-8")
    assert c.vocab.decode(c.tokens[: len(head)]) == head


def test_tang_poetry_vocabulary_and_round_trip():
    raw = read_sources([str(shared("tang_poetry_zh.txt"))])
    c = load_corpus(raw)
    assert len(c.vocab) == 5387
    assert c.n_chars == 942_682
    assert c.vocab.decode(c.tokens).encode("utf-8") == raw
