"""Who is asking: tenants' API keys and the operator's admin token (README, "Live serving").

Keys are random tokens (:func:`new_key`); the server keeps only their SHA-256 (``api.keys``
inline, or ``api.keys_file``, a YAML mapping ``tenant: sha256-hex``), so a leaked config or
keys file reveals no key. A client sends ``Authorization: Bearer KEY``; the tenant the key
belongs to is its identity for the rate limit, the admission defenses (the detector's
per-client state) and the records. With no keys configured, auth is off: the rate limit keys on
the peer address, and ``X-Client-Id`` only names the client in records and to the defenses
(a claim, fine for experiments on one machine, worthless against an adversary).

``/admin/*`` (the ground-truth records) needs the admin token, whose SHA-256 is
``api.admin_token_sha256`` or which is taken from ``ZOOSIM_ADMIN_TOKEN`` when the server
starts; without either, a fresh token is made at start and told to the operator once.
Clients take keys and the token from flags or from ``ZOOSIM_API_KEY`` (comma-separated for
several identities) and ``ZOOSIM_ADMIN_TOKEN``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import UserError

API_KEY_ENV = "ZOOSIM_API_KEY"
ADMIN_TOKEN_ENV = "ZOOSIM_ADMIN_TOKEN"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_TENANT_CHARS = 128
"""Longest tenant name (in a keys file or ``X-Client-Id``)."""


def new_key() -> str:
    """A fresh key or token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(key: str) -> str:
    """The SHA-256 (hex) a key is kept as."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def check_keys(keys: dict[str, str], where: str) -> dict[str, str]:
    """``{tenant: sha256}`` validated; returns ``{sha256: tenant}`` for lookups."""
    by_digest: dict[str, str] = {}
    for tenant, h in keys.items():
        if not isinstance(tenant, str) or not 0 < len(tenant) <= MAX_TENANT_CHARS:
            raise UserError(f"{where}: tenant names are 1-{MAX_TENANT_CHARS} characters, got "
                            f"{str(tenant)[:40]!r}")
        if not isinstance(h, str) or not SHA256_HEX.match(h):
            raise UserError(f"{where}.{tenant}: expected the key's SHA-256 as 64 lowercase hex "
                            "digits (zoosim keygen prints it)")
        if h in by_digest:
            raise UserError(f"{where}.{tenant}: the same key as tenant {by_digest[h]!r}")
        by_digest[h] = tenant
    return by_digest


def read_keys_file(path: Path) -> dict[str, str]:
    """A keys file (YAML mapping ``tenant: sha256``)."""
    from sim.config import read_yaml

    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of tenant: sha256")
    return {str(k): v for k, v in data.items()}


@dataclass
class Identities:
    """The server's view of who may ask what."""

    tenants: dict[str, str]
    """SHA-256 of each tenant key -> tenant name (empty: auth off)."""
    admin_digest: str
    """SHA-256 of the admin token."""
    made_token: str | None = None
    """The admin token when it was made at start (to tell the operator once)."""
    known_token: str | None = None
    """The admin token when this process knows it (made, or from ``ZOOSIM_ADMIN_TOKEN``);
    None when only its digest was configured."""

    @property
    def auth(self) -> bool:
        return bool(self.tenants)

    def tenant(self, authorization: str | None) -> str | None:
        """The tenant whose key the header carries, None when it carries none that is known."""
        token = bearer(authorization)
        return None if token is None else self.tenants.get(digest(token))

    def is_admin(self, authorization: str | None) -> bool:
        token = bearer(authorization)
        return token is not None and hmac.compare_digest(digest(token), self.admin_digest)


def server_identities(keys: dict[str, str], keys_file: Path | None,
                      admin_token_sha256: str | None) -> Identities:
    """The identities a server starts with. The admin token: ``admin_token_sha256`` if given,
    else ``ZOOSIM_ADMIN_TOKEN``, else a fresh one (:attr:`Identities.made_token`)."""
    merged = dict(keys)
    if keys_file is not None:
        for tenant, h in read_keys_file(keys_file).items():
            if tenant in merged:
                raise UserError(f"{keys_file}: tenant {tenant!r} is also in api.keys")
            merged[tenant] = h
    tenants = check_keys(merged, "api.keys")
    made = known = None
    env_token = os.environ.get(ADMIN_TOKEN_ENV)
    if admin_token_sha256 is not None:
        admin = admin_token_sha256
    elif env_token:
        admin, known = digest(env_token), env_token
    else:
        made = known = new_key()
        admin = digest(made)
    if admin in tenants:
        raise UserError("the admin token must differ from every tenant's key")
    return Identities(tenants, admin, made, known)


@dataclass(frozen=True)
class Credentials:
    """What a client presents: keys (one per identity it sends as) and the admin token."""

    api_keys: tuple[str, ...] = ()
    admin_token: str | None = None

    @staticmethod
    def resolve(api_keys: tuple[str, ...] = (), admin_token: str | None = None) -> Credentials:
        """Flags first, else ``ZOOSIM_API_KEY`` (comma-separated) and ``ZOOSIM_ADMIN_TOKEN``."""
        keys = api_keys or tuple(k.strip() for k in os.environ.get(API_KEY_ENV, "").split(",")
                                 if k.strip())
        return Credentials(keys, admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None)

    def key_for(self, identity: int) -> str | None:
        """The key identity number ``identity`` sends (keys taken in turn)."""
        return self.api_keys[identity % len(self.api_keys)] if self.api_keys else None

    def headers(self, identity: int = 0) -> dict[str, str]:
        key = self.key_for(identity)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}


def credential_options(f: Any) -> Any:
    """``--api-key`` (repeatable) and ``--admin-token`` for a command that talks to a live
    server (defaults from ``ZOOSIM_API_KEY`` and ``ZOOSIM_ADMIN_TOKEN``)."""
    import click

    f = click.option("--admin-token", default=None, metavar="TOKEN",
                     help=f"The server's admin token, to fetch its records [env "
                          f"{ADMIN_TOKEN_ENV}].")(f)
    return click.option("--api-key", "api_keys", multiple=True, metavar="KEY",
                        help=f"A tenant key of the server (repeat for several identities, "
                             f"taken in turn) [env {API_KEY_ENV}, comma-separated].")(f)


def require_keys(info: dict[str, Any], creds: Credentials, url: str, identities: int) -> None:
    """A :class:`UserError` before any request when the server wants keys and the client
    has none (each of ``identities`` needs one of its own to stay apart)."""
    if not info.get("auth"):
        return
    if not creds.api_keys:
        raise UserError(f"{url} requires an API key: pass --api-key KEY or set {API_KEY_ENV}")
    if len(set(creds.api_keys)) < identities:
        raise UserError(f"{url} requires an API key per identity: {identities} identities, "
                        f"{len(set(creds.api_keys))} distinct keys")
