"""Training configuration: mirrors `charrnn train`'s options one to one and travels in checkpoints.

The model's shape is core.model.ModelConfig; this is everything else that decides the run.
Options that only say where things go (--checkpoint-dir, --name, --log, --quiet, --resume,
--force) are not part of it: they do not change what is learned.
"""
import os
from dataclasses import asdict, dataclass, fields

DEFAULT_MINUTES = 10.0  # when no --steps, --epochs or --minutes is given

# The model options' defaults (core.model.ModelConfig's fields) for each command that trains.
# embed None: chosen by --level (train: 0 at char level, 128 at word level; classify: 0 and 64).
LM_MODEL = dict(cell="lstm", activation="tanh", layers=2, hidden=256, embed=None, dropout=0.1, forget_bias=0.0,
                bidirectional=False)
CLASSIFY_MODEL = dict(cell="lstm", activation="tanh", layers=1, hidden=128, embed=None, dropout=0.0,
                      forget_bias=1.0, bidirectional=False)


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads(batch):
    """One worker per available core, at most 4 and at most one per shard of the batch's
    streams (core/shards.py)."""
    from charrnn.core import shards
    return max(1, min(4, cores(), len(shards.bounds(batch))))


@dataclass(frozen=True)
class Recipe:
    """What both training commands decide a run by, and the training loop reads."""

    level: str = "char"
    max_vocab: int | None = None
    errors: str = "strict"
    batch: int = 32
    optimizer: str = "adam"
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    warmup: int = 50
    clip: float = 5.0
    clip_value: float = 0.0  # per-element clipping (char-rnn's grad_clip); 0 = off
    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    val_frac: float = 0.1
    eval_every: int | None = None
    seed: int = 0

    DEFAULT_LIMITS = (None, None, DEFAULT_MINUTES)  # (steps, epochs, minutes) when none is given

    def __post_init__(self):
        _check(self.checks())

    def checks(self):
        """(ok, message) pairs: a ValueError with the first message that is not ok."""
        return [
            (self.level in ("char", "word"), "level must be char or word"),
            (self.max_vocab is None or self.max_vocab >= 1, "--max-vocab must be at least 1"),
            (self.errors in ("strict", "replace"), "errors must be strict or replace"),
            (self.batch >= 1, "--batch must be at least 1"),
            (self.lr > 0, "--lr must be positive"),
            (self.warmup >= 0, "--warmup must be 0 or more"),
            (self.clip >= 0, "--clip must be 0 (off) or positive"),
            (self.clip_value >= 0, "--clip-value must be 0 (off) or positive"),
            (self.steps is None or self.steps >= 1, "--steps must be at least 1"),
            (self.epochs is None or self.epochs > 0, "--epochs must be positive"),
            (self.minutes is None or self.minutes > 0, "--minutes must be positive"),
            (0.0 <= self.val_frac < 1.0, "--val-frac must be in [0, 1)"),
            (self.eval_every is None or self.eval_every >= 1, "--eval-every must be at least 1"),
        ]

    @property
    def limits(self):
        """(steps, epochs, minutes), with DEFAULT_LIMITS when none is set."""
        if self.steps is None and self.epochs is None and self.minutes is None:
            return self.DEFAULT_LIMITS
        return self.steps, self.epochs, self.minutes

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, d):
        """cls(**d), refusing keys it does not know (a checkpoint from a newer charrnn)."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training option(s) {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig(Recipe):
    """`charrnn train`'s recipe, one to one; travels in the checkpoint as "train"."""

    seq_len: int = 100
    lr: float = 8e-3
    warmup: int = 100
    val_frac: float = 0.05
    eval_every: int | None = None  # None: every 200 steps, or each fifth of a --minutes run if sooner
    threads: int = 1  # workers splitting the batch's shards (training/workers.py): the speed, never the numbers
    ranks: int = 1  # MPI ranks splitting them first (training/distributed.py), recorded
    reduction: str = "exact"  # how the ranks summed gradients: exact (core/shards.py's tree) or sum (Allreduce)

    def checks(self):
        return super().checks() + [(self.seq_len >= 1, "--seq-len must be at least 1"),
                                   (self.threads >= 1, "--threads must be at least 1"),
                                   (self.ranks >= 1, "ranks must be at least 1"),
                                   (self.reduction in ("exact", "sum"), "reduction must be exact or sum")]


@dataclass(frozen=True)
class ClassifyConfig(Recipe):
    """`charrnn classify train`'s recipe, one to one; travels in the checkpoint as "classify".
    eval_every None: once per epoch."""

    max_len: int = 400  # tokens kept from the start of each text

    DEFAULT_LIMITS = (None, 10.0, None)  # 10 epochs: a labelled set is small and overfits

    def checks(self):
        return super().checks() + [(self.max_len >= 1, "--max-len must be at least 1")]


def _check(checks):
    """ValueError with the message of the first (ok, message) pair that is not ok."""
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)
