"""How text is drawn from a model: SamplingOptions, `charrnn sample`'s options one to one, the
library's generate/stream arguments, and a served completion's (the same object everywhere,
checked once)."""
from dataclasses import dataclass, replace

from charrnn.config.fields import OptionError, check, option


@dataclass(frozen=True)
class SamplingOptions:
    """Validated on construction; ``replace(opts, temperature=0.5)`` makes a changed copy."""

    length: int = option(500, "Tokens generated after the prime; 0 = until --stop or the reader stops.", min=0)
    temperature: float = option(1.0, "Below 1 is more conservative, above 1 more surprising.",
                                flags=("--temp", "--temperature"), min=0, min_open=True)
    top_k: int = option(0, "Draw only from the K most likely tokens; 0 = all.", min=0)
    top_p: float = option(1.0, "Draw only from the smallest set of tokens with probability P.", min=0, max=1,
                          min_open=True)
    argmax: bool = option(False, "Always take the most likely token.")
    stop: str | None = option(None, "End a sample right after this text appears.", metavar="TEXT")
    seed: int | None = option(None, "Same seed, same bytes [default: random].", min=0)
    beam: int | None = option(None, "Beam search with N beams for the most likely continuation.", min=1)
    samples: int = option(1, "Samples to draw, one after another, each from the prime.", flags=("--num-samples",),
                          min=1)

    def __post_init__(self):
        check(self)
        used = {"temperature": self.temperature != 1.0, "top_k": self.top_k > 0, "top_p": self.top_p < 1.0,
                "argmax": self.argmax, "seed": self.seed is not None, "stop": bool(self.stop),
                "samples": self.samples > 1, "beam": bool(self.beam)}
        if self.argmax:
            bad = [n for n in ("temperature", "top_k", "top_p", "seed", "samples", "beam") if used[n]]
            if bad:
                raise OptionError(SamplingOptions, lambda n: (
                    f"{n('argmax')} cannot be combined with {', '.join(map(n, bad))}: it takes the most likely "
                    f"token every time, so nothing is drawn and every sample is the same"))
        if self.beam:
            bad = [n for n in ("temperature", "top_k", "top_p", "argmax", "seed", "stop", "samples") if used[n]]
            if bad:
                raise OptionError(SamplingOptions, lambda n: (
                    f"{n('beam')} cannot be combined with {', '.join(map(n, bad))}: beam search takes the single "
                    f"most likely continuation of {n('length')} tokens"))
            if self.length == 0:
                raise OptionError(SamplingOptions, lambda n: f"{n('beam')} needs a {n('length')} above 0")

    @property
    def drawn(self):
        """Whether tokens are drawn at random (not argmax, not beam search): a seed matters."""
        return not (self.argmax or self.beam)

    def one(self):
        """The options of one of several samples."""
        return replace(self, samples=1)
