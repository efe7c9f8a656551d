"""What a checkpoint holds, and the validation of it on load.

container.py is the container (arrays + JSON, atomic, checksummed); this module is the
schema inside it:
    arrays  param/<key>        model parameters (keys as in core.model)
            opt/<key>          optimizer state ("t", "m.<param>", "v.<param>", ...)
            state/<l>/<i>      the carried hidden state (layer l, i = 0 h, 1 c)
    meta    kind "lm" or "classifier" (then also labels: the K label names), charrnn version, model and training config, vocabulary, step,
            epoch, data position, RNG state, corpus sha256, metrics
"""
import math
from dataclasses import dataclass, field

import numpy as np

from charrnn import __version__
from charrnn.store import container
from charrnn.store import rundir
from charrnn.training.config import TrainConfig
from charrnn.core import cells, optim
from charrnn.core.model import ModelConfig
from charrnn.errors import CheckpointError
from charrnn.text.vocab import Vocab


@dataclass
class Bundle:
    cfg: ModelConfig
    params: dict
    vocab: Vocab
    meta: dict
    train: TrainConfig | None = None
    opt_state: dict = field(default_factory=dict)
    state: list | None = None  # carried hidden state, per layer a tuple of (B,H)

    @property
    def step(self):
        return int(self.meta.get("step", 0))


def param_shapes(cfg):
    """Every parameter's shape for ``cfg``, without allocating the parameters."""
    V, E, H, G = cfg.vocab_size, cfg.embed, cfg.hidden, cells.GATES[cfg.cell] * cfg.hidden
    shapes = {}
    if E > 0:
        shapes["embed.W"] = (V, E)
    D = E if E > 0 else V
    for l in range(cfg.layers):
        for d in (("fwd.", "bwd.") if cfg.bidirectional else ("",)):
            pre = f"layers.{l}.{d}"
            shapes.update({pre + "Wx": (D, G), pre + "Wh": (H, G), pre + "b": (G,)})
            if cfg.cell == "gru":
                shapes[pre + "bh"] = (H,)
        D = cfg.out_width
    shapes["out.V"] = (cfg.out_width, cfg.out_size)
    shapes["out.c"] = (cfg.out_size,)
    return shapes


