"""Overload shedding, an admission rule of the engine (``cluster.shedding``): a request is shed
iff its INFaaS-style estimate exceeds slack x its latency target (or the system holds
``max_pending`` requests); nothing is shed under light load; at twice the capacity, admission
by deadline keeps the goodput that queueing everything loses. Deterministic service, so the
engine's estimate is exact and the threshold can be tested on either side."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import simpy

from sim.config import ShedConfig
from sim.errors import ConfigError
from sim.request import Request
from sim.system import ServingSystem
from tests.helpers import scenario_dict
from tests.sim.helpers import assert_littles_law, run
from tests.sim.test_timeline import MS, make

MU = 1000.0  # the one_model profile: 1 ms per request, one worker


def submit_at(env: simpy.Environment, system: ServingSystem,
              arrivals: list[tuple[float, float]]) -> list[float]:
    """Submit requests at (time ms, latency target ms) for model 0 (accuracy 10); return the
    engine's estimate (ms) for each, read just before it arrives."""
    out: list[float] = []

    def proc() -> Generator[simpy.Event, Any, None]:
        for i, (t_ms, target_ms) in enumerate(arrivals):
            yield env.timeout(t_ms * MS - env.now)
            out.append(system.estimate_latency_s(0, env.now) / MS)
            system.submit(Request(i, 0, env.now, 10.0, target_ms))

    env.process(proc())
    env.run()
    return out


@pytest.mark.parametrize("slack", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("side", [0.99, 1.01])
def test_shed_iff_estimate_exceeds_slack_times_target(slack: float, side: float) -> None:
    """Request 0 holds the 1 ms worker until 1 ms; request 1, arriving at 0.25 ms, is
    estimated at 0.75 + 1 = 1.75 ms. Its target is set just under or just over 1.75 ms /
    slack: shed just under, admitted (and then on time) just over."""
    env, s = make([{"name": "a", "lat": {1: 1.0}}],
                  shedding=ShedConfig(deadline=True, slack=slack, min_retry_s=0.0))
    target = 1.75 / slack * side
    est = submit_at(env, s, [(0.0, 1000.0), (0.25, target)])
    assert est[1] == pytest.approx(1.75)
    first, second = s.requests
    assert not first.shed and first.finish == pytest.approx(1.0 * MS)
    assert second.shed is (side < 1)
    assert not second.rejected
    if second.shed:   # unserved at once, with the time it is late as the retry hint
        assert second.model == -1 and second.finish == second.arrival
        assert second.retry_s == pytest.approx((1.75 - slack * target) * MS)
    else:             # the estimate was exact: admitted, it meets its target
        assert second.latency_ms == pytest.approx(1.75)
        assert second.latency_ms <= target * slack


@pytest.mark.parametrize("timeout_ms", [0.0, 0.5])
@pytest.mark.parametrize(("arrivals", "expected_ms"), [
    ([(0.0, 8), (1.0, 8)], [8.0, 15.0]),             # a full batch waits for the one ahead
    ([(0.0, 8), (1.0, 6), (2.0, 3)], [8.0, 13.0, 15.0]),   # 6 + 3 > 8: the 6 go first
])
def test_estimate_for_a_request_of_several_inputs_is_exact(
        arrivals: list[tuple[float, int]], expected_ms: list[float], timeout_ms: float) -> None:
    """What deadline shedding asks: the estimate for the request's own size (a model of 1 ms
    per input, max_batch 8), exact here (one worker, deterministic service)."""
    env, s = make([{"name": "a", "lat": {1: 1.0, 2: 2.0, 4: 4.0, 8: 8.0}}], max_batch=8,
                  batch_timeout_ms=timeout_ms)
    est: list[float] = []

    def proc() -> Generator[simpy.Event, Any, None]:
        for i, (t_ms, size) in enumerate(arrivals):
            yield env.timeout(t_ms * MS - env.now)
            est.append(s.estimate_latency_s(0, env.now, size) / MS)
            s.submit(Request(i, 0, env.now, 100.0, 1e3, size=size, model=0))

    env.process(proc())
    env.run()
    assert est == pytest.approx(expected_ms)
    assert [r.latency_ms for r in s.requests] == pytest.approx(expected_ms)


def test_retry_hint_has_a_floor() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0}}],
                  shedding=ShedConfig(deadline=True, min_retry_s=0.5))
    submit_at(env, s, [(0.0, 0.5)])
    assert s.requests[0].shed and s.requests[0].retry_s == 0.5


