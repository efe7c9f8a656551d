"""The wire format: requests checked field by field into frozen dataclasses, and the answers in
the shapes OpenAI's legacy completions API gives them, errors included:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "top_p", "code": "invalid_value"}}

Every refusal is an ApiError with its HTTP status and one message that names the field and
what it may be. The sampling options are checked by config.sampling.SamplingOptions, as
`charrnn sample` and the library check them, and named as the wire names them (max_tokens,
n); the checks that need the model (its vocabulary, its layers) are in app.py.
"""
import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from charrnn.config.fields import OptionError
from charrnn.config.sampling import SamplingOptions

MAX_STOPS, MAX_STOP_CHARS = 4, 64  # OpenAI's four; a stop is searched at every token
MAX_N = 16  # choices of one request (drawn one after another in one slot)
MAX_LOGPROBS = 20  # alternatives per token
MAX_PROMPT_CHARS = 20_000  # a prime is read one step per token, in the request's slot
MAX_TEXT_CHARS = {"score": 100_000, "inspect": 20_000}  # inspect keeps every unit's value per character
SEED_LIMIT = 2 ** 64  # seeds are 0 .. 2**64 - 1
WIRE = {"length": "max_tokens", "samples": "n"}  # SamplingOptions' names as OpenAI's fields name them


@dataclass(frozen=True)
class Limits:
    """What one server allows: request body bytes, tokens per completion, streams per model."""

    body: int = 1 << 20
    max_tokens: int = 4096
    streams: int = 16


class ApiError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error object."""

    TYPES = {429: "rate_limit_error", 500: "server_error", 503: "server_error"}  # else invalid_request_error

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return error_body(self.message, self.TYPES.get(self.status, "invalid_request_error"), self.param, self.code)


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass(frozen=True)
class Completion:
    """A POST /v1/completions request, checked. ``argmax`` also stands for OpenAI's temperature
    0 (then ``temperature`` is 1: it does not apply). ``seed`` is the request's, or one drawn
    for it, so every answer can be reproduced (None with argmax: nothing is drawn)."""

    model: str
    prompt: str = ""
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    argmax: bool = False
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None
    stream: bool = False
    logprobs: int | None = None
    echo: bool = False
    include_usage: bool = False


@dataclass(frozen=True)
class ScoreRequest:
    model: str
    text: str


@dataclass(frozen=True)
class InspectRequest:
    model: str
    text: str
    layer: int | None = None  # None: the last
    unit: int | None = None  # None: the unit that varies most over the text
    state: str | None = None  # "h" or "c"; None: c for an LSTM, h otherwise
    top: int = 5  # units listed per feature


# OpenAI fields accepted only at the value that changes nothing here
NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "best_of": 1, "logit_bias": {}, "suffix": None}
COMPLETION_FIELDS = {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "argmax", "stop", "n", "seed",
                     "stream", "logprobs", "echo", "stream_options", "user", *NEUTRAL}


def parse_json(body: bytes) -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    try:
        obj = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the body is not UTF-8 (byte {e.start})", code="invalid_json") from None
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(obj, dict):
        raise ApiError(400, f"the body must be a JSON object, not {_kind(obj)}", code="invalid_json")
    return obj


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def completion(obj: dict, limits: Limits) -> Completion:
    """A Completion from the request's JSON object, or the ApiError for its first bad field."""
    _known(obj, COMPLETION_FIELDS)
    for name, neutral in NEUTRAL.items():
        v = obj.get(name)
        if v is not None and (v != neutral or type(v) is bool):
            raise ApiError(400, f"{name} is not supported by charrnn models; leave it out or send "
                                f"{json.dumps(neutral)}", name, "unsupported_parameter")
    if "user" in obj:
        _string(obj, "user")
    f = Fields(obj)
    temperature = f.number("temperature", 1.0, 0.0, None, "0 or more (0: always the most likely token)")
    argmax = f.boolean("argmax", False) or temperature == 0
    seed = f.integer("seed", None, 0, SEED_LIMIT - 1)
    top_p, top_k = f.number("top_p", 1.0, 0.0, 1.0, "above 0 and at most 1", low_open=True), f.integer("top_k", 0, 0, None)
    max_tokens, n = f.integer("max_tokens", 16, 1, limits.max_tokens), f.integer("n", 1, 1, MAX_N)
    try:  # the rules `charrnn sample` and the library keep (argmax draws nothing: no seed, no top_p, ...)
        SamplingOptions(length=max_tokens, temperature=1.0 if temperature == 0 else temperature, top_k=top_k,
                        top_p=top_p, argmax=argmax, seed=seed, samples=1)
    except OptionError as e:
        wire = [WIRE.get(name, name) for name in e.names()]
        raise ApiError(400, e.say(lambda name, value=None: WIRE.get(name, name)), wire[-1] if argmax else wire[0],
                       "invalid_value") from None
    options = obj.get("stream_options")
    if options is not None and not (isinstance(options, dict) and set(options) <= {"include_usage"}
                                    and isinstance(options.get("include_usage", False), bool)):
        raise ApiError(400, 'stream_options must be {"include_usage": true or false}', "stream_options",
                       "invalid_value")
    stream = f.boolean("stream", False)
    if options is not None and not stream:
        raise ApiError(400, "stream_options applies to streamed completions only (stream: true)", "stream_options",
                       "invalid_value")
    c = Completion(
        model=f.model(), prompt=_prompt(obj), max_tokens=max_tokens,
        temperature=1.0 if argmax else temperature, top_p=top_p, top_k=top_k, argmax=argmax, stop=_stops(obj),
        n=n, seed=seed if seed is not None or argmax else secrets.randbelow(1 << 32),
        stream=stream, logprobs=f.integer("logprobs", None, 0, MAX_LOGPROBS),
        echo=f.boolean("echo", False), include_usage=bool(options and options.get("include_usage")))
    if c.echo and c.logprobs is not None:
        raise ApiError(400, "echo with logprobs is not supported: the prompt's log-probabilities are what "
                            "POST /v1/score gives", "echo", "unsupported_parameter")
    return c


