"""What ``zoosim serve`` runs: a scenario's zoo, cluster, policy and defense, plus the API's own
options (README, "Live serving"). Tenants are not needed: clients are whoever connects."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from sim.config import Scenario, TenantConfig
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
    max_latency_ms: Annotated[float, Field(gt=0)] = 10000.0
    """Largest latency target accepted."""
    max_pending: Annotated[int, Field(ge=1)] = 10000
    """Requests in the system beyond which new ones get 503 (overload shedding)."""
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
    """Run on a ``select``-based event loop, whose timers fire within microseconds (epoll's
    have a 1 ms resolution: a 1 ms batching timeout would fire after 1-2 ms); it serves at most
    ~1000 open connections. False: the default (epoll) loop, for many more connections."""
    records: bool = False
    """Keep per-request records (ground truth: serving model, batch, times) and expose them at
    ``GET /admin/records``: for experiments only; it reveals the model behind each answer."""
    model_api: bool = False
    """Accept ``model`` in requests (INFaaS's model-variant queries; the oracle attack)."""


class ServeScenario(Scenario):
    """A scenario served live: seed, zoo, cluster, policy, defense, and the API."""

    stops_by_itself: ClassVar[bool] = True
    tenants: list[TenantConfig] = Field(default_factory=list)
    api: ApiConfig = ApiConfig()
