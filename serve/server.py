"""Running the live API: in the foreground (``zoosim serve``) or on a thread (tests, checks).

The listening socket is bound before uvicorn starts, so port 0 gives a free port that is
known at once; the server announces its address only once the zoo is loaded and warm.
SIGINT/SIGTERM (foreground) or :meth:`ServerThread.stop` stop it cleanly: uvicorn finishes the
requests in flight, then the workers' threads are joined.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serve.config import ApiConfig, ServeScenario
from serve.http import ConnectionLimits, guarded_protocol
from sim.clock import raise_open_file_limit
from sim.errors import UserError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when it is given;
    # without it, a response's body waits ~40 ms behind its headers (Nagle + delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UserError(f"api: cannot listen on {host}:{port} ({e.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_server(scenario: ServeScenario, base_dir: Path | None,
                    on_ready: Callable[[Any], None]) -> Any:
    import uvicorn

    from serve.app import create_app

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # signals are the caller's: serve_forever installs handle_exit itself

    app = create_app(scenario, base_dir, on_ready)
    api = scenario.api
    # the loop is ours (see _run): uvloop's clock and timers, and epoll's waits, have a
    # resolution of 1 ms, too coarse for batching timeouts of a millisecond or less
    config = uvicorn.Config(app, loop="none", log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=10, backlog=2048,
                            http=guarded_protocol(connection_limits(api)),
                            timeout_keep_alive=api.idle_timeout_s)  # type: ignore[arg-type]
    # (uvicorn's annotation says int; it is a delay given to loop.call_later, so any float)
    return Server(config)


DESCRIPTORS_RESERVED = 64
"""Open files kept apart from connections: the listening socket, worker pipes, weights."""


def connection_limits(api: ApiConfig) -> ConnectionLimits:
    """The API's per-connection limits, with the connection cap below the open-file limit
    (raised to its hard limit first), so a flood of connections is refused, never fatal."""
    files = raise_open_file_limit()
    return ConnectionLimits(
        max_connections=max(1, min(api.max_connections, files - DESCRIPTORS_RESERVED)),
        max_header_bytes=api.max_header_bytes, max_body_bytes=api.max_body_bytes,
        request_timeout_s=api.request_timeout_s, idle_timeout_s=api.idle_timeout_s)


def _run(server: Any, sock: socket.socket, precise: bool) -> None:
    """Run a uvicorn server on the event loop the live system needs."""
    import asyncio

    from sim.clock import run_precise

    if precise:
        run_precise(server.serve(sockets=[sock]))
    else:
        asyncio.run(server.serve(sockets=[sock]))


def serve_forever(scenario: ServeScenario, base_dir: Path | None,
                  announce: Callable[[str, str | None], None]) -> None:
    """Serve until SIGINT/SIGTERM; ``announce(url, admin_token)`` once ready (the token when
    one was made for this server, else None)."""
    sock = bind(scenario.api.host, scenario.api.port)
    url = url_of(sock)
    made: list[str | None] = []
    server = _uvicorn_server(scenario, base_dir, lambda _: announce(url, made[0]))
    made.append(server.config.app.state.identities.made_token)
    before = {sig: signal.signal(sig, server.handle_exit) for sig in STOP_SIGNALS}
    try:
        _run(server, sock, scenario.api.precise_timers)
    finally:
        sock.close()
        for sig, handler in before.items():
            signal.signal(sig, handler)
    if not server.started:
        raise UserError("the server did not start (see the message above)")


class ServerThread:
    """A live server on a background thread, for tests and experiments in one process."""

    def __init__(self, scenario: ServeScenario, base_dir: Path | None = None,
                 timeout_s: float = 60.0) -> None:
        self.sock = bind(scenario.api.host, scenario.api.port)
        self.url = url_of(sock=self.sock)
        self.live: Any = None
        ready = threading.Event()

        def on_ready(live: Any) -> None:
            self.live = live
            ready.set()

        self.server = _uvicorn_server(scenario, base_dir, on_ready)
        self.admin_token: str | None = self.server.config.app.state.identities.known_token
        """The admin token (for ``/admin/records``), unless only its digest was given."""
        self.precise = scenario.api.precise_timers
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="zoosim-serve", daemon=True)
        self.thread.start()
        waited = 0.0
        while not ready.wait(0.05) and self.thread.is_alive() and waited < timeout_s:
            waited += 0.05
        if not ready.is_set() or self.error is not None:
            self.stop()
            raise RuntimeError(f"live server failed to start: {self.error!r}")

    def _run(self) -> None:
        try:
            _run(self.server, self.sock, self.precise)
        except BaseException as e:  # surfaced by the constructor or stop()
            self.error = e

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError("live server did not stop in time")

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
