"""The one exception family the CLI turns into a single line on stderr."""


class CharrnnError(Exception):
    """A problem the user can fix; str(err) is the whole message, one line."""

    exit_code = 1


class CorpusError(CharrnnError):
    """The input text cannot be used (invalid UTF-8, binary, empty, too short)."""


class CheckpointError(CharrnnError):
    """A checkpoint file is missing, damaged, foreign or from a newer format."""
