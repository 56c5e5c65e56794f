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
   load adds), its p-value is exact by permutation (with the order of sending random, the
   latencies are exchangeable when one model answers the whole segment);
2. where the p-value is suggestive (below :data:`SCREEN_P`) but not conclusive, doubles the
   samples, at most :data:`LOOKS` times; each look is tested at ``ALPHA / LOOKS``, so the scan
   invents a model in a segment with probability at most :data:`ALPHA`;
3. locates the threshold by bisection on latency (each step's median latency nearer the faster
   or the slower side's);
4. names the side away from the segment's own model: the neighbouring segment's model when
   their latencies do not differ (:func:`distinct`: bisection had put the threshold between
   the two in the wrong place), else a model not seen before.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu, rankdata

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
"""Two sets of latencies are of different models below this two-sided p-value."""


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


def distinct(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two sets of log latencies (one-input requests) are of different models: a
    two-sided Mann-Whitney test at :data:`DISTINCT_P`. Neighbours on the front differ 1.3-4x at
    batch size 1 (the zoo profiles), which a dozen samples each tell apart."""
    if len(a) < MIN_SIDE or len(b) < MIN_SIDE:
        return True
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue) <= DISTINCT_P
