"""Real clients against `charrnn serve`: OpenAI's own Python package (models, a streamed and a
whole completion, its error classes) and the curl and Python examples of docs/serve.md, run as
written there."""
import contextlib
import io
import json
import pathlib
import re
import shutil
import subprocess

import pytest

from .serve_support import run_dir, serving  # noqa: F401  (run_dir is a fixture)

openai = pytest.importorskip("openai", reason="the openai package is not installed (the test extra has it)")
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "serve.md"


@pytest.fixture(scope="module")
def srv(run_dir):  # noqa: F811
    with serving(run_dir, api_key="KEY") as s:
        yield s


@pytest.fixture(scope="module")
def client(srv):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="KEY", max_retries=0)


def test_the_openai_client_lists_the_models_and_streams_a_completion(client):
    assert [m.id for m in client.models.list()] == ["notes"]
    whole = client.completions.create(model="notes", prompt="The ", max_tokens=50, temperature=0.8, seed=4,
                                      logprobs=2)
    chunks = list(client.completions.create(model="notes", prompt="The ", max_tokens=50, temperature=0.8, seed=4,
                                            stream=True))
    text = whole.choices[0].text
    assert len(text) == 50 and "".join(c.choices[0].text for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "length" and whole.usage.completion_tokens == 50
    assert "".join(whole.choices[0].logprobs.tokens) == text


def test_the_openai_client_raises_its_own_errors(client, srv):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="nope", prompt="x")
    with pytest.raises(openai.BadRequestError, match="top_p must be a number above 0 and at most 1, not 1.5"):
        client.completions.create(model="notes", prompt="x", top_p=1.5)
    wrong = openai.OpenAI(base_url=srv.url + "/v1", api_key="other", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="incorrect API key"):
        wrong.models.list()


def blocks(kind):
    return re.findall(rf"```{kind}\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_the_docs_python_example_runs_as_written(srv):
    code = blocks("python")[0].replace("http://localhost:8000", srv.url).replace("KEY or anything without --api-key",
                                                                                 "KEY")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOCS), "exec"), {})  # noqa: S102  (our own documentation's example)
    first, rest = out.getvalue().split("\n", 1)
    assert first == "['notes']" and len(rest) == 60


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_docs_curl_examples_run_as_written(srv):
    lines = " ".join(blocks("sh")[1].replace("\\\n", " ").splitlines()).split("curl ")[1:]
    assert len(lines) == 5
    for cmd in lines:
        cmd = "curl -H 'Authorization: Bearer KEY' " + cmd.replace("localhost:8000", srv.url.removeprefix("http://"))
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60, check=True).stdout
        if '"stream": true' in cmd:
            events = out.strip().split("\n\n")
            assert events[-1] == "data: [DONE]" and all(e.startswith("data: {") for e in events[:-1])
        else:
            body = json.loads(out)
            assert "error" not in body, body
            assert body["object"] in ("list", "text_completion", "score", "inspect")
