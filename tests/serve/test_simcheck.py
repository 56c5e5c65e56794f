"""The simulator against the live server: the figures, verdicts and fits (pure functions, on
both sides of every threshold), and a small real run with its resume."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from serve import simcheck
from serve.config import ServeScenario
from serve.frontend_fit import (
    BURSTS,
    MIN_SCALE,
    SCALE_SPREAD,
    Burst,
    cooling_fit,
    frontend_profile,
    lone_worker_sleep_ms,
    loop_wait_ms,
    median_pass,
    pass_cost_ms,
    slope,
    spread_cost,
    wakeup_ms,
    worker_fit,
)
from serve.frontend_probe import (
    BUSY_IN_FLIGHT,
    BUSY_REQUESTS,
    GAPS_MS,
    HEAVY_REQUESTS,
    MAX_IN_FLIGHT,
    ORDINARY_LATENCY_MS,
    REFUSED_LATENCY_MS,
    STREAM_REQUESTS,
    check_in_flight,
    per_sender,
    probe_config,
    scenario_targets,
    sender_body,
)
from serve.proc_cpu import asleep_per_wakeup
from serve.simcheck import at_rate, run_simcheck
from serve.simcheck_figures import (
    DRIFT_PCT,
    GOODPUT_POINTS,
    KEEP_UP,
    MEAN_ERROR_PCT,
    SPEEDS,
    THROUGHPUT_ERROR_PCT,
    bisect_saturation,
    calibration_drift,
    cpu_per_request,
    engine_figures,
    errors,
    figure_missed,
    load_summary,
    run_figures,
    saturated,
    saturation_verdict,
    service_fit,
)
from sim.errors import ConfigError, UserError
from sim.frontend_profile import load_frontend_profile
from sim.output import write_yaml
from sim.profiles import load_profile
from tests.helpers import REPO

CONFIG = REPO / "experiments" / "simcheck_mnist5k.yaml"


# -- saturation and the figures of a run ---------------------------------------------------------
def test_saturation_verdict_on_both_sides_of_its_thresholds() -> None:
    assert not saturated(100.0, 100.0 * KEEP_UP + 0.1, 1.0)
    assert saturated(100.0, 100.0 * KEEP_UP - 0.1, 1.0)
    assert not saturated(100.0, 100.0, 2.9)
    assert saturated(100.0, 100.0, 3.1)


def steady(n: int, rate: float, latency_s: float | np.ndarray) -> dict[str, Any]:
    sent = np.arange(n) / rate
    done = sent + latency_s
    return run_figures(sent, done, np.ones(n, bool), np.full(n, 5.0), np.ones(n, bool),
                       pd.Series(["a"] * (n // 2) + ["b"] * (n - n // 2)), warmup_s=0.0)


def test_a_run_that_keeps_up() -> None:
    f = steady(1000, 100.0, 0.004)
    assert f["mean_ms"] == pytest.approx(4.0) and f["p99_ms"] == pytest.approx(4.0)
    assert f["goodput"] == 1.0 and f["offered_rps"] == pytest.approx(100.0, rel=0.01)
    assert f["throughput_rps"] == pytest.approx(100.0, rel=0.01)
    assert f["growth"] == pytest.approx(1.0) and not f["saturated"]
    assert f["mix"] == {"a": 0.5, "b": 0.5}


def test_a_run_whose_backlog_grows() -> None:
    """Served at 80/s while offered 100/s: latency grows with the run, throughput falls
    short; both say saturated, and the throughput is the service rate."""
    n = 1000
    sent = np.arange(n) / 100.0
    done = np.arange(1, n + 1) / 80.0
    f = run_figures(sent, done, np.ones(n, bool), np.full(n, 5.0), np.ones(n, bool),
                    pd.Series(["a"] * n), warmup_s=0.0)
    assert f["saturated"] and f["growth"] > 3.0
    assert f["throughput_rps"] == pytest.approx(80.0, rel=0.02)
    assert f["goodput"] < 0.01


def test_goodput_counts_unanswered_requests_against_it() -> None:
    n = 100
    sent = np.arange(n) / 10.0
    done = sent + 0.004
    answered = np.arange(n) % 2 == 0
    f = run_figures(sent, done, answered, np.full(n, 5.0), np.ones(n, bool),
                    pd.Series(["a"] * n), warmup_s=0.0)
    assert f["goodput"] == pytest.approx(0.5) and f["answered"] == 50
    late = run_figures(sent, sent + 0.006, np.ones(n, bool), np.full(n, 5.0), np.ones(n, bool),
                       pd.Series(["a"] * n), warmup_s=0.0)
    assert late["goodput"] == 0.0


def test_errors_of_the_simulator() -> None:
    live, sim = steady(400, 100.0, 0.004), steady(400, 100.0, 0.0045)
    e = errors(live, sim)
    assert e["mean_pct"] == pytest.approx(12.5) and e["goodput_points"] == pytest.approx(0.0)
    assert e["saturation_agrees"] and e["mix_tvd"] == 0.0


def row(live_mean: float, sim_mean: float, live_sat: bool = False, sim_sat: bool = False,
        live_thr: float = 100.0, sim_thr: float = 100.0, goodput: tuple[float, float] = (0.5, 0.5)
        ) -> dict[str, Any]:
    def fig(mean: float, sat: bool, thr: float, good: float) -> dict[str, Any]:
        return {"mean_ms": mean, "p50_ms": mean, "p99_ms": mean, "goodput": good,
                "throughput_rps": thr, "saturated": sat, "mix": {"a": 1.0}}

    lv, sm = fig(live_mean, live_sat, live_thr, goodput[0]), fig(sim_mean, sim_sat, sim_thr,
                                                                  goodput[1])
    return {"live": lv, "sim": sm, "errors": errors(lv, sm)}


def test_load_verdict_below_saturation_on_both_sides() -> None:
    within = 1 + (MEAN_ERROR_PCT - 1) / 100
    beyond = 1 + (MEAN_ERROR_PCT + 1) / 100
    assert load_summary(100, [row(10, 10 * within)] * 3)["verdict"]["ok"]
    assert not load_summary(100, [row(10, 10 * beyond)] * 3)["verdict"]["ok"]
    g = GOODPUT_POINTS / 100
    assert load_summary(100, [row(10, 10, goodput=(0.5, 0.5 + g - 0.01))])["verdict"]["ok"]
    assert not load_summary(100, [row(10, 10, goodput=(0.5, 0.5 + g + 0.01))])["verdict"]["ok"]
    # a simulator that calls a live system saturated which is not fails, whatever the means
    assert not load_summary(100, [row(10, 10, sim_sat=True)])["verdict"]["ok"]


def test_load_verdict_past_saturation_on_both_sides() -> None:
    t = THROUGHPUT_ERROR_PCT / 100
    ok = load_summary(900, [row(500, 900, True, True, 800, 800 * (1 + t - 0.01))] * 3)
    assert ok["live"]["saturated"] and ok["verdict"]["ok"]
    assert not load_summary(900, [row(500, 900, True, True, 800, 800 * (1 + t + 0.01))]
                            )["verdict"]["ok"]
    assert not load_summary(900, [row(500, 9, True, False, 800, 800)])["verdict"]["ok"]


def banded(r: dict[str, Any], slow: float, fast: float, key: str = "mean_ms"
           ) -> dict[str, Any]:
    """A run row with the sensitivity band's runs: ``key`` simulated at the two speeds."""
    speeds = {f"{s:g}": {**r["sim"], key: v} for s, v in zip(SPEEDS, (slow, fast), strict=True)}
    return {**r, "sim_speed": speeds}


