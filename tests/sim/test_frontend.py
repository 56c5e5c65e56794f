"""The modeled HTTP front-end (``frontend:``, sim/frontend.py; issue 18) against queueing theory
and against hand-worked sample paths. Simulated time only: no wall clock.

A request's way: (client slot, ``send``) -> connection cap -> ``ingress`` on the front-end
station -> the serving system (``arrival``) -> the batch (CPU on the host with
``workers_on_host``) -> ``dispatch`` per batch on the front-end station (its answer read back,
in turn) -> ``egress`` per request on the front-end station -> (``receive``) -> delivered
(``done``). Times in the hand-worked cases are in milliseconds, chosen so that no outcome
hangs on the order of events at the same moment (requests sent together are taken in id
order).
"""

from __future__ import annotations

import math
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from sim.cli import main
from sim.config import FrontendConfig, parse_scenario
from sim.errors import ConfigError
from sim.frontend_profile import (
    ClientCosts,
    Cost,
    FrontendProfile,
    Machine,
    ServerCosts,
    WorkerCosts,
)
from sim.host import CoreQueue, Host, RunQueues
from sim.output import write_yaml
from sim.run import SimResult, Simulation
from tests.helpers import REPO, scenario_dict, write_profile
from tests.sim.helpers import assert_littles_law, assert_simulate_refuses

MS = 1e-3
FRONTEND_COLUMNS = {"sent_s", "done_s", "server_latency_ms"}

CostSpec = float | Cost


# -- helpers --------------------------------------------------------------------------------
def run(data: dict[str, Any], base_dir: Path | None = None) -> SimResult:
    """Validate and run a scenario dict, its relative paths taken from ``base_dir``."""
    return Simulation(parse_scenario(data, base_dir), base_dir).run()


def _cost(c: CostSpec) -> Cost:
    return c if isinstance(c, Cost) else Cost.constant(c)


def write_frontend_profile(path: Path, *, ingress: CostSpec = 0.0, dispatch: CostSpec = 0.0,
                           egress: CostSpec = 0.0, setup_ms: float = 0.0, cores: float = 4.0,
                           client: tuple[CostSpec, CostSpec] | None = None,
                           worker: WorkerCosts | None = None, cold_ms: float = 0.0,
                           cooling_ms: float = 0.0) -> Path:
    """A front-end profile file (costs in ms; a float is a constant cost)."""
    profile = FrontendProfile(
        machine=Machine(cores=cores),
        frontend=ServerCosts(ingress=_cost(ingress), dispatch=_cost(dispatch),
                             egress=_cost(egress), setup_ms=setup_ms, cold_ms=cold_ms,
                             cooling_ms=cooling_ms),
        client=None if client is None else ClientCosts(send=_cost(client[0]),
                                                       receive=_cost(client[1])),
        worker=worker or WorkerCosts())
    write_yaml(path, profile.model_dump())
    return path


def frontend_block(profile: str | Path = "fe.yaml", **over: Any) -> dict[str, Any]:
    """A ``frontend:`` block; by default many cores, accelerators off the host, no cap."""
    return {"profile": str(profile), "cores": 64, "workers_on_host": False,
            "max_connections": None} | over


def zoo(tmp_path: Path, latency_ms: dict[int, float] | None = None) -> Path:
    """A one-model zoo (profiled batch times in ms, 1 ms for batch 1 by default)."""
    return write_profile(tmp_path / "zoo.yaml",
                         [{"name": "m", "latency_ms": latency_ms or {1: 1.0}}])


def trace_scenario(tmp_path: Path, times_ms: list[float], **over: Any) -> dict[str, Any]:
    """A scenario whose one tenant's requests are sent at ``times_ms`` (relative to the first,
    which is at 0): a CSV trace replay, deterministic."""
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp\n" + "".join(f"{t}\n" for t in times_ms))
    profile = over.pop("profile", None) or zoo(tmp_path)
    d = scenario_dict(profile, **over)
    d.pop("requests")
    d["tenants"][0]["arrivals"] = {"type": "csv", "path": str(trace), "unit": "ms"}
    return d


def ms(df: pd.DataFrame, column: str) -> list[float]:
    """A time column of the records in ms (latency columns are in ms already)."""
    values = df[column].to_numpy(dtype=float)
    return list(values if column.endswith("_ms") else values / MS)


def pk_response(lam: float, mean_s: float, second_moment_s2: float) -> float:
    """Mean response time of M/G/1 (Pollaczek-Khinchine): queueing plus service."""
    rho = lam * mean_s
    assert rho < 1
    return lam * second_moment_s2 / (2 * (1 - rho)) + mean_s


def cost_moments_s(cost: Cost) -> tuple[float, float]:
    """E[S] and E[S^2] (s, s^2) of a cost sampled by inverse transform with linear
    interpolation between its 101 quantiles: S is uniform within each of the 100 segments of
    the quantile function, so E[S^2] over the segment from a to b is (a^2 + ab + b^2) / 3."""
    q = np.asarray(cost.quantiles_ms) * MS
    a, b = q[:-1], q[1:]
    return float(((a + b) / 2).mean()), float(((a * a + a * b + b * b) / 3).mean())


CPU_MODELS = typing.get_args(FrontendConfig.model_fields["cpu"].annotation)
"""The models of the host's cores (``frontend.cpu``'s choices)."""


