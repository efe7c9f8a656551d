"""Stop sequences, as OpenAI's completions apply them: the text ends just before the first
one that appears in what was generated (the prime is not searched), which is left out.

While a stream is open, a tail that could still grow into a stop sequence is held back, so a
client never receives text that is later cut. Tokens are shown whole or, at a cut, up to it:
the tokens a client receives always join into exactly the text it receives.
"""


class StopText:
    """One completion's generated text, token by token: what may be shown yet."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.longest = max((len(s) for s in stops), default=0)
        self.text = ""  # the end of what was generated: the held tokens and what comes before them
        self.held = []  # [(start offset in text, token text, info)] not shown yet

    def push(self, piece: str, info=None) -> tuple[list, bool]:
        """Add a token: ([(text, info)] now safe to show, whether a stop sequence ended the text).
        At a stop, the token it starts in is shown up to it and the rest are dropped."""
        if not self.stops:
            return [(piece, info)], False
        if not self.held and len(self.text) >= self.longest:  # only the end can begin a stop: keep that
            self.text = self.text[-(self.longest - 1):] if self.longest > 1 else ""
        start = len(self.text)
        self.text += piece
        self.held.append((start, piece, info))
        cut = self._first_stop(start)
        if cut is not None:
            shown = [(p[:cut - s], i) for s, p, i in self.held if s < cut]
            self.held = []
            return shown, True
        safe = len(self.text) - self._partial()
        shown = []
        while self.held and self.held[0][0] + len(self.held[0][1]) <= safe:
            _, p, i = self.held.pop(0)
            shown.append((p, i))
        return shown, False

    def flush(self) -> list:
        """Everything held back: the text ended without a stop sequence."""
        shown = [(p, i) for _, p, i in self.held]
        self.held = []
        return shown

    def _first_stop(self, start):
        """Where the earliest stop sequence begins, or None. Only one that ends in the newest
        token can be new: every earlier text was searched when it came."""
        if not self.stops:
            return None
        lo = max(0, start - self.longest + 1)
        found = [i for s in self.stops if (i := self.text.find(s, lo)) >= 0]
        return min(found) if found else None

    def _partial(self):
        """The length of the longest end of the text that a stop sequence begins with."""
        for k in range(min(self.longest - 1, len(self.text)), 0, -1):
            tail = self.text[-k:]
            if any(s.startswith(tail) for s in self.stops):
                return k
        return 0
