"""charrnn's own exceptions (the CLI turns each into a single line on stderr) and warnings."""


class CharrnnError(Exception):
    """A problem the user can fix; str(err) is the whole message, one line."""

    exit_code = 1


class UsageError(CharrnnError):
    """Options that cannot go together, or a value an option cannot take (exit 2, as click's)."""

    exit_code = 2


class CorpusError(CharrnnError):
    """The input text cannot be used (invalid UTF-8, binary, empty, too short)."""


class CheckpointError(CharrnnError):
    """A checkpoint file is missing, damaged, foreign or from a newer format."""


class BadBytes(CorpusError):
    """Bytes that are not text: "<problem> at byte offset <offset><advice>", the offset into the
    bytes read. ``at`` names the file (with the offset within it); ``with_advice`` gives other
    advice, for a command that lacks the option it names."""

    def __init__(self, problem, offset, advice=""):
        self.problem, self.offset, self.advice = problem, offset, advice
        super().__init__(f"{problem} at byte offset {offset}{advice}")

    def at(self, name, offset=None):
        """Named after its file; an advice's FILE becomes the file's name (quoted for a shell)."""
        import shlex
        return BadBytes(f"{name}: {self.problem}", self.offset if offset is None else offset,
                        self.advice.replace("FILE", shlex.quote(name)))

    def with_advice(self, advice):
        return BadBytes(self.problem, self.offset, advice)


class CharrnnWarning(UserWarning):
    """Something the user should know that does not stop the work (symbols a model never saw,
    skipped); the CLI prints each as one "warning: ..." line on stderr."""
