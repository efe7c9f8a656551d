"""Tests for charrnn.text.corpus and charrnn.text.default_corpus: reading, caching, batching."""

import hashlib
import io
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import charrnn.text.corpus as data_mod
import charrnn.text.sources as sources_mod

from charrnn.text.corpus import Corpus, load_corpus
from charrnn.text.sources import Sources, default_cache_dir
from charrnn.text.windows import Streams, split_train_val
from charrnn.text.default_corpus import STDLIB_MODULES, build_default_corpus, default_corpus_dir
from charrnn.errors import CorpusError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def read_sources(paths, stdin=None):
    """The bytes of Sources(paths, stdin), the stream training reads."""
    with Sources(paths, stdin) as src:
        return src.read()


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


def test_every_files_bom_dropped_but_the_stream_s_own(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "a.txt").write_bytes(bom + b"one\n")
    (tmp_path / "b.txt").write_bytes(bom + b"two\n")
    (tmp_path / "e.txt").write_bytes(b"")
    paths = [str(tmp_path / n) for n in ("a.txt", "e.txt", "b.txt", "b.txt")]
    assert read_sources(paths) == bom + b"one\n" + b"two\n" * 2
    c = load_corpus(Sources(paths))
    assert c.vocab.decode(c.tokens) == "one\ntwo\ntwo\n"
    assert c.sha256 == hashlib.sha256(read_sources(paths)).hexdigest()


@pytest.mark.parametrize("chunk", [3, 4, 5, 7, 64])
def test_sources_stream_in_chunks_like_the_bytes_in_memory(tmp_path, monkeypatch, chunk):
    parts = ["héllo 中文\r\n".encode() * 7, b"\xef\xbb\xbf" + "😀 wörld\n".encode() * 5, b"\xef\xbb", b"x"]
    paths = []
    for i, p in enumerate(parts):
        (tmp_path / f"{i}.txt").write_bytes(p)
        paths.append(str(tmp_path / f"{i}.txt"))
    src = Sources(paths)
    assert src.size == sum(map(len, parts))
    pieces = list(src.chunks(chunk))
    assert all(0 < len(p) <= chunk for p in pieces)
    whole = b"".join(pieces)
    assert whole == read_sources(paths) == parts[0] + parts[1][3:] + parts[2] + parts[3]
    monkeypatch.setattr(sources_mod, "CHUNK_BYTES", chunk)
    for level in ("char", "word"):
        for errors in ("strict", "replace"):
            try:
                ref = load_corpus(whole, level=level, errors=errors)
            except CorpusError as err:  # strict: the cut-off BOM of file 2 is invalid
                assert errors == "strict"
                with pytest.raises(CorpusError) as e:
                    load_corpus(Sources(paths), level=level, errors=errors, cache_dir=str(tmp_path / "c"))
                assert str(err).startswith(f"invalid UTF-8 at byte offset {len(whole) - 3};")  # of the joined bytes
                assert str(e.value) == f"{paths[2]}: invalid UTF-8 at byte offset 0;" + str(err).split(";", 1)[1].replace(
                    "FILE", shlex.quote(str(paths[2])))  # the advice names the file
                continue
            streamed = load_corpus(Sources(paths), level=level, errors=errors, cache_dir=str(tmp_path / "c"))
            assert streamed.sha256 == ref.sha256 == hashlib.sha256(whole).hexdigest()
            assert streamed.vocab == ref.vocab and np.array_equal(streamed.tokens, ref.tokens)
            assert streamed.n_chars == ref.n_chars


def test_errors_name_the_file_and_its_own_offset_across_files_and_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(sources_mod, "CHUNK_BYTES", 5)
    a = "añb中".encode() * 3  # 21 bytes
    assert len(a) == 21
    (tmp_path / "a.txt").write_bytes(a)
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbfxy\xe4\xb8z" + b"0" * 20 + b"\0")  # its BOM is dropped, yet counted
    (tmp_path / "c.txt").write_bytes(b"\xe4\xb8")
    paths = [str(tmp_path / n) for n in ("a.txt", "b.txt")]
    with pytest.raises(CorpusError) as e:  # the NUL comes first, though it comes after
        load_corpus(Sources(paths))
    assert str(e.value) == f"{paths[1]}: NUL byte at byte offset {3 + 5 + 20}: this looks like a binary file, not text"
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbfxy\xe4\xb8z")
    with pytest.raises(CorpusError, match=rf"^{re.escape(paths[1])}: invalid UTF-8 at byte offset 5;"):
        load_corpus(Sources(paths))
    with pytest.raises(CorpusError, match=r"c\.txt: invalid UTF-8 at byte offset 0;"):  # cut at the end
        load_corpus(Sources([paths[0], str(tmp_path / "c.txt")]), level="word")
    with pytest.raises(CorpusError, match=r"^invalid UTF-8 at byte offset 23;"):  # bytes in memory: no file to name
        load_corpus(a + b"xy\xe4\xb8z")
    c = load_corpus(Sources(paths), errors="replace")
    assert c.vocab.decode(c.tokens) == "añb中" * 3 + "xy\ufffdz"


