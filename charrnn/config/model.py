"""The network's shape: ModelConfig, `charrnn train`'s model options one to one.

Its defaults are `charrnn train`'s; `charrnn classify train` starts from CLASSIFY_MODEL's.
"""
from dataclasses import asdict, dataclass

from charrnn.config.fields import check, from_json, option
from charrnn.core import cells


@dataclass(frozen=True)
class ModelConfig:
    """The network: a language model (labels 0) or a classifier over ``labels`` labels."""

    vocab_size: int = option(1, "Tokens in the vocabulary.", min=1, recorded=True)
    cell: str = option("lstm", "The recurrent cell.", choices=cells.kinds)
    activation: str = option("tanh", "Nonlinearity of --cell rnn.", choices=cells.ACTIVATIONS)
    layers: int = option(2, "Stacked recurrent layers.", min=1)
    hidden: int = option(256, "Hidden units per layer.", min=1)
    embed: int = option(0, "Embedding width; 0 = one-hot input.", min=0, auto="0 at char level, 128 at word level")
    dropout: float = option(0.1, "Inverted dropout on every layer's output during training.", min=0, max=1,
                            max_open=True)
    bidirectional: bool = option(False, "Read each text both ways; the two final states decide.")
    forget_bias: float = option(0.0, "LSTM: the forget gate's initial bias. 1 helps very long memory; 0 learns text "
                                     "faster.", min=-10, max=10)
    labels: int = option(0, "0: a language model; K: a classifier over K labels.", min=0, recorded=True)

    def __post_init__(self):
        check(self)

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, d):
        return from_json(cls, d)

    @property
    def out_width(self):
        """The width H' the output layer reads: H, or 2H bidirectional."""
        return self.hidden * (2 if self.bidirectional else 1)

    @property
    def out_size(self):
        """What the output layer scores: the next token (V) or the label (K)."""
        return self.labels or self.vocab_size


MODEL_OPTIONS = ("cell", "activation", "layers", "hidden", "embed", "dropout", "forget_bias", "bidirectional")
# `charrnn classify train`'s own defaults: one layer of 128 reads a line; a forget gate open from
# the start keeps its beginning; embed 0 at char level, 64 at word level
CLASSIFY_MODEL = dict(layers=1, hidden=128, dropout=0.0, forget_bias=1.0)
EMBED = {"train": {"char": 0, "word": 128}, "classify": {"char": 0, "word": 64}}