def test_speed_band_on_both_sides() -> None:
    # the prediction 10 ms; a calibration 5 % off would say 9 to 11.5: live 11 inside
    inside = load_summary(100, [banded(row(11, 10), 11.5, 9), banded(row(11, 10), 11, 9.5),
                                banded(row(11, 10), 12, 8.5)])   # means over the repeats
    b = inside["speed_band"]
    assert b["figure"] == "mean_ms" and (b["low"], b["high"]) == (9, 11.5)
    assert b["shift_pct"] == pytest.approx(12.5) and b["live_inside"]
    # live 12: out of the band (and of the bounds: a miss the calibration does not explain)
    outside = load_summary(100, [banded(row(12, 10), 11.5, 9)] * 3)
    assert not outside["speed_band"]["live_inside"]
    # past saturation the band is the sustained throughput's
    sat = load_summary(900, [banded(row(500, 900, True, True, 800, 760), 720, 800,
                                    "throughput_rps")] * 3)["speed_band"]
    assert sat["figure"] == "throughput_rps" and sat["live_inside"]
    assert not load_summary(900, [banded(row(500, 900, True, True, 820, 760), 720, 800,
                                         "throughput_rps")] * 3)["speed_band"]["live_inside"]
    # runs without the band's (older ones) have none
    assert "speed_band" not in load_summary(100, [row(10, 10)])
    # the misses the report sets against the band: on its figure, not on goodput
    assert figure_missed(load_summary(100, [row(10, 12)]))
    goodput_only = load_summary(100, [row(10, 10, goodput=(0.5, 0.7))])
    assert not goodput_only["verdict"]["ok"] and not figure_missed(goodput_only)
    assert figure_missed(load_summary(900, [row(500, 900, True, True, 800, 600)]))


def test_cpu_per_request_and_its_summary() -> None:
    per = cpu_per_request({"frontend": 50.0, "frontend_wakeups": 150.0, "workers": 80.0,
                           "client": 20.0, "frontend_waited": 30.0, "workers_waited": 10.0,
                           "client_waited": 5.0}, 100)
    assert per == {"frontend": 0.5, "frontend_wakeups": 1.5, "workers": 0.8, "client": 0.2,
                   "frontend_waited": 0.3, "workers_waited": 0.1, "client_waited": 0.05}
    # a process not measured (no /proc, workers not on the host) and an empty run: unknown
    assert math.isnan(cpu_per_request({"frontend": 1.0}, 10)["workers"])
    assert all(math.isnan(v) for v in cpu_per_request({"frontend": 1.0}, 0).values())
    rows = [row(10, 10), row(10, 10)]
    for r, ms in zip(rows, (0.4, 0.6), strict=True):
        r["live"]["cpu"] = cpu_per_request({"frontend": ms * 10}, 10)
        r["sim"]["cpu"] = cpu_per_request({"frontend": 5.0}, 10)
    s = load_summary(100, rows)
    assert s["cpu"]["live"]["frontend"]["mean"] == pytest.approx(0.5)
    assert s["cpu"]["live"]["frontend"]["min"] == pytest.approx(0.4)
    assert s["cpu"]["sim"]["frontend"]["mean"] == pytest.approx(0.5)
    assert "cpu" not in load_summary(100, [row(10, 10)])  # older runs had none


def test_calibration_drift_on_both_sides_of_its_bound() -> None:
    """The median over the loads below saturation of the live event loop's CPU over the
    model's charge: within DRIFT_PCT it held, beyond it drifted; saturated loads (another
    regime: larger batches) and loads without CPU figures do not count."""
    def summary(live_ms: float, charged_ms: float, saturated: bool = False) -> dict[str, Any]:
        rows = [row(10, 10, live_sat=saturated)]
        rows[0]["live"]["cpu"] = cpu_per_request({"frontend": live_ms}, 1)
        rows[0]["sim"]["cpu"] = cpu_per_request({"frontend": charged_ms}, 1)
        return load_summary(100, rows)

    within = 1 + (DRIFT_PCT - 1) / 100
    beyond = 1 + (DRIFT_PCT + 1) / 100
    held = calibration_drift([summary(within, 1.0), summary(within, 1.0), summary(9.0, 1.0,
                                                                                 True)])
    assert held["held"] and held["loads"] == 2
    assert held["live_over_charged_pct"] == pytest.approx(DRIFT_PCT - 1)
    slow = calibration_drift([summary(2 - beyond, 1.0), summary(2 - beyond, 1.0)])
    assert not slow["held"] and slow["live_over_charged_pct"] == pytest.approx(-DRIFT_PCT - 1)
    assert calibration_drift([summary(2 - within, 1.0)])["held"]
    fast = calibration_drift([summary(beyond, 1.0), summary(1.0, 1.0), summary(beyond, 1.0)])
    assert not fast["held"]   # the median of three: two beyond
    assert calibration_drift([load_summary(100, [row(10, 10)])])["held"] is None


def test_engine_figures_count_batches_once() -> None:
    """Two batches (of 2 requests, 4 ms; of 1, 2 ms) and a request refused before any batch:
    the mean over the served requests, the batches counted once each."""
    records = pd.DataFrame({"latency_ms": [5.0, 6.0, 3.0, math.nan],
                            "batch_id": [1, 1, 2, -1],
                            "start_s": [0.010, 0.010, 0.020, math.nan],
                            "finish_s": [0.014, 0.014, 0.022, math.nan]})
    got = engine_figures(records, "latency_ms")
    assert got["server_mean_ms"] == pytest.approx(14 / 3)
    assert got["batch_ms"] == pytest.approx(3.0)
    assert got["batch_size"] == pytest.approx(1.5)
    none = engine_figures(records[records["batch_id"] < 0], "latency_ms")
    assert all(math.isnan(v) for v in none.values())


def test_spread_over_repeats() -> None:
    s = load_summary(100, [row(10, 9), row(10, 10), row(10, 11)])
    assert s["errors"]["mean_pct"]["mean"] == pytest.approx(0.0)
    assert s["errors"]["mean_pct"]["min"] == pytest.approx(-10.0)
    assert s["errors"]["mean_pct"]["max"] == pytest.approx(10.0)
    assert s["errors"]["mean_pct"]["sd"] == pytest.approx(10.0)
    assert s["repeats"] == 3


