"""Finding a model hidden behind its neighbour on the map, by latency (PSML §4's side
channel; the method is ours).

Bisection tells two models apart by their answers. Under output noise or coarse answers (top-1
labels, one-hot, rounded) two neighbours on the front can answer every probe alike: two
models of similar accuracy agree on the labels of most inputs, and Gaussian output noise drowns
the small differences of their probabilities. Bisection then takes one for the other, the map
has a model too few, and "the median model" is another one.

Latency does not care what the outputs look like. Along the Pareto front a more accurate model
is a slower one at batch size 1 (the latency a spec is held to), and a pareto-like selection
is a step function of the requested accuracy, so within one segment of the map the latency of
one-input requests is flat unless a second model answers part of it. The scan:

1. sends one-input requests at accuracies spread evenly over the segment, in random order (a
   burst of load then adds noise, never a step), and tests whether the latencies of the
   low-accuracy side of some split are lower than those of the other: the statistic is the
   largest standardised rank sum over the splits (ranks: robust to the queueing spikes that
   load adds), its p-value is by permutation (with the order of sending random, the
   latencies are exchangeable when one model answers the whole segment: exact within one
   look, conservative over the looks' pooled samples, which were spread within each look);
2. where the p-value is suggestive (below :data:`SCREEN_P`) but not conclusive, doubles the
   samples over the whole segment, at most :data:`LOOKS` times; each look is tested at
   ``ALPHA / LOOKS``, so the scan splits a segment that one model answers with probability
   at most :data:`ALPHA`;
3. locates the threshold by bisection on latency (each step's median latency nearer the faster
   or the slower side's);
4. names the side away from the segment's own model (:func:`same_model`, on fresh requests
   over both): the neighbouring segment's model when their latencies are shown equal within
   :data:`SAME_RATIO` (bisection had put the threshold between the two in the wrong place),
   a model not seen before when they are shown to differ.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu, rankdata

Timings = Callable[[np.ndarray], Generator[Any, Any, np.ndarray]]
"""Sends one-input requests at the given accuracies (a SimPy generator); their log latencies."""

SCREEN_P = 0.05
"""A look whose p-value is below this (but above its share of :data:`ALPHA`) asks for more
samples."""

ALPHA = 1e-3
"""Chance that the scan splits a segment one model answers whole (over all its looks)."""

LOOKS = 3
"""Most tests of one segment: the samples double between looks (12, 24, 48 by default)."""

PERMUTATIONS = 20_000
"""Permutations behind each p-value (its resolution is 1 / 20,001, well below ALPHA / LOOKS)."""

MIN_SIDE = 2
"""Fewest samples on each side of a split."""

DISTINCT_P = 0.01
"""Two models' latencies differ below this two-sided p-value (over all looks)."""

SAME_RATIO = 1.25
"""Batch-1 latencies within this factor of each other are taken for one model's once shown
to be (an equivalence test); neighbours on the mnist5k front differ 2-4x (its profile)."""

EQUIVALENCE_P = 0.05
"""Each one-sided test of the equivalence test rejects below this."""