def ingress_response_s(tmp_path: Path, lam: float, ingress: CostSpec, n: int = 50_000,
                       seed: int = 3, cpu: str = "sharing") -> float:
    """Poisson arrivals at ``lam`` through a front-end with only an ingress cost: the mean time
    from sent to entering the serving system (the ingress station's response time). With
    ``cpu`` other than processor sharing, on one core (the front-end alone on it)."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=ingress)
    # a fast zoo: the batches are 0.01 ms; the zero-cost dispatch and egress jobs pass through
    # the same FCFS process, but in no time, so the ingress jobs see an M/G/1 queue
    block = frontend_block() if cpu == "sharing" else frontend_block(cpu=cpu, cores=1)
    d = scenario_dict(zoo(tmp_path, {1: 0.01}), requests=n, seed=seed, frontend=block)
    d["tenants"][0]["arrivals"]["rate_rps"] = lam
    res = run(d, tmp_path)
    df = res.frame
    assert len(df) == n
    assert_littles_law(res.summary)
    return float((df["arrival_s"] - df["sent_s"]).mean())


# -- 1. off by default ----------------------------------------------------------------------
def test_off_by_default_adds_nothing() -> None:
    d = scenario_dict("synthetic-7", requests=3000)
    d["tenants"][0]["arrivals"]["rate_rps"] = 2000
    sim = Simulation(parse_scenario(d))
    assert sim.scenario.frontend is None and sim.system.frontend is None
    res = sim.run()
    df = res.frame
    assert list(df.columns) == [
        "id", "tenant", "arrival_s", "start_s", "finish_s", "model", "worker", "batch_id",
        "batch_size", "size", "acc_req", "lat_req_ms", "acc_spec", "lat_spec_ms", "feasible",
        "latency_ms", "wait_ms", "met_accuracy", "met_latency", "met_slo"]
    assert not FRONTEND_COLUMNS & set(df.columns)
    np.testing.assert_array_equal(df["latency_ms"], (df["finish_s"] - df["arrival_s"]) * 1000)
    assert "shed" not in res.summary
    assert_littles_law(res.summary)


# -- 2. invariance --------------------------------------------------------------------------
def test_free_frontend_changes_no_record(tmp_path: Path) -> None:
    """Every cost zero, many cores, accelerators off the host, no cap, no client: the engine's
    records are those of the run without the front-end, request by request."""
    write_frontend_profile(tmp_path / "fe.yaml", cores=1.0)
    d = scenario_dict("synthetic-7", requests=6000, seed=11, policy={"type": "infaas"})
    d["cluster"] = {"workers": 2, "max_batch": 8, "batch_timeout_ms": 2.0, "memory_mb": 5.0}
    t = d["tenants"][0]
    t["arrivals"]["rate_rps"] = 3000
    t["slo"] = {"accuracy": {"type": "uniform", "low": 85, "high": 97.5},
                "latency_ms": {"type": "uniform", "low": 2, "high": 40}}
    plain = run(d, tmp_path)
    fe = run(d | {"frontend": frontend_block(cores=1e6)}, tmp_path)
    a, b = plain.frame, fe.frame
    assert len(a) == len(b) == 6000
    assert set(b.columns) >= FRONTEND_COLUMNS
    for col in ("id", "tenant", "model", "worker", "batch_id", "batch_size"):
        assert a[col].tolist() == b[col].tolist(), col
    for col in ("arrival_s", "start_s", "finish_s", "latency_ms", "wait_ms"):
        np.testing.assert_allclose(b[col], a[col], rtol=0, atol=1e-9, err_msg=col)
    # sent at its arrival, answered at its batch's end: both latencies are the engine's
    np.testing.assert_allclose(b["sent_s"], b["arrival_s"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(b["done_s"], b["finish_s"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(b["server_latency_ms"], b["latency_ms"], rtol=0, atol=1e-9)
    assert fe.summary["goodput"] == plain.summary["goodput"]
    assert fe.summary["served_by"] == plain.summary["served_by"]
    assert fe.summary["model_loads"] == plain.summary["model_loads"] > 0  # memory is short


# -- 3. the front-end station as M/G/1 ------------------------------------------------------
@pytest.mark.parametrize("cpu", CPU_MODELS)
def test_constant_ingress_is_md1(tmp_path: Path, cpu: str) -> None:
    """lam = 500/s, c = 1 ms (rho = 0.5): P-K for M/D/1 gives 1.5 ms, whichever model of the
    cores (one process alone: each serves it as one core)."""
    lam, c = 500.0, 1.0 * MS
    want = pk_response(lam, c, c * c)
    assert want == pytest.approx(1.5 * MS)
    assert ingress_response_s(tmp_path, lam, 1.0, cpu=cpu) == pytest.approx(want, rel=0.03)


@pytest.mark.parametrize("cpu", CPU_MODELS)
def test_random_ingress_is_mg1(tmp_path: Path, cpu: str) -> None:
    """An ingress cost measured from exponential samples (mean 1 ms), kept as quantiles:
    P-K with the moments of the interpolated quantile distribution, whichever model of the
    cores."""
    rng = np.random.default_rng(7)
    cost = Cost.of(rng.exponential(1.0, 20_000))
    mean, second = cost_moments_s(cost)
    assert mean == pytest.approx(cost.mean_ms * MS)
    assert second > 1.8 * mean * mean  # far from constant: P-K differs from M/D/1's
    lam = 500.0
    want = pk_response(lam, mean, second)
    got = ingress_response_s(tmp_path, lam, cost, cpu=cpu)
    assert got == pytest.approx(want, rel=0.05)
    assert got > 1.15 * pk_response(lam, mean, mean * mean)   # what M/D/1 would say


def test_a_cost_keeps_its_samples_mean() -> None:
    """A few samples skewed to the right: the quantile distribution keeps their mean (the
    interpolation alone gives the extremes half weight and sits lower)."""
    s = np.random.default_rng(2).exponential(0.2, 20)
    assert Cost.of(s).mean_ms == pytest.approx(float(s.mean()), abs=2e-5)


def test_md1_comparison_can_fail(tmp_path: Path) -> None:
    """At rho = 0.8 (lam = 800/s) the mean is P-K's 3 ms, clearly not the 1.5 ms of rho = 0.5."""
    got = ingress_response_s(tmp_path, 800.0, 1.0)
    assert got > 1.5 * pk_response(500.0, MS, MS * MS)
    assert got == pytest.approx(pk_response(800.0, MS, MS * MS), rel=0.1)