def test_saturation_point_verdict_and_bisection() -> None:
    assert saturation_verdict(1000.0, 1140.0)["ok"]
    assert not saturation_verdict(1000.0, 1160.0)["ok"]
    assert saturation_verdict(None, 1000.0)["ok"] is None
    runs: list[float] = []

    def sat(rate: float) -> bool:
        runs.append(rate)
        return rate > 700.0

    found = bisect_saturation(sat, 100.0, 1600.0, 12)
    assert found == pytest.approx(700.0, rel=0.01) and len(runs) == 12


def test_load_is_set_by_scaling_every_tenant_rate() -> None:
    data = {"tenants": [{"arrivals": {"type": "poisson", "rate_rps": 30}},
                        {"arrivals": {"type": "poisson", "rate_rps": 10}}]}
    out = at_rate(data, 200, 500)
    assert [t["arrivals"]["rate_rps"] for t in out["tenants"]] == [150, 50]
    assert out["requests"] == 500 and data["tenants"][0]["arrivals"]["rate_rps"] == 30
    with pytest.raises(ConfigError, match="rate_rps"):
        at_rate({"tenants": [{"arrivals": {"type": "azure_functions_2019"}}]}, 100, None)


def test_service_fit_recovers_scale_and_dispatch() -> None:
    prof = load_profile("mnist5k-cpu")
    rows = []
    for i, (m, b) in enumerate([(0, 1), (3, 1), (3, 4), (6, 1), (7, 2), (7, 8)]):
        spec = prof.models[m]
        live_ms = 1.3 * spec.latency_p50(b) + 0.4
        rows.append({"batch_id": i, "model": spec.name, "batch_size": b, "start_s": float(i),
                     "finish_s": i + live_ms / 1000})
    fit = service_fit(pd.DataFrame(rows), prof)
    assert fit["time_scale"] == pytest.approx(1.3) and fit["dispatch_ms"] == pytest.approx(0.4)


# -- the front-end probe's fit -------------------------------------------------------------------
def synthetic_bursts(ingress: float, egress: float, dispatch: float, setup: float,
                     cold: float, cooling: float, worker: float, client: float,
                     noise: float, seed: int = 0, scale: float = 1.0
                     ) -> tuple[list[Burst], dict[int, tuple[int, float]]]:
    """Bursts whose CPU follows the probe's model (plus noise; 0.1 ms for the measurement
    itself, which the empty bursts show): the fit must give the costs back. Batch ``b``'s
    profiled forward pass is 0.2-1.6 ms (eight models in turn); live it takes ``scale``
    times that."""
    rng = np.random.default_rng(seed)

    def forward(batch: int) -> float:
        return 0.2 * (1 + batch % 8)

    def wake(gap: float) -> float:
        return setup + cold * (1 - math.exp(-gap / cooling))

    bursts, batches, rid, bid = [], {}, 0, 0
    for _ in range(20):
        for k in (0, *BURSTS):
            for kind in ("one", "many", "refused"):
                n_ok = 0 if kind == "refused" else k
                n_bad = k if kind == "refused" else 0
                n_b = (1 if k else 0) if kind == "one" else n_ok
                ids = list(range(rid, rid + n_ok))
                for j, i in enumerate(ids):
                    b = bid + (0 if kind == "one" else j)
                    batches[i] = (b, forward(b))
                rid += n_ok
                passes = sum(forward(b) for b in range(bid, bid + n_b))
                # one batch after another: the loop sleeps through each, waking for the
                # answers of the second and later after about a forward pass each
                later = [forward(b) for b in range(bid + 1, bid + n_b)] \
                    if kind == "many" else []
                bid += n_b
                n_wakes = (0 if not k else 1 if kind == "refused" else 3) + len(later)
                wakes = (n_wakes - len(later)) * wake(30.0) + sum(map(wake, later))
                cpu = 0.1 + n_ok * (ingress + egress) + n_bad * ingress + n_b * dispatch \
                    + wakes + rng.normal(0, noise)
                wcpu = scale * passes + n_b * worker + (0.2 if n_b else 0.0) \
                    + rng.normal(0, noise)
                ccpu = k * client + (0.3 if k else 0.0) + rng.normal(0, noise)
                bursts.append(Burst(n_ok, n_bad, (cpu, n_wakes), (wcpu, 0), (ccpu, 0), ids))
        for gap in GAPS_MS:
            # a stream: the loop sleeps longer than the client pauses and, after long
            # pauses, wakes more often than once a request (timers): costs per wake-up
            asleep = gap + 0.3
            wakes = STREAM_REQUESTS + (2 if gap > 10 else 0)
            cpu = 0.1 + STREAM_REQUESTS * ingress + wakes * wake(asleep) \
                + rng.normal(0, noise)
            bursts.append(Burst(0, STREAM_REQUESTS, (cpu, wakes), (0.0, 0),
                                (STREAM_REQUESTS * (client + 0.3), 0), [], asleep,
                                sweep=True))
    return bursts, batches


def test_probe_fit_recovers_the_costs() -> None:
    bursts, batches = synthetic_bursts(0.3, 0.2, 0.25, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.005)
    p = frontend_profile(bursts, batches, cores=2, description="test", zoo_profile="z")
    fe = p.frontend
    assert fe.ingress.mean_ms == pytest.approx(0.3, abs=0.02)
    assert fe.egress.mean_ms == pytest.approx(0.2, abs=0.02)
    assert fe.dispatch.mean_ms == pytest.approx(0.25, abs=0.02)
    assert fe.setup_ms == pytest.approx(0.15, abs=0.03)
    assert fe.cold_ms == pytest.approx(0.4, abs=0.05)
    assert fe.cooling_ms == pytest.approx(3.0, rel=0.3)
    assert p.worker.dispatch_ms == pytest.approx(0.4, abs=0.02)
    assert p.worker.forward_scale == pytest.approx(1.0, abs=0.03)
    assert p.worker.setup_ms + p.worker.cold_ms == pytest.approx(0.2, abs=0.03)
    assert p.client is not None
    assert p.client.send.mean_ms + p.client.receive.mean_ms == pytest.approx(0.3, abs=0.03)
    # other costs, other answer: the fit is not a constant
    other, b2 = synthetic_bursts(0.6, 0.1, 0.0, 0.05, 0.0, 1.0, 0.1, 0.1, noise=0.005,
                                 seed=1)
    q = frontend_profile(other, b2, cores=2, description="test", zoo_profile="z")
    assert q.frontend.ingress.mean_ms == pytest.approx(0.6, abs=0.02)
    assert q.frontend.setup_ms + q.frontend.cold_ms == pytest.approx(0.05, abs=0.03)
    # live forward passes 1.5 times the profiled: the scale, and the same per-batch costs
    slow, b3 = synthetic_bursts(0.3, 0.2, 0.25, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.005,
                                scale=1.5)
    r = frontend_profile(slow, b3, cores=2, description="test", zoo_profile="z")
    assert r.worker.forward_scale == pytest.approx(1.5, abs=0.03)
    assert r.worker.dispatch_ms == pytest.approx(0.4, abs=0.03)
    assert r.worker.setup_ms + r.worker.cold_ms == pytest.approx(0.2, abs=0.03)


