"""Latency percentiles of a record stream in bounded memory (docs/outputs.md, "Summary").

A run's summary needs the p50/p95/p99 of its latencies, over the whole run and per tenant,
without holding every record (issue 17: 10M requests under 1 GB). :class:`LatencyDigest` keeps
the values themselves while the stream is small, so short runs get numpy's exact percentiles
(linear interpolation), and past a shared budget of values folds them into a log-bucketed
histogram with relative accuracy ``alpha`` (the DDSketch construction: Masson, Rim and Lee,
VLDB 2019). The budget is shared by every digest of one summary (:class:`ExactBudget`), so the
memory bound does not grow with the number of tenants.

Error bound once folded: bucket ``i`` holds the values in ``(g**(i-1), g**i]`` with
``g = (1 + alpha) / (1 - alpha)`` and reports ``2 g**i / (g + 1)``, within ``alpha`` (relative)
of every value in it. A percentile is a convex combination of the two order statistics around
its rank, each reported within ``alpha``, so it is within ``alpha`` of numpy's value.
"""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.005
"""Relative accuracy of a folded digest's percentiles (0.5 %)."""
EXACT_VALUES = 1_000_000
"""Values a summary holds exactly, over all its digests, before folding them (8 MB)."""
_GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
_TINY = 1e-9
"""Values at or below this (ms) share one bucket, reported as 0."""
_MIN_INDEX = math.floor(math.log(_TINY) / _LOG_GAMMA)


class ExactBudget:
    """How many exact values the digests of one summary may still hold."""

    def __init__(self, values: int = EXACT_VALUES) -> None:
        self.left = values
        self.digests: list[LatencyDigest] = []

    def take(self, n: int) -> bool:
        """Claim room for ``n`` more values; when there is none, fold every digest."""
        if self.left >= n:
            self.left -= n
            return True
        for d in self.digests:
            d.fold()
        self.left = 0
        return False


class LatencyDigest:
    """Count, mean and percentiles of a stream of non-negative values (ms)."""

    def __init__(self, budget: ExactBudget) -> None:
        self.budget = budget
        budget.digests.append(self)
        self.exact: list[np.ndarray] | None = []
        """The values while they are held exactly; None once folded."""
        self.counts: np.ndarray | None = None
        """Folded: counts per bucket, from index ``_MIN_INDEX`` (bucket 0: values <= _TINY)."""
        self.n = 0
        self.total = 0.0

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        self.n += len(values)
        self.total += float(values.sum())
        if self.exact is not None and self.budget.take(len(values)):
            self.exact.append(values)
            return
        self._count(values)

    def fold(self) -> None:
        """Move the exact values into buckets (the digest stays approximate from now on)."""
        if self.exact is None:
            return
        held, self.exact = self.exact, None
        for v in held:
            self._count(v)

    def _count(self, values: np.ndarray) -> None:
        if self.exact is not None:
            self.fold()
        idx = np.zeros(len(values), dtype=np.int64)
        big = values > _TINY
        idx[big] = np.ceil(np.log(values[big]) / _LOG_GAMMA).astype(np.int64) - _MIN_INDEX
        counts = np.bincount(idx)
        if self.counts is None:
            self.counts = np.zeros(0, dtype=np.int64)
        if len(counts) > len(self.counts):
            counts[:len(self.counts)] += self.counts
            self.counts = counts
        else:
            self.counts[:len(counts)] += counts

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def mean(self) -> float:
        if not self.n:
            return float("nan")
        if self.exact is not None:
            return float(np.concatenate(self.exact).mean())
        return self.total / self.n

    def percentiles(self, qs: list[float]) -> list[float]:
        """numpy's ``percentile`` (linear interpolation) of the values: exact while held,
        within ``ALPHA`` (relative) once folded; NaN without values."""
        if not self.n:
            return [float("nan")] * len(qs)
        if self.exact is not None:
            return [float(x) for x in np.percentile(np.concatenate(self.exact), qs)]
        assert self.counts is not None
        cum = np.cumsum(self.counts)
        out = []
        for q in qs:
            h = (self.n - 1) * q / 100
            lo, hi = math.floor(h), math.ceil(h)
            v_lo, v_hi = self._value_at(cum, lo), self._value_at(cum, hi)
            out.append(v_lo + (h - lo) * (v_hi - v_lo))
        return out

    @staticmethod
    def _value_at(cum: np.ndarray, rank: int) -> float:
        """The reported value of the bucket holding the ``rank``-th smallest value."""
        i = int(np.searchsorted(cum, rank, side="right"))
        if i == 0:
            return 0.0
        return 2 * _GAMMA ** (i + _MIN_INDEX) / (_GAMMA + 1)
