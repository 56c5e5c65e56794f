"""``pareto``: PSML's load-oblivious selection over the accuracy/latency Pareto front (§3).

Among models whose profiled accuracy >= the requested accuracy and batch-1 latency <= the
requested latency, serve the cheapest (lowest latency). On the front, latency and accuracy rise
together, so the cheapest feasible model is the first front model accurate enough: a bisection.
No feasible model: the highest-L1-utility fallback, and the request is marked infeasible.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Literal

from sim.plugins import Context, PluginParams
from sim.policies.base import POLICIES, Policy, SystemView
from sim.request import Request


@POLICIES.register("pareto")
class ParetoPolicy(Policy):
    """Cheapest feasible model on the Pareto front, ignoring load."""

    class Params(PluginParams):
        type: Literal["pareto"] = "pareto"

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        zoo = self.zoo
        self._front = zoo.front
        self._front_acc = [zoo.accuracy[m] for m in zoo.front]
        self._front_lat = [zoo.lat1_ms[m] for m in zoo.front]
        self._picks = [(m, True) for m in zoo.front]
        """The answers, built once: no tuple per request."""

    def select(self, req: Request, state: SystemView, now: float) -> tuple[int, bool]:
        i = bisect_left(self._front_acc, req.acc_spec)
        if i < len(self._front) and self._front_lat[i] <= req.lat_spec_ms:
            return self._picks[i]
        return self.fallback(req.acc_spec, req.lat_spec_ms, self.zoo.lat1_ms), False