def test_dispatch_leaves_out_the_wake_ups_between_a_bursts_batches() -> None:
    # a burst of k batches wakes the loop k - 1 more times (each after a batch's forward
    # pass): the model charges those wake-ups apart, so the cost per batch must not hold them
    bursts, batches = synthetic_bursts(0.3, 0.2, 0.1, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.005)
    p = frontend_profile(bursts, batches, cores=2, description="t", zoo_profile="z")
    assert p.frontend.dispatch.mean_ms == pytest.approx(0.1, abs=0.02)
    # the same CPU with the wake-ups unseen: they land in the cost per batch (method
    # version 20's rule), a wake-up's worth more
    unseen = [dataclasses.replace(b, server=(b.server[0], 3 if b.ok else b.server[1]))
              for b in bursts]
    q = frontend_profile(unseen, batches, cores=2, description="t", zoo_profile="z")
    assert q.frontend.dispatch.mean_ms > 0.1 + 0.15


def busy_streams(ingress: float, egress: float, dispatch: float, batch: int, first_id: int,
                 batches: dict[int, tuple[int, float]], seed: int = 0,
                 wakes: int = 0, wake_ms: float = 0.0) -> list[Burst]:
    """Busy streams (requests back to back) whose loop costs ``ingress`` a refused
    request, ``ingress + egress`` an answered one and ``dispatch`` per batch of ``batch``;
    the answered ones' loop also wakes ``wakes`` times, at ``wake_ms`` each."""
    rng = np.random.default_rng(seed)
    out, rid = [], first_id
    for _ in range(4):
        out.append(Burst(0, BUSY_REQUESTS, (BUSY_REQUESTS * ingress + rng.normal(0, 0.01), 0),
                         (0.0, 0), (0.0, 0), [], 0.0, busy=True))
        ids = list(range(rid, rid + BUSY_REQUESTS))
        for i in ids:
            batches[i] = (10**6 + i // batch, 0.2)
        rid += BUSY_REQUESTS
        cpu = BUSY_REQUESTS * (ingress + egress) + BUSY_REQUESTS / batch * dispatch \
            + wakes * wake_ms
        out.append(Burst(BUSY_REQUESTS, 0, (cpu + rng.normal(0, 0.01), wakes), (50.0, 0),
                         (0.0, 0), ids, 0.0, busy=True))
    return out


def test_hot_costs_come_from_busy_streams_when_there_are_some() -> None:
    # a burst from idle costs each request 0.1 ms more to parse and 0.05 more to answer
    # than back to back: the busy streams' costs are the hot ones, the slopes' are not
    bursts, batches = synthetic_bursts(0.4, 0.25, 0.25, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.005)
    busy = busy_streams(0.3, 0.2, 0.25, 8, max(batches) + 1, batches)
    hot = frontend_profile(bursts + busy, batches, cores=2, description="t", zoo_profile="z")
    assert hot.frontend.ingress.mean_ms == pytest.approx(0.3, abs=0.01)
    # an answered request of a busy stream costs what it cost there (the split between
    # egress and dispatch moves with the wake-ups' price: the sweep's wake-ups pay what
    # the hot ingress leaves of its cold requests, below)
    assert hot.frontend.egress.mean_ms + hot.frontend.dispatch.mean_ms / 8 == pytest.approx(
        0.2 + 0.25 / 8, abs=0.01)
    # and a batch after the first in a burst costs the loop what it did: its dispatch and the
    # wake-up after its forward pass (0.9 ms, the mean), at the fitted curve's price
    f = hot.frontend
    assert f.dispatch.mean_ms + wakeup_ms(f.setup_ms, f.cold_ms, f.cooling_ms,
                                          np.array([0.9]))[0] == pytest.approx(
        0.25 + 0.15 + 0.4 * -math.expm1(-0.9 / 3.0), abs=0.03)
    # without them, the slopes; the busy streams move no other fit (the worker's and the
    # client's costs are the bursts'; only their wake-ups' split follows the loop's)
    cold = frontend_profile(bursts, batches, cores=2, description="t", zoo_profile="z")
    assert cold.frontend.ingress.mean_ms == pytest.approx(0.4, abs=0.02)
    assert cold.frontend.egress.mean_ms == pytest.approx(0.25, abs=0.02)
    assert hot.worker.forward_scale == cold.worker.forward_scale
    assert hot.worker.dispatch_ms == cold.worker.dispatch_ms
    assert hot.worker.setup_ms + hot.worker.cold_ms == pytest.approx(
        cold.worker.setup_ms + cold.worker.cold_ms)
    assert hot.client is not None and cold.client is not None
    assert hot.client.send == cold.client.send
    # the sweep's wake-ups pay what the hot ingress leaves of a stream's cost
    assert hot.frontend.setup_ms > cold.frontend.setup_ms
    # refused busy streams alone: the hot ingress, the answer's share still the slopes'
    alone = frontend_profile(bursts + [b for b in busy if b.refused], batches, cores=2,
                             description="t", zoo_profile="z")
    assert alone.frontend.ingress.mean_ms == pytest.approx(0.3, abs=0.01)
    assert alone.frontend.egress.mean_ms == pytest.approx(0.25, abs=0.02)


def test_an_answered_busy_streams_wake_ups_are_charged_apart() -> None:
    # the scenario's own requests back to back: the loop sleeps now and then while the
    # worker catches up; each wake-up costs the hot ``setup`` the sweep measures, which the
    # model charges per wake-up, so the answer's cost per request leaves it out
    bursts, batches = synthetic_bursts(0.4, 0.25, 0.25, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.005)
    b0 = dict(batches)
    setup = frontend_profile(bursts + busy_streams(0.3, 0.2, 0.25, 8, max(batches) + 1, b0),
                             b0, cores=2, description="t", zoo_profile="z").frontend.setup_ms
    assert setup > 0.1
    for wakes in (0, 100, 400):
        b2 = dict(batches)
        busy = busy_streams(0.3, 0.2, 0.25, 8, max(batches) + 1, b2, wakes=wakes,
                            wake_ms=setup)
        p = frontend_profile(bursts + busy, b2, cores=2, description="t", zoo_profile="z")
        # what an answered request costs beyond its ingress, its batch's share included
        assert p.frontend.egress.mean_ms + p.frontend.dispatch.mean_ms / 8 == pytest.approx(
            0.2 + 0.25 / 8, abs=0.01)
    # the same CPU with the wake-ups unseen: they land in the answer's cost (and the model
    # would charge them twice)
    unseen = [dataclasses.replace(b, server=(b.server[0], 0)) for b in busy]
    q = frontend_profile(bursts + unseen, b2, cores=2, description="t", zoo_profile="z")
    assert q.frontend.egress.mean_ms + q.frontend.dispatch.mean_ms / 8 == pytest.approx(
        0.2 + 0.25 / 8 + 400 * setup / BUSY_REQUESTS, abs=0.01)


def test_the_loops_wait_for_a_core_comes_from_the_steady_streams_alone() -> None:
    bursts, batches = synthetic_bursts(0.3, 0.2, 0.25, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.005)
    assert frontend_profile(bursts, batches, cores=2, description="t",
                            zoo_profile="z").frontend.wait_ms == 0.0
    rng = np.random.default_rng(3)

    def waiting(per_wake: float, lone: float) -> list[Burst]:
        # the sweep's loop waits ``per_wake`` a wake-up (a few streams far off it: the
        # median holds); lone bursts from idle wait ``lone`` in every process
        return [dataclasses.replace(b, waited=(
                    b.server[1] * (per_wake * (5 if rng.random() < 0.1 else 1)), 2.0, 0.01))
                if b.sweep else dataclasses.replace(b, waited=(lone, lone, lone))
                for b in bursts]

    for per_wake in (0.05, 0.12):
        p = frontend_profile(waiting(per_wake, 0.5), batches, cores=2, description="t",
                             zoo_profile="z")
        assert p.frontend.wait_ms == pytest.approx(per_wake, rel=0.01)
        # the workers' and the client's are not measured alone: 0
        assert p.worker.wait_ms == 0.0 and p.client is not None and p.client.wait_ms == 0.0
    # lone bursts' waits (contention) move nothing
    assert loop_wait_ms(waiting(0.12, 5.0)) == pytest.approx(0.12, rel=0.01)
    assert loop_wait_ms([b for b in bursts if not b.sweep]) == 0.0


@pytest.mark.parametrize(("senders", "each", "bodies"), [(64, 8, 256), (64, 2, 256),
                                                       (64, 8, 64), (64, 2, 64)])
def test_a_busy_stream_sends_every_body_evenly(senders: int, each: int, bodies: int) -> None:
    sent = [sender_body(c, j, each, bodies) for c in range(senders) for j in range(each)]
    counts = np.bincount(sent, minlength=bodies)
    # every body as often as the stream's length allows, none more than once over
    assert counts.max() - counts.min() <= 1
    assert (counts > 0).sum() == min(bodies, senders * each)


def test_spread_cost_keeps_the_measured_mean_and_the_single_requests_shape() -> None:
    # single requests from idle cost more than the hot mean, and are skewed
    x = np.array([0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.8, 1.6])
    c = spread_cost(0.2, x)
    assert c.mean_ms == pytest.approx(0.2, rel=0.01)
    q = np.asarray(c.quantiles_ms)
    assert q.min() >= 0
    # the shape, scaled (the quantiles' range; Cost.of may shift them to keep the mean)
    assert q[-1] - q[0] == pytest.approx((1.6 - 0.3) * 0.2 / x.mean(), rel=0.02)
    # added to the mean and clipped at 0 (method version 19), the mean rose
    shifted = np.maximum(0.2 + x - x.mean(), 0.0)
    assert shifted.mean() > 0.2 * 1.1
    # a skew the other way keeps its mean too
    assert spread_cost(0.5, 2.0 - x).mean_ms == pytest.approx(0.5, rel=0.01)
    # nothing to scale: a constant
    for none in (np.array([]), np.zeros(4), np.array([-0.1, -0.2])):
        assert spread_cost(0.3, none).quantiles_ms == [0.3] * len(c.quantiles_ms)
    assert spread_cost(-0.1, x).mean_ms == 0.0


def test_the_busy_streams_send_the_scenarios_own_targets() -> None:
    data = yaml.safe_load(CONFIG.read_text())
    t = scenario_targets(data, CONFIG.parent, 64)
    assert t is not None and len(t) == 64
    accs = {a for a, _ in t}
    assert accs <= {93.0, 96.0, 97.5, 97.8} and len(accs) > 1
    assert all(2.0 <= lat <= 12.0 for _, lat in t)
    assert scenario_targets(data, CONFIG.parent, 64) == t  # the scenario's seed: the same
    # another scenario, other targets; none without tenants (the fastest model by name)
    other = {**data, "tenants": [{**data["tenants"][0],
                                  "slo": {"accuracy": {"type": "choice", "values": [90]},
                                          "latency_ms": {"type": "uniform", "low": 50,
                                                         "high": 60}}}]}
    u = scenario_targets(other, CONFIG.parent, 64)
    assert u is not None and all(a == 90.0 and 50 <= lat <= 60 for a, lat in u)
    assert scenario_targets({k: v for k, v in data.items() if k != "tenants"},
                            CONFIG.parent) is None


def heavy_streams(warm: float, worker: float, batch: int, first_id: int,
                  batches: dict[int, tuple[int, float]]) -> list[Burst]:
    """Busy streams for a slow model (1 ms a batch as profiled) whose worker runs
    ``warm`` times the profiled forward pass back to back, plus ``worker`` a batch."""
    out, rid = [], first_id
    for _ in range(3):
        ids = list(range(rid, rid + 128))
        for i in ids:
            batches[i] = (2 * 10**6 + i // batch, 1.0)
        rid += 128
        n_b = 128 / batch
        out.append(Burst(128, 0, (60.0, 0), (n_b * (warm * 1.0 + worker), 0), (0.0, 0), ids,
                         0.0, busy=True, heavy=True))
    return out


@pytest.mark.parametrize("cooling", [3.0, 30.0])
def test_a_workers_hot_forward_passes_come_from_its_busy_streams(cooling: float) -> None:
    # live forward passes 1.5 x the profiled from idle, 1.1 x back to back; in the busy
    # streams the worker also wakes, briefly, for every batch (a wake-up's setup each)
    bursts, batches = synthetic_bursts(0.3, 0.2, 0.25, 0.15, 0.4, cooling, 0.4, 0.3,
                                       noise=0.005, scale=1.5)
    busy = busy_streams(0.3, 0.2, 0.25, 8, max(batches) + 1, batches)
    setup = frontend_profile(bursts + busy, batches, cores=2, description="t",
                             zoo_profile="z").worker.setup_ms
    heavy = heavy_streams(1.1, 0.4 + setup, 8, max(batches) + 1, batches)
    p = frontend_profile(bursts + busy + heavy, batches, cores=2, description="t",
                         zoo_profile="z")
    w = p.worker
    assert w.forward_scale == pytest.approx(1.1, abs=0.03)
    assert w.dispatch_ms == pytest.approx(0.4, abs=0.03)
    # a lone batch from idle (the median forward pass), as cold as the cooling curve says
    # its worker's sleep leaves it, costs what the bursts measured
    lone = [batches[b.ids[0]][1] for b in bursts if b.ok == 1 and not b.busy]
    f = float(np.median(lone))
    cold = -math.expm1(-lone_worker_sleep_ms(30.0) / p.frontend.cooling_ms)
    assert cold < 0.95 if cooling == 30.0 else cold > 0.99
    assert (w.forward_scale * f + w.dispatch_ms) * (1 + w.cold_scale * cold) == pytest.approx(
        1.5 * f + 0.4, rel=0.03)
    # no heavy streams: the scale from idle, nothing cold
    q = frontend_profile(bursts + busy, batches, cores=2, description="t", zoo_profile="z")
    assert q.worker.forward_scale == pytest.approx(1.5, abs=0.03)
    assert q.worker.cold_scale == 0.0
    # back to back as slow as from idle: nothing cold either
    same = heavy_streams(1.5, 0.4 + setup, 8, max(batches) + 1, batches)
    r = frontend_profile(bursts + busy + same, batches, cores=2, description="t",
                         zoo_profile="z")
    assert r.worker.forward_scale == pytest.approx(1.5, abs=0.03)
    assert r.worker.cold_scale == pytest.approx(0.0, abs=0.02)


def test_a_cost_keeps_its_slope_as_mean_under_skewed_noise() -> None:
    """Single requests' costs skewed to the right (exponential noise, mean above median):
    the cost's distribution keeps the slope as its mean (centred on the median it would
    sit mean - median higher)."""
    bursts, batches = synthetic_bursts(0.3, 0.2, 0.25, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.0)
    rng = np.random.default_rng(5)
    skewed = [Burst(b.ok, b.refused, (b.server[0] + rng.exponential(0.2), b.server[1]),
                    b.workers, b.client, b.ids, b.gap_ms, b.sweep) for b in bursts]
    fe = frontend_profile(skewed, batches, cores=2, description="t", zoo_profile="z").frontend
    refused = [b for b in skewed if b.refused and not b.sweep]
    n = np.array([b.refused for b in refused], float)
    cpu = np.array([b.server[0] for b in refused])
    empty = np.median([b.server[0] for b in skewed if not b.ok + b.refused])
    measured = slope(n, cpu - empty)
    singles = cpu[n == 1]
    assert np.mean(singles) - np.median(singles) > 0.03   # the noise is skewed
    assert fe.ingress.mean_ms == pytest.approx(measured, abs=0.005)


def test_probe_config_batches_exceed_every_burst() -> None:
    """No burst fills its batch (each waits for the timer); a larger batch is kept."""
    small = probe_config({"cluster": {"max_batch": 8}})
    assert small["cluster"]["max_batch"] > max(BURSTS)
    assert probe_config({"cluster": {"max_batch": 32}})["cluster"]["max_batch"] == 32
    assert probe_config({})["cluster"]["max_batch"] > max(BURSTS)


def test_probe_config_takes_a_larger_batch_but_not_one_a_burst_fills() -> None:
    """``--max-batch`` grows the busy streams' batches; one a burst would fill is refused,
    naming the option (its boundary: the largest burst + 1 is taken)."""
    assert probe_config({"cluster": {"max_batch": 8}}, max_batch=36)["cluster"]["max_batch"] == 36
    assert probe_config({"cluster": {"max_batch": 32}}, max_batch=9)["cluster"]["max_batch"] == 9
    assert probe_config({}, max_batch=max(BURSTS) + 1)["cluster"]["max_batch"] == max(BURSTS) + 1
    with pytest.raises(UserError, match="largest batch"):
        probe_config({}, max_batch=max(BURSTS))


def test_in_flight_is_checked_on_both_sides() -> None:
    """1 to MAX_IN_FLIGHT, and no more than the open files allow (64 to spare)."""
    for ok in (1, MAX_IN_FLIGHT):
        check_in_flight(ok, 1 << 20)
    check_in_flight(936, 1000)
    for bad, files in ((0, 1 << 20), (MAX_IN_FLIGHT + 1, 1 << 20), (937, 1000)):
        with pytest.raises(UserError, match="--in-flight"):
            check_in_flight(bad, files)


@pytest.mark.parametrize(("in_flight", "heavy", "each"), [
    (BUSY_IN_FLIGHT, False, 8), (BUSY_IN_FLIGHT, True, 2),   # the defaults: 512 and 128
    (16, False, 32), (16, True, 8), (100, False, 8), (256, True, 2), (3, False, 170)])
def test_each_sender_sends_its_share_and_at_least_a_few(in_flight: int, heavy: bool,
                                                       each: int) -> None:
    assert per_sender(in_flight, heavy) == each


def test_probe_config_drops_what_would_refuse_a_busy_stream() -> None:
    limited = {"cluster": {"max_batch": 8, "preload": "none",
                           "shedding": {"deadline": True, "max_pending": 4}},
               "defense": {"type": "gaussian", "sigma": 0.1},
               "api": {"rate_limit_rps": 10.0, "rate_burst": 2, "max_connections": 8,
                       "max_pending": 4, "max_latency_ms": 500.0,
                       "keys": {"web": "0" * 64}}}
    d = probe_config(limited)
    assert "shedding" not in d["cluster"] and d["api"]["max_pending"] is None
    assert d["cluster"]["preload"] == "all" and "defense" not in d
    assert not {"rate_limit_rps", "rate_burst", "max_connections", "keys"} & set(d["api"])
    # the ordinary requests' 1-s target is accepted, the refused ones' still refused
    assert ORDINARY_LATENCY_MS <= d["api"]["max_latency_ms"] < REFUSED_LATENCY_MS
    assert probe_config({"api": {"max_latency_ms": 5000.0}})["api"]["max_latency_ms"] == 5000.0
    assert limited["api"]["rate_limit_rps"] == 10.0   # the scenario itself is untouched
    ServeScenario.model_validate({**d, "zoo": {"profile": "mnist5k-cpu"}})


def test_asleep_per_wakeup() -> None:
    """A window's wall time less what the thread ran and waited for a core, per wake-up;
    no wake-up counts as one, and never below zero."""
    assert asleep_per_wakeup(100.0, 20.0, 10.0, 7) == pytest.approx(10.0)
    assert asleep_per_wakeup(10.0, 4.0, 1.0, 0) == pytest.approx(5.0)
    assert asleep_per_wakeup(10.0, 8.0, 5.0, 3) == 0.0


def test_worker_fit_separates_scale_batch_cost_and_wakeup() -> None:
    """cpu = 1.3 * forward + 0.4 per batch + 0.2 per burst, over bursts of 1-8 batches: all
    three come back; a cold first batch lands in the wake-up, not in the scale."""
    rng = np.random.default_rng(3)
    batches = np.repeat([1.0, 2.0, 4.0, 8.0], 10)
    forward = batches * rng.uniform(0.2, 2.0, len(batches))
    got = worker_fit(forward, batches, 1.3 * forward + 0.4 * batches + 0.2)
    assert got == pytest.approx((1.3, 0.4, 0.2))
    # every model as fast: a burst's forward time moves with its batches and cannot tell
    # the scale from the cost per batch; the spread is judged per batch, the scale stays 1
    same = batches * 1.0
    assert worker_fit(same, batches, same + 0.4 * batches + 0.2) == pytest.approx(
        (1.0, 0.4, 0.2))
    # too little spread between the shortest and the longest forward time per batch, and
    # just enough
    flat = np.full(8, 1.0)
    flat[-1] = SCALE_SPREAD - 0.01
    b = np.ones(8)
    assert worker_fit(flat, b, 5.0 * flat + 0.1)[0] == 1.0
    wide = flat.copy()
    wide[-1] = SCALE_SPREAD
    assert worker_fit(wide, b, 3.0 * wide + 0.1)[0] == pytest.approx(3.0)
    with pytest.raises(UserError, match="no burst ran a batch"):
        worker_fit(np.array([]), np.array([]), np.array([]))
    # a fit that says the live passes are faster than a tenth of the profiled: noise
    assert worker_fit(forward, batches, 0.01 * forward + 0.4 * batches + 5.0)[0] == MIN_SCALE


def test_the_median_pass_is_kept() -> None:
    """Three passes of the probe, one taken in a slow spell: the middle one is kept, whole
    (its dispatch with its ingress); with two, the cheaper."""
    fits = []
    for ingress in (0.3, 0.6, 0.35):
        b, bat = synthetic_bursts(ingress, 0.2, 0.25, 0.15, 0.4, 3.0, 0.4, 0.3, noise=0.005)
        fits.append(frontend_profile(b, bat, cores=2, description="t", zoo_profile="z"))
    costs = [pass_cost_ms(f) for f in fits]
    assert costs[0] < costs[2] < costs[1]
    kept = median_pass(fits)
    assert kept is fits[2]
    assert kept.frontend.ingress.mean_ms == pytest.approx(0.35, abs=0.02)
    assert median_pass(fits[:2]) is fits[0]
    assert median_pass([fits[1]]) is fits[1]
    with pytest.raises(ValueError):
        median_pass([])


def test_cooling_fit_on_both_sides() -> None:
    gaps = np.array(GAPS_MS)
    for tau in (0.5, 5.0, 50.0):
        setup, cold, cooling = cooling_fit(gaps, 0.2 + 0.5 * -np.expm1(-gaps / tau))
        assert (setup, cold) == pytest.approx((0.2, 0.5), abs=0.02)
        assert cooling == pytest.approx(tau, rel=0.1)


def test_repeats_run_repeat_major(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load once, then every load again: a slow spell of the machine then falls on one
    repeat of several loads, not on every repeat of one load."""
    from tests.sim.test_frontend import write_frontend_profile

    fe = write_frontend_profile(tmp_path / "fe.yaml", ingress=0.3, cores=2)
    check = simcheck.Check(CONFIG, tmp_path / "out", profile="mnist5k-cpu",
                           frontend_profile=str(fe), requests=50, repeats=2, progress=False,
                           echo=lambda _: None)
    calls: list[tuple[float, int, str]] = []

    def fake_run(rate: float, repeat: int, kind: str) -> dict[str, Any]:
        calls.append((rate, repeat, kind))
        r = row(10, 10)
        return {"rate_rps": rate, "repeat": repeat, "sim_queue": r["sim"], **r}

    monkeypatch.setattr(check, "run", fake_run)
    out = check.check([100.0, 200.0, 300.0])
    loads = [(rate, r) for rate, r, kind in calls if kind == "load"]
    assert loads == [(100.0, 0), (200.0, 0), (300.0, 0), (100.0, 1), (200.0, 1), (300.0, 1)]
    assert [s["repeats"] for s in out["loads"]] == [2, 2, 2]
    assert out["saturation"]["measured_rps"] is None   # no load saturated the live system


def test_a_profile_beside_the_zoo_from_an_older_probe_is_not_reused(tmp_path: Path) -> None:
    # its costs would be charged by rules they were not measured for (version 21: dispatch)
    import shutil

    from serve.frontend_fit import PROBE_VERSION
    from sim.profiles import resolve_profile_path
    from tests.sim.test_frontend import write_frontend_profile

    zoo = tmp_path / "zoo.yaml"
    shutil.copy(resolve_profile_path("mnist5k-cpu", REPO / "experiments"), zoo)
    beside = write_frontend_profile(tmp_path / "zoo-frontend.yaml", ingress=0.3, cores=2)
    with pytest.raises(UserError, match=f"method version 0, this is {PROBE_VERSION}"):
        simcheck.Check(CONFIG, tmp_path / "out", profile=str(zoo), frontend_profile=None,
                       requests=50, repeats=1, progress=False, echo=lambda _: None)
    # named on the command line it is used as it is; measured by this method, reused
    given = simcheck.Check(CONFIG, tmp_path / "out", profile=str(zoo),
                           frontend_profile=str(beside), requests=50, repeats=1,
                           progress=False, echo=lambda _: None)
    assert given.fe.probe_version == 0
    fe = load_frontend_profile(beside)
    write_yaml(beside, fe.model_copy(update={"probe_version": PROBE_VERSION}).model_dump())
    again = simcheck.Check(CONFIG, tmp_path / "out", profile=str(zoo), frontend_profile=None,
                           requests=50, repeats=1, progress=False, echo=lambda _: None)
    assert again.fe_path == beside and again.fe.probe_version == PROBE_VERSION


# -- a real run ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_small_simcheck_against_a_real_server_and_its_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["warmup_s"] = 0.2
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    kw: dict[str, Any] = {"profile": "mnist5k-cpu", "requests": 200, "repeats": 1,
                          "probe_repeats": 3, "probe_passes": 2,
                          "progress": False, "echo": lambda _: None}
    res = run_simcheck(path, out, [60.0, 150.0], **kw)
    assert [s["rate_rps"] for s in res["loads"]] == [60.0, 150.0]
    for s in res["loads"]:
        # measured, not bounded: how close the simulator comes depends on how busy the
        # machine is (docs/results/simcheck.md has the figures)
        assert math.isfinite(s["errors"]["mean_pct"]["mean"])
        assert 0.0 <= s["errors"]["mix_tvd"]["mean"] <= 1.0
        assert isinstance(s["verdict"]["ok"], bool)
    fe_file = out / "profile" / "mnist5k-cpu-frontend.yaml"
    assert fe_file.is_file() and (out / "profile" / "mnist5k-cpu-frontend.bursts.json").is_file()
    assert res["frontend"]["frontend"]["ingress"]["samples"] >= 1
    assert json.loads((out / "simcheck.json").read_text())["loads"][1]["rate_rps"] == 150.0
    assert "| 150 |" in (out / "simcheck.md").read_text()
    assert (out / "runs" / "live-60-0.parquet").is_file()
    for s in res["loads"]:  # both sides count the event loop's CPU and its wake-ups
        for side in ("live", "sim"):
            assert s["cpu"][side]["frontend"]["mean"] > 0
            assert s["cpu"][side]["frontend_wakeups"]["mean"] > 0
        # and the serving system's own figures, from the server's records and the model's
        assert s["engine"]["live"]["batch_ms"]["mean"] > 0
        assert s["engine"]["sim"]["batch_size"]["mean"] >= 1
    assert "| event loop ms |" in (out / "simcheck.md").read_text()
    assert "| batch size |" in (out / "simcheck.md").read_text()
    assert res["calibration"]["loads"] == 2 and isinstance(res["calibration"]["held"], bool)
    assert "Calibration: below saturation" in (out / "simcheck.md").read_text()
    # the sensitivity band: the slower machine predicts no less latency than the faster
    for s in res["loads"]:
        b = s["speed_band"]
        assert b["figure"] == "mean_ms" and isinstance(b["live_inside"], bool)
        assert s["sim_speed"]["0.95"]["mean_ms"]["mean"] >= s["sim_speed"]["1.05"]["mean_ms"][
            "mean"]
    assert "Sensitivity to the calibration" in (out / "simcheck.md").read_text()

    def no_more_runs(*_: Any, **__: Any) -> Any:
        raise AssertionError("a finished step ran again")

    monkeypatch.setattr(simcheck, "live_server_process", no_more_runs)
    monkeypatch.setattr(simcheck, "measure_frontend", no_more_runs)
    again = run_simcheck(path, out, [60.0, 150.0], **kw)
    assert again["loads"] == res["loads"]


@pytest.mark.parametrize(("args", "says"), [
    (["--loads", "fast"], "--loads"),
    (["--loads", "0"], "positive"),
    (["--profile", "nope"], "nope"),
    (["--repeats", "0"], "--repeats"),
    (["--frontend-profile", "missing.yaml", "--profile", "mnist5k-cpu"], "missing.yaml"),
])
def test_simcheck_cli_bad_input_exits_2(tmp_path: Path, args: list[str], says: str) -> None:
    r = subprocess.run([sys.executable, "-m", "sim", "simcheck", str(CONFIG), "-o",
                        str(tmp_path / "o"), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--zoo", "nope"], "nope"),
    (["--passes", "0"], "--passes"),
    (["--in-flight", "0"], "--in-flight"),
    (["--in-flight", "100000"], "--in-flight"),
    (["--max-batch", "8"], "--max-batch"),
    (["--max-batch", "5000"], "--max-batch"),
])
def test_frontend_profile_cli_bad_input_exits_2(tmp_path: Path, args: list[str],
                                                says: str) -> None:
    """Refused before anything is written (the output's work folder neither)."""
    r = subprocess.run([sys.executable, "-m", "sim", "frontend", "profile", *args,
                        "-o", str(tmp_path / "f.yaml")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())


def test_frontend_profile_options_need_an_output(tmp_path: Path) -> None:
    """A profile measured with --in-flight or --max-batch never lands where zoosim
    simcheck takes this machine's profile from."""
    for option in (["--in-flight", "16"], ["--max-batch", "12"]):
        r = subprocess.run([sys.executable, "-m", "sim", "frontend", "profile", *option],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert r.returncode == 2 and "need -o" in r.stderr, r.stderr
        assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(("options", "in_flight", "max_batch"), [
    ([], BUSY_IN_FLIGHT, None),
    (["--in-flight", "16", "--max-batch", "12"], 16, 12),
])
def test_the_probe_against_a_real_server_takes_its_hot_costs_from_busy_streams(
        tmp_path: Path, options: list[str], in_flight: int, max_batch: int | None) -> None:
    out = tmp_path / "fe.yaml"
    r = subprocess.run([sys.executable, "-m", "sim", "frontend", "profile", str(CONFIG),
                        "--zoo", "mnist5k-cpu", "--repeats", "3", "--passes", "1", *options,
                        "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    profile = load_frontend_profile(out)
    raw = json.loads(out.with_suffix(".bursts.json").read_text())["bursts"]
    busy = [b for b in raw if b["busy"]]
    refused = [b for b in busy if b["refused"]]
    answered = [b for b in busy if b["ok"] and not b["heavy"]]
    heavy = [b for b in busy if b["heavy"]]
    # a round of the sweep (two with 3 repeats) each ends with one busy stream of each kind
    assert len(refused) == len(answered) == len(heavy) == 2
    assert all(b["refused"] == BUSY_REQUESTS and b["ok"] == 0 for b in refused)
    assert all(b["ok"] == BUSY_REQUESTS == len(b["ids"]) for b in answered)
    assert all(b["ok"] == HEAVY_REQUESTS == len(b["ids"]) for b in heavy)
    # the answered busy streams sent the scenario's own requests: the policy chose
    assert "the scenario's own requests (256 targets" in profile.method
    # the probed server took --max-batch; the method line says what the streams ran with
    served = json.loads((tmp_path / ".fe-probe" / "serve.yaml").read_text())
    assert served["cluster"]["max_batch"] == (max_batch or 9)   # the config's 8, at least 9
    assert f"busy streams of {in_flight} requests in flight" in profile.method
    assert f"batches of at most {max_batch or 9}" in profile.method
    assert "in batches of" in profile.method
    # the hot ingress is the refused streams' CPU per request (single requests' spread
    # scaled to it: the mean stays)
    ingress = sum(b["server"][0] for b in refused) / (2 * BUSY_REQUESTS)
    assert ingress > 0
    assert profile.frontend.ingress.mean_ms == pytest.approx(ingress, rel=0.02)
    assert profile.worker.forward_scale > 0 and profile.worker.cold_scale >= 0


def test_simcheck_simulates_the_cores_as_run_queues(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The prediction (``sim``) is made with a run queue per core (method version 24); the
    other model of the cores, a queue for the cores, beside it (``sim_queue``): each
    simulated frame is traced to the host its simulation built."""
    from sim.run import Simulation
    from tests.sim.test_frontend import write_frontend_profile

    fe = write_frontend_profile(tmp_path / "fe.yaml", ingress=0.3, cores=2,
                                client=(0.05, 0.05))
    check = simcheck.Check(CONFIG, tmp_path / "out", profile="mnist5k-cpu",
                           frontend_profile=str(fe), requests=50, repeats=1, progress=False,
                           echo=lambda _: None)
    hosts: list[str] = []         # the model of the cores of each simulation built
    cores_of: dict[int, str] = {}  # and of each frame simulated, by the frame's id
    built, real_simulate, real_figures = (Simulation.__init__, check.simulate,
                                          simcheck.sim_figures)

    def init(self: Simulation, *args: Any, **kwargs: Any) -> None:
        built(self, *args, **kwargs)
        assert self.system.frontend is not None
        hosts.append(type(self.system.frontend.host).__name__)

    def simulate(sc: Any) -> tuple[pd.DataFrame, dict[str, float]]:
        frame, cpu = real_simulate(sc)
        cores_of[id(frame)] = hosts[-1]
        return frame, cpu

    def figures(frame: pd.DataFrame, warmup: float) -> dict[str, Any]:
        return {**real_figures(frame, warmup), "cores": cores_of[id(frame)]}

    monkeypatch.setattr(Simulation, "__init__", init)
    monkeypatch.setattr(check, "simulate", simulate)
    monkeypatch.setattr(simcheck, "sim_figures", figures)
    row = check.run(100.0, 0, "predict")
    assert row["sim"]["cores"] == "RunQueues"
    assert row["sim_queue"]["cores"] == "CoreQueue"
