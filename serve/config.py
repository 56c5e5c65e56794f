"""What ``zoosim serve`` runs: a scenario's zoo, cluster, policy and defense, plus the API's own
options (README, "Live serving"). Tenants are not needed: clients are whoever connects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from sim.config import Scenario, ShedConfig, TenantConfig
from sim.schema import Strict


class ApiConfig(Strict):
    """The HTTP front-end's options."""

    host: str = "127.0.0.1"
    """Loopback by default; anything else exposes the zoo to the network."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    """0 picks a free port (printed when the server is ready)."""
    outputs: Literal["probabilities", "labels"] = "probabilities"
    """What answers carry: class probabilities and labels, or top-1 labels only."""
    max_inputs: Annotated[int, Field(ge=1)] = 64
    """Most inputs one request may carry."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    """Largest request body: refused (413) from its ``Content-Length``, or as soon as more
    arrives."""
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16 * 1024
    """Largest request head (request line and headers; 431 beyond), checked while reading."""
    max_connections: Annotated[int, Field(ge=1)] = 4096
    """Open connections at most; more are answered 503 and closed at once. Capped at start
    below the process's open-file limit (raised to its hard limit)."""
    request_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """A request's head and body must arrive within this of its first byte (408 after)."""
    idle_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    """A connection with no request in progress is closed after this (keep-alive too)."""
    max_latency_ms: Annotated[float, Field(gt=0)] = 10000.0
    """Largest latency target accepted."""
    max_pending: Annotated[int, Field(ge=1)] | None = 10000
    """Requests in the system beyond which new ones get 503 with ``Retry-After``: an alias of
    the engine's ``cluster.shedding.max_pending`` (the lower of the two applies), so the
    simulator can predict it too; null: no cap. Admission by deadline is
    ``cluster.shedding.deadline``."""
    rate_limit_rps: Annotated[float, Field(gt=0)] | None = None
    """Per-client request rate limit (token bucket); None: no limit."""
    rate_burst: Annotated[float, Field(ge=1)] | None = None
    """Token-bucket depth; default: one second of ``rate_limit_rps`` (at least 1)."""
    executor: Literal["process", "thread"] = "process"
    """Where batches run: one process per worker (its forward passes never wait for the
    front-end's GIL), or one thread per worker (lighter; slower under load)."""
    threads: Annotated[int, Field(ge=1)] = 1
    """torch intra-op threads (the profile's ``threads`` makes the simulator's times match)."""
    precise_timers: bool = True
    """Run on an event loop whose timers fire within microseconds
    (:class:`sim.clock.PreciseEpollSelector`; plain epoll rounds timeouts up to whole
    milliseconds: a 1 ms batching timeout would fire after 1-2 ms). False: asyncio's default
    loop."""
    records: bool = False
    """Keep per-request records (ground truth: serving model, batch, times) and expose them at
    ``GET /admin/records`` to the admin token: for experiments; they reveal the model behind
    each answer."""
    records_max: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    """Records kept (the latest; older ones are dropped), served in pages."""
    keys: dict[str, str] = Field(default_factory=dict)
    """Tenants' API keys as ``tenant: sha256-hex`` (``zoosim keygen`` makes them); any key
    turns auth on (:mod:`serve.auth`)."""
    keys_file: Path | None = None
    """A YAML file of more ``tenant: sha256-hex`` (relative to the config's folder)."""
    admin_token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """SHA-256 of the token ``/admin/*`` needs; default: ``ZOOSIM_ADMIN_TOKEN`` at start, else
    a fresh token told to the operator."""
    model_api: bool = False
    """Accept ``model`` in requests (INFaaS's model-variant queries; the oracle attack)."""


class ServeScenario(Scenario):
    """A scenario served live: seed, zoo, cluster, policy, defense, and the API."""

    stops_by_itself: ClassVar[bool] = True
    tenants: list[TenantConfig] = Field(default_factory=list)
    api: ApiConfig = ApiConfig()

    def shedding(self) -> ShedConfig:
        """The engine's overload rule as served: ``cluster.shedding`` with ``api.max_pending``
        (its alias) applied, the lower cap winning."""
        shed = self.cluster.shedding
        caps = [c for c in (shed.max_pending, self.api.max_pending) if c is not None]
        return shed.model_copy(update={"max_pending": min(caps) if caps else None})
