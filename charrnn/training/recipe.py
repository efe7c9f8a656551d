"""The best network a budget buys: what `charrnn train` chooses when the user leaves it open.

Two quantities decide. The tokens the budget shows a network (its steps times the window's
tokens): a network learns its parameters from them, and one that sees too few for its size is
still underfit when the run ends — so the rule climbs a ladder of networks, each larger and
slower than the last, and stops at the largest that sees enough tokens per parameter in the
budget (tokens_per_param: many when the text is fresh, few when it is read many times over,
TOKENS_PER_PARAM). And the corpus's size: a network with many more parameters than the
text has tokens memorises it, so none larger than PARAMS_PER_TOKEN per training token is
considered. Then dropout follows the passes over the text that network will make (more
passes, more memorising to prevent), and so does the window (longer in a long run on text read
less than once), the peak learning rate its width (wider, lower) and Adam's β2 the steps (a short
run's gradient scale falls within it: a shorter memory of g²). The
budget is the run's: --minutes (the machine's measured speed turns it into steps), --steps or
--epochs. docs/recipe.md gives the experiments the numbers below come from.

The cell is the coupled-gate LSTM (CELL) unless the user names one. Every option the user
gives wins for that option; the rule fills in the rest around it.
"""
import math
from dataclasses import asdict, dataclass

LADDER = ((2, 128), (2, 192), (2, 256), (2, 384), (2, 512), (3, 512), (3, 768))  # (layers, hidden), slowest last
TOKENS_PER_PARAM = ((0.25, 60.0), (4.0, 3.0))  # (passes, tokens a parameter a network needs): a power law between
PARAMS_PER_TOKEN = 4.0  # and no larger than this many parameters a training token: past it, it memorises
DROPOUT = ((2.0, 0.0), (5.0, 0.1), (10.0, 0.25), (20.0, 0.35), (math.inf, 0.45))  # (passes up to, dropout)
CELL = "cifg"  # three gate blocks for the LSTM's four: more steps a minute, and as good a step (docs/recipe.md)
CHOSEN = ("cell", "layers", "hidden", "dropout", "lr", "seq_len", "beta2")  # what the recipe sets unless the user does
WINDOW = {"char": 50}  # --seq-len: the same tokens a step in windows half as long make twice the updates
FRESH_WINDOW = 100  # --seq-len of a long run on fresh text: a gradient twice as deep pays more than twice the updates
FRESH_PASSES = 1.0  # text a network reads less than once is fresh
FRESH_STEPS = 5000  # and a long run, at least this many steps of WINDOW: a short one needs its updates more
BETA2 = ((2000, 0.99), (math.inf, 0.999))  # (steps up to, Adam's beta2): a short run's memory of g² is short
FIXED = {"cell": "lstm", "layers": 2, "hidden": 256, "dropout": 0.1}  # --recipe fixed: one network everywhere


def window(level, given, default):
    """--seq-len: the user's, else the level's (WINDOW), else the default."""
    return given.get("seq_len", WINDOW.get(level, default))


def fresh_window(passes, steps, level, given):
    """FRESH_WINDOW for a character-level network that will read its text less than once
    (``passes``) in a long run (``steps`` of WINDOW), when the user gave no window; else None.
    Where every token is new and the updates are many, gradients that reach further back learn
    more than a shorter window's extra updates; where the text is read many times over, or the
    run is short, the updates win (docs/recipe.md). The run takes it only if a token costs no
    more with it (token_costs_no_more)."""
    fresh = passes < FRESH_PASSES and steps >= FRESH_STEPS
    return FRESH_WINDOW if fresh and level in WINDOW and "seq_len" not in given else None


def token_costs_no_more(seconds, window, seconds_longer, longer):
    """Whether a step of the ``longer`` window costs no more a token than one of ``window`` on this
    machine: the longer window's gain is a hundredth of a nat, which a tenth fewer tokens undoes."""
    return seconds_longer / longer <= seconds / window


def beta2_for(steps):
    """Adam's β2: 0.99 (a mean of g² over ~100 steps) in a run of up to 2,000 steps, whose
    gradient scale falls within its length; 0.999 beyond, where the longer mean measured better."""
    return next(b for limit, b in BETA2 if steps <= limit)


