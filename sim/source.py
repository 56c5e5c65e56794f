"""Tenant sources: one SimPy process per tenant turns arrival times into requests.

Arrival times come in vectorised chunks from the tenant's arrival process and SLO targets in
matching chunks from its SLO distributions, each from its own named random stream. The run
stops taking arrivals after ``requests`` arrivals in all (in time order) or at ``duration_s``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from sim.request import Request
from sim.system import ServingSystem
from workloads.arrivals.base import ArrivalProcess
from workloads.slo import Distribution


class StopRule:
    """When arrivals stop: a total request count, a time horizon, or neither."""

    def __init__(self, requests: int | None, duration_s: float | None) -> None:
        self.remaining = requests if requests is not None else -1
        self.until = duration_s if duration_s is not None else float("inf")
        self.next_id = 0

    def new_id(self) -> int:
        """A request id outside the request budget (for clients that are not tenants)."""
        rid = self.next_id
        self.next_id += 1
        return rid

    def halt(self) -> None:
        """No more arrivals from now on."""
        self.remaining = 0

    def take(self) -> int:
        """Claim the next request id, or -1 if the request budget is spent."""
        if self.remaining == 0:
            return -1
        self.remaining -= 1
        rid = self.next_id
        self.next_id += 1
        return rid


def tenant_source(env: simpy.Environment, system: ServingSystem, tenant: int,
                  arrivals: ArrivalProcess, accuracy: Distribution, latency: Distribution,
                  stop: StopRule) -> Generator[simpy.Event, Any, None]:
    """Submit this tenant's requests at their arrival times until the stop rule says so."""
    until = stop.until
    submit = system.submit
    for times in arrivals.chunks():
        n = len(times)
        accs = accuracy.sample(n).tolist()
        lats = latency.sample(n).tolist()
        for t, a, lat in zip(times.tolist(), accs, lats, strict=True):
            if t >= until:
                return
            dt = t - env.now
            if dt > 0:
                yield env.timeout(dt)
            rid = stop.take()
            if rid < 0:
                return
            submit(Request(rid, tenant, t, a, lat))