def test_max_pending_refuses_beyond_the_cap() -> None:
    """Cap 2: of four requests at once, two are admitted, two shed (retry hint: the floor);
    once the system has drained, the next is admitted again."""
    env, s = make([{"name": "a", "lat": {1: 1.0}}],
                  shedding=ShedConfig(max_pending=2, min_retry_s=0.25))
    submit_at(env, s, [(0.0, 1e6)] * 4 + [(5.0, 1e6)])
    assert [r.shed for r in s.requests] == [False, False, True, True, False]
    assert [r.retry_s for r in s.requests if r.shed] == [0.25, 0.25]
    assert s.in_system == 0 and s.completed == 5


def test_off_by_default_and_validated() -> None:
    assert not ShedConfig().active
    d = scenario_dict("synthetic-7")
    d["cluster"]["shedding"] = {"deadline": True, "slak": 2}
    with pytest.raises(ConfigError, match="slak"):
        run(d)
    d["cluster"]["shedding"] = {"deadline": True, "slack": 0}
    with pytest.raises(ConfigError, match="slack"):
        run(d)


def _scenario(profile: Path, rate: float, n: int, **shedding: Any) -> dict[str, Any]:
    d = scenario_dict(profile, requests=n, seed=5, warmup_s=0.1)
    d["tenants"][0]["arrivals"]["rate_rps"] = rate
    d["tenants"][0]["slo"]["latency_ms"] = {"type": "uniform", "low": 5, "high": 20}
    if shedding:
        d["cluster"]["shedding"] = shedding
    return d


def test_light_load_sheds_nothing(one_model: Path) -> None:
    """At 10 % of capacity no request is anywhere near its target: with both rules on,
    nothing is shed and the records are those of the run without shedding, plus a ``shed``
    column of False."""
    off = run(_scenario(one_model, 0.1 * MU, 5000))
    on = run(_scenario(one_model, 0.1 * MU, 5000, deadline=True, max_pending=100))
    assert on.summary["shed"] == 0 and "shed" not in off.summary
    assert not on.records["shed"].any()
    pd.testing.assert_frame_equal(on.records.drop(columns="shed"), off.records)
    assert on.summary["goodput"] == off.summary["goodput"] == 1.0


def test_deadline_shedding_keeps_goodput_at_twice_capacity(one_model: Path) -> None:
    """Offered 2x what the worker serves: queueing everything makes the wait grow without
    bound, so almost no request meets its 5-20 ms target; admitting by deadline serves about
    the capacity, every admitted request on time (the estimate is exact here), and the shed
    requests count against goodput."""
    n = 20_000
    off = run(_scenario(one_model, 2 * MU, n))
    on = run(_scenario(one_model, 2 * MU, n, deadline=True))
    s_off, s_on = off.summary, on.summary
    assert s_on["goodput_rps"] > 0.8 * MU
    assert s_on["goodput_rps"] > 5 * s_off["goodput_rps"]
    df = on.records
    served = df[~df["shed"]]
    assert served["met_latency"].all()
    assert not df.loc[df["shed"], "met_slo"].any() and df.loc[df["shed"], "model"].isna().all()
    kept = df[df["arrival_s"] >= 0.1]
    assert s_on["shed"] == int(kept["shed"].sum()) > 0.3 * len(kept)
    assert s_on["completed"] == s_on["requests"] == len(kept)
    assert s_on["goodput"] == pytest.approx(kept["met_slo"].mean())
    assert s_on["latency_ms"]["p99"] <= 20.0       # of the requests served only
    assert_littles_law(s_on)


def test_shed_requests_are_not_defense_rejections(one_model: Path) -> None:
    """With an admission defense as well, the records tell the two apart."""
    d = _scenario(one_model, 2 * MU, 4000, deadline=True)
    d["defense"] = {"type": "rate_limit", "rate_rps": 1500, "burst": 5}
    res = run(d)
    df, s = res.records, res.summary
    assert s["shed"] > 0 and s["rejected"] > 0
    assert not (df["shed"] & df["rejected"]).any()
    assert (df["model"].isna() == (df["shed"] | df["rejected"])).all()