# -- the pipeline, hand-worked --------------------------------------------------------------
def test_costs_fall_where_they_should(tmp_path: Path) -> None:
    """Three requests sent at 0 (ingress 1, dispatch 0.5, egress 0.25 ms; setup 0.1 ms for
    a job that wakes the sleeping front-end process), one batch of 3 (3 ms, max_batch 3,
    timeout 100 ms). Ingress: request 0 wakes the process, 0-1.1; requests 1 and 2 follow
    while it is busy: 1.1-2.1, 2.1-3.1. The batch is full at 3.1, taken and handed over
    then (the hand-off costs nothing of its own); it runs 3.1-6.1. Reading its answer back
    (``dispatch``) wakes the process: 6.1-6.7, and the batch is done at 6.7. Egress, per
    request, one after the other, from the moment the process went idle (no wake-up):
    6.7-6.95, 6.95-7.2, 7.2-7.45."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, dispatch=0.5, egress=0.25,
                           setup_ms=0.1)
    d = trace_scenario(tmp_path, [0, 0, 0], profile=zoo(tmp_path, {1: 1.0, 2: 2.0, 3: 3.0}),
                       frontend=frontend_block())
    d["cluster"] = {"workers": 1, "max_batch": 3, "batch_timeout_ms": 100}
    df = run(d, tmp_path).frame
    assert df["id"].tolist() == [0, 1, 2]
    assert df["batch_id"].nunique() == 1 and df["batch_size"].tolist() == [3, 3, 3]
    assert ms(df, "sent_s") == pytest.approx([0, 0, 0], abs=1e-9)
    assert ms(df, "arrival_s") == pytest.approx([1.1, 2.1, 3.1])
    assert ms(df, "start_s") == pytest.approx([3.1] * 3)
    assert ms(df, "finish_s") == pytest.approx([6.7] * 3)   # once its answer is read back
    assert ms(df, "done_s") == pytest.approx([6.95, 7.2, 7.45])
    assert ms(df, "latency_ms") == pytest.approx([6.95, 7.2, 7.45])
    assert ms(df, "server_latency_ms") == pytest.approx([5.6, 4.6, 3.6])


def test_a_busy_frontend_grows_the_batches(tmp_path: Path) -> None:
    """A worker is free only once the front-end has read its answer back, behind the work
    already queued there: how batches grow under load. Ingress 1 ms, dispatch 0.5 ms,
    egress 0; requests sent at 0, 1.2, 2.4, 3.6 ms; every batch takes 1.5 ms (max_batch 4,
    no timeout). Parses 0-1, 1.2-2.2, 2.4-3.4: arrivals 1, 2.2, 3.4. Batch [0] runs 1-2.5;
    its answer waits for request 2's parse and is read 3.4-3.9, so the worker takes [1, 2]
    at 3.9 (a worker free at 2.5 would have taken [1] alone). Request 3 waited from 3.6 for
    that read: parsed 3.9-4.9, and request 0's answer behind it, 4.9. Batch [1, 2] runs
    3.9-5.4, read back 5.4-5.9 (answered then); [3] runs 5.9-7.4, read back 7.4-7.9."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, dispatch=0.5)
    d = trace_scenario(tmp_path, [0, 1.2, 2.4, 3.6], frontend=frontend_block(),
                       profile=zoo(tmp_path, {1: 1.5, 2: 1.5, 3: 1.5, 4: 1.5}))
    d["cluster"] = {"workers": 1, "max_batch": 4, "batch_timeout_ms": 0}
    df = run(d, tmp_path).frame.sort_values("id")
    assert df["batch_size"].tolist() == [1, 2, 2, 1]
    assert ms(df, "arrival_s") == pytest.approx([1, 2.2, 3.4, 4.9])
    assert ms(df, "start_s") == pytest.approx([1, 3.9, 3.9, 5.9])
    assert ms(df, "finish_s") == pytest.approx([3.9, 5.9, 5.9, 7.9])
    assert ms(df, "done_s") == pytest.approx([4.9, 5.9, 5.9, 7.9])


