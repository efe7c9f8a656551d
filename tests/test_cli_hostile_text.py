"""Hostile text, end to end through `charrnn train`, `sample`, `eval` and `info`. Generated here
(no third-party text in the repository): invalid UTF-8, NUL bytes, a vocabulary of 6,000 CJK
symbols, a multi-megabyte line without a newline, one repeated character, characters outside
the BMP, mixed CRLF and LF, byte-order marks. Each trains and round-trips, or is refused with
one line and exit 1. Tests on ../shared/corpora skip without it."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from charrnn.checkpoint import schema

from .hostile_support import CELLS, SMALL, assert_one_line_failure, charrnn, invoke

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def corpus_run(work, name, data, *extra, steps=4, input=None):
    """`charrnn train` on ``data`` (bytes, written to NAME.txt): the result and the run directory."""
    path = work / f"{name}.txt"
    path.write_bytes(data)
    r = charrnn("train", path.name, "--steps", steps, "--eval-every", steps, *SMALL, *extra, work=work)
    return r, work / "checkpoints" / name


def trained(work, name, data, *extra, steps=4):
    r, run = corpus_run(work, name, data, *extra, steps=steps)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b"", r.stderr  # --quiet: nothing on stderr
    return run


def sample_text(run, work, length=300, seed=1, *extra):
    r = invoke("sample", "--checkpoint", run, "--length", length, "--seed", seed, *extra, work=work)
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    return r.stdout_bytes.decode("utf-8")  # strict: sampled bytes must be UTF-8


def eval_json(run, work, file, *extra):
    r = invoke("eval", work / file, "--checkpoint", run, "--json", *extra, work=work)
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    out = json.loads(r.stdout)
    assert math.isfinite(out["loss"]) and out["tokens"] > 0
    return out


def info_json(run, work):
    r = invoke("info", run, "--json", work=work)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def round_trip(work, run, text, eval_file=None):
    """What was learned comes back exactly: vocabulary = the text's alphabet, samples decode as
    UTF-8 and stay inside it, eval scores the text."""
    alphabet = set(text)
    b = schema.load(str(run / "latest.ckpt"))
    assert set(b.vocab.tokens) == alphabet and len(b.vocab.tokens) == len(alphabet)
    assert info_json(run, work)["vocab_size"] == len(alphabet)
    sampled = sample_text(run, work)
    assert len(sampled) == 300 and set(sampled) <= alphabet, set(sampled) - alphabet
    eval_json(run, work, eval_file or f"{run.name}.txt")
    return b, sampled


@pytest.fixture
def work(tmp_path):
    (tmp_path / "cache").mkdir()
    return tmp_path


WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "nunc", "vel", "x", "yz"]


def words_text(n, seed=0, sep=" "):
    r = np.random.default_rng(seed)
    return sep.join(WORDS[i] for i in r.integers(0, len(WORDS), n))


def test_invalid_utf8_is_refused_with_its_offset_or_replaced(work):
    good = (words_text(60) + "\n").encode()
    data = good + b"caf\xc3 \xff\xfe end\n" + good
    r, run = corpus_run(work, "bad", data)
    assert_one_line_failure(r, contains=f"invalid UTF-8 at byte offset {len(good) + 3}")
    assert not run.exists()
    run = trained(work, "bad", data, "--errors", "replace", "--force")
    text = data.decode("utf-8", "replace")
    assert "\ufffd" in text
    b = schema.load(str(run / "latest.ckpt"))
    assert set(b.vocab.tokens) == set(text)
    assert set(sample_text(run, work)) <= set(text)
    eval_json(run, work, "bad.txt", "--errors", "replace")
    r = charrnn("eval", "bad.txt", "--checkpoint", run, work=work)  # strict by default
    assert_one_line_failure(r, contains="invalid UTF-8 at byte offset")
    for tail in (b"\xe4\xb8", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"):
        # cut multi-byte char, overlong, encoded surrogate, above U+10FFFF, stray continuation
        r, _ = corpus_run(work, "tail", good + tail)
        assert_one_line_failure(r, contains=f"invalid UTF-8 at byte offset {len(good)}")


def test_nul_bytes_are_refused_in_both_error_modes(work):
    data = (words_text(60) + "\n").encode()
    for errors in ("strict", "replace"):
        r, run = corpus_run(work, "nul", data + b"\0" + data, "--errors", errors)
        assert_one_line_failure(r, contains=f"NUL byte at byte offset {len(data)}")
        assert not run.exists()
    r = charrnn("train", "-", "--name", "stdin-nul", "--steps", 2, *SMALL, input=b"\0" * 500, work=work)
    assert_one_line_failure(r, contains="NUL byte at byte offset 0")


def test_a_vocabulary_of_6000_cjk_symbols(work):
    cps = [chr(0x4E00 + i) for i in range(6000)]
    lines = ["".join(cps[i:i + 60]) for i in range(0, 6000, 60)]
    text = ("\n".join(lines) + "\n") * 2
    run = trained(work, "cjk", text.encode("utf-8"), steps=3)
    b, sampled = round_trip(work, run, text)
    assert len(b.vocab) == 6001 and b.cfg.vocab_size == 6001
    assert b.params["out.V"].shape == (16, 6001)
    assert any("\u4e00" <= c for c in sampled)


@pytest.mark.slow
def test_one_line_of_several_megabytes(work):
    text = words_text(800_000, seed=3)  # ~3.6 MB, no newline anywhere
    assert len(text) > 3_000_000 and "\n" not in text
    (work / "slice.txt").write_text(text[:5000], encoding="utf-8")
    run = trained(work, "long", text.encode(), steps=3)
    b, sampled = round_trip(work, run, text, eval_file="slice.txt")
    assert "\n" not in b.vocab.tokens and "\n" not in sampled  # no line break to start after, and none made up


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_one_repeated_character_trains_without_nan(work, cell):
    run = trained(work, "aaa", b"a" * 3000, *CELLS[cell], "--log", "train.jsonl", steps=6)
    events = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 6
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["grad_norm"]) for e in steps), steps
    assert all(e["loss"] == 0.0 for e in steps)  # one symbol: certainty, exactly
    b = schema.load(str(run / "latest.ckpt"))  # would refuse NaN parameters
    assert b.vocab.tokens == ("a",)
    assert info_json(run, work)["val_loss"] == 0.0
    assert sample_text(run, work, length=50) == "a" * 50
    assert sample_text(run, work, 20, 1, "--prime", "aa") == "a" * 22
    scored = eval_json(run, work, "aaa.txt")
    assert (scored["loss"], scored["bits_per_char"], scored["perplexity"]) == (0.0, 0.0, 1.0)


def test_emoji_and_other_characters_outside_the_bmp(work):
    r = np.random.default_rng(5)
    symbols = ["\U0001F600", "\U0001F40D", "\U0001D11E", "\U00010348", "\U0001F469\u200D\U0001F4BB",
               "\U0001F44D\U0001F3FD", "\U0010FFFD", "\U00020000", "ok", " ", "\n"]
    text = "".join(symbols[i] for i in r.integers(0, len(symbols), 3000))
    run = trained(work, "emoji", text.encode("utf-8"))
    b, sampled = round_trip(work, run, text)
    assert all(len(t) == 1 for t in b.vocab.tokens)  # one token per code point, never a surrogate half
    assert max(map(ord, b.vocab.tokens)) == 0x10FFFD
    assert not any(0xD800 <= ord(c) < 0xE000 for c in sampled)
    primed = sample_text(run, work, 10, 1, "--prime", "\U0001F40D\U0001D11E")
    assert primed.startswith("\U0001F40D\U0001D11E") and set(primed) <= set(text)


def test_mixed_crlf_and_lf_are_kept(work):
    lines = [words_text(5, seed=i) for i in range(300)]
    text = "".join(line + ("\r\n" if i % 3 else "\n") for i, line in enumerate(lines)) + "a lone\rcarriage\n"
    run = trained(work, "crlf", text.encode())
    b, _ = round_trip(work, run, text)
    assert "\r" in b.vocab.tokens and "\n" in b.vocab.tokens


def test_a_byte_order_mark_is_dropped_never_learned(work):
    text = "\n".join(words_text(6, seed=i) for i in range(300)) + "\n"
    data = b"\xef\xbb\xbf" + text.encode()
    run = trained(work, "bom", data)
    b, sampled = round_trip(work, run, text)
    assert "\ufeff" not in b.vocab.tokens and "\ufeff" not in sampled
    assert eval_json(run, work, "bom.txt")["tokens"] <= len(text) - 1  # the BOM is not scored
    # several files, each with its BOM (two notepad files, say): one corpus, still no U+FEFF
    (work / "a.txt").write_bytes(data)
    (work / "b.txt").write_bytes(data)
    r = charrnn("train", "a.txt", "b.txt", "--name", "both", "--steps", 2, "--eval-every", 2, *SMALL, work=work)
    assert r.returncode == 0, r.stderr.decode()
    assert "\ufeff" not in schema.load(str(work / "checkpoints" / "both" / "latest.ckpt")).vocab.tokens
    # a BOM-only file is an empty corpus: refused with one line
    r, _ = corpus_run(work, "only-bom", b"\xef\xbb\xbf")
    assert_one_line_failure(r, contains="empty")


def shared_head(name, n_bytes):
    path = CORPORA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with open(path, "rb") as f:
        head = f.read(n_bytes)
    return head[: len(head.decode("utf-8", "ignore").encode("utf-8"))] if not head.startswith(b"\xef\xbb\xbf") \
        else b"\xef\xbb\xbf" + head[3:][: len(head[3:].decode("utf-8", "ignore").encode("utf-8"))]


def test_shared_war_and_peace_bom_and_crlf(work):
    data = shared_head("warpeace.txt", 200_000)
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    run = trained(work, "warpeace", data, steps=3)
    text = data[3:].decode("utf-8").replace("\r\n", "\n")  # read as "\n", as every line break
    b, sampled = round_trip(work, run, text)
    assert "\r" not in b.vocab.tokens and "\ufeff" not in b.vocab.tokens and "\ufeff" not in sampled


def test_shared_tang_poetry_large_vocabulary(work):
    data = shared_head("tang_poetry_zh.txt", 400_000)
    run = trained(work, "tang", data, steps=3)
    text = data.decode("utf-8").removeprefix("\ufeff")
    b, _ = round_trip(work, run, text)
    assert len(b.vocab) > 2000
