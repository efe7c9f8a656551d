"""`charrnn serve`: trained language models behind an OpenAI-compatible HTTP API, and a
playground page (docs/serve.md).

    engine.py    the continuous batcher: one thread per model steps every open stream together
    stream.py    one request inside the engine: its sampler, its choices, its events
    stops.py     where a completion's text may be shown, held back or cut at a stop sequence
    protocol.py  requests checked into frozen dataclasses; OpenAI-shaped answers and errors
    models.py    which checkpoints are served under which names, and reloading them (--watch)
    analyze.py   /v1/score and /v1/inspect: what a model makes of a given text
    app.py       the Starlette application: routes, the API key, limits, one access line each
    server.py    uvicorn running it: the socket, its messages, the stop on SIGINT/SIGTERM
    static/      the playground page: plain HTML, CSS and JavaScript, nothing fetched elsewhere

The command line (charrnn/cli/serve.py) loads the models and runs uvicorn; this package
imports neither click nor rich, and nothing outside it imports starlette or uvicorn.
"""