@pytest.mark.parametrize(("times_ms", "done_ms", "wakeups"), [
    # request 0 alone: parsed 0-1.1 (a wake-up, 0.1 ms); its batch waits for the timer, at
    # 6.1, when the loop has slept since 1.1: it wakes for the hand-off, 6.1-6.2; the batch
    # runs 6.2-7.2, its answer is read back 7.2-7.8 (a wake-up and the dispatch)
    ([0.0], [7.8], 3),
    # request 1 sent at 5.5 is being parsed (5.5-6.6) when the timer fires: the hand-off
    # waits for the loop, and runs as the parse ends, with no wake-up; the batch runs
    # 6.6-7.6 and is read back 7.6-8.2 (request 1's own batch wakes the loop twice more,
    # for its timer at 11.6 and its answer)
    ([0.0, 5.5], [8.2], 5),
])
def test_the_batching_timer_needs_the_event_loop(tmp_path: Path, times_ms: list[float],
                                                 done_ms: list[float], wakeups: int) -> None:
    """Ingress 1 ms, dispatch 0.5 ms, setup 0.1 ms per wake-up, 1-ms batches, batching
    timeout 5 ms: a batch the timer takes is handed over by the front-end's event loop (live,
    the timer is one of its callbacks), after whatever it is doing, and wakes it if it
    sleeps."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, dispatch=0.5, setup_ms=0.1)
    d = trace_scenario(tmp_path, times_ms, frontend=frontend_block(),
                       profile=zoo(tmp_path, {1: 1.0, 2: 1.0}))
    d["cluster"] = {"workers": 1, "max_batch": 2, "batch_timeout_ms": 5.0}
    sim = Simulation(parse_scenario(d, tmp_path), tmp_path)
    df = sim.run().frame.sort_values("id")
    assert ms(df, "start_s")[0] == pytest.approx(6.1)   # the engine took the batch then
    assert ms(df, "done_s")[:1] == pytest.approx(done_ms)
    assert sim.system.frontend is not None
    assert sim.system.frontend.cpu_ms()["frontend_wakeups"] == wakeups


@pytest.mark.parametrize(("processes", "arrival_ms"), [(1, [1.0, 2.0, 3.0]),
                                                      (2, [1.0, 1.0, 2.0])])
def test_frontend_processes_share_one_queue(tmp_path: Path, processes: int,
                                            arrival_ms: list[float]) -> None:
    """Three requests sent at 0, ingress 1 ms: one process parses them one after the other;
    two take the first two at once and the third after."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0)
    d = trace_scenario(tmp_path, [0, 0, 0], frontend=frontend_block(processes=processes))
    df = run(d, tmp_path).frame
    assert ms(df, "arrival_s") == pytest.approx(arrival_ms)


def test_busy_processes_take_the_queue_without_waking(tmp_path: Path) -> None:
    """Two processes, setup 0.1 ms, four requests sent at 0, ingress 1 ms: each process wakes
    for one (0-1.1); at 1.1 both are still awake and take the other two at once
    (1.1-2.1)."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, setup_ms=0.1)
    d = trace_scenario(tmp_path, [0, 0, 0, 0], frontend=frontend_block(processes=2))
    arrival = ms(run(d, tmp_path).frame, "arrival_s")
    assert arrival == pytest.approx([1.1, 1.1, 2.1, 2.1])


def test_a_long_sleep_costs_more(tmp_path: Path) -> None:
    """Wake-up cost 0.1 ms plus 0.4 ms after a long sleep, cooling 2 ms, ingress 1 ms:
    request 0 at 0 (a process that never ran is cold: all of it), requests 1 and 2 at 10 and
    14 ms, each
    parsed by a process asleep since it answered the one before (its ``done_s``, no client):
    the longer the sleep, the more the wake-up costs."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, setup_ms=0.1, cold_ms=0.4,
                           cooling_ms=2.0)
    d = trace_scenario(tmp_path, [0, 10, 14], frontend=frontend_block())
    df = run(d, tmp_path).frame
    arrival, done = ms(df, "arrival_s"), ms(df, "done_s")

    def parsed(sent: float, asleep: float) -> float:
        return sent + 1.0 + 0.1 + 0.4 * -math.expm1(-asleep / 2.0)

    assert arrival == pytest.approx([1.5, parsed(10, 10 - done[0]), parsed(14, 14 - done[1])])
    assert arrival[1] - 10 > arrival[2] - 14 + 0.1  # 8 ms asleep cost more than 2.4 ms


