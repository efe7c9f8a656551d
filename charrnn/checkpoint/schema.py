"""What a checkpoint holds: the one declaration of its fields, and their validation on load.

store/container.py is the file (arrays + a JSON manifest, atomic, checksummed); this module is
the schema inside it (checkpoint/find.py chooses which file a command reads). ``Checkpoint`` declares every field; ``pack`` turns one into the
container's (arrays, meta) and ``load`` turns those back, checking every field before use:

    arrays  param/<key>        model parameters (keys as in core.model)
            opt/<key>          optimizer state ("t", "m.<param>", "v.<param>", ...)
            state/<l>/<i>      the carried hidden state (layer l, i = 0 h, 1 c)
    meta    format "charrnn", charrnn (the version that wrote it), kind, model, vocab, step,
            epoch, and by kind:
              lm          position, train, rng, corpus {sha256, tokens, paths}, metrics
                          {train_loss, val_loss, val_bpc, best_val_loss}, elapsed (the run's
                          clock, seconds: what --minutes counts), choice (what --recipe auto
                          chose, and why)
              classifier  labels, classify, metrics {val_loss, val_acc, best_val_acc}
            saved_at (seconds since the epoch)
"""
import math
from dataclasses import dataclass, field

import numpy as np

from charrnn import __version__
from charrnn.config.model import ModelConfig
from charrnn.config.recipe import ClassifyConfig, TrainConfig
from charrnn.core import cells, optim
from charrnn.core.model import param_shapes
from charrnn.errors import CheckpointError
from charrnn.store import container
from charrnn.text.vocab import Vocab

KINDS = ("lm", "classifier")


@dataclass
class Checkpoint:
    """A model and everything needed to use it, or to resume training it."""

    cfg: ModelConfig
    params: dict  # name -> array, keys as in core.model
    vocab: Vocab
    kind: str = "lm"  # "lm" (a language model) or "classifier"
    step: int = 0
    epoch: float | None = None
    saved_at: float | None = None
    metrics: dict = field(default_factory=dict)  # name -> number or None
    version: str = __version__  # of the charrnn that wrote it
    # a language model's training run
    train: TrainConfig | None = None
    position: int | None = None  # the window the next step reads, within its epoch
    rng: dict | None = None  # the run's PCG64 state
    corpus: dict = field(default_factory=dict)  # sha256, tokens, paths (what it was trained on)
    opt_state: dict = field(default_factory=dict)
    state: list | None = None  # carried hidden state, per layer a tuple of (B,H)
    elapsed: float | None = None  # the run's clock when saved, seconds (what --minutes counts)
    choice: dict | None = None  # what --recipe auto chose and why (training/recipe.py)
    # a classifier's
    classify: ClassifyConfig | None = None
    labels: list | None = None  # the K label names


# --------------------------------------------------------------------------- writing

def pack(ck):
    """(arrays, meta) of a Checkpoint, as container.save and RunDir.write take them."""
    arrays = {f"param/{k}": v for k, v in ck.params.items()}
    for k, v in ck.opt_state.items():
        arrays[f"opt/{k}"] = v
    for l, s in enumerate(ck.state or []):
        for i, a in enumerate(s):
            arrays[f"state/{l}/{i}"] = a
    meta = {"format": "charrnn", "charrnn": __version__, "kind": ck.kind, "model": ck.cfg.to_json(),
            "vocab": ck.vocab.to_json(), "step": ck.step, "epoch": ck.epoch, "saved_at": ck.saved_at,
            "metrics": {k: _finite(v) for k, v in ck.metrics.items()}}
    if ck.kind == "lm":
        meta.update(position=ck.position, rng=ck.rng, corpus=ck.corpus, elapsed=_finite(ck.elapsed), choice=ck.choice,
                    train=None if ck.train is None else ck.train.to_json())
    else:
        meta.update(labels=list(ck.labels), classify=None if ck.classify is None else ck.classify.to_json())
    return arrays, meta


def unpack(arrays, meta):
    """The Checkpoint of pack's (arrays, meta), every field validated (ValueError, KeyError or
    TypeError otherwise): how an MPI rank takes the starting state rank 0 broadcast."""
    return _validate(arrays, meta)


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


# --------------------------------------------------------------------------- reading

def load(path, kind="lm"):
    """A validated Checkpoint, or CheckpointError naming what is wrong.

    kind "lm" takes language models only, "classifier" sequence classifiers only, None either."""
    arrays, meta = container.load(path)
    try:
        ck = _validate(arrays, meta)
    except (KeyError, TypeError, ValueError) as e:
        msg = e.args[0] if e.args else type(e).__name__
        raise CheckpointError(f"{path}: not a valid charrnn model: {' '.join(str(msg).split())}") from None
    except Exception as e:  # the boundary, as in container.load: nothing else may escape
        detail = " ".join(str(e).split())
        raise CheckpointError(f"{path}: not a valid charrnn model ({type(e).__name__}: {detail})") from e
    if kind == "lm" and ck.kind == "classifier":
        raise CheckpointError(f"{path}: a sequence classifier, not a language model; use charrnn classify predict")
    if kind == "classifier" and ck.kind == "lm":
        raise CheckpointError(f"{path}: a language model, not a sequence classifier (train one with "
                              "charrnn classify train)")
    return ck


