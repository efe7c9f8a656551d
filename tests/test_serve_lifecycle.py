"""`charrnn serve` as a process: Ctrl-C or SIGTERM ends open streams cleanly and exits 128+N,
--watch reloads a run's best checkpoint when training replaces it, a bind elsewhere than
loopback without a key is warned about, and start-up failures are one line."""
import shutil
import signal
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.checkpoint import schema
from charrnn.store import container

from .serve_support import Subprocess, run_dir  # noqa: F401  (run_dir is a fixture)

httpx = pytest.importorskip("httpx")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_open_streams_cleanly_and_exits(run_dir, sig):  # noqa: F811
    with Subprocess(run_dir, "--max-tokens", "100000000") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert srv.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise: nothing to warn about
        assert not any("warning" in line for line in srv.before)
        body = {"model": "notes", "prompt": "the ", "max_tokens": 100_000_000, "stream": True}
        with c.stream("POST", "/v1/completions", json=body) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: {")  # generating
            srv.proc.send_signal(sig)
            events = [line for line in lines if line]
        assert events[-2:] == ['data: {"error":{"message":"the server is shutting down","type":"server_error",'
                               '"param":null,"code":"server_shutdown"}}', "data: [DONE]"]
        assert srv.proc.wait(15) == 128 + sig
        out, err = srv.proc.stdout.read(), srv.proc.stderr.read()
    assert out == ""  # stdout carries data only; the server has none
    lines = err.splitlines()
    assert any(f"{sig.name}: no new requests; ended 1 open stream(s)" in line for line in lines)
    assert sum('"POST /v1/completions" 200' in line for line in lines) == 1  # its access line, once it ended
    assert "Traceback" not in err and "error" not in err.replace('"code":"server_shutdown"', "")


def test_listening_beyond_loopback_without_a_key_is_warned_about(run_dir):  # noqa: F811
    with Subprocess(run_dir, "--host", "0.0.0.0") as srv:
        assert any(line.startswith("warning: listening on 0.0.0.0 without --api-key") for line in srv.before)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(15) == 128 + signal.SIGTERM
    with Subprocess(run_dir, "--host", "0.0.0.0", env={"CHARRNN_API_KEY": "k"}) as srv:
        assert not any("warning" in line for line in srv.before)


def test_watch_reloads_the_best_checkpoint_when_training_replaces_it(run_dir, tmp_path):  # noqa: F811
    run = tmp_path / "notes"
    shutil.copytree(run_dir, run)
    with Subprocess(str(run), "--watch") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/v1/models").json()["data"][0]["charrnn"]["step"] == 150
        ck = schema.load(str(run / "best.ckpt"))
        ck.step = 999
        ck.params["out.c"][:] = 0
        ck.params["out.c"][ck.vocab.tokens.index("x")] = 50.0  # the new model says "x" and nothing else
        arrays, meta = schema.pack(ck)
        container.save(str(run / "best.ckpt"), arrays, meta)  # as training saves: an atomic rename
        assert "reloaded notes: step 999" in srv.wait_for_line(r"reloaded notes")
        assert c.get("/v1/models").json()["data"][0]["charrnn"]["step"] == 999
        r = c.post("/v1/completions", json={"model": "notes", "prompt": "the ", "max_tokens": 20, "seed": 1})
        assert r.json()["choices"][0]["text"] == "x" * 20


def test_a_port_in_use_is_one_line_and_exit_1(run_dir):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(cli, ["serve", run_dir, "--port", str(port)])
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines()[-1] == f"charrnn: error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_start_up_problems_are_one_line(run_dir, tmp_path):  # noqa: F811
    r = CliRunner().invoke(cli, ["serve", "--checkpoint-dir", str(tmp_path)])
    assert r.exit_code == 1 and "no language model found under" in r.stderr
    r = CliRunner().invoke(cli, ["serve", run_dir, f"notes={run_dir}/best.ckpt"])
    assert r.exit_code == 2 and "two models would be named 'notes'" in r.stderr
    without_extra = "import sys; sys.modules['uvicorn'] = None; from charrnn.cli import main; main(sys.argv[1:])"
    r = subprocess.run([sys.executable, "-c", without_extra, "serve", run_dir], capture_output=True, text=True,
                       timeout=60)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ("charrnn: error: charrnn serve needs the serve extra (uvicorn is missing): "
                        "pip install 'charrnn[serve]'\n")
