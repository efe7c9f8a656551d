"""The one exception family the CLI turns into a single line on stderr."""


class CharrnnError(Exception):
    """A problem the user can fix; str(err) is the whole message, one line."""

    exit_code = 1


class CorpusError(CharrnnError):
    """The input text cannot be used (invalid UTF-8, binary, empty, too short)."""


class CheckpointError(CharrnnError):
    """A checkpoint file is missing, damaged, foreign or from a newer format."""


class BadBytes(CorpusError):
    """Bytes that are not text: "<problem> at byte offset <offset><advice>", an offset into the
    bytes read, which ``at`` turns into one naming the file (and, with advice=None, drops the
    advice where a command has no --errors to follow it)."""

    def __init__(self, problem, offset, advice=""):
        self.problem, self.offset, self.advice = problem, offset, advice
        super().__init__(f"{problem} at byte offset {offset}{advice}")

    def at(self, name, offset=None, advice=""):
        advice = self.advice if advice == "" else (advice or "")
        return BadBytes(f"{name}: {self.problem}", self.offset if offset is None else offset, advice)
