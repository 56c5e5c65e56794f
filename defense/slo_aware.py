"""SLO-aware selection noise: defenses that never make a request's own SLO unreachable when
some model meets it (PSML §5, claim C4; the mechanisms are ours).

Symmetric spec noise (:mod:`defense.spec_noise`) lowers half the requested accuracies, and every
request it sends to a model below its own target is lost goodput; DP selection draws models far
from the spec. A serving operator would rather randomise only among answers the client accepts.
"Meets" is the serving system's one feasibility rule (:meth:`sim.zoo.Zoo.meets`: profiled
accuracy at least the target, batch-1 latency at most the target); the request's own targets
are ``acc_req`` and ``lat_req_ms``, and goodput is judged against them (docs/paper.md).

- ``one_sided``: accuracy noise that only ever asks for more: ``acc' = acc + |N(0, sd²)|``
  (half-normal), capped at the highest accuracy among the candidate models that meet the
  request's own targets. A model that meets ``acc'`` at the unchanged latency target then
  exists, and it meets the request's targets too: the policy's choice stays feasible, only
  more accurate (and slower) than the cheapest. An attacker asking for a model's accuracy is
  served by a more accurate one whenever the noise crosses the next threshold; asking lower
  does not help, as it never reaches a model below its ask. A request no model meets is left
  unchanged.
- ``feasible_random``: the model drawn uniformly among the candidate models that meet the
  request's own targets; with probability ``infeasible_share``, uniformly among the other
  candidates instead (a tunable share of misses that blurs where the feasible set ends). No
  candidate meets the targets: the policy chooses, as undefended. An attacker's trigger spec
  for a model is then answered by any model at least as accurate (at the loosest latency), so
  its aim is about one over the number of such models.

Both draw from the defense's own named stream (common random numbers: a defended run sees the
undefended run's arrivals).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from defense.base import DEFENSES, Candidates, Selector, SpecPerturber, candidate_models
from sim.plugins import Context, PluginParams
from sim.request import Request
from sim.rng import Buffered


@DEFENSES.register("one_sided")
class OneSidedNoise(SpecPerturber):
    """Stricter-only accuracy noise, capped where the request's own SLO stays reachable."""

    class Params(PluginParams):
        type: Literal["one_sided"] = "one_sided"
        accuracy_sd: Annotated[float, Field(ge=0, allow_inf_nan=False)]
        """Scale of the half-normal noise added to the requested accuracy (points)."""
        candidates: Candidates = "front"
        """Models whose accuracy can cap the noise."""

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.sd = params.accuracy_sd
        self.served = ctx.need_zoo
        self.models = candidate_models(self.served, params.candidates)
        rng = self.rng
        self._z = Buffered(lambda n: np.abs(rng.standard_normal(n)))

    def perturb(self, req: Request) -> None:
        zoo = self.served
        z = self._z()   # drawn for every request: one request's draw never shifts another's
        meets = [zoo.accuracy[m] for m in self.models if zoo.meets(m, req.acc_req, req.lat_req_ms)]
        if meets:
            req.acc_spec = min(max(meets), req.acc_spec + self.sd * z)


@DEFENSES.register("feasible_random")
class FeasibleRandom(Selector):
    """A model drawn among those that meet the request's own targets (sometimes another)."""

    class Params(PluginParams):
        type: Literal["feasible_random"] = "feasible_random"
        infeasible_share: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
        """Probability of drawing among the candidates that do not meet the targets."""
        candidates: Candidates = "front"
        """Models that may be drawn."""

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.share = params.infeasible_share
        self.served = ctx.need_zoo
        self.models = candidate_models(self.served, params.candidates)
        rng = self.rng
        self._u = Buffered(lambda n: rng.random(n))

    def select(self, req: Request) -> tuple[int, bool] | None:
        zoo = self.served
        u_side, u_pick = self._u(), self._u()   # two draws per request, whatever happens
        ok = [m for m in self.models if zoo.meets(m, req.acc_req, req.lat_req_ms)]
        if not ok:
            return None
        rest = [m for m in self.models if m not in ok]
        pool = rest if rest and u_side < self.share else ok
        m = pool[min(int(u_pick * len(pool)), len(pool) - 1)]
        return m, zoo.meets(m, req.acc_spec, req.lat_spec_ms)
