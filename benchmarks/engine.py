"""Engine speed, in one process: zoosim against a bare SimPy model of the same queue.

(a) a bare SimPy M/M/c model written the usual way (one process per request, a Resource);
(b) zoosim on the same queue (one model, exponential service, no batching);
(c) a standard scenario: 8 workers, dynamic batching up to 16, the 7-model synthetic zoo,
    the infaas policy, 200,000 requests;
(d) the SimPy kernel's ceiling, measured in the same run: timeouts processed per wall second
    by a bare loop (one process yielding timeouts), and the M/M/c ceiling derived from it, at
    two events per request (an arrival and a departure): no engine built on SimPy's event loop
    that schedules both can go faster.
Each figure is the median of ``--repeat`` runs. Prints simulated requests per wall second and
the ratios (b)/(a) (target >= 2.0), (c)/(a) and (b)/(d); also zoosim's SimPy events per
request. ``--peak N`` runs (c) with N requests in a child process and reports its peak memory.

    python benchmarks/engine.py [--requests 200000] [--repeat 3] [--peak 1000000] [--json]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy
import yaml

from sim.config import parse_scenario
from sim.output import json_text
from sim.run import Simulation

RHO, C, MU = 0.8, 4, 1000.0


def bare_simpy_mmc(n: int, seed: int = 1) -> float:
    """The textbook SimPy M/M/c: a source spawning one customer process per request."""
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=C)
    rng = np.random.default_rng(seed)
    inter = rng.exponential(1 / (RHO * C * MU), n).tolist()
    service = rng.exponential(1 / MU, n).tolist()
    waits: list[float] = []

    def customer(i: int):  # type: ignore[no-untyped-def]
        arrive = env.now
        with servers.request() as req:
            yield req
            waits.append(env.now - arrive)
            yield env.timeout(service[i])

    def source():  # type: ignore[no-untyped-def]
        for i in range(n):
            yield env.timeout(inter[i])
            env.process(customer(i))

    env.process(source())
    t = time.perf_counter()
    env.run()
    return time.perf_counter() - t


def bare_kernel(n: int) -> float:
    """The kernel alone: one process yielding ``n`` timeouts, nothing else (wall seconds)."""
    env = simpy.Environment()
    delays = np.random.default_rng(1).exponential(1.0, n).tolist()

    def loop() -> Generator[simpy.Event, None, None]:
        timeout = env.timeout
        for d in delays:
            yield timeout(d)

    env.process(loop())
    t = time.perf_counter()
    env.run()
    return time.perf_counter() - t


def zoosim_scenario(kind: str, n: int) -> dict[str, Any]:
    if kind == "mmc":
        return {"seed": 1, "requests": n, "zoo": {"profile": str(_one_model_profile())},
                "cluster": {"workers": C, "max_batch": 1},
                "service_time": {"type": "exponential"}, "policy": {"type": "pareto"},
                "tenants": [{"name": "t", "arrivals": {"type": "poisson",
                                                       "rate_rps": RHO * C * MU},
                             "slo": {"accuracy": {"type": "fixed", "value": 0},
                                     "latency_ms": {"type": "fixed", "value": 1000}}}]}
    return {"seed": 1, "requests": n, "zoo": {"profile": "synthetic-7"},
            "cluster": {"workers": 8, "max_batch": 16, "batch_timeout_ms": 1.0},
            "service_time": {"type": "lognormal", "cv": 0.1}, "policy": {"type": "infaas"},
            "tenants": [
                {"name": "web", "arrivals": {"type": "poisson", "rate_rps": 12000},
                 "slo": {"accuracy": {"type": "choice", "values": [90, 95, 97]},
                         "latency_ms": {"type": "uniform", "low": 2, "high": 20}}},
                {"name": "batch", "arrivals": {"type": "gamma", "rate_rps": 4000, "cv": 3},
                 "slo": {"accuracy": {"type": "fixed", "value": 93},
                         "latency_ms": {"type": "fixed", "value": 50}}}]}


def _one_model_profile() -> Path:
    path = Path(tempfile.gettempdir()) / "zoosim-bench-one-model.yaml"
    path.write_text(yaml.safe_dump({
        "name": "one", "metadata": {"source": "synthetic"},
        "models": [{"name": "m", "arch": "t", "params": 1, "accuracy": 90,
                    "latency_ms": {1: {"p50": 1000 / MU, "p99": 1000 / MU}},
                    "memory_mb": 1, "load_ms": 0}]}))
    return path


def run_zoosim(kind: str, n: int) -> tuple[float, float]:
    """Wall seconds of the event loop alone (no records: the engine, as bare SimPy is the
    kernel), and SimPy events processed per request."""
    sim = Simulation(parse_scenario(zoosim_scenario(kind, n)))
    t = time.perf_counter()
    sim.env.run()
    wall = time.perf_counter() - t
    # SimPy's event-id counter counts the events scheduled, and the ids reserved for
    # arrivals then served without an event (sim.env.Environment.skipped)
    events = next(sim.env._eid) - getattr(sim.env, "skipped", 0)
    return wall, events / n


def median_of(f: Any, repeat: int) -> float:
    """The median of ``repeat`` timings (robust to a noisy machine, unlike the minimum)."""
    return float(statistics.median(f() for _ in range(repeat)))


def peak_memory(n: int) -> None:
    repo = str(Path(__file__).resolve().parents[1])
    code = (f"import resource,sys; sys.path.insert(0, {repo!r}); "
            "from benchmarks.engine import *; from sim.run import Simulation; "
            "from sim.config import parse_scenario; "
            f"s = Simulation(parse_scenario(zoosim_scenario('standard', {n}))).run(); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, s.summary['requests'], "
            "s.summary['wall_time_s'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    print(f"(c) x {int(out[1]):,} requests: peak RSS {int(out[0]) / 1024:.0f} MB, "
          f"event loop {float(out[2]):.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peak", type=int, default=0, help="also measure peak memory at N reqs")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    a = ap.parse_args()
    n = a.requests
    kernel = 2 * n / median_of(lambda: bare_kernel(2 * n), a.repeat)  # timeouts / wall s
    ta = median_of(lambda: bare_simpy_mmc(n), a.repeat)
    tb = median_of(lambda: run_zoosim("mmc", n)[0], a.repeat)
    tc = median_of(lambda: run_zoosim("standard", n)[0], a.repeat)
    ev_b, ev_c = run_zoosim("mmc", n)[1], run_zoosim("standard", n)[1]
    summary = Simulation(parse_scenario(zoosim_scenario("standard", n))).run().summary
    ceiling = kernel / 2
    rows = {"(a) bare SimPy M/M/c": n / ta, "(b) zoosim, same M/M/c": n / tb,
            "(c) standard scenario": n / tc, "(d) kernel M/M/c ceiling": ceiling}
    for k, v in rows.items():
        print(f"{k:<26} {v:>10,.0f} simulated requests / wall s")
    print(f"(d) kernel: {kernel:,.0f} timeouts / wall s; ceiling at 2 events per request")
    print(f"ratio (b)/(a) = {ta / tb:.2f} (target >= 2.0)   (c)/(a) = {ta / tc:.2f}   "
          f"(b)/(d) = {n / tb / ceiling:.2f}")
    print(f"events per request: (b) {ev_b:.3f}   (c) {ev_c:.3f}")
    print(f"(c): goodput {summary['goodput']:.3f}, mean batch {summary['mean_batch_size']:.2f}, "
          f"served by {summary['served_by']}")
    if a.peak:
        peak_memory(a.peak)
    if a.json:
        print(json_text({"a_rps": n / ta, "b_rps": n / tb, "c_rps": n / tc,
                         "kernel_timeouts_per_s": kernel, "d_ceiling_rps": ceiling,
                         "ratio_b_a": ta / tb, "ratio_c_a": ta / tc,
                         "ratio_b_ceiling": n / tb / ceiling,
                         "events_per_request_b": ev_b, "events_per_request_c": ev_c,
                         "repeat": a.repeat, "statistic": "median",
                         "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
                        indent=None))


if __name__ == "__main__":
    main()
