"""Tests for charrnn.text.vocab: decoding, vocabularies, encoding round trips."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.errors import CorpusError
from charrnn.text.vocab import UNK_TOKEN, Vocab, build_vocab, split_words, word_chunks
from charrnn.text.decode import StreamDecoder, decode_bytes

# any text (no surrogates), rich in CRLF, astral characters, CJK and combining marks
ANY_TEXT = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(["\r\n", "😀", "𝔘", "中", "é", "e\u0301", "\t", "\u00a0", "\ufeff", " "]),
    ),
    max_size=30,
).map("".join)


# ----------------------------------------------------------------------------- decoding


def test_invalid_utf8_names_exact_offset():
    with pytest.raises(CorpusError) as e:
        decode_bytes(b"ab\xffcd")
    assert str(e.value) == "invalid UTF-8 at byte offset 2; if it is Latin-1 or Windows-1252 text, convert it first: iconv -f WINDOWS-1252 -t UTF-8 FILE > FILE.utf8, or use --errors replace to decode it anyway"


def test_invalid_utf8_offset_counts_the_bom():
    with pytest.raises(CorpusError, match=r"^invalid UTF-8 at byte offset 5;"):
        decode_bytes(b"\xef\xbb\xbfab\xffcd")


def test_truncated_sequence_at_end_and_after_multibyte_chars():
    with pytest.raises(CorpusError, match=r"byte offset 2;"):
        decode_bytes(b"ab\xe2\x82")
    # "é" is 2 bytes, "中" 3: the bad byte is at 2 + 3 = 5
    with pytest.raises(CorpusError, match=r"byte offset 5;"):
        decode_bytes("é中".encode() + b"\x80x")


def test_replace_mode_substitutes_u_fffd():
    assert decode_bytes(b"ab\xffcd", errors="replace") == "ab\ufffdcd"
    assert decode_bytes(b"\xef\xbb\xbfa\xe2\x82", errors="replace") == "a\ufffd"


@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_nul_byte_refused_in_both_modes(errors):
    with pytest.raises(CorpusError) as e:
        decode_bytes(b"abc\0def", errors=errors)
    assert str(e.value) == "NUL byte at byte offset 3: this looks like a binary file, not text"


def test_nul_offset_counts_the_bom():
    with pytest.raises(CorpusError, match=r"^NUL byte at byte offset 4:"):
        decode_bytes(b"\xef\xbb\xbfa\0")


def test_leading_bom_dropped_crlf_kept():
    assert decode_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n") == "line one\r\nline two\r\n"
    # only a leading BOM is dropped
    assert decode_bytes(b"a\xef\xbb\xbfb") == "a\ufeffb"
    assert decode_bytes(b"\xef\xbb\xbf") == ""
    assert decode_bytes(b"") == ""


def test_unknown_errors_mode_is_a_programming_error():
    with pytest.raises(ValueError):
        decode_bytes(b"abc", errors="ignore")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64).map(lambda b: b.replace(b"\0", b"")))
def test_replace_decoding_is_pythons_after_the_bom(data):
    assert decode_bytes(data, errors="replace") == data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")


def _stream_decode(data, errors, cuts):
    dec, out, pos = StreamDecoder(errors), [], 0
    for cut in sorted(cuts) + [len(data)]:
        out.append(dec.decode(data[pos:cut]))
        pos = max(pos, cut)
    out.append(dec.decode(b"", final=True))
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.binary(max_size=6), st.sampled_from([b"\xef\xbb\xbf", "😀é中".encode()])), max_size=12)
    .map(b"".join).map(lambda b: b.replace(b"\0", b"")),
    st.lists(st.integers(0, 80), max_size=8),
    st.sampled_from(["strict", "replace"]),
)
def test_stream_decoder_cut_anywhere_equals_whole_decoding(data, cuts, errors):
    """Pieces cut anywhere (inside a character, inside the BOM, empty ones) decode exactly as
    the whole, with the same global offset when the bytes are invalid."""
    cuts = [min(c, len(data)) for c in cuts]
    try:
        expected = decode_bytes(data, errors)
    except CorpusError as err:
        with pytest.raises(CorpusError) as e:
            _stream_decode(data, errors, cuts)
        assert str(e.value) == str(err)
    else:
        assert _stream_decode(data, errors, cuts) == expected


def test_stream_decoder_offsets_across_pieces():
    dec = StreamDecoder()
    assert dec.decode(b"\xef") == "" and dec.decode(b"\xbb\xbfa\xe4") == "a"  # BOM split, char held
    with pytest.raises(CorpusError, match=r"^invalid UTF-8 at byte offset 4;"):
        dec.decode(b"\xb8x")  # "\xe4\xb8" then "x": the sequence started at 4 (the BOM counted)
    dec = StreamDecoder()
    dec.decode(b"ab\xe2\x82")
    with pytest.raises(CorpusError, match=r"^invalid UTF-8 at byte offset 2;"):
        dec.decode(b"", final=True)
    assert StreamDecoder("replace").decode(b"\xef\xbb", final=True) == "\ufffd"


# ----------------------------------------------------------------------------- char level


def test_char_vocab_is_sorted_code_points_and_never_splits_astral_chars():
    v = build_vocab("b😀a\r\nb中", "char")
    assert v.tokens == ("\n", "\r", "a", "b", "中", "😀")
    assert len(v) == 6 and v.unk is None
    ids = v.encode("😀ab")
    assert ids.dtype == np.int32
    assert ids.tolist() == [5, 2, 3]
    assert v.decode(ids) == "😀ab"
    assert v.decode_one(4) == "中"


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT.filter(bool))
def test_char_round_trip(text):
    v = build_vocab(text, "char")
    ids = v.encode(text)
    assert len(ids) == len(text)
    assert v.decode(ids) == text
    assert list(v.tokens) == sorted(set(text))


@pytest.mark.parametrize("level", ["char", "word"])
def test_empty_text_has_no_vocabulary(level):
    with pytest.raises(CorpusError, match="^the corpus is empty$"):
        build_vocab("", level)


def test_char_unknown_symbol_message():
    v = build_vocab("abc", "char")
    with pytest.raises(CorpusError) as e:
        v.encode("abxé😀")
    assert str(e.value) == "character 'x' (U+0078) is not in the model's vocabulary"
    with pytest.raises(CorpusError) as e:
        v.encode("a😀")
    assert str(e.value) == "character '😀' (U+1F600) is not in the model's vocabulary"


def test_char_encode_known_drops_unknown_symbols():
    v = build_vocab("abc", "char")
    ids, unknown = v.encode_known("axbyxc😀")
    assert v.decode(ids) == "abc"
    assert unknown == {"x": 2, "y": 1, "😀": 1} and list(unknown) == ["x", "y", "😀"]  # counts, in order seen
    ids, unknown = v.encode_known("cab")
    assert ids.tolist() == [2, 0, 1] and unknown == {}
    # unknown symbols between known code points, not only above the largest
    v = build_vocab("a😀", "char")
    ids, unknown = v.encode_known("ab中😀\U0010FFFF")
    assert ids.tolist() == [0, 1] and list(unknown) == ["b", "中", "\U0010FFFF"]
    with pytest.raises(CorpusError, match=r"'中' \(U\+4E2D\)"):
        v.encode("a😀中")


def test_char_level_refuses_max_vocab():
    with pytest.raises(ValueError, match=r"^max_vocab applies to the word level only$"):
        build_vocab("abc", "char", max_vocab=2)


def test_char_encode_is_fast_on_big_text():
    text = ("The quick brown fox — jumps over the lazy dog 😀.\r\n" * 40_000)  # ~2M chars
    v = build_vocab(text, "char")
    ids = v.encode(text)
    assert len(ids) == len(text)
    assert v.decode(ids[:1000]) == text[:1000]


# ----------------------------------------------------------------------------- word level


def test_split_words_examples():
    assert split_words("Hello, world!\r\n  x_1 ==2") == [
        "Hello", ",", " ", "world", "!", "\r\n  ", "x_1", " ", "=", "=", "2",
    ]
    assert split_words("") == []


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_split_words_is_lossless(text):
    assert "".join(split_words(text)) == text


@settings(max_examples=100, deadline=None)
@given(ANY_TEXT, st.integers(1, 7))
def test_word_chunks_do_not_change_tokens(text, size):
    pieces = list(word_chunks(text, size))
    assert "".join(pieces) == text
    assert [t for p in pieces for t in split_words(p)] == split_words(text)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT.filter(bool))
def test_word_round_trip(text):
    v = build_vocab(text, "word")
    assert v.decode(v.encode(text)) == text


def test_word_vocab_order_frequency_then_lexicographic():
    v = build_vocab("b a b c a b\n", "word")
    # ' ' x5, b x3, a x2, then '\n' < 'c' (count 1 each)
    assert v.tokens == (" ", "b", "a", "\n", "c")


def test_max_vocab_keeps_most_frequent_and_adds_unk():
    text = "the cat the dog, the end.\n"
    v = build_vocab(text, "word", max_vocab=2)
    assert v.tokens == (" ", "the", UNK_TOKEN)
    assert v.unk == 2 and len(v) == 3
    ids = v.encode(text)
    assert v.decode(ids) == "the \ufffd the \ufffd\ufffd the \ufffd\ufffd\ufffd"
    assert v.encode("zebra the").tolist() == [2, 0, 1]
    ids, unknown = v.encode_known("zebra")
    assert ids.tolist() == [2] and unknown == {}


def test_max_vocab_larger_than_vocabulary_still_has_unk():
    v = build_vocab("a b", "word", max_vocab=100)
    assert v.tokens == (" ", "a", "b", UNK_TOKEN) and v.unk == 3


def test_max_vocab_with_real_u_fffd_in_text():
    v = build_vocab("\ufffd \ufffd x", "word", max_vocab=5)
    assert v.tokens.count(UNK_TOKEN) == 1 and v.tokens[v.unk] == UNK_TOKEN
    assert v.decode(v.encode("\ufffd x")) == "\ufffd x"


def test_max_vocab_must_be_positive():
    with pytest.raises(CorpusError, match="--max-vocab must be at least 1"):
        build_vocab("a b", "word", max_vocab=0)


def test_word_unknown_without_unk():
    v = build_vocab("a b", "word")
    with pytest.raises(CorpusError) as e:
        v.encode("a zebra")
    assert str(e.value) == "token 'zebra' is not in the model's vocabulary"
    with pytest.raises(CorpusError, match=r"character '!' \(U\+0021\)"):
        v.encode("a!")
    ids, unknown = v.encode_known("a zebra b zebra !")
    assert v.decode(ids) == "a  b  " and unknown == {"zebra": 2, "!": 1}


# ----------------------------------------------------------------------------- vocab json


@pytest.mark.parametrize(
    "text,level,max_vocab",
    [("héllo 😀\r\n", "char", None), ("a b a c", "word", None), ("a b a c", "word", 1)],
)
def test_json_round_trip(text, level, max_vocab):
    v = build_vocab(text, level, max_vocab)
    d = json.loads(json.dumps(v.to_json()))
    assert set(d) == {"level", "tokens", "unk"}
    w = Vocab.from_json(d)
    assert w == v and w.encode(text).tolist() == v.encode(text).tolist()


@pytest.mark.parametrize(
    "d,msg",
    [
        ([], "JSON object"),
        ({"level": "char", "tokens": ["a"]}, "no 'unk'"),
        ({"level": "byte", "tokens": ["a"], "unk": None}, "level"),
        ({"level": "char", "tokens": "ab", "unk": None}, "list of strings"),
        ({"level": "char", "tokens": [], "unk": None}, "no tokens"),
        ({"level": "char", "tokens": ["a", 1], "unk": None}, "token 1 must be a non-empty string"),
        ({"level": "word", "tokens": ["a", ""], "unk": None}, "non-empty"),
        ({"level": "char", "tokens": ["a", "bc"], "unk": None}, "one code point"),
        ({"level": "word", "tokens": ["a", "b", "a"], "unk": None}, "more than once"),
        ({"level": "word", "tokens": ["a", UNK_TOKEN], "unk": 2}, "unk"),
        ({"level": "word", "tokens": ["a", UNK_TOKEN], "unk": True}, "unk"),
        ({"level": "word", "tokens": ["a", UNK_TOKEN], "unk": "1"}, "unk"),
        ({"level": "word", "tokens": ["a", "b"], "unk": 1}, "unknown token"),
        ({"level": "char", "tokens": ["a", UNK_TOKEN], "unk": 1}, "only a word vocabulary"),
    ],
)
def test_from_json_validates(d, msg):
    with pytest.raises(ValueError, match=msg):
        Vocab.from_json(d)


def test_decode_rejects_out_of_range_ids():
    v = build_vocab("ab", "char")
    with pytest.raises(ValueError, match="token id 2 is out of range"):
        v.decode([0, 2])
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        v.decode(np.array([-1]))
    with pytest.raises(ValueError):
        v.decode_one(5)
    assert v.decode([]) == ""


def test_vocab_is_immutable():
    v = build_vocab("ab", "char")
    with pytest.raises(AttributeError):
        v.tokens = ("x",)
    assert isinstance(v.tokens, tuple)
    assert hash(v) == hash(Vocab("char", ["a", "b"]))