def spread(lo: float, hi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` accuracies spread evenly over ``(lo, hi)`` (one uniform draw in each of ``n``
    equal strata), in random order."""
    edges = lo + (np.arange(n) + rng.random(n)) * (hi - lo) / n
    out: np.ndarray = rng.permutation(edges)
    return out


def _statistic(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``ranks`` (in accuracy order; rows: permutations), the largest standardised
    amount by which a left part's rank sum falls short of its expectation, and the size of
    that left part."""
    m = ranks.shape[-1]
    j = np.arange(MIN_SIDE, m - MIN_SIDE + 1)
    left = np.cumsum(ranks, axis=-1)[..., j - 1]
    z = (j * (m + 1) / 2 - left) / np.sqrt(j * (m - j) * (m + 1) / 12)
    best = np.argmax(z, axis=-1)
    return np.take_along_axis(z, best[..., None], -1)[..., 0], j[best]


def step_test(accuracies: np.ndarray, log_latency: np.ndarray, rng: np.random.Generator
              ) -> tuple[float, float]:
    """Permutation p-value that the latencies are lower left of some split than right of it
    (the module docstring), and the accuracy between the two samples at the best split
    (1 and nan with fewer than ``2 * MIN_SIDE`` samples)."""
    m = len(accuracies)
    if m < 2 * MIN_SIDE:
        return 1.0, float("nan")
    order = np.argsort(accuracies)
    acc = np.asarray(accuracies, float)[order]
    ranks = rankdata(np.asarray(log_latency)[order])
    z, j = _statistic(ranks)
    perms = rng.permuted(np.broadcast_to(ranks, (PERMUTATIONS, m)), axis=1)
    null, _ = _statistic(perms)
    p = (1 + int((null >= z - 1e-12).sum())) / (1 + PERMUTATIONS)
    return p, float((acc[j - 1] + acc[j]) / 2)


def nearer_left(sample: np.ndarray, left: np.ndarray, right: np.ndarray) -> bool:
    """Whether the median of ``sample`` (log latencies at one accuracy) is nearer the left
    side's median than the right side's."""
    m = float(np.median(sample))
    return abs(m - float(np.median(left))) <= abs(m - float(np.median(right)))


def find_step(lo: float, hi: float, n: int, rng: np.random.Generator, timings: Timings
              ) -> Generator[Any, Any, tuple[float, np.ndarray, np.ndarray] | None]:
    """A latency step in ``(lo, hi)`` (steps 1-2 of the module docstring, ``n`` samples at the
    first look): the accuracy between the two samples at the best split and the log
    latencies on either side of it, or None."""
    acc = np.zeros(0)
    lat = np.zeros(0)
    for look in range(LOOKS):
        more = spread(lo, hi, n * 2 ** look - len(acc), rng)
        acc = np.concatenate([acc, more])
        lat = np.concatenate([lat, (yield from timings(more))])
        p, at = step_test(acc, lat, rng)
        if p > SCREEN_P:
            return None
        if p <= ALPHA / LOOKS:
            return at, lat[acc < at], lat[acc > at]
    return None


def same_model(side: tuple[float, float], other: tuple[float, float], n: int,
               rng: np.random.Generator, timings: Timings) -> Generator[Any, Any, bool]:
    """Whether one model answers two accuracy ranges: fresh one-input requests over both,
    interleaved in random order (load drifts alike for both), ``n`` each at the first look and
    doubling, at most :data:`LOOKS` looks. Different when a two-sided Mann-Whitney test
    rejects at ``DISTINCT_P / LOOKS``; one model when an equivalence test shows the latencies
    within :data:`SAME_RATIO` (two one-sided tests against the margins, each at
    :data:`EQUIVALENCE_P`); still undecided after the last look, the difference of the
    medians against half the margin decides."""
    a = np.zeros(0)
    b = np.zeros(0)
    margin = math.log(SAME_RATIO)
    for look in range(LOOKS):
        k = n * 2 ** look - len(a)
        acc = np.concatenate([rng.uniform(*side, k), rng.uniform(*other, k)])
        order = rng.permutation(2 * k)
        sent = yield from timings(acc[order])
        lat = np.empty(2 * k)
        lat[order] = sent
        a, b = np.concatenate([a, lat[:k]]), np.concatenate([b, lat[k:]])
        if distinct(a, b, DISTINCT_P / LOOKS):
            return False
        below = float(mannwhitneyu(a, b + margin, alternative="less").pvalue)
        above = float(mannwhitneyu(a, b - margin, alternative="greater").pvalue)
        if max(below, above) <= EQUIVALENCE_P:
            return True
    return abs(float(np.median(a) - np.median(b))) < margin / 2


def distinct(a: np.ndarray, b: np.ndarray, p: float = DISTINCT_P) -> bool:
    """Whether two sets of log latencies differ: a two-sided Mann-Whitney test at ``p``."""
    if len(a) < MIN_SIDE or len(b) < MIN_SIDE:
        return False
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue) <= p
