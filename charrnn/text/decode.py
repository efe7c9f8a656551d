"""Bytes -> text: strict UTF-8 with exact byte offsets in every error, a leading byte-order
mark dropped, NUL bytes refused as binary; and the one rule for line breaks.

Pure: the standard library only, never prints, never touches files. A whole input is
``decode_bytes``; a stream fed in pieces cut anywhere (text/corpus.py reads files in chunks)
is ``StreamDecoder``, which gives exactly the same text and the same error offsets. Both
keep the text as it is; ``LineBreaks`` and ``lf`` are where text meets a model: a model reads
a CRLF line break as "\n", so a Windows file and its LF twin train the same model and score
the same, and `--stop $'\n\n'` finds its blank line in both (a lone "\r" stays).
"""
import codecs

from charrnn.config.recipe import ERRORS
from charrnn.errors import BadBytes

BOM = b"\xef\xbb\xbf"
NUL_ADVICE = ": this looks like a binary file, not text"
UTF16_ADVICE = (": this looks like UTF-16 text; convert it to UTF-8 first, e.g. iconv -f UTF-16 -t UTF-8 FILE > "
                "FILE.utf8")
CONVERT_ADVICE = "; if it is Latin-1 or Windows-1252 text, convert it first: iconv -f WINDOWS-1252 -t UTF-8 FILE > FILE.utf8"
UTF8_ADVICE = CONVERT_ADVICE + ", or use --errors replace to decode it anyway"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _check_errors(errors: str) -> None:
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, not {errors!r}")


def check_nul(data: bytes, offset: int = 0) -> None:
    """BadBytes at the first NUL byte of ``data`` (``offset``: where data starts in its input),
    advising a conversion where the input starts like UTF-16 text, else calling it binary."""
    at = data.find(b"\0")
    if at >= 0:
        raise BadBytes("NUL byte", offset + at, UTF16_ADVICE if offset == 0 and looks_utf16(data) else NUL_ADVICE)


def looks_utf16(head: bytes) -> bool:
    """A UTF-16 byte-order mark, or text whose every other byte is NUL (UTF-16 without one)."""
    if head.startswith(UTF16_BOMS):
        return True
    sample = head[:4096]
    return len(sample) >= 8 and max(sample[0::2].count(0), sample[1::2].count(0)) >= 0.4 * len(sample) / 2


class StreamDecoder:
    """Decode one UTF-8 byte stream fed in pieces cut anywhere (even inside a character).

    Gives exactly what ``decode_bytes`` gives for the concatenated pieces, except that NUL
    bytes are not looked for here (the caller scans for them first, so that a NUL anywhere is
    reported before an invalid sequence before it). A leading BOM of the stream is dropped
    (counted in byte offsets); error offsets are global byte offsets in the stream, computed
    from the bytes the incremental decoder still holds from earlier pieces.
    """

    def __init__(self, errors: str = "strict"):
        _check_errors(errors)
        self._dec = codecs.getincrementaldecoder("utf-8")(errors)
        self._head = b""  # the first bytes, held back until a BOM can be told apart
        self._started = False
        self.consumed = 0  # bytes handed to the codec so far (the BOM included)

    def decode(self, data: bytes, final: bool = False) -> str:
        if not self._started:
            self._head += data
            if len(self._head) < len(BOM) and not final:
                return ""
            data, self._head, self._started = self._head, b"", True
            if data.startswith(BOM):
                data = data[len(BOM):]
                self.consumed = len(BOM)
        held = len(self._dec.getstate()[0])
        try:
            text = self._dec.decode(data, final)
        except UnicodeDecodeError as err:
            off = self.consumed - held + err.start
            raise BadBytes("invalid UTF-8", off, UTF8_ADVICE) from None
        self.consumed += len(data)
        return text


def lf(text: str) -> str:
    """``text`` with every CRLF line break as "\n" (what a model reads)."""
    return text.replace("\r\n", "\n")


class LineBreaks:
    """``lf`` for a text fed in pieces cut anywhere, even between the "\r" and the "\n" of one
    line break; ``crlf`` counts the breaks it turned."""

    def __init__(self):
        self.pending, self.crlf = "", 0

    def feed(self, text: str, final: bool = False) -> str:
        text = self.pending + text
        self.pending = ""
        if text.endswith("\r") and not final:  # its "\n" may open the next piece
            text, self.pending = text[:-1], "\r"
        n = text.count("\r\n")
        self.crlf += n
        return text.replace("\r\n", "\n") if n else text


def decode_bytes(data: bytes, errors: str = "strict", *, name: str | None = None,
                 errors_option: bool = True) -> str:
    """Decode UTF-8 bytes to text: a leading BOM is dropped, CRLF kept, NUL refused.

    ``errors="strict"`` raises CorpusError at the first invalid sequence;
    ``errors="replace"`` turns invalid sequences into U+FFFD. A NUL byte anywhere is
    refused in both modes (the earliest one is named). With ``name``, the error names the
    input; without ``errors_option`` (a command that has no --errors) it does not advise one.
    """
    _check_errors(errors)
    try:
        check_nul(data)
        start = len(BOM) if data.startswith(BOM) else 0
        try:
            return str(memoryview(data)[start:], "utf-8", errors)
        except UnicodeDecodeError as err:
            raise BadBytes("invalid UTF-8", start + err.start, UTF8_ADVICE) from None
    except BadBytes as e:
        # a command without --errors is not advised to use it; then the advice names the file
        located = e.with_advice(CONVERT_ADVICE) if e.advice == UTF8_ADVICE and not errors_option else e
        located = located if name is None else located.at(name)
        if located is e:
            raise
        raise located from None