def test_stdin_is_spooled_in_the_given_directory_and_removed(tmp_path):
    spool = tmp_path / "spool"
    stdin = io.BytesIO(b"from stdin\n" * 1000)
    (tmp_path / "a.txt").write_bytes(b"file\n")
    with Sources([str(tmp_path / "a.txt"), "-", "-"], stdin=stdin, spool_dir=str(spool)) as src:
        names = os.listdir(spool)
        assert len(names) == 2 and all(n.startswith(".tmp-stdin-") for n in names)  # the second "-": empty
        assert src.read() == b"file\n" + b"from stdin\n" * 1000
        assert load_corpus(src).n_chars == 5 + 11 * 1000
    assert os.listdir(spool) == []
    # no usable spool directory: tempfile's default one
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    src = Sources(["-"], stdin=io.BytesIO(b"abc"), spool_dir=str(blocker / "cache"))
    (spooled,) = src.paths
    assert os.path.dirname(spooled) == os.path.realpath(__import__("tempfile").gettempdir()) or os.path.isfile(spooled)
    assert src.read() == b"abc"
    src.close()
    src.close()
    assert not os.path.exists(spooled)


def test_a_missing_file_is_reported_before_stdin_is_read(tmp_path):
    stdin = io.BytesIO(b"never read")
    with pytest.raises(CorpusError, match="nope.txt: no such file"):
        Sources([str(tmp_path / "nope.txt"), "-"], stdin=stdin, spool_dir=str(tmp_path))
    assert stdin.tell() == 0
    with pytest.raises(CorpusError, match="nope.txt: no such file"):
        Sources(["-", str(tmp_path / "nope.txt")], stdin=stdin, spool_dir=str(tmp_path / "s"))
    assert os.listdir(tmp_path / "s") == []  # the spool of the "-" before it is removed


def _counting_chunks(monkeypatch):
    calls = []
    real = Sources.chunks

    def chunks(self, size=None):
        calls.append(size)
        return real(self, size)

    monkeypatch.setattr(Sources, "chunks", chunks)
    return calls


