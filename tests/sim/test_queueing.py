"""The engine against queueing theory: M/M/c (Erlang C), M/D/1 (Pollaczek-Khinchine), Little.

One model, no batching, late binding: the front-end queue served by ``c`` workers is exactly a
FCFS M/M/c queue. Tolerances are statistical (fixed seeds, long runs with a warm-up cut).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import scenario_dict
from tests.sim.helpers import assert_littles_law, build, run

MU = 1000.0  # service rate per worker, 1/s (profile batch-1 latency 1 ms)


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean waiting time in queue of M/M/c."""
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


def _mmc(one_model: Path, c: int, rho: float, n: int, service: str, seed: int = 3) -> float:
    d = scenario_dict(one_model, requests=n, seed=seed, warmup_s=n / (rho * c * MU) * 0.05,
                      service_time={"type": service},
                      cluster={"workers": c, "max_batch": 1})
    d["tenants"][0]["arrivals"]["rate_rps"] = rho * c * MU
    res = run(d)
    assert_littles_law(res.summary)
    return float(res.summary["wait_ms"]["mean"]) / 1000


@pytest.mark.parametrize(("c", "rho"), [(1, 0.5), (1, 0.8), (2, 0.7), (4, 0.9), (8, 0.9)])
def test_mmc_mean_wait_matches_erlang_c(one_model: Path, c: int, rho: float) -> None:
    n = 400_000 if rho >= 0.9 else 150_000
    expected = erlang_c_wait(c, rho * c * MU, MU)
    measured = _mmc(one_model, c, rho, n, "exponential")
    assert measured == pytest.approx(expected, rel=0.08)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_wait_matches_pollaczek_khinchine(one_model: Path, rho: float) -> None:
    # M/D/1: Wq = rho / (2 mu (1 - rho))
    expected = rho / (2 * MU * (1 - rho))
    measured = _mmc(one_model, 1, rho, 150_000, "profile")
    assert measured == pytest.approx(expected, rel=0.06)


def test_littles_law_against_sampled_occupancy(one_model: Path) -> None:
    """Time-average occupancy sampled at Poisson instants (PASTA) equals lambda * W."""
    d = scenario_dict(one_model, requests=100_000, service_time={"type": "exponential"},
                      cluster={"workers": 2, "max_batch": 1})
    d["tenants"][0]["arrivals"]["rate_rps"] = 1500
    sim = build(d)
    rng = np.random.default_rng(7)
    samples: list[int] = []

    def monitor():  # type: ignore[no-untyped-def]
        while sim.system.arrived < 99_000:
            yield sim.env.timeout(rng.exponential(0.002))
            samples.append(sim.system.in_system)

    sim.env.process(monitor())
    res = sim.run()
    df = res.records
    lam = len(df) / df["arrival_s"].max()
    w = (df["finish_s"] - df["arrival_s"]).mean()
    assert np.mean(samples) == pytest.approx(lam * w, rel=0.05)
    assert_littles_law(res.summary)


def test_mm1_sojourn_is_exponential(one_model: Path) -> None:
    """M/M/1 sojourn time is exponential with rate mu - lambda (a distributional check)."""
    from scipy import stats

    d = scenario_dict(one_model, requests=50_000, service_time={"type": "exponential"})
    d["tenants"][0]["arrivals"]["rate_rps"] = 500
    df = run(d).records
    sojourn = (df["finish_s"] - df["arrival_s"]).to_numpy()[5000::10]  # thin: less correlation
    ks = stats.kstest(sojourn, "expon", args=(0, 1 / (MU - 500)))
    assert ks.pvalue > 0.001
