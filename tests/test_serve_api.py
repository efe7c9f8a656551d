"""`charrnn serve`'s routes as a client meets them: the model list, completions (whole and
streamed, the same bytes as `charrnn sample`), logprobs, score (as `charrnn score`), inspect
(as `charrnn inspect --json`), and concurrent streams batched in one step."""
import json
import math
import threading

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.cli import cli

from .serve_support import run_dir, serving  # noqa: F401  (run_dir is a fixture)

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def srv(run_dir):  # noqa: F811
    with serving(run_dir) as s:
        yield s


@pytest.fixture(scope="module")
def http(srv):
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c


def complete(http, **body):
    r = http.post("/v1/completions", json={"model": "notes", **body})
    assert r.status_code == 200, r.text
    return r.json()


def stream_events(http, **body):
    """The data of each server-sent event of a streamed completion, [DONE] included."""
    with http.stream("POST", "/v1/completions", json={"model": "notes", "stream": True, **body}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert raw.endswith("\n\n")
    events = raw[:-2].split("\n\n")
    assert all(e.startswith("data: ") for e in events), raw
    return [e[len("data: "):] for e in events]


def sample_cli(run_dir, *args):  # noqa: F811
    r = CliRunner().invoke(cli, ["sample", "--checkpoint", run_dir, "--threads", "1", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    return r.stdout_bytes.decode()


def test_models_lists_the_run_by_its_name(http):
    body = http.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["notes"]
    m = body["data"][0]
    assert m["object"] == "model" and m["owned_by"] == "charrnn" and isinstance(m["created"], int)
    assert m["charrnn"]["step"] == 150 and m["charrnn"]["layers"] == 2 and m["charrnn"]["hidden"] == 32
    assert http.get("/v1/models/notes").json() == m


CASES = [  # (prime, sample's options, the API's)
    ("red fox ", ["--seed", "1"], {"seed": 1}),
    ("the moon", ["--seed", "2", "--temp", "0.7", "--top-k", "5"], {"seed": 2, "temperature": 0.7, "top_k": 5}),
    ("a blue", ["--seed", "3", "--top-p", "0.8", "--temp", "1.3"], {"seed": 3, "top_p": 0.8, "temperature": 1.3}),
    ("", ["--seed", "4"], {"seed": 4}),
    ("he said \"", ["--argmax"], {"argmax": True}),
    ("runs", ["--argmax"], {"temperature": 0}),
]


@pytest.mark.parametrize("prime, sample_args, api_args", CASES, ids=[str(c[1]) + str(c[2]) for c in CASES])
def test_a_lone_request_gives_charrnn_samples_bytes(http, run_dir, prime, sample_args, api_args):  # noqa: F811
    expected = sample_cli(run_dir, "--prime", prime, "--length", "120", *sample_args)
    whole = complete(http, prompt=prime, max_tokens=120, echo=True, **api_args)
    assert whole["choices"][0]["text"] == expected
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"] == {"prompt_tokens": len(prime), "completion_tokens": 120, "total_tokens": len(prime) + 120}
    events = stream_events(http, prompt=prime, max_tokens=120, **api_args)
    chunks = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]"
    assert "".join(c["choices"][0]["text"] for c in chunks) == expected[len(prime):]
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("cmpl-")


def test_without_a_seed_each_answer_says_the_seed_that_reproduces_it(http):
    a = complete(http, prompt="red", max_tokens=60)
    b = complete(http, prompt="red", max_tokens=60)
    assert a["seed"] != b["seed"]
    again = complete(http, prompt="red", max_tokens=60, seed=a["seed"])
    assert again["choices"][0]["text"] == a["choices"][0]["text"]


def test_n_choices_are_sample_num_samples_drawn_from_one_seed(http, run_dir):  # noqa: F811
    m = charrnn.load(run_dir)
    rng = np.random.default_rng(11)
    expected = [m.generate("blue ", length=50, temperature=0.9, seed=rng)[len("blue "):] for _ in range(3)]
    body = complete(http, prompt="blue ", max_tokens=50, temperature=0.9, seed=11, n=3)
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert [c["text"] for c in body["choices"]] == expected
    chunks = [json.loads(e) for e in stream_events(http, prompt="blue ", max_tokens=50, temperature=0.9, seed=11,
                                                   n=3)[:-1]]
    streamed = ["".join(c["choices"][0]["text"] for c in chunks if c["choices"][0]["index"] == i) for i in range(3)]
    assert streamed == expected


def test_stop_ends_the_text_before_the_stop_sequence(http, run_dir):  # noqa: F811
    full = sample_cli(run_dir, "--prime", "the ", "--length", "200", "--seed", "5")[len("the "):]
    stop = full[40:42]  # two characters the text is sure to reach
    cut = full.index(stop)
    body = complete(http, prompt="the ", max_tokens=200, seed=5, stop=[stop, "never seen!"])
    assert body["choices"][0] == {"text": full[:cut], "index": 0, "logprobs": None, "finish_reason": "stop"}
    chunks = [json.loads(e) for e in stream_events(http, prompt="the ", max_tokens=200, seed=5, stop=stop)[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == full[:cut]  # nothing of the stop was sent first


def test_logprobs_are_the_models_own_and_name_the_alternatives(http, run_dir):  # noqa: F811
    body = complete(http, prompt="red fox ", max_tokens=80, seed=8, temperature=0.6, logprobs=3)
    choice = body["choices"][0]
    lp = choice["logprobs"]
    assert "".join(lp["tokens"]) == choice["text"] and lp["text_offset"] == list(range(80))
    # the same tokens scored by the window forward (another computation): log p at temperature 1
    scored = charrnn.load(run_dir).score("red fox " + choice["text"])
    assert np.allclose(lp["token_logprobs"], -scored.surprisal[-80:], atol=1e-4)
    for tok, top, logp in zip(lp["tokens"], lp["top_logprobs"], lp["token_logprobs"]):
        values = list(top.values())
        assert values[:3] == sorted(values[:3], reverse=True) and len(top) == (3 if tok in list(top)[:3] else 4)
        assert top[tok] == logp and math.fsum(math.exp(v) for v in values[:3]) <= 1 + 1e-9


def test_echo_and_stream_usage(http):
    events = stream_events(http, prompt="red", max_tokens=5, seed=1, echo=True, stream_options={"include_usage": True})
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["text"].startswith("red")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 5,
                                                                    "total_tokens": 8}


def test_concurrent_requests_each_keep_their_own_seed(srv, http):
    """Eight requests at once; each text equals the request alone. (Rows batched together are
    scored equal to the lone ones to float32 rounding: a draw could differ only within ~1e-7
    of a boundary between two tokens' cumulative probabilities, odds far below 1e-3 here.)"""
    alone = [complete(http, prompt="the ", max_tokens=300, seed=s)["choices"][0]["text"] for s in range(8)]
    together, barrier = [None] * 8, threading.Barrier(8)

    def one(s):
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            barrier.wait()
            together[s] = c.post("/v1/completions", json={"model": "notes", "prompt": "the ", "max_tokens": 300,
                                                          "seed": s}).json()["choices"][0]["text"]
    threads = [threading.Thread(target=one, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_score_is_charrnn_scores_total_for_a_line(http, run_dir):  # noqa: F811
    line = "red fox sees a blue cat."
    r = CliRunner().invoke(cli, ["score", "--checkpoint", run_dir], input=line + "\n")
    total = float(r.stdout.split("\t")[0])
    body = http.post("/v1/score", json={"model": "notes", "text": line + "\n"}).json()
    assert abs(body["logprob"] - total) < 6e-5
    assert "".join(body["tokens"]) == line + "\n" and body["text_offset"][0] == 0
    assert math.isclose(math.fsum(body["token_logprobs"]), body["logprob"], abs_tol=1e-9)


def test_inspect_is_charrnn_inspects_json(http, run_dir):  # noqa: F811
    text = 'he said "red (fox)" and\nthe moon.'
    shown = json.loads(CliRunner().invoke(cli, ["inspect", text, "--checkpoint", run_dir, "--layer", "1", "--unit", "7",
                                                "--json"]).stdout)
    found = json.loads(CliRunner().invoke(cli, ["inspect", text, "--checkpoint", run_dir, "--find", "--json"]).stdout)
    body = http.post("/v1/inspect", json={"model": "notes", "text": text, "layer": 1, "unit": 7}).json()
    assert body["values"] == shown["values"] and body["state"] == shown["state"] == "c"
    assert body["features"] == found["features"] and body["text"] == text and body["unknown"] == []
    default = http.post("/v1/inspect", json={"model": "notes", "text": text + "é"}).json()
    assert default["layer"] == 1 and default["values"][-1] is None and default["unknown"] == ["é"]
