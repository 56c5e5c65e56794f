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
and the target's mean differs from every other model's by :data:`ORDER_Z` standard errors, or
when ``fingerprint.sample_requests`` are spent (the map is then reported as unresolved).

The latency side channel settles the order far sooner where it can. Along the Pareto front a
more accurate model is a slower one at batch size 1 (the latency a spec is held to), so each
sampling request is followed by a one-input request at another accuracy of the window; where
the known models' exact answers on that one input all differ, it names the model that served
it, and its latency is a batch-1 sample of that model. Once every model has
:data:`MIN_SIGHTINGS` of them the models are ordered by their mean log latency; a pair's order
is settled when the mean log latencies or the mean accuracies differ by :data:`ORDER_Z`
standard errors in the direction of the order, and neither in the other direction (where the
two disagree, the latency does not follow the front and the order stays unsettled). Under
exponential-mechanism selection at a loose latency the mean accuracies of neighbours differ
by tenths of a point and need thousands of requests; their batch-1 latencies differ by
1.3x-2x (the zoo profiles) and a few dozen settle them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from attacks.identify import Cluster

ORDER_Z = 3.0
"""Standard errors between the mean accuracies (or mean log latencies) of the target and
another model before their order is trusted."""

MIN_SIGHTINGS = 5
"""Answers of a model before its mean accuracy (or mean log latency) is compared."""


@dataclass
class Sightings:
    """The accuracies at which each model answered, in the sampling window, and the log
    latencies of its one-input answers."""

    specs: dict[Cluster, list[float]] = field(default_factory=dict)
    timings: dict[Cluster, list[float]] = field(default_factory=dict)
    """Log latency (ms) of each model's one-input answers."""

    def add(self, accuracy: float, model: Cluster) -> None:
        self.specs.setdefault(model, []).append(accuracy)

    def time(self, model: Cluster, latency_ms: float) -> None:
        """A one-input answer of ``model`` and its latency."""
        if latency_ms > 0 and math.isfinite(latency_ms):
            self.timings.setdefault(model, []).append(math.log(latency_ms))

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.specs.values())

    def mean(self, model: Cluster) -> float:
        return float(np.mean(self.specs[model]))

    @property
    def by_latency(self) -> bool:
        """Whether every model seen has :data:`MIN_SIGHTINGS` one-input latencies: the order
        is then theirs."""
        return bool(self.specs) and all(len(self.timings.get(m, [])) >= MIN_SIGHTINGS
                                        for m in self.specs)

    def order(self) -> list[Cluster]:
        """The models seen, fastest first when :attr:`by_latency`, else in order of the mean
        accuracy at which they answered."""
        if self.by_latency:
            return sorted(self.specs, key=lambda m: float(np.mean(self.timings[m])))
        return sorted(self.specs, key=self.mean)

    def singletons(self) -> int:
        """Models seen exactly once (Good-Turing: their share of the answers estimates the
        chance that the next answer is a model not yet seen)."""
        return sum(len(v) == 1 for v in self.specs.values())

    def settled(self, a: Cluster, b: Cluster, z: float = ORDER_Z) -> bool:
        """Whether ``b`` is surely after ``a``: its mean accuracy or mean log latency exceeds
        ``a``'s by ``z`` standard errors, and neither falls short of it by as many."""
        gaps = [g for g in (_z_gap(self.specs, a, b), _z_gap(self.timings, a, b))
                if g is not None]
        return any(g > z for g in gaps) and not any(g < -z for g in gaps)

    def resolved(self, models: list[Cluster], target: Cluster) -> bool:
        """Every model seen at least twice and the target's rank settled: each model before
        it on ``models`` surely before it, each after it surely after."""
        i = models.index(target)
        return self.singletons() == 0 and \
            all(self.settled(m, target) for m in models[:i]) and \
            all(self.settled(target, m) for m in models[i + 1:])

    def varying(self) -> list[float]:
        """The accuracies bounding where the answers vary: the lowest at which a model other
        than the one answering the lowest accuracy answered, the highest at which one other
        than the one answering the highest did (none while one model answered everything)."""
        sights = sorted((a, i) for i, v in enumerate(self.specs.values()) for a in v)
        if len({i for _, i in sights}) < 2:
            return []
        low, high = sights[0][1], sights[-1][1]
        return [min(a for a, i in sights if i != low), max(a for a, i in sights if i != high)]

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


def _z_gap(samples: dict[Cluster, list[float]], a: Cluster, b: Cluster) -> float | None:
    """How far ``b``'s mean exceeds ``a``'s, in standard errors of the difference (Welch);
    None while either has fewer than :data:`MIN_SIGHTINGS` samples."""
    x, y = samples.get(a, []), samples.get(b, [])
    if min(len(x), len(y)) < MIN_SIGHTINGS:
        return None
    se = math.sqrt(float(np.var(x, ddof=1)) / len(x) + float(np.var(y, ddof=1)) / len(y))
    return (float(np.mean(y)) - float(np.mean(x))) / max(se, 1e-12)


def window(thresholds: list[float]) -> tuple[float, float]:
    """The accuracies sampled: the span of bisection's thresholds, widened on both sides by a
    quarter of it (at least one point), within [0, 100]."""
    if not thresholds:
        return 0.0, 100.0
    lo, hi = min(thresholds), max(thresholds)
    pad = max(1.0, 0.25 * (hi - lo))
    return max(lo - pad, 0.0), min(hi + pad, 100.0)
