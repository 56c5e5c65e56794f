"""Telling the zoo's models apart from noisy answers (PSML §4; the method is ours).

A model is known to the attacker only as a :class:`Cluster`: the mean of the answers it gave on
each probe input, and the latencies it answered with. An answer is compared with a cluster by
the mean, over the probes it carried, of the squared Euclidean distance between answer and
mean answer: output noise adds a constant to it, so a model's difference adds to the noise
instead of drowning in it. The same-model threshold is learned, never set: every answer
assigned to a cluster adds its per-probe distance from that cluster's mean to a pool of
same-model spreads, seeded by one repeated query. Deterministic answers (no output defense,
rounding, reverse sigmoid, top-1) have spread 0 and the threshold is equality up to float
noise; Gaussian output noise gets a threshold that grows with it and shrinks as ``1 / sqrt(k)``
with the ``k`` probes of a request, and answers repeated at the same spec are averaged until
one model is clearly nearest (:meth:`Identifier.decide`).

Probes are chosen per decision: those whose mean answers differ most between the models to be
told apart; as many as the learned noise needs; and, where known models often answer a probe
alike (top-1 labels, rounding), as many as make it unlikely that a model not yet seen answers
all of them like a known one. Latency (every answer carries it; the zoo's models differ 200x)
decides where the answers cannot and the models' latencies are separated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EXACT = 1e-8
"""Distance below which two answers are the same whatever the learned spread (float noise of
batched inference on a live server)."""

MISS = 0.05
"""Accepted chance that a model not yet seen answers every probe of one request like a known
one (it would be missed there; bisection asks around each threshold several times, so the
chance to miss it altogether is far smaller)."""


REJECT_Z = 3.0
"""Deviations by which a noisy answer must lie off what a rival would answer before a verifier
takes it for the target's (one rival answer in ~740 passes if the projection is Gaussian)."""


def sq_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-probe squared Euclidean distance of two (k, classes) answer arrays."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    out: np.ndarray = (d * d).sum(-1)
    return out


@dataclass(eq=False)
class Cluster:
    """One model as the attacker knows it: mean answer per probe input and its latencies."""

    index: int
    """Order of discovery (0, 1, ...): the attacker's name for the model."""
    sums: dict[int, np.ndarray] = field(default_factory=dict)
    squares: dict[int, np.ndarray] = field(default_factory=dict)
    """Per probe, the sum of the outer products of its answers: their covariance, which output
    noise that is clipped and renormalised makes far from isotropic."""
    counts: dict[int, int] = field(default_factory=dict)
    log_latency: dict[int, list[float]] = field(default_factory=dict)
    """Log latencies (ms) by request size: the service time grows with the inputs sent."""

    def knows(self, probes: np.ndarray) -> bool:
        """Whether it has answered every probe in ``probes``."""
        return all(int(p) in self.counts for p in probes)

    def known(self) -> set[int]:
        """The probes it has answered."""
        return set(self.counts)

    def mean(self, probes: np.ndarray) -> np.ndarray:
        """Its mean answer on each of ``probes`` (k, classes)."""
        return np.stack([self.sums[int(p)] / self.counts[int(p)] for p in probes])

    def spread_along(self, probes: np.ndarray, direction: np.ndarray) -> float | None:
        """Variance of one answer's projection on ``direction`` (k, classes), summed over the
        probes, from the covariance of its own answers; None while a probe has fewer than
        three answers."""
        total = 0.0
        for p, d in zip(probes, direction, strict=True):
            n = self.counts.get(int(p), 0)
            if n < 3:
                return None
            mean = self.sums[int(p)] / n
            cov = (self.squares[int(p)] - n * np.outer(mean, mean)) / (n - 1)
            total += float(d @ cov @ d)
        return max(total, 0.0)

    def add(self, probes: np.ndarray, answers: np.ndarray, latency_ms: float) -> None:
        for p, a in zip(probes, answers, strict=True):
            key = int(p)
            a64 = np.asarray(a, np.float64)
            self.sums[key] = self.sums.get(key, 0.0) + a64
            self.squares[key] = self.squares.get(key, 0.0) + np.outer(a64, a64)
            self.counts[key] = self.counts.get(key, 0) + 1
        if latency_ms > 0 and math.isfinite(latency_ms):
            self.log_latency.setdefault(len(probes), []).append(math.log(latency_ms))


