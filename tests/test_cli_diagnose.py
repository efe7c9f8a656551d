"""`charrnn diagnose`: the numbers it prints are the core's, the options do what they say."""
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.core import gradflow, model
from charrnn.config.model import ModelConfig


def run(*args):
    r = CliRunner().invoke(cli, ["diagnose", *args])
    return r.exit_code, r.stdout, r.stderr


def test_json_holds_the_core_measurement_for_each_fresh_cell():
    code, out, err = run("--hidden", "16", "--length", "60", "--batch", "4", "--seed", "3", "--json")
    assert code == 0, err
    d = json.loads(out)
    from charrnn.core import cells
    assert [m["name"] for m in d["models"]] == [k + ("/tanh" if k == "rnn" else "") for k in cells.kinds()]
    assert d["distance"] == list(range(60)) and d["batch"] == 4 and d["clip"] == 5.0
    # the same draws, in the same order, straight from the core
    rng = np.random.default_rng(3)
    for m in d["models"]:
        cfg = ModelConfig(vocab_size=64, cell=m["cell"], layers=1, hidden=16, forget_bias=0.0)
        params = model.init_params(cfg, rng, np.float64)
        ids, y = rng.integers(0, 64, (60, 4)), rng.integers(0, 64, 4)
        want = gradflow.gradient_flow(params, cfg, ids, y, clip=5.0)
        np.testing.assert_allclose(m["norms"][0], want["norms"][0], rtol=1e-12)
        assert m["ratio_50_1"] == pytest.approx(want["norms"][0][50] / want["norms"][0][1])
        assert m["grad_norm"] == pytest.approx(want["grad_norm"])
    # the picture and the table go to stderr
    assert "distance back from the loss" in err and re.search(r"^lstm\s+\d", err, re.M)


def test_a_gain_above_one_explodes_and_clipping_scales_the_whole_gradient():
    code, out, err = run("--cell", "rnn", "--activation", "relu", "--gain", "1.5", "--hidden", "32", "--json")
    assert code == 0, err
    (m,) = json.loads(out)["models"]
    norms = m["norms"][0]
    assert m["name"] == "rnn/relu gain 1.5"
    assert m["ratio_50_1"] > 10 and norms[99] > norms[50] > norms[1]  # it grows with distance: exploding
    assert m["grad_norm"] > 5 and m["clip_scale"] == pytest.approx(5 / m["grad_norm"])
    assert "clipped" in err  # the clipped curve is drawn beside the raw one


def test_two_layers_report_each_layer():
    code, out, _ = run("--cell", "gru", "--layers", "2", "--hidden", "8", "--length", "20", "--json")
    (m,) = json.loads(out)["models"]
    assert code == 0 and m["layers"] == 2 and len(m["norms"]) == 2 and len(m["norms"][1]) == 20
    assert m["ratio_50_1"] is None  # a 20-step window has no distance 50


@pytest.mark.parametrize("args,msg", [
    (["--checkpoint", "x.ckpt", "--hidden", "8"], "--hidden describes fresh cells; a checkpoint has its own model"),
    (["--checkpoint", "x.ckpt", "--cell", "rnn"], "--cell describes fresh cells; a checkpoint has its own model"),
    (["--file", "-"], "--file needs --checkpoint (fresh cells read random tokens)"),
])
def test_options_that_do_not_go_together_are_usage_errors(args, msg):
    code, out, err = run(*args)
    assert (code, out) == (2, "") and err == f"charrnn: error: {msg}\n"


def test_a_checkpoint_is_measured_on_lines_of_a_file(tmp_path):
    """A checkpoint and --file: the loss sits at each line's last character."""
    from charrnn.checkpoint import schema
    from charrnn.store import container
    from charrnn.text.vocab import build_vocab
    text = "".join(f"line {i:03d} of the file ends in {'xyz'[i % 3]}\n" for i in range(40))
    vocab = build_vocab(text, "char")
    cfg = ModelConfig(vocab_size=len(vocab), cell="lstm", layers=2, hidden=12)
    params = model.init_params(cfg, np.random.default_rng(0))
    arrays, meta = schema.pack(schema.Checkpoint(cfg, params, vocab))
    container.save(tmp_path / "m.ckpt", arrays, meta)
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    code, out, err = run("--checkpoint", str(tmp_path / "m.ckpt"), "--file", str(tmp_path / "t.txt"),
                         "--length", "50", "--batch", "5", "--json")
    assert code == 0, err
    (m,) = json.loads(out)["models"]
    ids = vocab.encode(text)
    ends = [i - 1 for i, c in enumerate(text) if c == "\n" and i - 1 >= 50][:5]
    want = gradflow.gradient_flow(params, cfg, np.stack([ids[e - 50:e] for e in ends], 1), ids[ends])
    np.testing.assert_allclose(m["norms"], want["norms"], rtol=1e-6)
    # without --file the model samples its own windows
    code, out, err = run("--checkpoint", str(tmp_path / "m.ckpt"), "--length", "30", "--json")
    assert code == 0 and json.loads(out)["models"][0]["input"] == "windows the model sampled", err
