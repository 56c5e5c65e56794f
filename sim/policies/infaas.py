"""``infaas``: load-aware selection in the manner of INFaaS (Romero et al., ATC'21).

For each model accurate enough, estimate the latency a request would see now: the expected
queue wait at the model's workers plus the profiled latency at the expected batch size (plus
the load time if no worker holds it; see ``ServingSystem.estimate_latency_s``). Among models
meeting both targets, prefer one already loaded, then the cheapest. Under load the cheap
model's queue grows and requests move to other models: what defeats a naive attacker (PSML §4).
No feasible model: the highest-L1-utility fallback with estimated latencies; marked infeasible.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Literal

from sim.plugins import Context, PluginParams
from sim.policies.base import POLICIES, Policy, SystemView
from sim.request import Request


@POLICIES.register("infaas")
class InfaasPolicy(Policy):
    """Cheapest loaded model whose estimated latency meets the spec."""

    class Params(PluginParams):
        type: Literal["infaas"] = "infaas"

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self._picks = [(m, True) for m in range(len(self.zoo))]
        """The feasible answers, built once: no tuple per request."""
        accuracy = self.zoo.accuracy
        self._levels = sorted(set(accuracy))
        self._candidates = [[m for m in self.by_cost if accuracy[m] >= a] for a in self._levels]
        """For each accuracy level, the models at least that accurate, cheapest first (the
        candidates of a request asking for up to that level: a bisection, not a filter)."""

    def select(self, req: Request, state: SystemView, now: float) -> tuple[int, bool]:
        acc, lat_s = req.acc_spec, req.lat_spec_ms / 1000
        i = bisect_left(self._levels, acc)
        candidates = self._candidates[i] if i < len(self._levels) else []
        estimate = state.estimate_latency_s
        unloaded = -1
        for m in candidates:
            if estimate(m, now) <= lat_s:
                if state.loaded_holders(m):
                    return self._picks[m]
                if unloaded < 0:
                    unloaded = m
        if unloaded >= 0:
            return self._picks[unloaded]
        est_ms = [state.estimate_latency_s(m, now) * 1000 for m in range(len(self.zoo))]
        return self.fallback(acc, req.lat_spec_ms, est_ms), False