def tokens_per_param(passes):
    """The tokens a parameter the budget must show a network that makes ``passes`` over the text:
    60 on text it sees a quarter of a time or less (each token is new: a small network learns
    more from it than a large one), 3 on text it reads four times or more (a small network has
    learnt what it can, a large one with dropout learns on), and a power law of the passes in
    between (a straight line in their logarithms: 13.4 at one pass, the two ends' geometric mean)."""
    (fresh, many), (often, few) = TOKENS_PER_PARAM
    p = min(max(passes, fresh), often)
    return many * (few / many) ** (math.log(p / fresh) / math.log(often / fresh))


def dropout_for(passes):
    return next(d for limit, d in DROPOUT if passes <= limit)


def lr_for(hidden, level):
    """The peak learning rate: 8e-3 up to 256 wide at character level, lower as it widens
    (wider layers sum more terms per unit); 2e-3 at word level (a large softmax)."""
    if level == "word":
        return 2e-3
    return round(8e-3 * min(1.0, math.sqrt(256 / hidden)), 4)


def _short(x):
    """8e-3, 2.5e-3, 0.01 → 1e-2: a learning rate as people write one."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


@dataclass(frozen=True)
class Budget:
    """What a run may spend: seconds of training (--minutes), or steps (--steps, --epochs
    turned into steps); the first it reaches ends it."""
    seconds: float | None = None
    steps: int | None = None

    def steps_for(self, seconds_per_step):
        """Steps this budget buys a network taking ``seconds_per_step`` (None: not timed)."""
        by_time = math.inf if self.seconds is None or seconds_per_step is None else self.seconds / seconds_per_step
        return int(min(by_time, math.inf if self.steps is None else self.steps))


@dataclass(frozen=True)
class Choice:
    cell: str
    layers: int
    hidden: int
    dropout: float
    lr: float
    seq_len: int
    beta2: float
    steps: int
    passes: float
    why: str

    def to_json(self):
        return {**asdict(self), "passes": round(self.passes, 2)}


def choose(budget, train_tokens, batch, seq_len, level, given, seconds_per_step, params, cell=CELL):
    """The Choice for a run: ``given`` the model options the user set (they stay),
    ``seconds_per_step(layers, hidden)`` this machine's time for a step of a candidate (not
    called when the budget is steps alone: then speed does not decide; None from it: no time left
    to measure), ``params(layers, hidden)`` a candidate's parameter count."""
    ladder = [(l, h) for l, h in LADDER if given.get("layers", l) == l and given.get("hidden", h) == h]
    if not ladder:  # the user fixed a shape the ladder lacks: it is the only candidate
        ladder = [(given.get("layers", 2), given.get("hidden", 256))]
    small = [shape for shape in ladder if params(*shape) <= PARAMS_PER_TOKEN * train_tokens]
    ladder = small or ladder[:1]  # a tiny corpus still gets the smallest
    tokens_per_step = batch * seq_len
    chosen = None
    for layers, hidden in ladder:
        t = seconds_per_step(layers, hidden) if budget.seconds is not None else None
        if budget.seconds is not None and t is None:
            break  # no time left to measure it: not a network to bet the budget on
        steps = budget.steps_for(t)
        tokens = steps * tokens_per_step
        passes = tokens / max(train_tokens, 1)
        enough = tokens >= tokens_per_param(passes) * params(layers, hidden)
        if chosen is None or enough:
            chosen = (layers, hidden, steps, passes, t)
        if not enough:
            break  # a larger one only sees fewer tokens for more parameters
    layers, hidden, steps, passes, t = chosen
    dropout = given.get("dropout", dropout_for(passes))
    lr = given.get("lr", lr_for(hidden, level))
    beta2 = given.get("beta2", beta2_for(steps))
    how = f"{budget.seconds / 60:g} min on this machine ≈ " if budget.seconds is not None and t else ""
    why = (f"{how}{steps:,} steps ≈ {passes:.1f} passes over {train_tokens:,} {level}s → {layers}x{hidden} {cell}, "
           f"dropout {dropout:g}, peak lr {_short(lr)}, window {seq_len}, β2 {beta2:g}")
    return Choice(cell, layers, hidden, dropout, lr, seq_len, beta2, steps, passes, why)
