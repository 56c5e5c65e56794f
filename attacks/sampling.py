"""Mapping a selection that varies from request to request (spec noise, DP selection; PSML §5's
defenses, the method is ours).

Bisection assumes one model per spec. When the model answering a spec varies, its thresholds
are guesses and the order of the models on its map (which fixes the target: the median model,
say) can be wrong, however the answers are verified afterwards. The adaptive attacker then
maps by sampling: it sends the profile probes at accuracies drawn uniformly from one window,
identifies the model of every answer, and orders the models by the mean accuracy at which each
answered.

Why the mean orders them: under Gaussian spec noise the served model is a monotone function of
the requested accuracy plus noise, and under the exponential mechanism a model's weight falls
once the request asks more than it has; in both, the odds that the more accurate of two models
answers rather than the other grow with the requested accuracy (a monotone likelihood ratio),
so the accuracies at which each answered are stochastically ordered like the models, whatever
the distribution of the accuracies sent. Sampling stops when no model has been seen only once
(Good-Turing's estimate of the chance that the next answer is a model not yet seen is then 0)
and the target's mean differs from each neighbour's by :data:`ORDER_Z` standard errors, or
when ``fingerprint.sample_requests`` are spent (the map is then reported as unresolved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from attacks.identify import Cluster

ORDER_Z = 3.0
"""Standard errors between the mean accuracies of the target and each neighbour before their
order is trusted."""

MIN_SIGHTINGS = 5
"""Answers of a model before its mean accuracy is compared."""


@dataclass
class Sightings:
    """The accuracies at which each model answered, in the sampling window."""

    specs: dict[Cluster, list[float]] = field(default_factory=dict)

    def add(self, accuracy: float, model: Cluster) -> None:
        self.specs.setdefault(model, []).append(accuracy)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.specs.values())

    def mean(self, model: Cluster) -> float:
        return float(np.mean(self.specs[model]))

    def order(self) -> list[Cluster]:
        """The models seen, in order of the mean accuracy at which they answered."""
        return sorted(self.specs, key=self.mean)

    def singletons(self) -> int:
        """Models seen exactly once (Good-Turing: their share of the answers estimates the
        chance that the next answer is a model not yet seen)."""
        return sum(len(v) == 1 for v in self.specs.values())

    def separated(self, a: Cluster, b: Cluster, z: float = ORDER_Z) -> bool:
        """Whether the mean accuracies of ``a`` and ``b`` differ by ``z`` standard errors."""
        x, y = self.specs.get(a, []), self.specs.get(b, [])
        if min(len(x), len(y)) < MIN_SIGHTINGS:
            return False
        se = math.sqrt(float(np.var(x, ddof=1)) / len(x) + float(np.var(y, ddof=1)) / len(y))
        return abs(float(np.mean(x)) - float(np.mean(y))) > z * max(se, 1e-12)

    def resolved(self, models: list[Cluster], target: Cluster) -> bool:
        """Every model seen at least twice and the target's place among its neighbours
        settled."""
        i = models.index(target)
        neighbours = models[max(i - 1, 0):i] + models[i + 1:i + 2]
        return self.singletons() == 0 and all(self.separated(target, n) for n in neighbours)

    def best_accuracy(self, target: Cluster) -> float:
        """The accuracy most likely to reach ``target``: the maximum over the accuracies at
        which it answered of the kernel-smoothed share of its answers (bandwidth: Silverman's
        rule on its own accuracies)."""
        mine = np.asarray(self.specs[target])
        every = np.concatenate([np.asarray(v) for v in self.specs.values()])
        hit = np.concatenate([np.full(len(v), m is target) for m, v in self.specs.items()])
        sd = float(mine.std()) if len(mine) > 1 else 1.0
        h = max(1.06 * sd * len(mine) ** -0.2, 1e-3)
        k = np.exp(-0.5 * ((mine[:, None] - every[None, :]) / h) ** 2)
        share = (k * hit).sum(axis=1) / k.sum(axis=1)
        return float(mine[int(np.argmax(share))])


def window(thresholds: list[float]) -> tuple[float, float]:
    """The accuracies sampled: the span of bisection's thresholds, widened on both sides by a
    quarter of it (at least one point), within [0, 100]."""
    if not thresholds:
        return 0.0, 100.0
    lo, hi = min(thresholds), max(thresholds)
    pad = max(1.0, 0.25 * (hi - lo))
    return max(lo - pad, 0.0), min(hi + pad, 100.0)
