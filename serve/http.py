"""The live server's HTTP connections, guarded: limits enforced while bytes arrive.

uvicorn's httptools protocol parses requests; :func:`guarded_protocol` makes a subclass that
refuses, with one JSON message and ``Connection: close``, what would otherwise cost the
server memory or a descriptor for as long as a client likes:

- connections beyond ``max_connections`` (503 at once, with ``Retry-After``);
- a request head (request line and headers) over ``max_header_bytes`` (431), checked before
  the bytes reach the parser, so a 10 MB header is never held;
- a body over ``max_body_bytes`` (413): at once from ``Content-Length``, else (chunked) as
  soon as the bytes received pass the limit;
- a request whose head and body have not all arrived ``request_timeout_s`` after its first
  byte (408; slow senders hold a connection no longer than that);
- a connection with no request in progress for ``idle_timeout_s`` (closed, as uvicorn's
  keep-alive timeout does after a response);
- bytes that are not HTTP (400, JSON instead of uvicorn's plain text).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEAD_END = b"\r\n\r\n"
LINGER_S = 2.0
"""How long a refused connection's remaining bytes are read and dropped before it closes."""


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may cost the server (``api`` options of the same names)."""

    max_connections: int
    max_header_bytes: int
    max_body_bytes: int
    request_timeout_s: float
    idle_timeout_s: float


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 answer ``{"error": message}`` that closes the connection."""
    body = json.dumps({"error": message}).encode()
    lines = [STATUS_LINE[status], b"content-type: application/json\r\n",
             b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
    lines += [f"{k}: {v}\r\n".encode("latin-1") for k, v in (headers or {}).items()]
    return b"".join([*lines, b"\r\n", body])


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with ``limits`` enforced (pass as ``Config(http=...)``)."""

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._timer: asyncio.TimerHandle | None = None
            self._closed = False
            self._in_head = True   # the next bytes belong to a request's head
            self._head_bytes = 0
            self._tail = b""       # the head's last bytes, for an end split across reads
            self._body_bytes = 0

        # -- connection ------------------------------------------------------------------
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self._refuse(503, f"too many connections (at most {limits.max_connections}); "
                                  "retry later", {"Retry-After": "1"}, linger=False)
                return
            self._arm(limits.idle_timeout_s, None)

        def connection_lost(self, exc: Exception | None) -> None:
            self._closed = True
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._closed:
                return
            if self._in_head:
                if self._head_bytes == 0:   # a request starts: it has this long to arrive
                    self._arm(limits.request_timeout_s, "request")
                room = limits.max_header_bytes - self._head_bytes
                if len(data) > room:
                    end = (self._tail + data).find(HEAD_END)
                    if end < 0 or end + len(HEAD_END) - len(self._tail) > room:
                        self._refuse(431, f"request head over {limits.max_header_bytes} "
                                          "bytes (request line and headers)")
                        return
                self._head_bytes += len(data)
                self._tail = (self._tail + data)[-3:]
            super().data_received(data)

        def send_400_response(self, msg: str) -> None:
            self._refuse(400, f"not a valid HTTP request ({msg.rstrip('.')})")

        # -- parser callbacks ---------------------------------------------------------------
        def on_headers_complete(self) -> None:
            if self._closed:
                return
            self._in_head = False
            self._body_bytes = 0
            for name, value in self.headers:
                if name == b"content-length":
                    try:
                        size = int(value)
                    except ValueError:
                        size = -1
                    if size > limits.max_body_bytes:
                        self._refuse(413, f"body of {size} bytes; at most "
                                          f"{limits.max_body_bytes}")
                        return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self._closed:
                return
            self._body_bytes += len(body)
            if self._body_bytes > limits.max_body_bytes:
                self._refuse(413, f"body over {limits.max_body_bytes} bytes")
                return
            super().on_body(body)

        def on_message_complete(self) -> None:
            if self._closed:
                return
            self._disarm()
            self._in_head, self._head_bytes, self._tail = True, 0, b""
            super().on_message_complete()

        # -- timers and refusals ------------------------------------------------------------
        def _arm(self, delay: float, kind: str | None) -> None:
            self._disarm()
            self._timer = self.loop.call_later(delay, self._expired, kind)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self, kind: str | None) -> None:
            self._timer = None
            if self._closed or self.transport.is_closing():
                return
            if kind is None:          # idle: nothing to answer
                self._closed = True
                self.transport.close()
            else:
                self._refuse(408, f"request not received within {limits.request_timeout_s:g} "
                                  "s of its first byte")

        def _refuse(self, status: int, message: str, headers: dict[str, str] | None = None,
                    linger: bool = True) -> None:
            """Answer ``status`` and close; ``linger``: read and drop what still comes for
            :data:`LINGER_S` first (not for a connection refused before it sent anything,
            whose descriptor is better freed at once under a flood)."""
            self._closed = True
            self._disarm()
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.response_complete = True  # the app's answer, if any, is not sent
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            if not self.transport.is_closing():
                self.transport.write(error_response(status, message, headers))
                # a lingering close: closing with unread bytes would reset the connection
                # (RST), and the client could lose the answer; so stop writing, read and drop
                # what still comes for a moment, then close
                if not linger:
                    self.transport.close()
                    return
                if self.transport.can_write_eof():
                    self.transport.write_eof()
                self.loop.call_later(LINGER_S, self.transport.close)

    return GuardedProtocol
