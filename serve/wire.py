"""A lean HTTP/1.1 keep-alive client for the load generator: asyncio Protocols + httptools.

Why not httpx: profiled at 300 requests/s, :func:`serve.loadgen.replay` on httpx kept its one
thread busy all the time, about 5 ms of CPU per request, so the load generator, not the
server, set the pace. Most of it was httpcore's connection pool, which looks at every open
connection whenever a request starts or ends (a cost that grows with the number of
connections, i.e. with the load), and anyio's module look-ups (``importlib`` ``find_spec``)
on every request. A client whose cost per request is small and constant lets a load test
measure the server, and lets that cost be modeled as a constant per request.

:class:`WireClient` does only what a load test on loopback needs, each step O(1):

- ``http://`` only; requests are written in one ``write`` of pre-built bytes (request line
  and ``Host`` encoded once per path; ``Content-Length``; ``TCP_NODELAY`` on every socket);
- responses are parsed by ``httptools`` (C; ``Content-Length``, chunked, or read to the
  close), their body returned as bytes;
- at most ``max_connections`` connections at once; idle ones are reused last-in first-out
  and closed when idle for more than ``keepalive_s`` (checked when a request takes one, no
  timers); callers wait first-in first-out (a semaphore) when all are busy;
- a connection the server closed while it was idle (the keep-alive race: the request is
  written before its close is seen) is retried once on a fresh connection when not a byte of
  the answer came; every other transport failure is a :class:`WireError`.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from serve.client import KEEPALIVE_S, SOCKET_OPTIONS

Answer = tuple[int, bytes]
"""HTTP status and body."""


class WireError(Exception):
    """A transport failure; the message says which: refused, reset, closed before the answer,
    timeout after X s, malformed response."""


class _Stale(WireError):
    """The server closed the connection before a byte of the answer came."""


def encode_headers(headers: Mapping[str, str]) -> bytes:
    """Header lines (``Name: value\\r\\n`` each) for :meth:`WireClient.post`'s ``headers``,
    to build once and send many times."""
    return "".join([f"{k}: {v}\r\n" for k, v in headers.items()]).encode("latin-1")


class _Connection(asyncio.Protocol):
    """One connection: one request at a time; the answer completes :attr:`waiter`."""

    __slots__ = ("_lost", "framed", "headed", "idle_since", "parser", "parts", "started",
                 "transport", "waiter")

    def __init__(self, lost: set[_Connection]) -> None:
        self._lost = lost  # the client's open connections: self leaves it when closed
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.parts: list[bytes] = []
        self.started = False  # a byte of the current answer came
        self.headed = False   # the answer's headers all came
        self.framed = False   # the answer says its length (Content-Length or chunked)
        self.idle_since = 0.0

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def begin(self, data: bytes, waiter: asyncio.Future[Answer]) -> None:
        """Send a request (``data``, head and body); its answer completes ``waiter``."""
        assert self.transport is not None
        self.waiter = waiter
        self.parts = []
        self.started = self.headed = self.framed = False
        self.transport.write(data)

    def _fail(self, error: WireError) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def expire(self, timeout_s: float) -> None:
        """The request's deadline passed: the connection is dropped."""
        self._fail(WireError(f"timeout after {timeout_s:g} s"))
        self.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: out of step, unusable
            self.abort()
            return
        self.started = True
        try:
            self.parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade) as e:
            self._fail(WireError(f"malformed response: {type(e).__name__}: {e}"))
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close: the request in progress, if any, fails in connection_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost.discard(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if not self.started:
            how = "reset" if exc is not None else "closed"
            self._fail(_Stale(f"connection {how} by the server before the answer"))
        elif self.headed and not self.framed:
            self.waiter = None  # an answer without a length ends where the connection does
            waiter.set_result((self.parser.get_status_code(), b"".join(self.parts)))
        else:
            how = "reset" if exc is not None else "closed"
            self._fail(WireError(f"connection {how} by the server during the answer"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.framed:
            name = name.lower()
            self.framed = name == b"content-length" or name == b"transfer-encoding"

    def on_headers_complete(self) -> None:
        self.headed = True

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None:  # a second answer in one read: out of step
            self.abort()
            return
        parts = self.parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        if not self.parser.should_keep_alive():
            self.close()
        if not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))


class WireClient:
    """HTTP/1.1 client of one ``http://`` server, for many concurrent requests (an
    ``async with`` block closes every connection on exit).

    ``timeout_s`` bounds each request from when it has a connection slot (connecting,
    sending, the whole answer); waiting for a slot is not bounded. Methods must be called on
    one event loop's thread."""

    def __init__(self, base_url: str, max_connections: int = 256, timeout_s: float = 60.0,
                 keepalive_s: float = KEEPALIVE_S) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http":
            raise ValueError(f"{base_url!r}: WireClient speaks http:// only")
        if not url.hostname:
            raise ValueError(f"{base_url!r}: no host")
        if max_connections < 1:
            raise ValueError(f"max_connections={max_connections}: at least 1")
        self.host = url.hostname
        self.port = url.port or 80
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self._prefix = url.path.rstrip("/")
        self._host_line = f"Host: {url.netloc}\r\n".encode("latin-1")
        self._heads: dict[tuple[str, str], bytes] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: deque[_Connection] = deque()  # right end: the most recently used
        self._open: set[_Connection] = set()
        self._addrs: list[tuple[int, Any]] = []
        self._closed = False
        self.connections_made = 0
        """Connections opened so far (for tests and reports)."""

    async def __aenter__(self) -> WireClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (requests in flight fail with :class:`WireError`)."""
        self._closed = True
        self._idle.clear()
        for conn in list(self._open):
            conn.close()
        await asyncio.sleep(0)  # the transports' closing callbacks close the sockets

    async def post(self, path: str, body: bytes, headers: Mapping[str, str] | bytes = b""
                   ) -> Answer:
        """``POST path`` with ``body``: ``(status, body)``. ``headers`` are a mapping or
        pre-encoded lines (:func:`encode_headers`); ``Host`` and ``Content-Length`` are
        added."""
        return await self.request("POST", path, body, headers)

    async def get(self, path: str, headers: Mapping[str, str] | bytes = b"") -> Answer:
        """``GET path``: ``(status, body)``."""
        return await self.request("GET", path, None, headers)

    async def request(self, method: str, path: str, body: bytes | None,
                      headers: Mapping[str, str] | bytes = b"") -> Answer:
        """Any request: ``(status, body)``; a :class:`WireError` on a transport failure."""
        head = self._heads.get((method, path))
        if head is None:
            head = self._heads[method, path] = (
                f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1")
                + self._host_line)
        lines = headers if isinstance(headers, bytes) else encode_headers(headers)
        if body is None:
            data = b"".join((head, lines, b"\r\n"))
        else:
            data = b"".join((head, lines, b"Content-Length: %d\r\n\r\n" % len(body), body))
        await self._slots.acquire()
        try:
            return await self._send(data)
        finally:
            self._slots.release()

    async def _send(self, data: bytes) -> Answer:
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.timeout_s
        conn = self._take_idle(now)
        if conn is not None:
            try:
                return await self._exchange(loop, conn, data, deadline)
            except _Stale:
                pass  # the server closed it while idle: once more on a fresh connection
        conn = await self._connect(loop, deadline)
        try:
            return await self._exchange(loop, conn, data, deadline)
        except _Stale as e:
            raise WireError(str(e)) from None

    def _take_idle(self, now: float) -> _Connection | None:
        """The most recently used idle connection, or None; connections idle for longer
        than ``keepalive_s`` are closed (each is looked at once: O(1) a request, amortized)."""
        idle = self._idle
        oldest = now - self.keepalive_s
        while idle and idle[0].idle_since < oldest:
            idle.popleft().close()
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
        return None

    async def _exchange(self, loop: asyncio.AbstractEventLoop, conn: _Connection, data: bytes,
                        deadline: float) -> Answer:
        waiter: asyncio.Future[Answer] = loop.create_future()
        timer = loop.call_at(deadline, conn.expire, self.timeout_s)
        try:
            conn.begin(data, waiter)
            answer = await waiter
        except BaseException:  # failed, timed out or cancelled: the connection is unusable
            conn.abort()
            raise
        finally:
            timer.cancel()
        if conn.usable:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        return answer

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        where = f"{self.host}:{self.port}"
        if self._closed:
            raise WireError(f"the client of {where} is closed")
        error: OSError | None = None
        try:
            if not self._addrs:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM),
                    max(deadline - loop.time(), 0))
                self._addrs = [(family, addr) for family, _, _, _, addr in infos]
            for family, addr in self._addrs:
                sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                try:
                    sock.setblocking(False)
                    for level, option, value in SOCKET_OPTIONS:
                        sock.setsockopt(level, option, value)
                    await asyncio.wait_for(loop.sock_connect(sock, addr),
                                           max(deadline - loop.time(), 0))
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self._open), sock=sock)
                except BaseException as e:
                    sock.close()
                    if not isinstance(e, OSError) or isinstance(e, asyncio.TimeoutError):
                        raise
                    error = e
                    continue
                self._open.add(conn)
                self.connections_made += 1
                return conn
        except asyncio.TimeoutError:
            raise WireError(f"timeout after {self.timeout_s:g} s connecting to {where}"
                            ) from None
        except OSError as e:
            error = e
        if isinstance(error, ConnectionRefusedError):
            raise WireError(f"connection refused by {where}")
        raise WireError(f"cannot connect to {where}: {getattr(error, 'strerror', None) or error}")
