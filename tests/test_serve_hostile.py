"""Hostile and heavy use of `charrnn serve`: every bad request is a 4xx in OpenAI's error shape
with one clear message (never a 500, never a traceback); past the streams limit, 429; a client
that leaves mid-stream frees its slot; the API key guards /v1/; the page's files cannot be read
outside their folder."""
import contextlib
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.serve.protocol import Limits

from .serve_support import run_dir, serving  # noqa: F401  (run_dir is a fixture)

httpx = pytest.importorskip("httpx")
LIMITS = Limits(body=1 << 20, max_tokens=64, streams=2)


@pytest.fixture(scope="module")
def srv(run_dir):  # noqa: F811
    with serving(run_dir, limits=LIMITS) as s:
        yield s
    assert not [line for line in s.lines if '" 500 ' in line or "internal error" in line or "Traceback" in line]


@pytest.fixture(scope="module")
def http(srv):
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c


def error(r, status):
    """The one message of an OpenAI-shaped error answer with this status, and its param and code."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == ("rate_limit_error" if status == 429 else "invalid_request_error")
    return body["error"]["message"], body["error"]["param"], body["error"]["code"]


def body_of(**fields):
    return {"model": "notes", **fields}


REFUSED = [  # (body, status, message, param, code)
    (b"{not json", 400, "the body is not valid JSON: Expecting property name enclosed in double quotes: "
                        "line 1 column 2 (char 1)", None, "invalid_json"),
    (b"", 400, "the body is not valid JSON: Expecting value: line 1 column 1 (char 0)", None, "invalid_json"),
    (b"[1, 2]", 400, "the body must be a JSON object, not a list", None, "invalid_json"),
    (b'"notes"', 400, "the body must be a JSON object, not a string", None, "invalid_json"),
    (b"\xff\xfe{}", 400, "the body is not UTF-8 (byte 0)", None, "invalid_json"),
    (b'{"model": "notes", "temperature": NaN}', 400, "the body is not valid JSON: NaN is not a JSON number", None,
     "invalid_json"),
    (b'{"model": "notes", "seed": 1' + b"0" * 5000 + b"}", 400, None, None, "invalid_json"),  # past int's digits
    (b"[" * 100_000 + b"]" * 100_000, 400, None, None, "invalid_json"),  # nested past the recursion limit
    ({"prompt": "red"}, 400, "you must provide a model parameter (GET /v1/models lists them)", "model",
     "missing_required_parameter"),
    ({"model": "nope"}, 404, "the model 'nope' does not exist; this server has 'notes'", "model", "model_not_found"),
    ({"model": 5}, 400, "model must be a string, not 5", "model", "invalid_type"),
    (body_of(temprature=0.5), 400, "unrecognized request argument: temprature", "temprature", "unknown_parameter"),
    (body_of(max_tokens=0), 400, "max_tokens must be an integer from 1 to 64, not 0", "max_tokens", "invalid_value"),
    (body_of(max_tokens=65), 400, "max_tokens must be an integer from 1 to 64, not 65", "max_tokens", "invalid_value"),
    (body_of(max_tokens="10"), 400, 'max_tokens must be an integer from 1 to 64, not "10"', "max_tokens",
     "invalid_type"),
    (body_of(max_tokens=10.0), 400, "max_tokens must be an integer from 1 to 64, not 10.0", "max_tokens",
     "invalid_type"),
    (body_of(max_tokens=True), 400, "max_tokens must be an integer from 1 to 64, not true", "max_tokens",
     "invalid_type"),
    (body_of(temperature=-0.5), 400, "temperature must be a number 0 or more (0: always the most likely token), "
                                     "not -0.5", "temperature", "invalid_value"),
    (body_of(temperature="hot"), 400, 'temperature must be a number 0 or more (0: always the most likely token), '
                                      'not "hot"', "temperature", "invalid_type"),
    (body_of(top_p=0), 400, "top_p must be a number above 0 and at most 1, not 0", "top_p", "invalid_value"),
    (body_of(top_p=1.5), 400, "top_p must be a number above 0 and at most 1, not 1.5", "top_p", "invalid_value"),
    (body_of(top_k=-1), 400, "top_k must be an integer, 0 or more, not -1", "top_k", "invalid_value"),
    (body_of(n=17), 400, "n must be an integer from 1 to 16, not 17", "n", "invalid_value"),
    (body_of(seed=-1), 400, "seed must be an integer from 0 to 18446744073709551615, not -1", "seed",
     "invalid_value"),
    (body_of(seed=2 ** 64), 400, "seed must be an integer from 0 to 18446744073709551615, not 18446744073709551616",
     "seed", "invalid_value"),
    (body_of(logprobs=21), 400, "logprobs must be an integer from 0 to 20, not 21", "logprobs", "invalid_value"),
    (body_of(stream="yes"), 400, 'stream must be true or false, not "yes"', "stream", "invalid_type"),
    (body_of(stop=["a", "b", "c", "d", "e"]), 400, 'stop must be a string or a list of 1 to 4 strings, not '
                                                   '["a", "b", "c", "d", "e"]', "stop", "invalid_type"),
    (body_of(stop=""), 400, "each stop sequence must have 1 to 64 characters, not 0", "stop", "invalid_value"),
    (body_of(stop=7), 400, "stop must be a string or a list of 1 to 4 strings, not 7", "stop", "invalid_type"),
    (body_of(prompt=["red", "fox"]), 400, 'prompt must be one string (a list of prompts, or of token ids, is not '
                                         'supported); not ["red", "fox"]', "prompt", "invalid_type"),
    (body_of(prompt="x" * 20_001), 400, "prompt is too long: 20,001 characters, at most 20,000", "prompt",
     "invalid_value"),
    (body_of(prompt="Zebra ÜÏ☃ kwqgyz"), 400, 'the prompt has symbols the model never saw: "Z", "Ü", "Ï", "☃", "k" '
                                             'and 5 more (it knows 26); leave them out', "prompt", "unknown_symbols"),
    (body_of(frequency_penalty=0.5), 400, "frequency_penalty is not supported by charrnn models; leave it out or "
                                          "send 0", "frequency_penalty", "unsupported_parameter"),
    (body_of(argmax=True, seed=3), 400, "argmax cannot be combined with seed: it takes the most likely token every "
                                        "time, so nothing is drawn and every sample is the same", "seed",
     "invalid_value"),
    (body_of(temperature=0, top_p=0.5), 400, "argmax cannot be combined with top_p: it takes the most likely token "
                                             "every time, so nothing is drawn and every sample is the same", "top_p",
     "invalid_value"),
    (body_of(echo=True, logprobs=2), 400, "echo with logprobs is not supported: the prompt's log-probabilities are "
                                          "what POST /v1/score gives", "echo", "unsupported_parameter"),
    (body_of(stream_options={"include_usage": True}), 400, "stream_options applies to streamed completions only "
                                                           "(stream: true)", "stream_options", "invalid_value"),
]


@pytest.mark.parametrize("body, status, message, param, code", REFUSED,
                         ids=[str(i) for i in range(len(REFUSED))])
def test_a_bad_completion_request_gets_one_clear_message(http, body, status, message, param, code):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    got_message, got_param, got_code = error(http.post("/v1/completions", content=content), status)
    assert (got_param, got_code) == (param, code)
    assert got_message == message if message is not None else got_message.startswith("the body is not valid JSON")


@pytest.mark.parametrize("path, body, message, param", [
    ("/v1/score", {}, "you must provide a text parameter: the text to score", "text"),
    ("/v1/score", {"text": "red é"}, 'the text has symbols the model never saw: "é" (it knows 26); leave them out',
     "text"),
    ("/v1/score", {"text": 5}, "text must be a string, not 5", "text"),
    ("/v1/score", {"text": "x" * 100_001}, "text is too long: 100,001 characters, at most 100,000", "text"),
    ("/v1/inspect", {"text": "red", "layer": 2}, "layer 2 is out of range: the model has 2 layer(s), 0 to 1", "layer"),
    ("/v1/inspect", {"text": "red", "unit": 32}, "unit 32 is out of range: a layer has 32 units, 0 to 31", "unit"),
    ("/v1/inspect", {"text": "red", "state": "x"}, 'state must be "h" (the hidden state) or "c" (an LSTM\'s cell '
                                                   'state), not "x"', "state"),
    ("/v1/inspect", {"text": "ÉÈ"}, "nothing to inspect: the text has no symbol the model knows", "text"),
    ("/v1/inspect", {"text": "red", "top": 0}, "top must be an integer from 1 to 50, not 0", "top"),
])
def test_a_bad_score_or_inspect_request_gets_one_clear_message(http, path, body, message, param):
    got_message, got_param, _ = error(http.post(path, json={"model": "notes", **body}), 400)
    assert (got_message, got_param) == (message, param)


def test_an_oversized_body_is_refused_before_it_is_read(http):
    big = b'{"model": "notes", "prompt": "' + b"a" * (1 << 20) + b'"}'
    assert error(http.post("/v1/completions", content=big), 413)[0] == "the request body is larger than 1,048,576 bytes"
    chunked = http.post("/v1/score", content=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]))
    assert error(chunked, 413)[2] == "request_too_large"


def test_unknown_routes_and_methods_answer_in_openais_shape(http):
    assert error(http.get("/v1/nothing"), 404) == ("no such route: GET /v1/nothing", None, "not_found")
    assert error(http.get("/v1/completions"), 405) == ("GET is not allowed here: GET /v1/completions", None,
                                                        "method_not_allowed")
    assert error(http.get("/v1/models/nope"), 404)[2] == "model_not_found"


def raw_get(url, path):
    """(status, body) of a GET with the path sent exactly as written (no client normalises it)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/../../serve/app.py", "/static/..%2fapp.py",
                                  "/static/%2e%2e/app.py", "/static/%2e%2e%2f%2e%2e%2fcli%2fserve.py",
                                  "/static//etc/passwd", "/static/..\\app.py", "/../../../../etc/passwd"])