def _validate(arrays, meta):
    if meta.get("format") != "charrnn":
        raise ValueError("missing format tag")
    if not isinstance(meta.get("model"), dict):
        raise ValueError("model config missing")
    cfg = _config("model", meta["model"], ModelConfig)
    kind = meta.get("kind", "classifier" if cfg.labels else "lm")
    if kind not in KINDS or (kind == "classifier") != bool(cfg.labels):
        raise ValueError(f"kind {kind!r} does not match a model with {cfg.labels} labels")
    if cfg.bidirectional and not cfg.labels:
        raise ValueError("a bidirectional model is not a language model")
    labels = None
    if cfg.labels:
        labels = meta.get("labels")
        if not isinstance(labels, list) or len(labels) != cfg.labels or not all(_text(n) for n in labels):
            raise ValueError(f"a classifier needs its {cfg.labels} label names")
    version = meta.get("charrnn", "")
    if not (_text(version) and len(version) <= 40):
        raise ValueError("the charrnn version that wrote it is not a version string")
    n_params = sum(name.startswith("param/") for name in arrays)
    if 3 * cfg.layers > n_params:  # before param_shapes: a lying layer count must not cost memory
        raise ValueError(f"model has {cfg.layers} layers but the file holds only {n_params} parameters")
    vocab = Vocab.from_json(meta["vocab"])
    if len(vocab) != cfg.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} tokens, model expects {cfg.vocab_size}")
    train = _config("train", meta.get("train"), TrainConfig)
    classify = _config("classify", meta.get("classify"), ClassifyConfig)
    step, epoch, position, saved_at, metrics, corpus = _check_meta(meta)
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
    return Checkpoint(cfg, params, vocab, kind=kind, step=step, epoch=epoch, saved_at=saved_at, metrics=metrics,
                      version=str(meta.get("charrnn", "")), train=train, position=position, rng=meta.get("rng"),
                      corpus=corpus, opt_state=opt_state, state=_unflatten_state(state, cfg),
                      classify=classify, labels=labels, elapsed=_elapsed(meta), choice=_choice(meta))


def _config(what, d, cls):
    """The recorded recipe, through its dataclass's own checks (config/fields.py: types, bounds)."""
    if d is None:
        return None
    try:
        return cls.from_json(d)
    except ValueError as e:
        raise ValueError(f"{what} config: {e}") from None


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
    n_state = len(cells.get(cfg.cell).state)
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


def _choice(meta):
    """What the recipe chose: an object of numbers and strings that says why, or None."""
    v = meta.get("choice")
    if v is not None and not (isinstance(v, dict) and _text(v.get("why")) and
                              all(_text(k) and (_text(x) or _number_or_none(x)) for k, x in v.items())):
        raise ValueError("choice must be an object of numbers and strings with a why")
    return v


def _elapsed(meta):
    v = meta.get("elapsed")
    if not (v is None or (_number_or_none(v) and v >= 0)):
        raise ValueError("elapsed must be a number of seconds")
    return v


def _text(v):
    """A string that can be written out: JSON's \\ud800 escapes make lone surrogates, which can't."""
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _number_or_none(v):
    return v is None or (type(v) in (int, float) and math.isfinite(v))


def _check_meta(meta):
    """(step, epoch, position, saved_at, metrics, corpus): the manifest's other fields, checked."""
    step = meta.get("step", 0)
    if type(step) is not int or step < 0:
        raise ValueError("step must be a non-negative integer")
    if not _number_or_none(meta.get("epoch")):
        raise ValueError("epoch must be a number")
    saved_at = meta.get("saved_at")
    if not (saved_at is None or (_number_or_none(saved_at) and 0 <= saved_at < 1e11)):
        raise ValueError("saved_at must be a time since 1970")
    position = meta.get("position")
    if position is not None and (type(position) is not int or position < 0):
        raise ValueError("position must be a non-negative integer")
    metrics = meta.get("metrics", {})
    if not isinstance(metrics, dict) or not all(_number_or_none(v) for v in metrics.values()):
        raise ValueError("metrics must be an object of numbers")
    corpus = meta.get("corpus") or {}
    if not isinstance(corpus, dict) or not (corpus.get("sha256") is None or _text(corpus["sha256"])):
        raise ValueError("corpus must be an object with a sha256 string")
    tokens = corpus.get("tokens")
    if not (tokens is None or (type(tokens) is int and tokens >= 0)):
        raise ValueError("corpus tokens must be a count")
    paths = corpus.get("paths", [])
    if not isinstance(paths, list) or not all(_text(p) for p in paths):
        raise ValueError("corpus paths must be a list of strings")
    if meta.get("rng") is not None or meta.get("train") is not None:
        try:  # a resumed run restores it into the PCG64 that default_rng makes
            np.random.default_rng(0).bit_generator.state = meta["rng"]
        except Exception:
            raise ValueError("rng state missing or not a PCG64 state") from None
    return step, meta.get("epoch"), position, meta.get("saved_at"), metrics, corpus
