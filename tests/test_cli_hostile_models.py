"""Right container, wrong model: real checkpoints (tests/hostile_support.py's lab) saved again
with container.save, so the file is well formed and correctly signed, after their arrays or
meta were made wrong: named cases (shapes, missing and extra parameters, NaN, vocabularies,
model and training options, optimizer and carried state, step, metrics, rng) and fuzzed ones
(hypothesis). Each is refused by the model schema with one line naming what is wrong, or loads
as a model that works; a model whose finite weights overflow is refused by sample in one line."""
import copy
import datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.store import container

from .hostile_support import (DELETE, FUZZED, assert_usable, dela, edit, invoke, outcome, refused, seta, setm,
                              write)
from .hostile_support import lab  # noqa: F401  (a fixture)


def poison(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


SEMANTIC = {  # name: (cell, arrays edit, meta edit, expected words in the message)
    "wrong parameter shape": ("gru", seta("param/out.V", lambda a: a[:, :-1]), None, "has shape"),
    "transposed parameter": ("gru", seta("param/layers.0.Wh", lambda a: np.ascontiguousarray(a.T)), None,
                             "has shape"),
    "missing parameter": ("lstm", dela("param/out.c"), None, "missing parameter"),
    "missing embedding": ("lstm", dela("param/embed.W"), None, "missing parameter"),
    "extra array": ("rnn", lambda a: a.update(junk=np.zeros(3, np.float32)), None, "unexpected array"),
    "extra parameter": ("rnn", lambda a: a.update({"param/layers.1.Wx": np.zeros(3, np.float32)}), None,
                        "unexpected parameter"),
    "NaN parameter": ("lstm", seta("param/layers.0.Wx", poison), None, "not finite"),
    "inf parameter": ("gru", seta("param/out.c", lambda a: np.full_like(a, np.inf)), None, "not finite"),
    "integer parameter": ("gru", seta("param/out.c", lambda a: a.astype(np.int32)), None, "has shape"),
    "mixed dtypes": ("gru", seta("param/out.c", lambda a: a.astype(np.float64)), None, "mixed dtypes"),
    "vocab size mismatch": ("gru", None, lambda m: m["model"].update(vocab_size=m["model"]["vocab_size"] - 1),
                            "model expects"),
    "vocab one token short": ("gru", None, lambda m: m["vocab"]["tokens"].pop(), "model expects"),
    "duplicate vocab token": ("gru", None, lambda m: m["vocab"]["tokens"].__setitem__(0, "a"), "more than once"),
    "vocab not an object": ("gru", None, setm("vocab", "abc"), "vocabulary must be a JSON object"),
    "vocab missing": ("gru", None, setm("vocab", DELETE), "vocab"),
    "lone surrogate token": ("gru", None, lambda m: m["vocab"]["tokens"].__setitem__(0, "\ud800"), "surrogate"),
    "cell transformer": ("lstm", None, setm("model.cell", "transformer"), "cell must be one of"),
    "hidden -1": ("lstm", None, setm("model.hidden", -1), "hidden must be at least 1"),
    "layers as string": ("lstm", None, setm("model.layers", "1"), "model config: layers must be a whole number, not str '1'"),
    "layers true": ("lstm", None, setm("model.layers", True), "model config: layers must be a whole number, not bool True"),
    "hidden float": ("lstm", None, setm("model.hidden", 16.0), "model config: hidden must be a whole number, not float 16.0"),
    "dropout null": ("lstm", None, setm("model.dropout", None), "model config: dropout must be given, not None"),
    "unknown model option": ("lstm", None, setm("model.heads", 8), "heads"),
    "bidirectional": ("rnn", None, setm("model.bidirectional", True), "bidirectional"),
    "a trillion layers": ("rnn", None, setm("model.layers", 10**12), "layers"),
    "model not an object": ("rnn", None, setm("model", [1, 2]), "model config missing"),
    "no format tag": ("rnn", None, setm("format", DELETE), "missing format tag"),
    "optimizer state mismatch": ("gru", None, setm("train.optimizer", "sgd"), "optimizer state does not match"),
    "optimizer slot missing": ("gru", dela("opt/v.out.c"), None, "optimizer state does not match"),
    "optimizer slot wrong shape": ("gru", seta("opt/m.out.V", lambda a: a[1:]), None, "wrong shape"),
    "optimizer slot NaN": ("lstm", seta("opt/m.out.V", poison), None, "finite floats"),
    "optimizer slot uint8": ("lstm", seta("opt/v.out.c", lambda a: a.astype(np.uint8)), None, "finite floats"),
    "optimizer step NaN": ("lstm", seta("opt/t", lambda a: np.array(np.nan)), None, "non-negative integer"),
    "optimizer step bool": ("lstm", seta("opt/t", lambda a: np.array(True)), None, "non-negative integer"),
    "optimizer step negative": ("lstm", seta("opt/t", lambda a: np.array(-3)), None, "non-negative integer"),
    "unknown optimizer": ("lstm", None, setm("train.optimizer", "lion"), "optimizer"),
    "unknown schedule": ("lstm", None, setm("train.lr_schedule", "zigzag"), "schedule"),
    "batch float": ("lstm", None, setm("train.batch", 1.5), "train config: batch must be a whole number, not float 1.5"),
    "negative seed": ("lstm", None, setm("train.seed", -1), "seed"),
    "train a list": ("lstm", None, setm("train", []), "train config: TrainConfig is not a JSON object"),
    "unknown train option": ("lstm", None, setm("train.momentum", 0.9), "train config: unknown option(s) ['momentum']"),
    "state NaN": ("lstm", seta("state/0/1", poison), None, "finite floats"),
    "state int": ("gru", seta("state/0/0", lambda a: a.astype(np.int32)), None, "finite floats"),
    "state wrong width": ("gru", seta("state/0/0", lambda a: np.zeros((4, 17), np.float32)), None, "wrong shape"),
    "state incomplete": ("lstm", dela("state/0/1"), None, "incomplete"),
    "step negative": ("rnn", None, setm("step", -1), "step must be"),
    "step true": ("rnn", None, setm("step", True), "step must be"),
    "epoch string": ("rnn", None, setm("epoch", "x"), "epoch"),
    "metrics a list": ("rnn", None, setm("metrics", [1]), "metrics"),
    "val loss string": ("rnn", None, setm("metrics.val_loss", "low"), "metrics"),
    "corpus a string": ("rnn", None, setm("corpus", "x"), "corpus"),
    "rng garbage": ("rnn", None, setm("rng", "x"), "rng"),
    "rng missing": ("rnn", None, setm("rng", DELETE), "rng"),
    "rng of another generator": ("rnn", None, setm("rng.bit_generator", "MT19937"), "rng"),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC))