@pytest.mark.parametrize("level", ["char", "word"])
def test_passes_over_the_input(level, tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_bytes("some words, some more words\r\n".encode() * 50)
    src = Sources([str(tmp_path / "a.txt")])
    calls = _counting_chunks(monkeypatch)
    first = load_corpus(src, level=level, cache_dir=str(tmp_path / "cache"))
    assert len(calls) == (3 if level == "char" else 2)  # sha256 + NUL; vocabulary; encoding
    del calls[:]
    again = load_corpus(src, level=level, cache_dir=str(tmp_path / "cache"))
    assert len(calls) == 1 and isinstance(again.tokens, np.memmap)  # a hit: the sha256 pass only
    assert np.array_equal(again.tokens, first.tokens)


@pytest.mark.parametrize("level", ["char", "word"])
def test_an_input_changing_while_read_writes_no_cache(level, tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_bytes(b"abcabc" * 100)
    real = Sources.chunks
    state = {"n": 0}

    def chunks(self, size=None):
        state["n"] += 1
        if state["n"] == 2:  # after the sha256 pass: same alphabet, other text
            path.write_bytes(b"cbacba" * 100)
        return real(self, size)

    monkeypatch.setattr(Sources, "chunks", chunks)
    with pytest.raises(CorpusError, match=r"a\.txt: changed while it was being read; try again$"):
        load_corpus(Sources([str(path)]), level=level, cache_dir=str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == [] if (tmp_path / "cache").exists() else True


def test_char_loading_never_holds_the_input(tmp_path, monkeypatch):
    """Python and numpy allocations stay near a few chunks, far below the input's size."""
    import tracemalloc

    line = "the quick brown fox jumps over the lazy dog, ünd 中文 😀\n"
    path = tmp_path / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(32):
            f.write(line * 20_000)  # 32 x 1.2 MB
    size = os.path.getsize(path)
    monkeypatch.setattr(sources_mod, "CHUNK_BYTES", 1 << 20)
    monkeypatch.setattr(data_mod, "_ENCODE_CHARS", 1 << 18)
    for cache in (str(tmp_path / "cache"), None, str(tmp_path / "cache")):  # miss, no cache, hit
        tracemalloc.start()
        try:
            c = load_corpus(Sources([str(path)]), cache_dir=cache)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < (16 << 20) + (4 * len(c.tokens) if cache is None else 0), (cache, peak, size)
    assert size > 36 << 20 and c.n_chars == len(line) * 640_000


# ----------------------------------------------------------------------------- loading


def test_load_corpus_char_level_basics():
    raw = b"\xef\xbb\xbfhi \xf0\x9f\x98\x80\r\nhi\r\n"
    c = load_corpus(raw)
    assert isinstance(c, Corpus)
    assert c.sha256 == hashlib.sha256(raw).hexdigest()
    assert c.n_chars == len("hi 😀\nhi\n") == 8 and c.crlf == 2  # a CRLF line break is read as "\n"
    assert c.vocab.tokens == ("\n", " ", "h", "i", "😀")
    assert c.tokens.dtype == np.int32 and c.tokens.ndim == 1
    assert c.tokens.tolist() == [2, 3, 1, 4, 0, 2, 3, 0]
    assert c.vocab.decode(c.tokens) == "hi 😀\nhi\n"


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
    monkeypatch.setattr(sources_mod, "CHUNK_BYTES", 7)
    chunked = load_corpus(text.encode())
    assert chunked.vocab == whole.vocab
    assert np.array_equal(chunked.tokens, whole.tokens)
    assert chunked.n_chars == len(text) - 50 and chunked.crlf == 50  # every CRLF, also the ones a chunk cut
    bad = text.encode() + b"\xc3(" + b"tail" * 10
    with pytest.raises(CorpusError, match=rf"byte offset {len(text.encode())};"):
        load_corpus(bad)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda t: "\0" not in t and not t.startswith("\ufeff")))
def test_load_corpus_round_trip(text):
    for level in ("char", "word"):
        c = load_corpus(text.encode(), level=level)
        assert c.vocab.decode(c.tokens) == text.replace("\r\n", "\n")  # the one line-break rule
        assert c.n_chars == len(text.replace("\r\n", "\n"))


def test_word_level_max_vocab():
    c = load_corpus(b"the cat the dog, the end.\n", level="word", max_vocab=2)
    assert c.vocab.tokens == (" ", "the", "\ufffd") and c.vocab.unk == 2
    assert c.vocab.decode(c.tokens) == "the \ufffd the \ufffd\ufffd the \ufffd\ufffd\ufffd"
    with pytest.raises(ValueError, match=r"^max_vocab applies to the word level only$"):
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
    assert s.stream_len == 11 and s.windows_per_epoch == 3
    x, y = s.window(0)
    assert x.dtype == np.int32 and x.shape == (3, 2) and x.flags.c_contiguous
    assert x.tolist() == [[100, 111], [101, 112], [102, 113]]
    assert y.tolist() == [[101, 112], [102, 113], [103, 114]]
    x, y = s.window(2)
    assert x.tolist() == [[106, 117], [107, 118], [108, 119]]
    assert y.tolist() == [[107, 118], [108, 119], [109, 120]]
    assert s.window(1)[0].tolist() == [[103, 114], [104, 115], [105, 116]]
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
    for k in (0, s.windows_per_epoch - 1):
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
    monkeypatch.setenv("CHARRNN_CACHE_DIR", "/the/cache")
    assert default_corpus_dir() == "/the/cache/corpora"  # not ./corpora of whatever directory it runs in
    monkeypatch.setenv("CHARRNN_CORPUS_DIR", "/some/where")
    assert default_corpus_dir() == "/some/where"


# ----------------------------------------------------------------------------- real corpora


def test_warpeace_bom_dropped_crlf_read_as_lf():
    raw = read_sources([str(shared("warpeace.txt"))])
    assert raw.startswith(b"\xef\xbb\xbf")
    c = load_corpus(raw)
    assert len(c.vocab) == 84 - 2  # MANIFEST counts the BOM and "\r" among its 84 symbols
    assert "\ufeff" not in c.vocab.tokens and "\r" not in c.vocab.tokens
    assert c.crlf == raw.count(b"\r\n") and c.n_chars == 3_258_227 - 1 - c.crlf == len(c.tokens)
    head = raw[3:2003].decode("utf-8").replace("\r\n", "\n")
    assert c.vocab.decode(c.tokens[: len(head)]) == head


def test_tang_poetry_vocabulary_and_round_trip():
    raw = read_sources([str(shared("tang_poetry_zh.txt"))])
    c = load_corpus(raw)
    assert len(c.vocab) == 5387
    assert c.n_chars == 942_682
    assert c.vocab.decode(c.tokens).encode("utf-8") == raw


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("data,ok", [(b"abc\0def" * 10, False), (b"abcdefgh\n" * 40, True)])
def test_train_from_stdin_leaves_no_spool(data, ok, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from charrnn.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CHARRNN_CHECKPOINT_DIR", raising=False)
    r = CliRunner().invoke(cli, ["train", "-", "--steps", "1", "--batch", "2", "--seq-len", "8", "--hidden", "8",
                                 "--quiet", "--val-frac", "0"], input=data)
    assert (r.exit_code == 0) == ok, r.output
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith(".tmp-")]


def test_a_named_pipe_is_read_once_and_spooled_like_stdin(tmp_path):
    import threading
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = "héllo from a pipe\n" * 500
    writer = threading.Thread(target=lambda: fifo.write_bytes(text.encode()))
    writer.start()
    with Sources([str(fifo)], spool_dir=str(tmp_path / "spool")) as src:
        writer.join()
        c = load_corpus(src)  # several passes over the input, each of which would read an empty pipe
        assert c.vocab.decode(c.tokens) == text and len(os.listdir(tmp_path / "spool")) == 1
    assert os.listdir(tmp_path / "spool") == []  # the spool removed
