"""The selection-policy interface (PSML §3: the server picks a zoo model per request).

A policy is a registered class (:data:`POLICIES`, the plugin contract of :mod:`sim.plugins`)
built once as ``cls(params, ctx)``; it reads the zoo from ``ctx``. For each request it receives
the request, a read-only view of the system state and ``now``, and returns
``(model, feasible)``. It never reads the clock, a global or the filesystem (docs/architecture.md
principle 2). ``feasible`` is False when no model meets the (post-defense) spec and the policy
fell back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

from sim.plugins import Context, PluginParams, Registry
from sim.profiles import l1_utility
from sim.request import Request


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


class Policy(ABC):
    """Base class: subclasses define ``Params`` and ``select``."""

    Params: ClassVar[type[PluginParams]]

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        self.params = params
        self.zoo = zoo = ctx.need_zoo
        self.by_cost = sorted(range(len(zoo)), key=lambda m: (zoo.lat1_ms[m], -zoo.accuracy[m]))
        """All models, cheapest (lowest batch-1 latency) first."""

    @abstractmethod
    def select(self, req: Request, state: SystemView, now: float) -> tuple[int, bool]:
        """The serving model for ``req`` and whether it meets the (post-defense) spec."""

    def fallback(self, acc: float, lat_ms: float, lat_of: list[float]) -> int:
        """The model of highest L1 utility (docs/paper.md) when none is feasible; ties: cheaper."""
        zoo = self.zoo
        return max(self.by_cost,
                   key=lambda m: (l1_utility(acc, lat_ms, zoo.accuracy[m], lat_of[m]),
                                  -zoo.lat1_ms[m]))


POLICIES: Registry[Policy] = Registry("policy", Policy)
"""Selection policies by the name a scenario's ``policy: {type: ...}`` uses."""