# -- 4. processor sharing with the workers --------------------------------------------------
@pytest.mark.parametrize(("cores", "want"), [
    # one core: the batch (1 ms from 1) has 0.5 ms left when ingress 1 starts at 1.5; both
    # run at half speed: the batch ends at 2.5, ingress 1 (0.5 ms left) alone at 3.0; the
    # batch's answer is read back after it, 3.0-3.25: request 0 done (egress 0), request 1
    # taken at 3.25, run 3.25-4.25, read back 4.25-4.5
    (1, {"arrival_s": [1.0, 3.0], "start_s": [1.0, 3.25], "finish_s": [3.25, 4.5],
         "done_s": [3.25, 4.5]}),
    # two cores: nobody waits for a core; the answer of request 0 waits for ingress 1 only
    (2, {"arrival_s": [1.0, 2.5], "start_s": [1.0, 2.75], "finish_s": [2.75, 4.0],
         "done_s": [2.75, 4.0]}),
])
@pytest.mark.parametrize("from_profile", [True, False])
def test_frontend_and_worker_share_the_cores(tmp_path: Path, cores: int,
                                             want: dict[str, list[float]],
                                             from_profile: bool) -> None:
    """Sent at 0 and 1.5 ms; ingress 1 ms, dispatch 0.25 ms; batches of 1 ms of CPU on the
    host. The cores are the profile's machine's unless the block sets them."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, dispatch=0.25,
                           cores=cores if from_profile else 8)
    d = trace_scenario(tmp_path, [0, 1.5], frontend=frontend_block(
        cores=None if from_profile else cores, workers_on_host=True))
    df = run(d, tmp_path).frame
    for col, values in want.items():
        assert ms(df, col) == pytest.approx(values), col
    # the second batch ran alone: its profiled 1 ms, then its answer read back
    assert ms(df, "finish_s")[1] - ms(df, "start_s")[1] == pytest.approx(1.25)
    assert ms(df, "latency_ms") == pytest.approx(
        [values - sent for values, sent in zip(want["done_s"], [0.0, 1.5], strict=True)])


def test_workers_off_the_host_are_not_slowed(tmp_path: Path) -> None:
    """The same one-core case with accelerators: ingress 1 runs alone (1.5-2.5), request
    0's answer is read back after it (2.5-2.75), and request 1's batch takes its profiled
    1 ms (2.75-3.75) before its own read-back (3.75-4.0)."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, dispatch=0.25)
    d = trace_scenario(tmp_path, [0, 1.5],
                       frontend=frontend_block(cores=1, workers_on_host=False))
    df = run(d, tmp_path).frame
    assert ms(df, "arrival_s") == pytest.approx([1.0, 2.5])
    assert ms(df, "start_s") == pytest.approx([1.0, 2.75])
    assert ms(df, "finish_s") == pytest.approx([2.75, 4.0])


def test_worker_dispatch_cost_is_worker_cpu(tmp_path: Path) -> None:
    """A lone request, workers on the host with worker.dispatch_ms 0.5: its 1 ms batch
    holds the worker for 1.5 ms of CPU (from 1 to 2.5 ms)."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0,
                           worker=WorkerCosts(dispatch_ms=0.5))
    d = trace_scenario(tmp_path, [0], frontend=frontend_block(workers_on_host=True))
    df = run(d, tmp_path).frame
    assert ms(df, "finish_s") == pytest.approx([2.5])


def test_forward_scale_lengthens_forward_passes_on_the_host(tmp_path: Path) -> None:
    """worker.forward_scale 1.5 and dispatch_ms 0.5: the lone 1 ms batch holds its worker
    for 1.5 + 0.5 ms of CPU (from 1 to 3 ms); with the workers off the host the profiled
    1 ms stands (the scale was measured for workers sharing the front-end's cores)."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0,
                           worker=WorkerCosts(forward_scale=1.5, dispatch_ms=0.5))
    d = trace_scenario(tmp_path, [0], frontend=frontend_block(workers_on_host=True))
    assert ms(run(d, tmp_path).frame, "finish_s") == pytest.approx([3.0])
    off = run(trace_scenario(tmp_path, [0], frontend=frontend_block()), tmp_path).frame
    assert ms(off, "finish_s") == pytest.approx([2.0])


@pytest.mark.parametrize(("block", "host", "slice_s"), [
    ({}, Host, None), ({"cpu": "queue"}, CoreQueue, math.inf),
    ({"cpu": "queue", "slice_ms": 1.5}, CoreQueue, 0.0015),
    ({"cpu": "run_queues"}, RunQueues, None)])
def test_cpu_and_slice_choose_the_host(tmp_path: Path, block: dict[str, Any], host: type,
                                       slice_s: float | None) -> None:
    """``cpu`` picks the model of the cores, ``slice_ms`` (ms) the queue's time slice (s)."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0)
    d = trace_scenario(tmp_path, [0], frontend=frontend_block(**block))
    fe = Simulation(parse_scenario(d, tmp_path), tmp_path).system.frontend
    assert fe is not None and type(fe.host) is host
    if slice_s is not None:
        assert isinstance(fe.host, CoreQueue) and fe.host.slice_s == pytest.approx(slice_s)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_on_the_host_are_each_others_peers(tmp_path: Path, workers: int) -> None:
    """Each worker's station counts the others as peers (whose batches leave it cold,
    :meth:`sim.host.Station._slept`); one worker has none."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0)
    d = trace_scenario(tmp_path, [0], frontend=frontend_block(workers_on_host=True))
    d["cluster"] = {"workers": workers, "max_batch": 2, "batch_timeout_ms": 0}
    fe = Simulation(parse_scenario(d, tmp_path), tmp_path).system.frontend
    assert fe is not None and fe.workers is not None
    for w in fe.workers:
        assert sorted(map(id, w.peers)) == sorted(id(p) for p in fe.workers if p is not w)