@dataclass
class Decision:
    """What one identification concluded."""

    model: Cluster | None
    """The nearest model within its threshold, or None (nobody known)."""
    sure: bool
    """Only that model (or, for None, no model) is within the threshold."""
    inside: int = 0
    """Models whose score (answers and latency) is within ``z²``."""


class Identifier:
    """Nearest-cluster identification with a learned same-model threshold (module docstring).

    ``z``: how many standard deviations of the same-model spread a threshold (and a probe
    choice) allows for; ``latency``: fuse latency where answers cannot decide."""

    MIN_LATENCY_SAMPLES = 3

    def __init__(self, z: float = 4.0, latency: bool = True) -> None:
        self.z = z
        self.use_latency = latency
        self.clusters: list[Cluster] = []
        self.spread: list[float] = []
        """Per-probe distances of answers from their own model's mean answer."""
        self.latency_decided = 0
        """Identifications that latency decided (answers alone could not)."""
        self.exact = False
        """Answers repeat exactly (no output noise): a difference is another model, never
        noise, so no spread is learned."""

    # -- the learned noise ---------------------------------------------------------------
    def noise(self) -> tuple[float, float]:
        """Mean and standard deviation of one answer's per-probe squared distance from its
        model's true mean answer (0, 0 if unseen): the learned output noise."""
        if not self.spread:
            return 0.0, 0.0
        s = np.asarray(self.spread)
        return float(s.mean()), float(s.std())

    def expected(self, cluster: Cluster, probes: np.ndarray, repeats: int = 1
                 ) -> tuple[float, float]:
        """Mean and standard deviation of the distance over ``probes`` between ``cluster``'s
        mean answers and the mean of ``repeats`` of its own answers: the noise of both means."""
        v, s = self.noise()
        n = np.asarray([cluster.counts[int(p)] for p in probes], dtype=float)
        factor = float((1 / repeats + 1 / n).mean())
        return factor * v, factor * s / math.sqrt(len(probes))

    # -- clusters --------------------------------------------------------------------------
    def new_cluster(self, probes: np.ndarray, answers: np.ndarray,
                    latency_ms: float) -> Cluster:
        c = Cluster(len(self.clusters))
        c.add(probes, answers, latency_ms)
        self.clusters.append(c)
        return c

    def assign(self, cluster: Cluster, probes: np.ndarray, answers: np.ndarray,
               latency_ms: float) -> None:
        """Add an answer to ``cluster``; where it already knew a probe, the distance from its
        mean (scaled by that mean's own noise, ``1 + 1/n``) is a same-model spread sample."""
        seen = np.asarray([int(p) in cluster.counts for p in probes], dtype=bool)
        if seen.any() and not self.exact:
            d = sq_distance(answers[seen], cluster.mean(probes[seen]))
            n = np.asarray([cluster.counts[int(p)] for p in probes[seen]], dtype=float)
            self.spread.extend((d / (1 + 1 / n)).tolist())
        cluster.add(probes, answers, latency_ms)

    def distance(self, cluster: Cluster, probes: np.ndarray, answers: np.ndarray) -> float:
        """Mean per-probe squared distance of ``answers`` from ``cluster``'s mean answers."""
        return float(sq_distance(answers, cluster.mean(probes)).mean())

    def score(self, cluster: Cluster, probes: np.ndarray, answers: np.ndarray,
              latencies: list[float], latency: bool = True) -> float:
        """How unlike ``cluster``'s the answers (the mean of ``len(latencies)`` answers at one
        spec) are, in squared standard deviations: 0 for a perfect fit. Exact answers are
        equal or infinitely unlike and decide alone; for noisy ones the deviation of their
        mean latency from the cluster's at the same request size adds to it (a model that
        answers like a known one but is much faster or slower is another)."""
        plain, noisy = self._answer_score(cluster, probes, answers, len(latencies))
        if not (noisy and self.use_latency and latency):
            return plain   # exact answers decide alone: load makes latency noisy
        return plain + self._latency_z(cluster, len(probes), latencies) ** 2

    def _answer_score(self, cluster: Cluster, probes: np.ndarray, answers: np.ndarray,
                      repeats: int) -> tuple[float, bool]:
        """The answers' part of :meth:`score`, and whether the answers are noisy."""
        d = self.distance(cluster, probes, answers)
        mean, sd = self.expected(cluster, probes, repeats)
        if sd <= 0:
            return (0.0 if d <= mean + EXACT else math.inf), False
        return (max(d - mean - EXACT, 0.0) / sd) ** 2, True

    def _latency_z(self, cluster: Cluster, size: int, latencies: list[float]) -> float:
        """Deviation of the median log latency from the cluster's median at ``size`` (0 if
        it has none), in standard errors; the spread is the cluster's own once it has
        :data:`MIN_LATENCY_SAMPLES`, else the one pooled over every cluster."""
        seen = cluster.log_latency.get(size, [])
        ok = [math.log(x) for x in latencies if x > 0 and math.isfinite(x)]
        if not seen or not ok:
            return 0.0
        lat = np.asarray(seen)
        med = float(np.median(lat))
        if len(seen) >= self.MIN_LATENCY_SAMPLES:
            sd = 1.4826 * float(np.median(np.abs(lat - med)))
        else:
            sd = self._pooled_latency_sd()
        # medians on both sides (robust to queueing spikes; 1.25x the standard error)
        se = 1.25 * max(sd, 0.05) * math.sqrt(1 / len(ok) + 1 / len(seen))
        return abs(float(np.median(ok)) - med) / se

    def _pooled_latency_sd(self) -> float:
        """Robust spread of log latency around each cluster's median, over every cluster
        and request size with enough samples (0 when none has)."""
        dev = [np.asarray(v) - np.median(v) for c in self.clusters
               for v in c.log_latency.values() if len(v) >= self.MIN_LATENCY_SAMPLES]
        if not dev:
            return 0.0
        return 1.4826 * float(np.median(np.abs(np.concatenate(dev))))

    def decide(self, probes: np.ndarray, answers: np.ndarray, latencies: list[float],
               among: list[Cluster] | None = None) -> Decision:
        """Which model gave ``answers`` (the mean of ``len(latencies)`` answers at one spec):
        the nearest whose score is within ``z²``. Sure when it is the only one and fits well
        (score within ``(z/2)²``): a model not yet seen can sit inside a known one's wide
        region, and more answers move it out. Nobody (None, sure) when the answers alone fit
        nobody, or when several answers' latency is far (``2z``) from every model they fit:
        latency, noisy under load, chooses among models and makes a new one only on strong
        evidence. Models that have not answered every probe cannot be candidates."""
        pool = [c for c in (self.clusters if among is None else among) if c.knows(probes)]
        limit = self.z ** 2
        plain = [self.score(c, probes, answers, latencies, latency=False) for c in pool]
        scores = [self.score(c, probes, answers, latencies) for c in pool]
        inside = sorted(((q, c) for q, c in zip(scores, pool, strict=True) if q <= limit),
                        key=lambda qc: qc[0])
        fits = sorted(((q, c) for q, c in zip(plain, pool, strict=True) if q <= limit),
                      key=lambda qc: qc[0])
        if not inside:
            if not fits:
                return Decision(None, True)
            # latency alone makes a stranger only when it is far off for every model the
            # answers fit, over several answers (a queueing spike is one answer)
            if len(latencies) >= self.MIN_LATENCY_SAMPLES and all(
                    self._latency_z(c, len(probes), latencies) > 2 * self.z for _, c in fits):
                return Decision(None, True)
            return Decision(fits[0][1], False)
        if len(inside) == 1 and len(fits) > 1:
            self.latency_decided += 1   # the answers alone would not have decided
        return Decision(inside[0][1], len(inside) == 1 and inside[0][0] <= (self.z / 2) ** 2,
                        len(inside))

    def prefers(self, target: Cluster, rivals: list[Cluster], probes: np.ndarray,
                answers: np.ndarray) -> bool:
        """Whether one noisy answer is the target's rather than any rival's: a likelihood
        ratio test, where "only the target within its threshold" asks too much of answers
        whose noise is as large as the models' differences. For a rival r with mean answers
        μ_r (Δ = μ_t - μ_r), ``||a - μ_r||² - ||a - μ_t||² + ||Δ||²`` is ``2 (a - μ_r)·Δ``:
        zero on average when r answered, with standard deviation twice the spread of r's
        answers along Δ (from their covariance: noise that is clipped and renormalised
        concentrates on the likely classes, where models differ; plus the noise of r's mean).
        The answer is accepted when that lies :data:`REJECT_Z` deviations above zero for
        every rival, and fits the target at all (within ``z²``: not a model never seen). A
        rival the probes cannot tell from the target, or whose spread is unknown, refuses."""
        if self._answer_score(target, probes, answers, 1)[0] > self.z ** 2:
            return False
        mu_t = target.mean(probes)
        for r in rivals:
            mu_r = r.mean(probes)
            delta = mu_t - mu_r
            spread = r.spread_along(probes, delta)
            if spread is None or spread <= 0:
                return False
            n_r = min(r.counts[int(p)] for p in probes)
            stat = 2 * float(((answers - mu_r) * delta).sum())
            if stat < REJECT_Z * 2 * math.sqrt(spread * (1 + 1 / n_r)):
                return False
        return True

    def classify(self, probes: np.ndarray, answers: np.ndarray, latency_ms: float,
                 among: list[Cluster] | None = None) -> Cluster | None:
        """The model of one answer: the only one whose score is within ``z²``; None when
        none is or several are."""
        d = self.decide(probes, answers, [latency_ms], among)
        return d.model if d.sure or d.inside == 1 else None

    # -- probe choice ------------------------------------------------------------------------
    def signal(self, a: Cluster, b: Cluster, probes: np.ndarray) -> np.ndarray:
        """Per-probe squared distance between two models' mean answers, less what the noise
        of those means adds to it."""
        v, _ = self.noise()
        na = np.asarray([a.counts[int(p)] for p in probes], dtype=float)
        nb = np.asarray([b.counts[int(p)] for p in probes], dtype=float)
        raw = sq_distance(a.mean(probes), b.mean(probes))
        out: np.ndarray = np.maximum(raw - v * (1 / na + 1 / nb), 0.0)
        return out

    def collision(self) -> float:
        """How often two known models answer a probe alike (their means closer than the
        noise can tell), over every pair and the probes both know: the chance that a model
        not yet seen answers one probe like a known one."""
        _, s = self.noise()
        alike = total = 0
        for i, a in enumerate(self.clusters):
            for b in self.clusters[i + 1:]:
                common = np.asarray(sorted(a.known() & b.known()), dtype=np.int64)
                if len(common):
                    sig = self.signal(a, b, common)
                    alike += int((sig <= 2 * self.z * s + EXACT).sum())
                    total += len(common)
        return alike / total if total else 0.0

    def diversity(self, probes: np.ndarray) -> np.ndarray:
        """Per probe, the share of known models (that answered it) whose top-1 answers
        differ from the most common one."""
        out = np.zeros(len(probes))
        for j, p in enumerate(probes):
            tops = [int(np.argmax(c.sums[int(p)])) for c in self.clusters if int(p) in c.sums]
            if tops:
                out[j] = 1 - np.bincount(tops).max() / len(tops)
        return out

    def separating(self, group: list[Cluster], k_min: int, k_max: int) -> np.ndarray:
        """Probes that tell ``group[0]`` from every other model of ``group`` best. All of them
        must know a probe; a probe scores the smallest signal between ``group[0]`` and
        another. As many as (a) the learned noise needs for another model's answer to clear
        the threshold by ``z`` deviations and (b) make a miss of an unseen model that answers
        like a known one less likely than :data:`MISS`; at least ``k_min``, at most
        ``k_max``."""
        common = set.intersection(*(c.known() for c in group))
        probes = np.asarray(sorted(common), dtype=np.int64)
        if len(group) < 2 or len(probes) == 0:
            return probes[:k_min]
        score = np.min([self.signal(group[0], c, probes) for c in group[1:]], axis=0)
        # ties (labels differ or not) go to the inputs known models answer most diversely:
        # the likeliest to tell a model not yet seen from them too
        order = np.lexsort((-self.diversity(probes), -score))
        _, s = self.noise()
        alike = self.collision()
        k_miss = 1 if alike <= 0 else \
            math.ceil(math.log(MISS) / math.log(alike)) if alike < 1 else k_max
        k = max(k_min, k_miss)
        while k < k_max:   # 2 z deviations of a two-answer distance (factor 2) apart
            if float(score[order[:k]].mean()) >= 4 * self.z * s / math.sqrt(k) + EXACT:
                break
            k += 1
        return probes[order[:min(k, k_max, len(order))]]