def test_well_formed_but_wrong_checkpoints_are_refused(lab, case):
    cell, arrays_fn, meta_fn, words = SEMANTIC[case]
    path = edit(lab, cell, arrays_fn, meta_fn)
    assert container.load(path)  # the container is fine: this is bundle's business
    msg = refused(path)
    assert msg is not None, f"{case}: loaded"
    assert msg.startswith(f"{path}: not a valid charrnn model") and words in msg, msg
    FUZZED["well-formed but wrong (named cases)"] += 1


# Values hypothesis plants in the meta: types, signs, sizes and strings that do not belong.
META_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 1, 2, 15, 16, 1.5, -0.0, 1e308, 10**12, 2**63, 2**64, "", "x",
                     "lstm", "gru", "transformer", "adam", "sgd", "char", "word", "\ud800", "a\nb", [], {}, [1],
                     [16, 48], {"a": 1}, ["a", "a"]]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
)
ARRAY_NAMES = ["junk", "param/x", "opt/x", "state/0/0", "state/0/1", "state/9/0", "param/embed.W", "opt/t",
               "param/layers.0.bh", "param/layers.1.Wx", "opt/m.out.V"]


def json_paths(obj, prefix=()):
    if prefix:
        yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from json_paths(v, prefix + (i,))


def mutate_semantics(arrays, meta, draw):
    for _ in range(draw(st.integers(1, 3), label="n_ops")):
        op = draw(st.sampled_from(["set", "set", "delete", "add", "drop_array", "add_array", "reshape",
                                   "dtype", "poison", "scalar"]), label="op")
        FUZZED[f"well-formed but wrong, fuzzed ({op})"] += 1
        if op in ("set", "delete", "add"):
            path = draw(st.sampled_from(sorted(json_paths(meta), key=repr)), label="path")
            *parents, last = path
            node = meta
            for p in parents:
                node = node[p]
            if op == "set":
                node[last] = draw(META_VALUES, label="value")
            elif op == "delete" and isinstance(node, dict):
                del node[last]
            elif isinstance(node, dict):
                node[draw(st.sampled_from(["extra", "embed", "hidden", "unk", "kind", "rng"]))] = draw(META_VALUES)
        else:
            name = draw(st.sampled_from(sorted(arrays)), label="name") if arrays else None
            if op == "drop_array" and name:
                del arrays[name]
            elif op == "add_array":
                arrays[draw(st.sampled_from(ARRAY_NAMES))] = draw(st.sampled_from(
                    [np.zeros(3, np.float32), np.zeros((4, 16), np.float32), np.array(7), np.zeros((0, 16))]))
            elif op == "reshape" and name:
                a = arrays[name]
                arrays[name] = draw(st.sampled_from([a.reshape(-1), np.ascontiguousarray(a.T), a[None],
                                                     a.reshape(-1)[:0], a.reshape(-1)[: max(a.size - 1, 0)]]))
            elif op == "dtype" and name:
                with np.errstate(invalid="ignore"):  # NaN or inf cast to an integer: garbage is fine
                    arrays[name] = arrays[name].astype(draw(st.sampled_from(
                        ["<f8", "<f4", "<i4", "<i8", "<u8", "|u1", "|b1"])))
            elif op == "poison" and name and arrays[name].size and arrays[name].dtype.kind == "f":
                a = arrays[name].copy()
                a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3e38]))
                arrays[name] = a
            elif op == "scalar" and name:
                arrays[name] = np.asarray(arrays[name].reshape(-1)[:1].sum())