@pytest.mark.parametrize(("speed", "finish_ms"), [(1.0, 3.4), (2.0, 1.7), (0.5, 6.8)])
def test_speed_divides_every_cpu_cost(tmp_path: Path, speed: float, finish_ms: float) -> None:
    """``frontend.speed``: a lone request (ingress 1, forward 1 x 1.5 + 0.5, a worker
    wake-up 0.2, dispatch 0.1, egress 0.1: 3.4 ms of CPU in all) on a machine ``speed``
    times the profiled one's takes 3.4 / speed ms to its answer."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, dispatch=0.1, egress=0.1,
                           worker=WorkerCosts(forward_scale=1.5, dispatch_ms=0.5,
                                              setup_ms=0.2))
    d = trace_scenario(tmp_path, [0], frontend=frontend_block(workers_on_host=True,
                                                              speed=speed))
    assert ms(run(d, tmp_path).frame, "done_s") == pytest.approx([finish_ms])


def test_speed_leaves_workers_off_the_host_alone(tmp_path: Path) -> None:
    """Accelerators off the host: on a machine twice as fast the front-end's costs halve
    (ingress 1, dispatch 0.1, egress 0.1) and the 1 ms batch stays 1 ms: 1.6 ms, not 1.1."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, dispatch=0.1, egress=0.1)
    d = trace_scenario(tmp_path, [0], frontend=frontend_block(speed=2.0))
    assert ms(run(d, tmp_path).frame, "done_s") == pytest.approx([1.6])


def test_at_speed_scales_the_costs_and_keeps_the_times() -> None:
    p = FrontendProfile(
        machine=Machine(cores=2),
        frontend=ServerCosts(ingress=Cost.constant(0.4), dispatch=Cost.constant(0.2),
                             egress=Cost.constant(0.2), setup_ms=0.1, cold_ms=0.4,
                             cooling_ms=5.0, wait_ms=0.1),
        client=ClientCosts(send=Cost.constant(0.1), receive=Cost.constant(0.1),
                           setup_ms=0.05),
        worker=WorkerCosts(forward_scale=1.2, dispatch_ms=0.3, cold_scale=0.2))
    assert p.at_speed(1.0) is p
    q = p.at_speed(2.0)
    assert q.frontend.ingress.mean_ms == pytest.approx(0.2)
    assert (q.frontend.setup_ms, q.frontend.cold_ms) == pytest.approx((0.05, 0.2))
    assert q.client is not None and q.client.send.mean_ms == pytest.approx(0.05)
    assert (q.worker.forward_scale, q.worker.dispatch_ms) == pytest.approx((0.6, 0.15))
    # the scheduler's times and the cold slow-down are not CPU
    assert (q.frontend.cooling_ms, q.frontend.wait_ms, q.worker.cold_scale) == (5.0, 0.1, 0.2)