def test_the_pages_files_cannot_be_read_outside_their_folder(srv, path):
    status, body = raw_get(srv.url, path)
    assert status in (400, 404) and b"import" not in body and b"root:" not in body


def test_the_page_and_its_files_are_served_and_kept_to_this_server(http):
    page = http.get("/")
    assert page.status_code == 200 and "charrnn playground" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert http.get("/static/app.js").status_code == 200 and http.get("/static/style.css").status_code == 200


def test_past_the_streams_limit_429_and_a_client_that_leaves_frees_its_slot(run_dir):  # noqa: F811
    long = {"model": "notes", "prompt": "the ", "max_tokens": 1_000_000, "stream": True}
    with serving(run_dir, limits=Limits(streams=2, max_tokens=1_000_000)) as s, contextlib.ExitStack() as open_:
        engine = s.engine()
        clients = [open_.enter_context(httpx.Client(base_url=s.url, timeout=30)) for _ in range(3)]
        first, second = (open_.enter_context(c.stream("POST", "/v1/completions", json=long)) for c in clients[:2])
        lines = first.iter_lines(), second.iter_lines()  # kept: an iterator let go closes its response
        assert all(next(it).startswith("data: ") for it in lines)  # both are generating now
        r = clients[2].post("/v1/completions", json={"model": "notes", "max_tokens": 5})
        assert error(r, 429) == ("all 2 streams of notes are busy; try again shortly", None, "too_many_streams")
        assert r.headers["retry-after"] == "1"
        first.close()  # the client goes away mid-stream
        assert engine.wait_open(1, timeout=5), "the slot was not freed"
        assert clients[2].post("/v1/completions", json={"model": "notes", "max_tokens": 5}).status_code == 200
        second.close()
        assert engine.wait_open(0, timeout=5)