def score_request(obj: dict) -> ScoreRequest:
    _known(obj, {"model", "text"})
    f = Fields(obj)
    return ScoreRequest(f.model(), _text(obj, "score"))


def inspect_request(obj: dict) -> InspectRequest:
    _known(obj, {"model", "text", "layer", "unit", "state", "top"})
    f = Fields(obj)
    state = obj.get("state")
    if state not in (None, "h", "c"):
        raise ApiError(400, f'state must be "h" (the hidden state) or "c" (an LSTM\'s cell state), not {_show(state)}',
                       "state", "invalid_value")
    return InspectRequest(f.model(), _text(obj, "inspect"), f.integer("layer", None, 0, None),
                          f.integer("unit", None, 0, None), state, f.integer("top", 5, 1, 50))


class Fields:
    """Typed reads of a request's fields: null or absent is the default; a bool is not a number."""

    def __init__(self, obj):
        self.obj = obj

    def model(self) -> str:
        if self.obj.get("model") is None:
            raise ApiError(400, "you must provide a model parameter (GET /v1/models lists them)", "model",
                           "missing_required_parameter")
        return _string(self.obj, "model")

    def integer(self, name, default, lo, hi):
        v = self.obj.get(name)
        if v is None:
            return default
        what = f"an integer from {lo} to {hi}" if hi is not None else f"an integer, {lo} or more"
        if type(v) is not int:
            raise ApiError(400, f"{name} must be {what}, not {_show(v)}", name, "invalid_type")
        if v < lo or (hi is not None and v > hi):
            raise ApiError(400, f"{name} must be {what}, not {v}", name, "invalid_value")
        return v

    def number(self, name, default, lo, hi, what, low_open=False):
        v = self.obj.get(name)
        if v is None:
            return default
        if type(v) not in (int, float):
            raise ApiError(400, f"{name} must be a number {what}, not {_show(v)}", name, "invalid_type")
        if not math.isfinite(v) or v < lo or (low_open and v == lo) or (hi is not None and v > hi):
            raise ApiError(400, f"{name} must be a number {what}, not {v}", name, "invalid_value")
        return float(v)

    def boolean(self, name, default):
        v = self.obj.get(name)
        if v is None:
            return default
        if type(v) is not bool:
            raise ApiError(400, f"{name} must be true or false, not {_show(v)}", name, "invalid_type")
        return v