@settings(max_examples=500, deadline=datetime.timedelta(seconds=10), database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_models_are_refused_or_work(lab, data):
    cell = data.draw(st.sampled_from(sorted(lab.ckpts)), label="cell")
    arrays, meta = container.load(write(lab.root / "files" / f"src-{cell}.ckpt", lab.ckpts[cell]))
    meta = copy.deepcopy(meta)
    mutate_semantics(arrays, meta, data.draw)
    path = lab.root / "files" / "fuzzed.ckpt"
    try:
        container.save(path, arrays, meta)
    except ValueError:
        return  # save itself refuses (e.g. an unsupported dtype): nothing to load
    b = outcome(path)
    if b is not None:
        FUZZED["well-formed but wrong, fuzzed: loaded (then used)"] += 1
        assert_usable(b, path, lab)


def test_a_model_whose_finite_weights_overflow_is_refused_by_sample_in_one_line(lab):
    """Finite weights load; a relu RNN with Wh[0,0] = 3e38 then overflows within a few steps."""
    arrays, meta = container.load(write(lab.root / "files" / "src-rnn.ckpt", lab.ckpts["rnn"]))
    arrays["param/layers.0.Wh"] = arrays["param/layers.0.Wh"].copy()
    arrays["param/layers.0.Wh"].flat[0] = 3e38
    path = lab.root / "files" / "overflowing.ckpt"
    container.save(path, arrays, meta)
    assert outcome(path) is not None
    r = invoke("sample", "--checkpoint", path, "--length", 50, "--seed", 0, work=lab.root)
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.stderr == "charrnn: error: cannot sample: the model's output is not finite (its weights overflow)\n"
