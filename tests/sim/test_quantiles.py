"""Latency percentiles in bounded memory: exact while small, within ALPHA once folded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.quantiles import ALPHA, ExactBudget, LatencyDigest

QS = [0.0, 1.0, 50.0, 95.0, 99.0, 99.9, 100.0]


def test_exact_while_within_budget() -> None:
    rng = np.random.default_rng(0)
    d = LatencyDigest(ExactBudget(10_000))
    parts = [rng.lognormal(1, 1, 1000) for _ in range(5)]
    for p in parts:
        d.add(p)
    allv = np.concatenate(parts)
    assert d.is_exact
    assert d.percentiles(QS) == list(np.percentile(allv, QS))
    assert d.mean() == allv.mean()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), sigma=st.floats(0.1, 3.0), n=st.integers(1, 3000),
       zeros=st.floats(0, 0.3))
def test_folded_percentiles_within_alpha(seed: int, sigma: float, n: int, zeros: float) -> None:
    rng = np.random.default_rng(seed)
    v = rng.lognormal(0, sigma, n)
    v[rng.random(n) < zeros] = 0.0
    d = LatencyDigest(ExactBudget(0))
    d.add(v)
    assert not d.is_exact
    want = np.percentile(v, QS)
    got = np.array(d.percentiles(QS))
    assert np.all(np.abs(got - want) <= ALPHA * want + 1e-12)
    assert d.mean() == pytest.approx(v.mean(), rel=1e-9)


def test_bound_is_tight_enough_to_fail() -> None:
    """The check above can fail: a tenth of ALPHA is not met."""
    rng = np.random.default_rng(1)
    v = rng.lognormal(0, 1, 5000)
    d = LatencyDigest(ExactBudget(0))
    d.add(v)
    want = np.percentile(v, QS[1:-1])
    err = np.abs(np.array(d.percentiles(QS[1:-1])) - want) / want
    assert err.max() > ALPHA / 10


def test_budget_is_shared_and_folds_every_digest() -> None:
    budget = ExactBudget(150)
    a, b = LatencyDigest(budget), LatencyDigest(budget)
    a.add(np.ones(100))
    assert a.is_exact and b.is_exact
    b.add(np.ones(100))                    # over the shared budget: both fold
    assert not a.is_exact and not b.is_exact
    assert a.n == b.n == 100
    assert a.percentiles([50]) == pytest.approx([1.0], rel=ALPHA)


def test_empty_is_nan() -> None:
    d = LatencyDigest(ExactBudget())
    assert np.isnan(d.mean()) and all(np.isnan(d.percentiles([50, 99])))
