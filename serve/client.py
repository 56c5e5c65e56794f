"""HTTP clients of the live API (the load generator, the live attacker): httpx with
``TCP_NODELAY`` (a request's headers and body go out in separate writes; with Nagle's
algorithm the body waits for the server's delayed ACK, about 40 ms on Linux)."""

from __future__ import annotations

import socket
from io import StringIO
from typing import TYPE_CHECKING, Any

import httpx

from sim.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

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


def server_info(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """``GET /v1/info`` of the target, or a :class:`UserError` saying why it is unusable."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        raise UserError(f"--target {url!r}: not a URL ({e})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UserError(f"--target {url!r}: expected http://HOST:PORT")
    try:
        with sync_client(url, timeout_s=timeout_s) as client:
            resp = client.get("/v1/info")
    except httpx.HTTPError as e:
        raise UserError(f"--target {url}: cannot reach the server ({type(e).__name__}: "
                        f"{e or 'no answer'})") from None
    if resp.status_code != 200:
        raise UserError(f"--target {url}: GET /v1/info answered {resp.status_code}; is it a "
                        "zoosim server?")
    try:
        info = resp.json()
    except ValueError:
        info = None
    if not isinstance(info, dict) or "input_shape" not in info:
        raise UserError(f"--target {url}: GET /v1/info is not a zoosim answer")
    return info


def fetch_server_records(url: str, timeout_s: float = 60.0) -> pd.DataFrame | None:
    """The server's per-request ground truth (``GET /admin/records``), or None where the
    server keeps none (404)."""
    import pandas as pd

    with sync_client(url, timeout_s=timeout_s) as client:
        resp = client.get("/admin/records")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return pd.read_json(StringIO(resp.text), orient="split")