def pack(params, cfg, vocab, meta, opt_state=None, state=None):
    """(arrays, meta) as container.save and RunDir.write take them."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    for k, v in (opt_state or {}).items():
        arrays[f"opt/{k}"] = v
    for l, s in enumerate(state or []):
        for i, a in enumerate(s):
            arrays[f"state/{l}/{i}"] = a
    full = dict(meta, format="charrnn", charrnn=__version__, model=cfg.to_json(), vocab=vocab.to_json())
    return arrays, full


def resolve(path, checkpoint_dir, kind="lm"):
    """The checkpoint a command reads (rundir.resolve_checkpoint), where no path means the most
    recent run holding a model of this kind ("lm", "classifier", None for either): a classifier
    trained last does not hide the language model trained before it."""
    def accept(p):
        try:
            meta = container.read_meta(p)  # the manifest only: the chosen file is loaded in full later
        except CheckpointError:
            return True  # load() then says what is wrong with it
        return (meta.get("kind") == "classifier") == (kind == "classifier")

    if kind is None:
        return rundir.resolve_checkpoint(path, checkpoint_dir)
    if kind == "classifier":
        return rundir.resolve_checkpoint(path, checkpoint_dir, accept, "sequence classifier",
                                         "charrnn classify train DATA.tsv")
    return rundir.resolve_checkpoint(path, checkpoint_dir, accept, "language model")


def load(path, kind="lm"):
    """A validated Bundle, or CheckpointError naming what is wrong.

    kind "lm" takes language models only, "classifier" sequence classifiers only, None either."""
    arrays, meta = container.load(path)
    try:
        b = _validate(arrays, meta)
    except (KeyError, TypeError, ValueError) as e:
        msg = e.args[0] if e.args else type(e).__name__
        raise CheckpointError(f"{path}: not a valid charrnn model: {' '.join(str(msg).split())}") from None
    except Exception as e:  # the boundary, as in container.load: nothing else may escape
        detail = " ".join(str(e).split())
        raise CheckpointError(f"{path}: not a valid charrnn model ({type(e).__name__}: {detail})") from e
    if kind == "lm" and b.cfg.labels:
        raise CheckpointError(f"{path}: a sequence classifier, not a language model; use charrnn classify predict")
    if kind == "classifier" and not b.cfg.labels:
        raise CheckpointError(f"{path}: a language model, not a sequence classifier (train one with "
                              "charrnn classify train)")
    return b


def _validate(arrays, meta):
    if meta.get("format") != "charrnn":
        raise ValueError("missing format tag")
    if not isinstance(meta.get("model"), dict):
        raise ValueError("model config missing")
    _check_types("model", meta["model"], _MODEL_TYPES)
    cfg = ModelConfig.from_json(meta["model"])
    if cfg.bidirectional and not cfg.labels:
        raise ValueError("a bidirectional model is not a language model")
    if cfg.labels:
        names = meta.get("labels")
        if not isinstance(names, list) or len(names) != cfg.labels or not all(isinstance(n, str) for n in names):
            raise ValueError(f"a classifier needs its {cfg.labels} label names")
    n_params = sum(name.startswith("param/") for name in arrays)
    if 3 * cfg.layers > n_params:  # before param_shapes: a lying layer count must not cost memory
        raise ValueError(f"model has {cfg.layers} layers but the file holds only {n_params} parameters")
    vocab = Vocab.from_json(meta["vocab"])
    if len(vocab) != cfg.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} tokens, model expects {cfg.vocab_size}")
    train = None
    if meta.get("train") is not None:
        if not isinstance(meta["train"], dict):
            raise ValueError("train config is not an object")
        _check_types("train", meta["train"], _TRAIN_TYPES)
        train = TrainConfig.from_json(meta["train"])
        if train.optimizer not in optim.OPTIMIZERS or train.lr_schedule not in optim.SCHEDULES:
            raise ValueError(f"unknown optimizer {train.optimizer!r} or schedule {train.lr_schedule!r}")
    _check_meta(meta)
    expected = param_shapes(cfg)
    params, opt_state, state = {}, {}, {}
    for name, a in arrays.items():
        group, _, key = name.partition("/")
        if group == "param":
            if key not in expected:
                raise ValueError(f"unexpected parameter {key!r}")
            if a.shape != expected[key] or a.dtype not in (np.float32, np.float64):
                raise ValueError(f"parameter {key!r} has shape {a.shape} {a.dtype}, expected {expected[key]}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"parameter {key!r} is not finite")
            params[key] = a
        elif group == "opt":
            opt_state[key] = a
        elif group == "state":
            state[key] = a
        else:
            raise ValueError(f"unexpected array {name!r}")
    missing = set(expected) - set(params)
    if missing:
        raise ValueError(f"missing parameter(s) {sorted(missing)}")
    if len({a.dtype for a in params.values()}) != 1:
        raise ValueError("parameters of mixed dtypes")
    _check_opt_state(opt_state, expected, train)
    return Bundle(cfg, params, vocab, meta, train, opt_state, _unflatten_state(state, cfg))


def _check_opt_state(opt_state, expected, train):
    if not opt_state:
        return
    name = train.optimizer if train else "adam"
    slots = optim.make_optimizer(name).slots
    want = {"t": ()} | {f"{s}.{k}": shape for s in slots for k, shape in expected.items()}
    if set(opt_state) != set(want):
        raise ValueError("optimizer state does not match the model")
    for k, shape in want.items():
        a = opt_state[k]
        if a.shape != shape:
            raise ValueError(f"optimizer state {k!r} has the wrong shape")
        if k == "t":
            if a.dtype.kind not in "iu" or int(a) < 0:
                raise ValueError("optimizer step count 't' must be a non-negative integer")
        elif a.dtype not in (np.float32, np.float64) or not np.all(np.isfinite(a)):
            raise ValueError(f"optimizer state {k!r} must be finite floats")


def _unflatten_state(flat, cfg):
    if not flat:
        return None
    n_state = len(cells.STATE_NAMES[cfg.cell])
    state = []
    for l in range(cfg.layers):
        try:
            arrs = tuple(flat[f"{l}/{i}"] for i in range(n_state))
        except KeyError:
            raise ValueError("carried state is incomplete") from None
        B = arrs[0].shape[0] if arrs[0].ndim == 2 else -1
        if any(a.shape != (B, cfg.hidden) for a in arrs):
            raise ValueError("carried state has the wrong shape")
        if any(a.dtype not in (np.float32, np.float64) or not np.all(np.isfinite(a)) for a in arrs):
            raise ValueError("carried state must be finite floats")
        state.append(arrs)
    if len(flat) != cfg.layers * n_state:
        raise ValueError("carried state has extra arrays")
    return state


# JSON types of the configuration fields: ModelConfig and TrainConfig check ranges, not types
# (True passes as 1, 16.0 as 16, and an int() of a string is tried), and a wrongly typed value
# would only fail later, as a traceback in sample, info or a resumed run.
_INT, _NUM, _STR, _BOOL = (int,), (int, float), (str,), (bool,)
_MODEL_TYPES = {"vocab_size": _INT, "layers": _INT, "hidden": _INT, "embed": _INT,
                "cell": _STR, "activation": _STR, "dropout": _NUM, "bidirectional": _BOOL,
                "forget_bias": _NUM, "labels": _INT}
_TRAIN_TYPES = {"level": _STR, "max_vocab": _INT + (type(None),), "errors": _STR, "seq_len": _INT,
                "batch": _INT, "optimizer": _STR, "lr": _NUM, "lr_schedule": _STR, "warmup": _INT,
                "clip": _NUM, "clip_value": _NUM, "steps": _INT + (type(None),),
                "epochs": _NUM + (type(None),), "minutes": _NUM + (type(None),), "val_frac": _NUM,
                "eval_every": _INT, "seed": _INT, "threads": _INT}


def _check_types(what, d, types):
    for k, v in d.items():
        allowed = types.get(k)
        if allowed is not None and type(v) not in allowed:  # type(): a bool is no int here
            raise ValueError(f"{what} option {k!r} has the wrong type ({type(v).__name__})")
        if type(v) is float and not math.isfinite(v):
            raise ValueError(f"{what} option {k!r} is not finite")
    if what == "train" and type(d.get("seed", 0)) is int and d.get("seed", 0) < 0:
        raise ValueError("train option 'seed' must be non-negative")


def _number_or_none(v):
    return v is None or (type(v) in (int, float) and math.isfinite(v))


def _check_meta(meta):
    """The meta fields sample, info and a resumed run read, besides model, vocab and train."""
    step = meta.get("step", 0)
    if type(step) is not int or step < 0:
        raise ValueError("step must be a non-negative integer")
    if not _number_or_none(meta.get("epoch")):
        raise ValueError("epoch must be a number")
    metrics = meta.get("metrics", {})
    if not isinstance(metrics, dict) or not all(_number_or_none(v) for v in metrics.values()):
        raise ValueError("metrics must be an object of numbers")
    corpus = meta.get("corpus", {})
    if not isinstance(corpus, dict) or not isinstance(corpus.get("sha256", ""), (str, type(None))):
        raise ValueError("corpus must be an object with a sha256 string")
    if "rng" in meta or meta.get("train") is not None:
        try:  # a resumed run restores it into the PCG64 that default_rng makes
            np.random.default_rng(0).bit_generator.state = meta["rng"]
        except Exception:
            raise ValueError("rng state missing or not a PCG64 state") from None