def test_worker_setup_cost_applies_to_an_idle_worker(tmp_path: Path) -> None:
    """worker.setup_ms 0.2: the lone batch (1 ms) finds its worker process idle."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0,
                           worker=WorkerCosts(setup_ms=0.2))
    d = trace_scenario(tmp_path, [0], frontend=frontend_block(workers_on_host=True))
    df = run(d, tmp_path).frame
    assert ms(df, "finish_s") == pytest.approx([2.2])
    on_gpu = run(trace_scenario(tmp_path, [0], frontend=frontend_block()), tmp_path).frame
    assert ms(on_gpu, "finish_s") == pytest.approx([2.0])   # not on the host: no CPU cost


# -- 5. the connection cap ------------------------------------------------------------------
def test_connection_cap_refuses_at_once(tmp_path: Path) -> None:
    """Cap 1; ingress 1 ms, batch 1 ms: a request is held for 2 ms from its send. Sent at
    0 (held to 2), 0.5, 1.0, 1.9 (refused), 2.1 (held to 4.1), 3.0 (refused), 4.5 (held to
    6.5), 6.6 (held to 8.6)."""
    times = [0, 0.5, 1.0, 1.9, 2.1, 3.0, 4.5, 6.6]
    shed = [False, True, True, True, False, True, False, False]
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0)
    d = trace_scenario(tmp_path, times, frontend=frontend_block(max_connections=1))
    res = run(d, tmp_path)
    df = res.frame
    assert df["id"].tolist() == list(range(8))
    assert df["shed"].tolist() == shed
    refused, served = df[df["shed"]], df[~df["shed"]]
    assert refused["model"].isna().all() and (refused["batch_id"] == -1).all()
    assert ms(refused, "sent_s") == pytest.approx([0.5, 1.0, 1.9, 3.0])
    for col in ("arrival_s", "finish_s", "done_s"):   # answered at once, unserved
        assert ms(refused, col) == pytest.approx(ms(refused, "sent_s")), col
    assert (refused["latency_ms"] == 0).all() and not refused["met_slo"].any()
    assert served["model"].notna().all()
    assert ms(served, "sent_s") == pytest.approx([0, 2.1, 4.5, 6.6])
    assert ms(served, "done_s") == pytest.approx([2.0, 4.1, 6.5, 8.6])
    assert ms(served, "latency_ms") == pytest.approx([2.0] * 4)
    s = res.summary
    assert s["requests"] == 8 and s["shed"] == 4 and s["served_by"] == {"m": 4}
    assert s["goodput"] == pytest.approx(0.5)
    assert_littles_law(s)
    # no cap: nothing refused, and no shed column at all
    free = run(trace_scenario(tmp_path, times, frontend=frontend_block()), tmp_path)
    assert "shed" not in free.frame.columns and "shed" not in free.summary
    assert free.summary["served_by"] == {"m": 8}


# -- 6. the client's connections ------------------------------------------------------------
@pytest.mark.parametrize(("slots", "done_ms", "arrival_ms", "server_ms"), [
    # one connection: request 1 (due at 0.5) waits for request 0's answer, read at 3.0;
    # send 3.0-3.2, ingress 3.2-4.2, batch 4.2-5.7, receive 5.7-6.0
    (1, [3.0, 6.0], [1.2, 4.2], [1.5, 1.5]),
    # enough connections: request 1 is sent at 0.5-0.7; its ingress waits for request 0's
    # (to 1.2): 1.2-2.2; request 0's batch, handed over at once, runs 1.2-2.7, receive
    # 2.7-3.0; request 1's batch 2.7-4.2, receive 4.2-4.5
    (256, [3.0, 4.5], [1.2, 2.2], [1.5, 2.0]),
])
def test_client_connections_delay_sends(tmp_path: Path, slots: int, done_ms: list[float],
                                        arrival_ms: list[float],
                                        server_ms: list[float]) -> None:
    """Sent at 0 and 0.5 ms; send 0.2, ingress 1, batch 1.5, receive 0.3 ms. Request 0:
    send 0-0.2, ingress 0.2-1.2, then its batch (taken at 1.2)."""
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0, client=(0.2, 0.3))
    d = trace_scenario(tmp_path, [0, 0.5], profile=zoo(tmp_path, {1: 1.5}),
                       frontend=frontend_block(client={"max_connections": slots}))
    df = run(d, tmp_path).frame
    assert ms(df, "sent_s") == pytest.approx([0, 0.5], abs=1e-9)
    assert ms(df, "arrival_s") == pytest.approx(arrival_ms)
    assert ms(df, "done_s") == pytest.approx(done_ms)
    # the wait for a connection is in the client's latency, not in the server's
    assert ms(df, "latency_ms") == pytest.approx([done_ms[0], done_ms[1] - 0.5])
    assert ms(df, "server_latency_ms") == pytest.approx(server_ms)


# -- 7. errors ------------------------------------------------------------------------------
def _scenario_with(tmp_path: Path, **frontend: Any) -> dict[str, Any]:
    return scenario_dict("synthetic-7", requests=100, frontend=frontend_block(**frontend))


def _bad_profile(tmp_path: Path, edit: Any) -> Path:
    path = write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0)
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


def _decreasing(data: dict[str, Any]) -> None:
    data["frontend"]["egress"]["quantiles_ms"] = [2.0] * 50 + [1.0] * 51


BAD_PROFILES = {
    "decreasing quantiles": (_decreasing, ["frontend.profile", "frontend.egress.quantiles_ms",
                                           "must not decrease"]),
    "missing ingress": (lambda d: d["frontend"].pop("ingress"),
                        ["frontend.profile", "frontend.ingress", "missing"]),
    "too few quantiles": (lambda d: d["frontend"]["dispatch"].update(quantiles_ms=[1.0] * 5),
                          ["frontend.profile", "frontend.dispatch.quantiles_ms", "101"]),
    "unknown key": (lambda d: d["frontend"].update(ingres=1),
                    ["frontend.profile", "'ingres'", "'ingress'"]),
    "no cores": (lambda d: d["machine"].update(cores=0), ["frontend.profile", "machine.cores"]),
}


def _build(tmp_path: Path, data: dict[str, Any]) -> Simulation:
    return Simulation(parse_scenario(data, tmp_path), tmp_path)


def test_missing_profile_is_a_config_error(tmp_path: Path) -> None:
    d = _scenario_with(tmp_path, profile="nowhere-fe.yaml")
    with pytest.raises(ConfigError, match=r"frontend\.profile") as e:
        _build(tmp_path, d)
    assert "nowhere-fe.yaml" in str(e.value)


@pytest.mark.parametrize("case", BAD_PROFILES)
def test_invalid_profile_names_the_field(tmp_path: Path, case: str) -> None:
    edit, needles = BAD_PROFILES[case]
    _bad_profile(tmp_path, edit)
    with pytest.raises(ConfigError) as e:
        _build(tmp_path, _scenario_with(tmp_path))
    msg = str(e.value)
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert "\n" not in msg.strip()


def test_client_needs_client_costs(tmp_path: Path) -> None:
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0)   # no client costs
    with pytest.raises(ConfigError, match=r"frontend\.client"):
        _build(tmp_path, _scenario_with(tmp_path, client={}))


@pytest.mark.parametrize(("block", "needle"), [
    ({"max_conections": 4}, "max_conections"),
    ({"client": {"max_conections": 4}}, "max_conections"),
    ({"cores": 0}, "frontend.cores"),
    ({"processes": 0}, "frontend.processes"),
    ({"max_connections": 0}, "frontend.max_connections"),
    ({"speed": 0}, "frontend.speed"),
    ({"slice_ms": 1.0}, "slice_ms needs cpu: queue"),
    ({"cpu": "queue", "slice_ms": 0}, "frontend.slice_ms"),
    ({"cpu": "run_queues", "cores": 1.5}, "frontend.cores must be a whole number"),
    ({"cpu": "queue", "cores": 2.5}, "frontend.cores must be a whole number"),
    ({"cpu": "cores"}, "frontend.cpu"),
    ({"cpu": "run_queues", "cores": math.inf}, "frontend.cores: Input should be a finite"),
    ({"cpu": "run_queues", "processes": 2}, "frontend.processes must be 1"),
])
def test_bad_frontend_block_names_the_key(tmp_path: Path, block: dict[str, Any],
                                          needle: str) -> None:
    write_frontend_profile(tmp_path / "fe.yaml", ingress=1.0)
    with pytest.raises(ConfigError, match="frontend") as e:
        parse_scenario(_scenario_with(tmp_path, **block), tmp_path)
    assert needle in str(e.value)


def test_profile_is_required(tmp_path: Path) -> None:
    d = scenario_dict("synthetic-7", requests=100, frontend={"cores": 2})
    with pytest.raises(ConfigError, match=r"frontend\.profile"):
        parse_scenario(d, tmp_path)


@pytest.mark.parametrize(("setup", "needle"), [
    ("missing", "frontend.profile"),
    ("missing ingress", "ingress"),
    ("no client costs", "frontend.client"),
    ("misspelled key", "max_conections"),
])
def test_cli_refuses_with_one_line(tmp_path: Path, setup: str, needle: str) -> None:
    profile = tmp_path / "fe.yaml"
    d = _scenario_with(tmp_path, profile=str(profile))
    if setup == "missing ingress":
        _bad_profile(tmp_path, BAD_PROFILES["missing ingress"][0])
    elif setup != "missing":
        write_frontend_profile(profile, ingress=1.0)
    if setup == "no client costs":
        d["frontend"]["client"] = {"max_connections": 2}
    elif setup == "misspelled key":
        d["frontend"]["max_conections"] = 2
    assert_simulate_refuses(tmp_path, d, needle)


def test_cli_runs_a_frontend_scenario(tmp_path: Path) -> None:
    """A relative profile path is taken from the scenario's folder; the records carry the
    front-end's columns."""
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    write_frontend_profile(cfg_dir / "fe.yaml", ingress=0.2, egress=0.1, cores=2)
    d = scenario_dict("synthetic-7", requests=500, frontend={"profile": "fe.yaml"})
    (cfg_dir / "s.yaml").write_text(yaml.safe_dump(d))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["simulate", str(cfg_dir / "s.yaml"), "-o", str(out),
                                    "--csv", "--quiet"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "requests.csv")
    assert set(df.columns) >= FRONTEND_COLUMNS and len(df) == 500
    assert (df["latency_ms"] >= df["server_latency_ms"] - 1e-9).all()


