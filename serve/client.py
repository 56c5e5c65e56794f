"""HTTP clients of the live API (the load generator, the live attacker): httpx with
``TCP_NODELAY`` (a request's headers and body go out in separate writes; with Nagle's
algorithm the body waits for the server's delayed ACK, about 40 ms on Linux)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import httpx

from sim.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
KEEPALIVE_S = 2.0


def async_client(base_url: str, max_connections: int = 512, timeout_s: float = 60.0,
                 **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the live API, with ``TCP_NODELAY``. Idle connections are
    dropped after ``KEEPALIVE_S``, before the server's idle timeout (5 s by default) closes them:
    a request sent on a connection the server is closing is lost (a read error)."""
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections,
                          keepalive_expiry=KEEPALIVE_S)
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


def fetch_server_records(url: str, admin_token: str | None = None, timeout_s: float = 60.0,
                         after: int = -1) -> pd.DataFrame | None:
    """The server's per-request ground truth (``GET /admin/records``, every page of the
    records with ids above ``after``), or None where the server keeps none (404) or no
    admin token is at hand (``admin_token``, default ``ZOOSIM_ADMIN_TOKEN``); a
    :class:`UserError` when the server refuses the token."""
    import pandas as pd

    from serve.auth import Credentials

    creds = Credentials.resolve(admin_token=admin_token)
    if creds.admin_token is None:  # not the operator: no ground truth to ask for
        return None
    pages: list[pd.DataFrame] = []
    with sync_client(url, timeout_s=timeout_s, headers=creds.admin_headers()) as client:
        while True:
            resp = client.get("/admin/records", params={"after": after})
            if resp.status_code == 404:
                return None
            if resp.status_code in (401, 403):
                raise UserError(f"{url}/admin/records: refused ({resp.status_code}); pass the "
                                "server's admin token (--admin-token or ZOOSIM_ADMIN_TOKEN)")
            resp.raise_for_status()
            page = resp.json()
            if page["data"]:
                pages.append(pd.DataFrame(page["data"], columns=page["columns"]))
            if page["next"] is None:
                break
            after = int(page["next"])
    if not pages:
        return pd.DataFrame(columns=page["columns"])
    return pd.concat(pages, ignore_index=True)


def check_admin_token(url: str, admin_token: str | None, timeout_s: float = 10.0) -> None:
    """A :class:`UserError` now, before a long run, when the server refuses ``admin_token``
    (a token of another server, a stale one): the run's records could not be fetched after."""
    if admin_token is None:
        return
    with sync_client(url, timeout_s=timeout_s,
                     headers={"Authorization": f"Bearer {admin_token}"}) as client:
        try:
            resp = client.get("/admin/records", params={"limit": 1})
        except httpx.HTTPError:
            return  # unreachable: said by whoever asks next
    if resp.status_code in (401, 403):
        raise UserError(f"{url}: the admin token is refused ({resp.status_code}); pass this "
                        "server's (--admin-token or ZOOSIM_ADMIN_TOKEN)")
