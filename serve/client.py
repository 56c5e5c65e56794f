"""HTTP clients of the live API (the load generator, the live attacker): httpx with
``TCP_NODELAY`` (a request's headers and body go out in separate writes; with Nagle's
algorithm the body waits for the server's delayed ACK, about 40 ms on Linux)."""

from __future__ import annotations

import socket
from typing import Any

import httpx

SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def async_client(base_url: str, max_connections: int = 512, timeout_s: float = 60.0,
                 **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the live API, with ``TCP_NODELAY``."""
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections)
    transport = httpx.AsyncHTTPTransport(socket_options=SOCKET_OPTIONS, limits=limits)
    return httpx.AsyncClient(base_url=base_url, transport=transport,
                             timeout=httpx.Timeout(timeout_s), **kwargs)


def sync_client(base_url: str, timeout_s: float = 60.0, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` for the live API, with ``TCP_NODELAY``."""
    transport = httpx.HTTPTransport(socket_options=SOCKET_OPTIONS)
    return httpx.Client(base_url=base_url, transport=transport,
                        timeout=httpx.Timeout(timeout_s), **kwargs)