def test_resolved_config_reruns(tmp_path: Path) -> None:
    """config.resolved.yaml names the front-end profile by an absolute path: run again from
    the output folder, it gives the same records."""
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    write_frontend_profile(cfg_dir / "fe.yaml", ingress=0.2, cores=2)
    d = scenario_dict("synthetic-7", requests=200, frontend={"profile": "fe.yaml"})
    (cfg_dir / "s.yaml").write_text(yaml.safe_dump(d))
    first, second = tmp_path / "out1", tmp_path / "out2"
    runner = CliRunner()
    res = runner.invoke(main, ["simulate", str(cfg_dir / "s.yaml"), "-o", str(first),
                               "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["simulate", str(first / "config.resolved.yaml"), "-o",
                               str(second), "--quiet"])
    assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(pd.read_parquet(first / "requests.parquet"),
                                  pd.read_parquet(second / "requests.parquet"))


# -- 8. determinism -------------------------------------------------------------------------
def _random_run(tmp_path: Path, seed: int) -> SimResult:
    rng = np.random.default_rng(0)   # the profile is fixed; the scenario's seed draws from it
    write_frontend_profile(
        tmp_path / "fe.yaml", ingress=Cost.of(rng.exponential(0.2, 5000)),
        dispatch=Cost.of(rng.uniform(0.01, 0.05, 5000)),
        egress=Cost.of(rng.gamma(2.0, 0.05, 5000)), setup_ms=0.02,
        client=(Cost.of(rng.exponential(0.05, 5000)), Cost.of(rng.exponential(0.05, 5000))),
        worker=WorkerCosts(setup_ms=0.01))
    d = scenario_dict("synthetic-7", requests=4000, seed=seed,
                      frontend=frontend_block(cores=2, workers_on_host=True,
                                              max_connections=8,
                                              client={"max_connections": 16}))
    d["cluster"] = {"workers": 2, "max_batch": 4, "batch_timeout_ms": 1.0}
    d["tenants"][0]["arrivals"]["rate_rps"] = 2500
    d["tenants"][0]["slo"]["accuracy"] = {"type": "uniform", "low": 85, "high": 97}
    return run(d, tmp_path)


def test_same_seed_same_records(tmp_path: Path) -> None:
    a, b = _random_run(tmp_path, 4), _random_run(tmp_path, 4)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.summary["shed"] > 0 and not a.frame["shed"].all()   # the cap was reached
    assert_littles_law(a.summary)
    other = _random_run(tmp_path, 5).frame
    assert not np.array_equal(other["latency_ms"].to_numpy(), a.frame["latency_ms"].to_numpy())
    # the front-end's costs differ too, not only the arrivals
    assert not np.allclose(other["server_latency_ms"].mean(),
                           a.frame["server_latency_ms"].mean())


def test_attack_scenarios_refuse_the_frontend_block(tmp_path: Path) -> None:
    """The simulated attacker submits past the front-end: one line, exit 2, not a crash."""
    attack = yaml.safe_load((REPO / "examples" / "attack-fingerprint.yaml").read_text())
    attack["frontend"] = {"profile": "fe.yaml"}
    path = tmp_path / "attack.yaml"
    path.write_text(yaml.safe_dump(attack))
    r = subprocess.run([sys.executable, "-m", "sim", "validate", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "frontend:" in r.stderr and "Traceback" not in r.stderr