def test_a_client_may_ask_again_as_soon_as_its_answer_has_ended(run_dir):  # noqa: F811
    """The engine frees a stream's slot before its reader can know it ended: with one slot, a
    client asking again right after each answer never meets a 429."""
    with serving(run_dir, limits=Limits(streams=1)) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        for i in range(300):
            r = c.post("/v1/completions", json={"model": "notes", "max_tokens": 2, "seed": i, "stream": i % 2 == 0})
            assert r.status_code == 200, r.text


def test_with_an_api_key_every_v1_route_needs_it(run_dir):  # noqa: F811
    with serving(run_dir, api_key="s3cret") as s, httpx.Client(base_url=s.url, timeout=30) as c:
        assert error(c.get("/v1/models"), 401) == ("no API key given: send the header 'Authorization: Bearer KEY'",
                                                    None, "invalid_api_key")
        assert error(c.get("/v1/models", headers={"Authorization": "Bearer s3cre"}), 401)[0] == "incorrect API key"
        assert error(c.post("/v1/completions", json={"model": "notes"}, headers={"Authorization": "Bearer x"}),
                     401)[0] == "incorrect API key"
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/").status_code == 200  # the page itself holds nothing: it asks for the key


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False)
                           | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)
FIELDS = ["model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "argmax", "stop", "n", "seed", "stream",
          "logprobs", "echo", "stream_options", "user", "best_of", "suffix", "other"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6), st.booleans())
def test_any_request_is_answered_200_or_a_4xx_in_openais_shape(http, fields, with_model):
    body = {**fields, **({"model": "notes"} if with_model else {})}
    r = http.post("/v1/completions", content=json.dumps(body))  # infinities sent as JSON's non-standard Infinity
    if r.status_code == 200:
        assert r.headers["content-type"].startswith("text/event-stream" if body.get("stream") is True
                                                    else "application/json")
    else:
        assert r.status_code in (400, 404, 429), r.text
        message, _, _ = error(r, r.status_code)
        assert message and "\n" not in message