def _known(obj, fields):
    unknown = sorted(set(obj) - fields)
    if unknown:
        raise ApiError(400, f"unrecognized request argument: {unknown[0]}", unknown[0], "unknown_parameter")


def _string(obj, name):
    v = obj[name]
    if not isinstance(v, str):
        raise ApiError(400, f"{name} must be a string, not {_show(v)}", name, "invalid_type")
    return v


def _prompt(obj):
    p = obj.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
        p = p[0]
    if p is None:
        return ""
    if not isinstance(p, str):
        raise ApiError(400, "prompt must be one string (a list of prompts, or of token ids, is not supported); "
                            f"not {_show(p)}", "prompt", "invalid_type")
    if len(p) > MAX_PROMPT_CHARS:
        raise ApiError(400, f"prompt is too long: {len(p):,} characters, at most {MAX_PROMPT_CHARS:,}", "prompt",
                       "invalid_value")
    return p


def _stops(obj):
    s = obj.get("stop")
    if s is None:
        return ()
    stops = [s] if isinstance(s, str) else s
    if not (isinstance(stops, list) and 1 <= len(stops) <= MAX_STOPS and all(isinstance(x, str) for x in stops)):
        raise ApiError(400, f"stop must be a string or a list of 1 to {MAX_STOPS} strings, not {_show(s)}", "stop",
                       "invalid_type")
    for x in stops:
        if not 1 <= len(x) <= MAX_STOP_CHARS:
            raise ApiError(400, f"each stop sequence must have 1 to {MAX_STOP_CHARS} characters, not {len(x)}",
                           "stop", "invalid_value")
    return tuple(x.replace("\r\n", "\n") for x in stops)  # the text made has "\n" line breaks only


def _text(obj, what):
    if obj.get("text") is None:
        raise ApiError(400, "you must provide a text parameter: the text to " + what, "text",
                       "missing_required_parameter")
    text = _string(obj, "text")
    limit = MAX_TEXT_CHARS[what]
    if len(text) > limit:
        raise ApiError(400, f"text is too long: {len(text):,} characters, at most {limit:,}", "text", "invalid_value")
    return text


def _kind(v):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number")


def _show(v):
    """A field's value as the message quotes it: short JSON."""
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- answers

def logprobs_body(tokens: list, offset: int) -> dict:
    """OpenAI's legacy logprobs object for [(token text, TokenInfo)], the first at ``offset``
    characters into the choice's text."""
    offsets = []
    for text, _ in tokens:
        offsets.append(offset)
        offset += len(text)
    return {"tokens": [t for t, _ in tokens], "token_logprobs": [i.logprob for _, i in tokens],
            "top_logprobs": [dict(i.top) for _, i in tokens], "text_offset": offsets}


def choice_body(index: int, text: str, logprobs: dict | None, finish_reason: str | None) -> dict:
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish_reason}


def completion_body(ident: str, created: int, model: str, choices: list, usage: dict | None, seed: int | None) -> dict:
    """A completion, or one chunk of a streamed one (then ``usage`` is None but in the last).
    ``seed`` is charrnn's addition: the seed that reproduces the text."""
    body = {"id": ident, "object": "text_completion", "created": created, "model": model, "choices": choices}
    if usage is not None:
        body["usage"] = usage
    if seed is not None:
        body["seed"] = seed
    return body


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def sse(obj: Any) -> bytes:
    """One server-sent event; the stream ends with sse("[DONE]")."""
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + data.encode("utf-8") + b"\n\n"


def unknown_symbols(unknown: dict, what: str, param: str, known: int) -> ApiError:
    """The 400 for a text with symbols the model never saw (``unknown``: symbol -> count)."""
    shown = ", ".join(json.dumps(u, ensure_ascii=False) for u in list(unknown)[:5])
    more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
    return ApiError(400, f"{what} has symbols the model never saw: {shown}{more} (it knows {known:,}); "
                         f"leave them out", param, "unknown_symbols")
