"""The selection-policy interface (PSML §3: the server picks a zoo model per request).

A policy is a small class built once with the zoo; for each request it receives the request,
a read-only view of the system state and ``now``, and returns ``(model, feasible)``. It never
reads the clock, a global or the filesystem (ARCHITECTURE.md principle 2). ``feasible`` is False
when no model meets the (post-defense) spec and the policy fell back.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from sim.profiles import l1_utility
from sim.request import Request
from sim.schema import Strict
from sim.zoo import Zoo


class SystemView(Protocol):
    """What a policy may read of the serving system."""

    def queue_len(self, model: int) -> int:
        """Requests waiting for ``model``."""
        ...

    def loaded_holders(self, model: int) -> int:
        """Workers that have ``model`` loaded."""
        ...

    def estimate_latency_s(self, model: int, now: float) -> float:
        """Expected end-to-end latency of a request sent to ``model`` now (INFaaS-style)."""
        ...


class Policy:
    """Base class: subclasses define ``Params`` and ``select``."""

    Params: ClassVar[type[Strict]]

    def __init__(self, params: Strict, zoo: Zoo) -> None:
        self.zoo = zoo
        self.by_cost = sorted(range(len(zoo)), key=lambda m: (zoo.lat1_ms[m], -zoo.accuracy[m]))
        """All models, cheapest (lowest batch-1 latency) first."""

    def select(self, req: Request, state: SystemView, now: float) -> tuple[int, bool]:
        raise NotImplementedError

    def fallback(self, acc: float, lat_ms: float, lat_of: list[float]) -> int:
        """The model of highest L1 utility (PAPER.md) when none is feasible; ties: cheaper."""
        zoo = self.zoo
        return max(self.by_cost,
                   key=lambda m: (l1_utility(acc, lat_ms, zoo.accuracy[m], lat_of[m]),
                                  -zoo.lat1_ms[m]))
