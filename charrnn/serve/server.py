"""Running the application under uvicorn: the listening socket, uvicorn's own messages as
one-line warnings, and the stop on SIGINT/SIGTERM: stop accepting, end every open stream
cleanly (its client gets an error event and [DONE]), wait for the connections to close, return
the signal so the command exits 128+N."""
import ipaddress
import signal
import socket
import threading

import uvicorn

BACKLOG = 2048  # uvicorn's own
GRACE_SECONDS = 5  # how long a client that stopped reading may hold the shutdown up
LOG_CONFIG = {  # uvicorn's warnings and errors as one line each; its access log off (app.AccessLog)
    "version": 1, "disable_existing_loggers": False,
    "formatters": {"line": {"format": "charrnn serve: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}},
    "loggers": {"uvicorn.error": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
                "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
}


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: a free one) for uvicorn to serve; OSError if it
    cannot be. It listens at once: a client that comes before uvicorn has started waits."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def is_loopback(sock: socket.socket) -> bool:
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


class Server(uvicorn.Server):
    """uvicorn's server for a Service, with one change: at the stop it ends the open streams
    before it waits for their connections to close."""

    def __init__(self, service, log):
        super().__init__(uvicorn.Config(service.asgi, log_config=LOG_CONFIG, log_level="warning", access_log=False,
                                        lifespan="on", timeout_graceful_shutdown=GRACE_SECONDS))
        self.service, self.log, self.signum = service, log, None

    def handle_exit(self, sig, frame):
        self.signum = self.signum or sig
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None):
        name = signal.Signals(self.signum).name if self.signum else "stop"
        n = self.service.stop()
        self.log(f"{name}: no new requests; ended {n} open stream(s)")
        await super().shutdown(sockets)


def run(service, sock: socket.socket, log, announce=lambda: None) -> int | None:
    """Serve on ``sock`` until SIGINT or SIGTERM; the signal's number. ``announce()`` is called
    once a signal would stop the server cleanly (say "serving at ..." then, not before)."""
    server = Server(service, log)
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        announce()
        server.run(sockets=[sock])
        return server.signum
    # before uvicorn takes the signals over (and after: it raises the one it handled again), a
    # signal stops the server the same way
    before = {s: signal.signal(s, server.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        announce()
        server.run(sockets=[sock])
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    return server.signum
