"""The load generator's HTTP client (:mod:`serve.wire`) against a raw asyncio server that
misbehaves on request: keep-alive, ``Connection: close``, the keep-alive race, answers cut
short or never sent, chunked and unframed bodies, refused connections, the pool's cap."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
from httptools import HttpRequestParser

from serve.loadgen import replay
from serve.wire import WireClient, WireError, encode_headers
from sim.clock import run_precise

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]


def _answer(body: bytes, *extra: bytes) -> bytes:
    return b"".join([b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n", *extra,
                     b"Content-Length: %d\r\n\r\n" % len(body), body])


class Peer(asyncio.Protocol):
    """One connection of :class:`RawServer`; the request's path says how to answer."""

    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.headers: dict[bytes, bytes] = {}
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections += 1
        self.server.open.add(self)
        self.server.peak = max(self.server.peak, len(self.server.open))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open.discard(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url, self.body, self.headers = url, [], {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.requests += 1
        self.server.requests.append((self.url, self.headers, b"".join(self.body)))
        self.answer(self.url.decode(), b"".join(self.body))

    def answer(self, path: str, body: bytes) -> None:
        t = self.transport
        assert t is not None
        loop = asyncio.get_running_loop()
        def later(*data: bytes, close: bool = False) -> None:
            if not t.is_closing():
                t.writelines(data)
                if close:
                    t.close()

        if path == "/echo":
            t.write(_answer(body))
        elif path == "/slow":  # answered a little later: requests overlap
            loop.call_later(0.01, later, _answer(body))
        elif path == "/close":
            t.write(_answer(body, b"Connection: close\r\n"))
            t.close()
        elif path == "/once":  # the keep-alive race: closed, unanswered, when reused
            if self.requests == 1:
                t.write(_answer(body))
            else:
                t.close()
        elif path == "/drop":
            t.close()
        elif path == "/hangup":
            t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            t.close()
        elif path == "/chunked":
            t.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"hello, ", b"chunked ", b"world"):
                t.write(b"%x\r\n%b\r\n" % (len(part), part))
            loop.call_later(0.01, later, b"0\r\n\r\n")
        elif path == "/unframed":  # no length: the body ends with the connection
            t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil ")
            loop.call_later(0.01, partial(later, b"the end", close=True))
        elif path == "/garbage":
            t.write(b"NOT HTTP AT ALL\r\n\r\n")
        elif path == "/silent" or path == "/v1/classify":
            pass  # never answered
        else:
            t.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


class RawServer:
    """A tiny HTTP/1.1 server on an ephemeral loopback port, counting connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.open: set[Peer] = set()
        self.peak = 0
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Peer(self), "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for peer in list(self.open):
            if peer.transport is not None:
                peer.transport.abort()
        await self._server.wait_closed()

    async def until_closed(self) -> None:
        """Until the server has seen every connection close (the client closed them)."""
        for _ in range(200):
            if not self.open:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.open)} connections still open")


@pytest.fixture(params=["asyncio", "precise"])
def run(request: pytest.FixtureRequest) -> Runner[Any]:
    """Each test on the default asyncio loop and on the project's precise loop."""
    return asyncio.run if request.param == "asyncio" else run_precise


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sequential_requests_share_one_connection(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url) as client:
            for i in range(5):
                assert await client.post("/echo", b"body %d" % i, {"X-N": str(i)}) \
                    == (200, b"body %d" % i)
            assert await client.get("/echo") == (200, b"")
            assert srv.connections == client.connections_made == 1
            url, headers, body = srv.requests[2]
            assert url == b"/echo" and body == b"body 2"
            assert headers[b"x-n"] == b"2" and headers[b"content-length"] == b"6"
            assert headers[b"host"] == srv.url.removeprefix("http://").encode()
        await srv.until_closed()  # the block's end closed it

    run(main())


def test_pre_encoded_headers_and_a_base_path(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url + "/") as client:
            lines = encode_headers({"X-Client": "web", "Content-Type": "application/json"})
            assert await client.post("/echo", b"{}", lines) == (200, b"{}")
            assert await client.post("/nowhere", b"", lines) == (404, b"")
            _, headers, _ = srv.requests[0]
            assert headers[b"x-client"] == b"web"

    run(main())


def test_connection_close_is_honoured(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url) as client:
            for i in range(3):
                assert await client.post("/close", b"%d" % i, {}) == (200, b"%d" % i)
            assert srv.connections == client.connections_made == 3

    run(main())


def test_idle_connections_expire(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url, keepalive_s=0.02) as client:
            assert (await client.post("/echo", b"a", {}))[0] == 200
            await asyncio.sleep(0.05)  # idle past keepalive_s: closed, a new one is made
            assert (await client.post("/echo", b"b", {}))[0] == 200
            assert client.connections_made == 2

    run(main())


def test_a_stale_keepalive_connection_is_retried_once(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url) as client:
            assert await client.post("/once", b"first", {}) == (200, b"first")
            # the server closes the reused connection without answering (as one whose idle
            # timeout fired while the request was on its way): sent again on a fresh one
            assert await client.post("/once", b"second", {}) == (200, b"second")
            assert srv.connections == client.connections_made == 2
            assert [body for _, _, body in srv.requests] == [b"first", b"second", b"second"]

    run(main())


def test_a_fresh_connection_closed_unanswered_is_an_error(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url) as client:
            assert (await client.post("/echo", b"x", {}))[0] == 200
            with pytest.raises(WireError, match="before the answer"):
                await client.post("/drop", b"x", {})  # reused, then retried once: no more
            assert client.connections_made == 2 and len(srv.requests) == 3

    run(main())


def test_closed_mid_answer_is_an_error(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url) as client:
            with pytest.raises(WireError, match="during the answer"):
                await client.post("/hangup", b"x", {})
            assert len(srv.requests) == 1  # a partial answer is not retried
            assert await client.post("/echo", b"next", {}) == (200, b"next")

    run(main())


def test_an_answer_that_never_comes_times_out(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url, timeout_s=0.2) as client:
            with pytest.raises(WireError, match=r"^timeout after 0\.2 s$"):
                await client.post("/silent", b"x", {})
            await srv.until_closed()  # the connection is dropped
            assert await client.post("/echo", b"next", {}) == (200, b"next")

    run(main())


def test_chunked_and_unframed_bodies(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url) as client:
            assert await client.get("/chunked") == (200, b"hello, chunked world")
            assert await client.get("/chunked") == (200, b"hello, chunked world")
            assert client.connections_made == 1
            assert await client.get("/unframed") == (200, b"until the end")

    run(main())


def test_a_malformed_answer_is_an_error(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url) as client:
            with pytest.raises(WireError, match="malformed response"):
                await client.get("/garbage")

    run(main())


def test_a_refused_connection_is_an_error(run: Runner[None]) -> None:
    async def main() -> None:
        async with WireClient(f"http://127.0.0.1:{_closed_port()}") as client:
            with pytest.raises(WireError, match="refused"):
                await client.post("/echo", b"x", {})

    run(main())


def test_only_plain_http() -> None:
    with pytest.raises(ValueError, match="http://"):
        WireClient("https://127.0.0.1:8443")


def test_the_pool_never_opens_more_than_max_connections(run: Runner[None]) -> None:
    async def main() -> None:
        async with RawServer() as srv, WireClient(srv.url, max_connections=4) as client:
            bodies = [b"request %d" % i for i in range(60)]
            answers = await asyncio.gather(*(client.post("/slow", b, {}) for b in bodies))
            assert answers == [(200, b) for b in bodies]  # each its own answer
            assert srv.peak == 4 and client.connections_made == 4

    run(main())


def test_replay_records_a_timeout_as_a_wire_error() -> None:
    async def main() -> pd.DataFrame:
        async with RawServer() as srv:
            schedule = pd.DataFrame({"id": [0, 1], "tenant": ["a", "b"],
                                     "arrival_s": [0.0, 0.01], "acc_req": 90.0,
                                     "lat_req_ms": 10.0, "size": 1})
            records = await replay(srv.url, schedule, np.zeros((2, 4), dtype="f4"),
                                   timeout_s=0.2)
            assert sorted(h[b"x-client-id"] for _, h, _ in srv.requests) == [b"a", b"b"]
            return records

    records = run_precise(main())
    assert (records["status"] == 0).all() and (records["server_id"] == -1).all()
    assert (records["error"] == "WireError: timeout after 0.2 s").all()
