"""What a checkpoint holds, and the validation of it on load.

checkpoint.py is the container (arrays + JSON, atomic, checksummed); this module is the
schema inside it:
    arrays  param/<key>        model parameters (keys as in core.model)
            opt/<key>          optimizer state ("t", "m.<param>", "v.<param>", ...)
            state/<l>/<i>      the carried hidden state (layer l, i = 0 h, 1 c)
    meta    kind "lm", charrnn version, model and training config, vocabulary, step,
            epoch, data position, RNG state, corpus sha256, metrics
"""
from dataclasses import dataclass, field

import numpy as np

from . import __version__, checkpoint
from .config import TrainConfig
from .core import cells, model, optim
from .core.model import ModelConfig
from .errors import CheckpointError
from .text import Vocab


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
    shapes["out.V"] = (cfg.out_width, V)
    shapes["out.c"] = (V,)
    return shapes


def pack(params, cfg, vocab, meta, opt_state=None, state=None):
    """(arrays, meta) as checkpoint.save and RunDir.write take them."""
    arrays = {f"param/{k}": v for k, v in params.items()}
    for k, v in (opt_state or {}).items():
        arrays[f"opt/{k}"] = v
    for l, s in enumerate(state or []):
        for i, a in enumerate(s):
            arrays[f"state/{l}/{i}"] = a
    full = dict(meta, format="charrnn", charrnn=__version__, model=cfg.to_json(), vocab=vocab.to_json())
    return arrays, full


def save(path, params, cfg, vocab, meta, opt_state=None, state=None):
    checkpoint.save(path, *pack(params, cfg, vocab, meta, opt_state, state))


def load(path):
    """A validated Bundle, or CheckpointError naming what is wrong."""
    arrays, meta = checkpoint.load(path)
    try:
        return _validate(arrays, meta)
    except (KeyError, TypeError, ValueError) as e:
        msg = e.args[0] if e.args else type(e).__name__
        raise CheckpointError(f"{path}: not a valid charrnn model: {msg}") from None


def _validate(arrays, meta):
    if meta.get("format") != "charrnn":
        raise ValueError("missing format tag")
    if not isinstance(meta.get("model"), dict):
        raise ValueError("model config missing")
    cfg = ModelConfig.from_json(meta["model"])
    vocab = Vocab.from_json(meta["vocab"])
    if len(vocab) != cfg.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} tokens, model expects {cfg.vocab_size}")
    train = TrainConfig.from_json(meta["train"]) if meta.get("train") is not None else None
    step = meta.get("step", 0)
    if not isinstance(step, int) or step < 0:
        raise ValueError("step must be a non-negative integer")
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
        if opt_state[k].shape != shape:
            raise ValueError(f"optimizer state {k!r} has the wrong shape")


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
        state.append(arrs)
    if len(flat) != cfg.layers * n_state:
        raise ValueError("carried state has extra arrays")
    return state
