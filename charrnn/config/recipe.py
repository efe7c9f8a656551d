"""How a model is trained: TrainConfig (`charrnn train`) and ClassifyConfig (`charrnn classify
train`), their options one to one; both travel in checkpoints.

Options that only say where things go (--checkpoint-dir, --name, --log, --quiet, --resume,
--force: config/run.py) are not part of them: they do not change what is learned.
"""
from dataclasses import asdict, dataclass

from charrnn.config.fields import OptionError, check, from_json, option
from charrnn.core import optim

DEFAULT_MINUTES = 10.0  # when no --steps, --epochs or --minutes is given
LEVELS = ("char", "word")
ERRORS = ("strict", "replace")


@dataclass(frozen=True)
class Recipe:
    """What both training commands decide a run by, and the training loop reads."""

    level: str = option("char", "Tokens are Unicode characters, or words, punctuation and whitespace runs.",
                        choices=LEVELS)
    max_vocab: int | None = option(None, "Word level: keep the N most frequent tokens; the rest become an unknown "
                                         "token.", min=1)
    errors: str = option("strict", "What to do with invalid UTF-8.", choices=ERRORS)
    batch: int = option(32, "Number of contiguous streams trained in parallel.", min=1)
    optimizer: str = option("adam", "SGD with momentum 0.9, Adam, RMSprop (alpha 0.95) or Adagrad.",
                            choices=optim.OPTIMIZERS)
    beta2: float = option(0.999, "Adam: the decay of its mean of squared gradients (lower follows a changing "
                                 "gradient scale sooner).", min=0, max=1, max_open=True)
    lr: float = option(2e-3, "Peak learning rate.", min=0, min_open=True)
    lr_schedule: str = option("cosine", "cosine decays to 0 over the run; step halves it at 25, 50 and 75 %.",
                              choices=optim.SCHEDULES)
    warmup: int = option(50, "Steps of linear learning-rate warm-up.", min=0)
    clip: float = option(5.0, "Clip the global gradient norm to this; 0 = off.", min=0)
    clip_value: float = option(0.0, "Also clip each gradient element to [-F, F], as char-rnn does; 0 = off.", min=0)
    steps: int | None = option(None, "Total steps of the run (also when resuming).", min=1)
    epochs: float | None = option(None, "Stop after this many passes over the training text.", min=0, min_open=True)
    minutes: float | None = option(None, "Stop after this long in all (also when resuming); with none of "
                                         "--steps/--epochs/--minutes: 10 minutes.", min=0, min_open=True)
    val_frac: float = option(0.1, "The last fraction of the text, held out for validation.", min=0, max=1,
                             max_open=True)
    eval_every: int | None = option(None, "Validate and checkpoint every N steps.", min=1)
    seed: int = option(0, "Seeds the initialisation and the dropout masks: same seed, same model.", min=0)

    DEFAULT_LIMITS = (None, None, DEFAULT_MINUTES)  # (steps, epochs, minutes) when none is given

    def __post_init__(self):
        check(self)
        if self.max_vocab is not None and self.level == "char":
            raise OptionError(type(self), lambda n: f"{n('max_vocab')} applies to {n('level')} word only (a "
                                                    f"character-level model keeps every character)")

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
        return from_json(cls, d)


@dataclass(frozen=True)
class TrainConfig(Recipe):
    """`charrnn train`'s recipe, one to one; travels in the checkpoint as "train"."""

    seq_len: int = option(100, "Window of truncated backpropagation through time.", min=1)
    lr: float = option(8e-3, "Peak learning rate.", min=0, min_open=True, auto="8e-3 at char level, 2e-3 at word "
                                                                                "level")
    warmup: int = option(100, "Steps of linear learning-rate warm-up.", min=0)
    val_frac: float = option(0.05, "The last fraction of the text, held out for validation.", min=0, max=1,
                             max_open=True)
    eval_every: int | None = option(None, "Validate and checkpoint every N steps.", min=1,
                                    auto="200, or each fifth of a --minutes run if that comes sooner")
    threads: int = option(1, "Workers sharing the batch's shards (processes on Linux where they pay): the speed, "
                             "never the numbers.", min=1, auto="one per core, at most 4")
    ranks: int = option(1, "MPI ranks that trained it (mpirun -n K).", min=1, recorded=True)
    reduction: str = option("exact", "How the MPI ranks summed gradients: exact (core/shards.py's tree) or sum "
                                     "(MPI_Allreduce).", choices=("exact", "sum"), recorded=True)
    recipe: str = option("auto", "auto: the network (layers, hidden, dropout), peak lr and window that the corpus, "
                                 "the budget and this machine's speed call for (what you give stays); fixed: 2x256 "
                                 "LSTM, dropout 0.1, window 100, everywhere.", choices=("auto", "fixed"))


LM_LR = {"char": 8e-3, "word": 2e-3}  # a short char-level run learns fastest from a high peak (docs/recipe.md)


@dataclass(frozen=True)
class ClassifyConfig(Recipe):
    """`charrnn classify train`'s recipe, one to one; travels in the checkpoint as "classify".
    eval_every None: once per epoch."""

    batch: int = option(32, "Texts per step.", min=1)
    val_frac: float = option(0.1, "A random fraction of the lines held out for validation accuracy.", min=0, max=1,
                             max_open=True)
    epochs: float | None = option(None, "Passes over the training lines; with none of --steps/--epochs/--minutes: "
                                        "10.", min=0, min_open=True)
    eval_every: int | None = option(None, "Validate and checkpoint every N steps.", min=1, auto="once per epoch")
    seed: int = option(0, "Seeds the initialisation, the split, the batches and dropout: same seed, same model.",
                       min=0)
    max_len: int = option(400, "Tokens kept from the start of each text.", min=1)

    DEFAULT_LIMITS = (None, 10.0, None)  # 10 epochs: a labelled set is small and overfits
