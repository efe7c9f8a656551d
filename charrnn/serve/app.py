"""The HTTP application (Starlette): OpenAI's model list and completions, charrnn's score and
inspect, and the playground page.

    GET  /                    the playground (static/index.html; /static/ its files)
    GET  /v1/models           the models served; GET /v1/models/{id} one of them
    POST /v1/completions      OpenAI's legacy completions, streamed as server-sent events or whole
    POST /v1/score            a text's per-token log-probabilities (analyze.py)
    POST /v1/inspect          a text's activations and the units that track its features

Every refusal is OpenAI's error object with a 4xx status; a bug answers 500 with one line on
the log, never a traceback. With an API key, every /v1/ route needs "Authorization: Bearer
KEY", compared in constant time. One access line per request on the log (stderr).
"""
import asyncio
import contextlib
import hmac
import json
import secrets
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from charrnn.serve import analyze, protocol
from charrnn.serve.engine import Busy, Closed
from charrnn.serve.protocol import ApiError, Limits
from charrnn.serve.stream import End, Failed, Job, Piece
from charrnn.text.decode import lf

STATIC = str(resources.files("charrnn.serve") / "static")
# the page loads its own files and calls this server, nothing else
PAGE_HEADERS = [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
                (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
FAILED_STATUS = {"server_shutdown": 503, "model_output_not_finite": 500, "internal_error": 500}


class Service:
    """The server's state: the models (a models.Registry), its limits, the API key, the log.
    ``asgi`` is the application to run; ``stop`` ends every open stream (a signal came)."""

    def __init__(self, registry, limits: Limits = Limits(), api_key: str | None = None, watch: float | None = None,
                 log=None):
        self.registry, self.limits, self.watch = registry, limits, watch
        self.log = log or (lambda line: None)
        self.stopping = False
        self.analyses = 0  # score and inspect requests being computed
        self._loop = self._watcher = None
        routes = [Route("/", self.page), Mount("/static", StaticFiles(directory=STATIC)),
                  Route("/v1/models", self.models), Route("/v1/models/{model:path}", self.model),
                  Route("/v1/completions", self.completions, methods=["POST"]),
                  Route("/v1/score", self.score, methods=["POST"]),
                  Route("/v1/inspect", self.inspect, methods=["POST"])]
        app = Starlette(routes=routes, lifespan=self._lifespan,
                        exception_handlers={HTTPException: _http_error, ApiError: _api_error})
        self.asgi = AccessLog(Guard(app, api_key), self.log)

    def stop(self) -> int:
        """Take no more requests and end every open stream at its next step; how many there were."""
        self.stopping = True
        return self.registry.close()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        self._loop = asyncio.get_running_loop()
        if self.watch:
            self._watcher = asyncio.create_task(self._watch_files())
        try:
            yield
        finally:
            if self._watcher is not None:
                self._watcher.cancel()
            self.stop()

    async def _watch_files(self):
        while True:
            await asyncio.sleep(self.watch)
            await asyncio.to_thread(self.registry.reload_changed)

    def _wake(self, streams):
        """From an engine's thread: wake the readers of these streams."""
        self._loop.call_soon_threadsafe(_set_ready, streams)

    # ------------------------------------------------------------------ routes
    async def page(self, request):
        return FileResponse(f"{STATIC}/index.html")

    async def models(self, request):
        return JSONResponse({"object": "list", "data": [s.describe() for s in self.registry.all()]})

    async def model(self, request):
        return JSONResponse(self._served(request.path_params["model"], request).describe())

    async def completions(self, request):
        req = protocol.completion(await self._body(request), self.limits)
        ready = asyncio.Event()
        for attempt in (1, 2):  # a reload may retire the engine between the look-up and the submit
            served = self._served(req.model, request)
            job, prime = _job(req, served.checkpoint.vocab)
            try:
                stream = served.engine.submit(job, self._wake, ready)
                break
            except Busy:
                raise ApiError(429, f"all {self.limits.streams} streams of {req.model} are busy; try again shortly",
                               None, "too_many_streams") from None
            except Closed:  # the server is stopping, or a reload retired this engine: then once more
                if self.stopping:
                    raise ApiError(503, "the server is shutting down", None, "server_shutdown") from None
                if attempt == 2:
                    raise ApiError(503, f"{req.model} is being reloaded; try again", None, "model_reloading") from None
        return Generation(served.engine, stream, ready, req, prime if req.echo else "", len(job.prime_ids))

    async def score(self, request):
        req = protocol.score_request(await self._body(request))
        served = self._served(req.model, request)
        return JSONResponse(await self._analysis(analyze.score, served, req.text))

    async def inspect(self, request):
        req = protocol.inspect_request(await self._body(request))
        served = self._served(req.model, request)
        return JSONResponse(await self._analysis(analyze.inspect, served, req))

    # ------------------------------------------------------------------ helpers
    async def _body(self, request):
        """The request's JSON object, read no further than the body limit (413 past it)."""
        if self.stopping:
            raise ApiError(503, "the server is shutting down", None, "server_shutdown")
        limit = self.limits.body
        too_big = ApiError(413, f"the request body is larger than {limit:,} bytes", None, "request_too_large")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_big
        return protocol.parse_json(bytes(body))

    def _served(self, name, request):
        served = self.registry.get(name)
        if served is None:
            raise ApiError(404, f"the model {name!r} does not exist; this server has "
                                f"{', '.join(repr(s.name) for s in self.registry.all())}", "model", "model_not_found")
        request.scope["charrnn"] = {"model": name}
        return served

    async def _analysis(self, fn, served, arg):
        if self.analyses >= self.limits.streams:
            raise ApiError(429, f"{self.analyses} texts are being scored or inspected; try again shortly", None,
                           "too_many_requests")
        self.analyses += 1
        try:
            return await run_in_threadpool(fn, served, arg)
        finally:
            self.analyses -= 1


def _job(req, vocab):
    """The engine's Job for a checked request, and the prime as the model reads it; a 400 for a
    prompt with symbols the model never saw."""
    ids, unknown = vocab.encode_known(lf(req.prompt))  # a model reads a CRLF line break as "\n"
    if unknown:
        raise protocol.unknown_symbols(unknown, "the prompt", "prompt", len(vocab))
    job = Job(tuple(int(i) for i in ids), req)
    return job, vocab.decode(ids)


def _set_ready(streams):
    for s in streams:
        s.tag.set()


class Generation:
    """A completion's answer as the engine makes it: server-sent events as OpenAI streams them
    (each choice's text, then its finish_reason, then usage if asked, then [DONE]), or one JSON
    object. A client that goes away lets its stream go at once: its slot is free before the
    engine's next step."""

    def __init__(self, engine, stream, ready, req, echo, prompt_tokens):
        self.engine, self.stream, self.ready, self.req = engine, stream, ready, req
        self.echo, self.prompt_tokens = echo, prompt_tokens
        self.gone = False
        self.ident, self.created = "cmpl-" + secrets.token_hex(12), int(time.time())
        self.texts = [None] * req.n  # each choice's text so far (None: nothing yet, not even the echo)
        self.tokens = [[] for _ in range(req.n)]  # each choice's [(token, TokenInfo)] with logprobs
        self.reasons = [None] * req.n
        self.drawn = 0

    async def __call__(self, scope, receive, send):
        watcher = asyncio.create_task(self._watch(receive))
        try:
            if self.req.stream:
                await self._stream(send)
            else:
                await self._whole(scope, send)
        except OSError:  # the client went away while we wrote
            self.gone = True
        finally:
            watcher.cancel()
            if not self.stream.finished:
                self.engine.cancel(self.stream)
            scope.setdefault("charrnn", {}).update(tokens=self.drawn, gone=self.gone)

    async def _watch(self, receive):
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.engine.cancel(self.stream)
        self.ready.set()

    async def _events(self):
        """Lists of the engine's events as they come, until the stream ends or the client goes."""
        ends = 0
        while ends < self.req.n:
            await self.ready.wait()
            self.ready.clear()
            if self.gone:
                return
            events = self.stream.take()
            ends += sum(isinstance(e, End) for e in events)
            if events:
                yield events
            if any(isinstance(e, Failed) for e in events):
                return

    def _add(self, e):
        """Record a Piece or End; its choice object for a stream's chunk."""
        text, tokens = (e.text, e.tokens) if isinstance(e, Piece) else ("", ())
        before = self.texts[e.choice]
        if before is None:  # the choice's first event: the prompt comes first when echoed
            before, text = "", self.echo + text
        lp = None
        if self.req.logprobs is not None and tokens:  # offsets count from the choice's text, echo included
            lp = protocol.logprobs_body(list(tokens), len(before) + len(text) - len(e.text))
            self.tokens[e.choice] += tokens
        self.texts[e.choice] = before + text
        reason = None
        if isinstance(e, End):
            reason = self.reasons[e.choice] = e.reason
            self.drawn += e.drawn
        return protocol.choice_body(e.choice, text, lp, reason)

    def _chunk(self, choices, usage=None):
        return protocol.completion_body(self.ident, self.created, self.req.model, choices, usage, self.req.seed)

    async def _stream(self, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                                (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
        failed = False
        async for events in self._events():
            out = []
            for e in _joined(events):
                if isinstance(e, Failed):
                    failed = True
                    out.append(protocol.sse(_failed_body(e)))
                else:
                    out.append(protocol.sse(self._chunk([self._add(e)])))
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        if self.gone:
            return
        tail = [protocol.sse("[DONE]")]
        if self.req.include_usage and not failed:
            tail.insert(0, protocol.sse(self._chunk([], protocol.usage_body(self.prompt_tokens, self.drawn))))
        await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})

    async def _whole(self, scope, send):
        failed = None
        async for events in self._events():
            for e in events:
                if isinstance(e, Failed):
                    failed = e
                else:
                    self._add(e)
        if self.gone:
            return
        if failed is not None:
            response = JSONResponse(_failed_body(failed), FAILED_STATUS.get(failed.code, 500))
        else:
            lp = [protocol.logprobs_body(t, len(self.echo)) if self.req.logprobs is not None else None
                  for t in self.tokens]
            choices = [protocol.choice_body(i, t or "", lp[i], self.reasons[i]) for i, t in enumerate(self.texts)]
            response = JSONResponse(self._chunk(choices, protocol.usage_body(self.prompt_tokens, self.drawn)))
        await response(scope, None, send)


def _joined(events):
    """The events with each run of Pieces of one choice made one (fewer, larger chunks when the
    engine is ahead of the client)."""
    out = []
    for e in events:
        last = out[-1] if out else None
        if isinstance(e, Piece) and isinstance(last, Piece) and last.choice == e.choice:
            out[-1] = Piece(e.choice, last.text + e.text, last.tokens + e.tokens)
        else:
            out.append(e)
    return out


def _failed_body(e):
    return protocol.error_body(e.message, "server_error", None, e.code)


# --------------------------------------------------------------------------- around the routes

async def _api_error(request, exc):
    return JSONResponse(exc.body(), exc.status, headers={"retry-after": "1"} if exc.status == 429 else None)


async def _http_error(request, exc):
    """Routing's 404 and 405: OpenAI's error object under /v1/, plain text for the page's files."""
    if request.url.path.startswith("/v1/"):
        what = "no such route" if exc.status_code == 404 else f"{request.method} is not allowed here"
        code = "not_found" if exc.status_code == 404 else "method_not_allowed"
        return JSONResponse(protocol.error_body(f"{what}: {request.method} {request.url.path}",
                                                "invalid_request_error", None, code), exc.status_code,
                            headers=exc.headers)
    return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)


class Guard:
    """/v1/ routes need the API key when there is one ("Authorization: Bearer KEY", compared in
    constant time); the page's responses get headers that keep it to this server's files."""

    def __init__(self, app, api_key):
        self.app = app
        self.expected = None if api_key is None else b"Bearer " + api_key.encode("utf-8")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/v1" or scope["path"].startswith("/v1/"):
            if self.expected is not None:
                given = dict(scope["headers"]).get(b"authorization")
                if given is None or not hmac.compare_digest(given, self.expected):
                    message = ("no API key given: send the header 'Authorization: Bearer KEY'" if given is None
                               else "incorrect API key")
                    body = protocol.error_body(message, "invalid_request_error", None, "invalid_api_key")
                    return await JSONResponse(body, 401)(scope, receive, send)
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + PAGE_HEADERS}
            await send(message)
        await self.app(scope, receive, with_headers)


