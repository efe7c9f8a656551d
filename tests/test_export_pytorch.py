"""`charrnn export --torch`: nn.LSTM (also for a CIFG) / nn.GRU / nn.RNN + nn.Linear loaded from a charrnn
checkpoint give charrnn's next-token probabilities. Skipped where torch is not installed
(`pip install torch==2.13.0` takes the wheel on this machine)."""
import importlib.util
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.core import layers, model
from charrnn.config.model import ModelConfig
from charrnn.checkpoint import schema
from charrnn.store import container
from charrnn.text.vocab import build_vocab

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

TEXT = "the quick brown fox jumps over the lazy dog, said the cat.\n" * 4
CONFIGS = {
    "lstm one-hot": dict(cell="lstm"), "lstm embed": dict(cell="lstm", embed=6),
    "cifg one-hot": dict(cell="cifg"), "cifg embed": dict(cell="cifg", embed=6),
    "gru one-hot": dict(cell="gru"), "gru embed": dict(cell="gru", embed=6),
    "rnn tanh": dict(cell="rnn"), "rnn relu": dict(cell="rnn", activation="relu"),
    "rnn sigmoid": dict(cell="rnn", activation="sigmoid"),
}


def checkpoint(tmp_path, level="char", **kw):
    """A 2-layer model with every parameter perturbed (biases far from 0: a misplaced GRU bh or
    forget bias shows), saved as `charrnn train` saves."""
    vocab = build_vocab(TEXT, level)
    cfg = ModelConfig(vocab_size=len(vocab), layers=2, hidden=10, dropout=0.2, **kw)
    r = np.random.default_rng(1)
    params = {k: (v + r.normal(0, 0.3, v.shape)).astype(np.float32)
              for k, v in model.init_params(cfg, r).items()}
    path = tmp_path / "m.ckpt"
    container.save(path, *schema.pack(schema.Checkpoint(cfg, params, vocab)))
    return path, cfg, params, vocab


def exported(tmp_path, ckpt, name="exported"):
    out = tmp_path / f"{name}.py"
    r = CliRunner().invoke(cli, ["export", "--torch", str(out), "--checkpoint", str(ckpt)])
    assert r.exit_code == 0, r.output
    spec = importlib.util.spec_from_file_location(name, out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def charrnn_probs(params, cfg, ids, dtype):
    p = {k: v.astype(dtype) for k, v in params.items()}
    logits, _, _ = model.forward(p, cfg, np.asarray(ids)[:, None], model.zero_state(cfg, 1, dtype))
    return np.exp(layers.log_softmax(logits[:, 0].astype(np.float64)))


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_the_exported_module_gives_charrnns_probabilities(tmp_path, kind):
    ckpt, cfg, params, vocab = checkpoint(tmp_path, **CONFIGS[kind])
    mod = exported(tmp_path, ckpt)
    ids = mod.encode(TEXT)
    assert ids == vocab.encode(TEXT).tolist()
    for dtype, tdtype, tol in ((np.float32, torch.float32, 1e-5), (np.float64, torch.float64, 1e-10)):
        net = mod.load(str(ckpt), tdtype)
        with torch.no_grad():
            logits, _ = net(torch.tensor([ids]))
        theirs = logits[0].softmax(-1).double().numpy()
        assert np.abs(theirs - charrnn_probs(params, cfg, ids, dtype)).max() < tol, (kind, dtype)


def test_the_gate_order_matters_so_the_test_would_see_a_wrong_mapping(tmp_path):
    """The control: with the GRU's z and r blocks left in charrnn's order, the probabilities differ."""
    ckpt, cfg, params, _ = checkpoint(tmp_path, cell="gru")
    mod = exported(tmp_path, ckpt)
    net = mod.load(str(ckpt), torch.float64)
    sd = net.state_dict()
    H = cfg.hidden
    for key in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0"):
        w = sd[key].clone()
        sd[key][:H], sd[key][H:2 * H] = w[H:2 * H], w[:H]
    net.load_state_dict(sd)
    ids = mod.encode(TEXT)
    with torch.no_grad():
        wrong = net(torch.tensor([ids]))[0][0].softmax(-1).numpy()
    assert np.abs(wrong - charrnn_probs(params, cfg, ids, np.float64)).max() > 1e-3


def test_a_word_level_run_exports_and_the_file_stands_alone(tmp_path, monkeypatch):
    """As a user would: train, export, then a Python that cannot import charrnn loads it."""
    import subprocess
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "words.txt").write_text(TEXT * 20)
    r = CliRunner().invoke(cli, ["train", "words.txt", "--level", "word", "--cell", "gru", "--hidden", "12",
                                 "--layers", "1", "--batch", "4", "--seq-len", "8", "--steps", "6", "--quiet"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["export", "--torch", "words_model.py"])
    assert r.exit_code == 0 and r.stdout == "" and "wrote words_model.py; in Python:" in r.stderr
    code = ("import sys; sys.modules['charrnn'] = None; import torch, words_model as m; "
            "ids = m.encode('the lazy dog'); print(m.decode(ids)); "
            "print(m.load()(torch.tensor([ids]))[0].softmax(-1).sum(-1).tolist())")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "the lazy dog"


def test_an_old_checkpoint_exports_with_its_weights_beside_the_module(tmp_path):
    from pathlib import Path
    legacy = Path(__file__).parent / "fixtures" / "legacy-lm.ckpt"
    mod = exported(tmp_path, legacy, "old")
    assert (tmp_path / "old.safetensors").exists()
    ck = schema.load(str(legacy))
    ids = mod.encode("the cat sees a fox.\n")
    with torch.no_grad():
        theirs = mod.load()(torch.tensor([ids]))[0][0].softmax(-1).double().numpy()
    assert np.abs(theirs - charrnn_probs(ck.params, ck.cfg, ids, np.float32)).max() < 1e-5
