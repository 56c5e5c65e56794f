"""Differentially private model selection over the Pareto front (a follow-up to PSML §5:
taehyeok-jang/ppml, 2025; docs/paper.md).

Each request's model is drawn at random, favouring models of high L1 utility
``u = ((1 - max(a_req - a_m, 0)/100) + (1 - max(l_m - l_req, 0)/L)) / 2`` for its
(perturbed) spec, with ``L = latency_scale_ms`` (100 in docs/paper.md), each term clipped to
[0, 1] so that ``u`` lies in [0, 1] (a latency excess beyond ``L``, or an accuracy shortfall
beyond 100 points, costs no more than a full point): a spec's change moves ``u`` by at most
1, and the default ``sensitivity`` of 1 holds. The exponential mechanism
(McSherry and Talwar, FOCS'07) picks ``m`` with
probability proportional to ``exp(eps * u_m / (2 * sensitivity))``; permute-and-flip (McKenna
and Sheldon, NeurIPS'20) visits the candidates in a random order and accepts ``m`` with
probability ``exp(eps * (u_m - u_max) / (2 * sensitivity))``. Larger ``eps``: closer to the
best model, less protection. Latencies are the profiled batch-1 medians (with ``time_scale``).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from itertools import permutations
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from defense.base import DEFENSES, Candidates, Selector, candidate_models
from sim.plugins import Context, PluginParams
from sim.request import Request
from sim.rng import Buffered


class DPParams(PluginParams):
    """Privacy parameter, utility sensitivity, and which models may be drawn."""

    eps: Annotated[float, Field(gt=0)]
    sensitivity: Annotated[float, Field(gt=0)] = 1.0
    candidates: Candidates = "front"
    latency_scale_ms: Annotated[float, Field(gt=0)] = 100.0
    """The latency excess that costs a full utility point (docs/paper.md's utility: 100 ms; a
    sub-millisecond zoo wants a smaller scale, or its latency term is nearly flat)."""


class DPSelection(Selector):
    """Shared set-up: the candidate models and their accuracy/latency arrays."""

    def __init__(self, params: DPParams, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.p = params
        zoo, rng = ctx.need_zoo, self.rng
        self.served = zoo
        self.models = np.asarray(candidate_models(zoo, params.candidates))
        self.acc = np.asarray(zoo.accuracy)[self.models]
        self.lat = np.asarray(zoo.lat1_ms)[self.models]
        self._u01 = Buffered(lambda n: rng.random(n))

    def utilities(self, acc_req: float, lat_req_ms: float) -> np.ndarray:
        """The L1 utility of every candidate for a spec, in [0, 1].

        Each term (accuracy, latency) is clipped to [0, 1]: without the clip a latency excess
        beyond ``latency_scale_ms`` made ``u`` negative, its range exceeded the sensitivity
        of 1 and the mechanism's real privacy loss exceeded ``eps``.
        """
        scale = self.p.latency_scale_ms
        acc_term = np.clip(1 - np.maximum(acc_req - self.acc, 0) / 100, 0.0, 1.0)
        lat_term = np.clip(1 - np.maximum(self.lat - lat_req_ms, 0) / scale, 0.0, 1.0)
        u: np.ndarray = (acc_term + lat_term) / 2
        return u

    @abstractmethod
    def probabilities(self, acc_req: float, lat_req_ms: float) -> np.ndarray:
        """The exact selection distribution over the candidates."""

    def _done(self, req: Request, i: int) -> tuple[int, bool]:
        m = int(self.models[i])
        return m, self.served.meets(m, req.acc_spec, req.lat_spec_ms)


@DEFENSES.register("exponential")
class ExponentialMechanism(DPSelection):
    """Draw a model with probability proportional to exp(eps u / (2 sensitivity))."""

    class Params(DPParams):
        type: Literal["exponential"] = "exponential"

    def probabilities(self, acc_req: float, lat_req_ms: float) -> np.ndarray:
        u = self.utilities(acc_req, lat_req_ms)
        w = np.exp(self.p.eps * (u - u.max()) / (2 * self.p.sensitivity))
        out: np.ndarray = w / w.sum()
        return out

    def select(self, req: Request) -> tuple[int, bool]:
        cdf = np.cumsum(self.probabilities(req.acc_spec, req.lat_spec_ms))
        i = int(np.searchsorted(cdf, self._u01() * cdf[-1], side="right"))
        return self._done(req, min(i, len(cdf) - 1))


@DEFENSES.register("permute_and_flip")
class PermuteAndFlip(DPSelection):
    """Visit candidates in random order; accept each with probability
    exp(eps (u - u_max) / (2 sensitivity)); the best is always accepted."""

    class Params(DPParams):
        type: Literal["permute_and_flip"] = "permute_and_flip"

    def select(self, req: Request) -> tuple[int, bool]:
        u = self.utilities(req.acc_spec, req.lat_spec_ms)
        accept = np.exp(self.p.eps * (u - u.max()) / (2 * self.p.sensitivity))
        for i in self.rng.permutation(len(u)):
            if self._u01() <= accept[i]:
                return self._done(req, int(i))
        raise AssertionError("unreachable: the best candidate is accepted with probability 1")

    def probabilities(self, acc_req: float, lat_req_ms: float) -> np.ndarray:
        """Exact, by enumerating the visiting orders (up to 9 candidates)."""
        u = self.utilities(acc_req, lat_req_ms)
        q = np.exp(self.p.eps * (u - u.max()) / (2 * self.p.sensitivity))
        n = len(q)
        if n > 9:
            raise ValueError(f"exact permute-and-flip probabilities need <= 9 candidates, got {n}")
        probs = np.zeros(n)
        for order in permutations(range(n)):
            reach = 1.0
            for i in order:
                probs[i] += reach * q[i]
                reach *= 1 - q[i]
                if reach == 0:
                    break
        out: np.ndarray = probs / math.factorial(n)
        return out