class AccessLog:
    """One line per request on the log when it ends: client, method, path, status, bytes sent,
    milliseconds, and the model and tokens of a completion. An exception that escapes the
    routes (a bug) is answered 500 and logged in one line, never as a traceback."""

    def __init__(self, app, log):
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, sent = time.perf_counter(), [None], [0]

        async def counting(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)
        error = None
        try:
            await self.app(scope, receive, counting)
        except Exception as e:  # a bug: the client gets a 500 if it can still be told
            error = f"{type(e).__name__}: {' '.join(str(e).split())}"
            if status[0] is None:
                body = protocol.error_body("internal error; see the server's log", "server_error", None,
                                           "internal_error")
                try:
                    await JSONResponse(body, 500)(scope, receive, counting)
                except OSError:
                    pass
        client = scope.get("client") or ("-", 0)
        extra = "".join(f" {k}={v}" for k, v in scope.get("charrnn", {}).items() if v not in (None, False))
        path = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        self.log(f'{client[0]} "{scope["method"]} {_printable(path)}" {status[0] or "-"} {sent[0]}B '
                 f"{(time.perf_counter() - start) * 1000:.1f}ms{extra}" + (f" internal error: {error}" if error else ""))


def _printable(text):
    """A path as one log line may hold it: no control characters."""
    return json.dumps(text)[1:-1] if any(ord(c) < 32 or ord(c) == 127 for c in text) else text
