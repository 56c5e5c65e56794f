"""Exact timelines of the engine's mechanisms on tiny hand-checked scenarios."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from defense import DefenseStack
from sim.plugins import Context
from sim.policies.pareto import ParetoPolicy
from sim.profiles import ZooProfile
from sim.request import Request
from sim.service_time import ProfileTime
from sim.system import ServingSystem
from sim.zoo import Zoo

MS = 1e-3


def make(models: list[dict[str, Any]], **cluster: Any) -> tuple[simpy.Environment, ServingSystem]:
    """A system whose model ``i`` has accuracy ``10 * (i + 1)``: a request asking for that
    accuracy is served by model ``i`` (the pareto policy picks the cheapest accurate one)."""
    full = [{"name": m["name"], "arch": "t", "params": 1, "accuracy": 10.0 * (i + 1),
             "latency_ms": {b: {"p50": v, "p99": v} for b, v in m["lat"].items()},
             "memory_mb": m.get("memory_mb", 1.0), "load_ms": m.get("load_ms", 0.0)}
            for i, m in enumerate(models)]
    profile = ZooProfile.model_validate({"name": "t", "metadata": {"source": "synthetic"},
                                         "models": full})
    opts = {"workers": 1, "memory_mb": 100.0, "max_batch": 1, "batch_timeout_ms": 0.0,
            "preload": "all", "replicate": False} | cluster
    zoo = Zoo(profile, opts["max_batch"])
    env = simpy.Environment()
    system = ServingSystem(env, zoo, policy=ParetoPolicy(ParetoPolicy.Params(), Context(zoo=zoo)),
                           defense=DefenseStack([]),
                           service=ProfileTime(ProfileTime.Params(), Context()),
                           **opts)
    return env, system


def inject(env: simpy.Environment, system: ServingSystem,
           arrivals: list[tuple[float, int]], sizes: list[int] | None = None,
           explicit: bool = False) -> None:
    """Submit requests at (time in ms, model index) pairs; ``explicit`` names the model
    instead of asking for its accuracy."""

    def proc() -> Generator[simpy.Event, Any, None]:
        for i, (t_ms, model) in enumerate(arrivals):
            yield env.timeout(t_ms * MS - env.now)
            size = sizes[i] if sizes else 1
            if explicit:
                system.submit(Request(i, 0, env.now, 100.0, 1e-3, size=size, model=model))
            else:
                system.submit(Request(i, 0, env.now, 10.0 * (model + 1), 1e6, size=size))

    env.process(proc())


def rows(system: ServingSystem) -> list[tuple[int, float, float, int, int]]:
    """(id, start ms, finish ms, batch size, worker) of each request, by id."""
    out = []
    for r in system.requests:
        b = r.batch
        assert b is not None
        out.append((r.id, round(b.start / MS, 9), round(b.finish / MS, 9), b.size, b.worker))
    return sorted(out)


def test_batch_waits_for_timeout_from_oldest_request() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0, 4: 2.5}}], max_batch=4, batch_timeout_ms=2.0)
    inject(env, s, [(0.0, 0), (0.5, 0), (1.0, 0)])
    env.run()
    lat3 = 1.0 + (2.5 - 1.0) * 2 / 3  # interpolated between batch 1 and 4
    assert rows(s) == [(i, 2.0, pytest.approx(2.0 + lat3), 3, 0) for i in range(3)]


def test_full_batch_dispatches_at_once_and_rest_waits() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0, 2: 1.5}}], max_batch=2, batch_timeout_ms=10.0)
    inject(env, s, [(0.0, 0), (0.1, 0), (0.2, 0)])
    env.run()
    assert rows(s) == [(0, 0.1, 1.6, 2, 0), (1, 0.1, 1.6, 2, 0), (2, 10.2, 11.2, 1, 0)]


def test_zero_timeout_serves_what_is_waiting() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0, 4: 4.0}}], max_batch=4)
    inject(env, s, [(0.0, 0), (0.2, 0), (0.4, 0), (0.6, 0)])
    env.run()
    # first alone; the next three queued during its service and go together at 1.0 ms
    assert rows(s) == [(0, 0.0, 1.0, 1, 0), (1, 1.0, 4.0, 3, 0), (2, 1.0, 4.0, 3, 0),
                       (3, 1.0, 4.0, 3, 0)]


def test_model_is_loaded_before_it_serves() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0}, "load_ms": 5.0}], preload="none")
    inject(env, s, [(0.0, 0), (1.0, 0)])
    env.run()
    assert rows(s) == [(0, 5.0, 6.0, 1, 0), (1, 6.0, 7.0, 1, 0)]
    assert s.events == [(0.0, "load", 0, 0)]


def test_lru_eviction_when_memory_is_short() -> None:
    models = [{"name": n, "lat": {1: lat}, "load_ms": 2.0, "memory_mb": 6.0}
              for n, lat in zip("abc", (1.0, 1.5, 2.0), strict=True)]
    env, s = make(models, memory_mb=12.0, preload="none")
    # a, b fill memory; a is used again; c must evict the least recently used: b
    inject(env, s, [(0.0, 0), (10.0, 1), (20.0, 0), (30.0, 2), (40.0, 0)])
    env.run()
    kinds = [(round(t / MS, 9), k, m) for t, k, _, m in s.events]
    assert kinds == [(0.0, "load", 0), (10.0, "load", 1), (30.0, "evict", 1), (30.0, "load", 2)]
    assert rows(s)[3] == (3, 32.0, 34.0, 1, 0)
    assert rows(s)[4] == (4, 40.0, 41.0, 1, 0)  # a stayed loaded


def test_workers_bind_late_to_the_shared_queue() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0}}], workers=2)
    inject(env, s, [(0.0, 0), (0.0, 0), (0.0, 0)])
    env.run()
    assert rows(s) == [(0, 0.0, 1.0, 1, 0), (1, 0.0, 1.0, 1, 1), (2, 1.0, 2.0, 1, 0)]


def test_unheld_model_goes_to_least_loaded_worker() -> None:
    models = [{"name": "a", "lat": {1: 5.0}, "memory_mb": 6.0},
              {"name": "b", "lat": {1: 6.0}, "memory_mb": 6.0, "load_ms": 1.0}]
    env, s = make(models, workers=2, memory_mb=6.0, preload="none")
    inject(env, s, [(0.0, 0), (1.0, 1)])
    env.run()
    # a loads on worker 0 (both idle, lowest id); b goes to idle worker 1, not busy worker 0
    assert rows(s) == [(0, 0.0, 5.0, 1, 0), (1, 2.0, 8.0, 1, 1)]


def test_idle_worker_replicates_a_backlogged_model() -> None:
    env, s = make([{"name": "a", "lat": {1: 4.0}, "load_ms": 1.0}], workers=2, preload="none",
                  replicate=True)
    inject(env, s, [(0.0, 0), (0.0, 0), (0.0, 0)])
    env.run()
    # worker 0 loads (1 ms) then serves; the backlog (>= 4 ms) exceeds a load, so worker 1
    # loads a replica too and the queue drains on both
    assert sorted(w for *_, w in rows(s)) == [0, 0, 1]
    assert [k for _, k, _, _ in s.events] == ["load", "load"]


def test_multi_input_requests_batch_by_inputs() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0, 4: 4.0, 8: 8.0}}], max_batch=4,
                  batch_timeout_ms=5.0)
    # at 1 ms, 3 + 2 waiting inputs overflow max_batch 4: the first request leaves at once
    # (the batch is as full as it can get), the second waits for its own timeout (1 + 5 ms);
    # a 6-input request is served whole (a request is never split), in its own batch
    inject(env, s, [(0.0, 0), (1.0, 0), (20.0, 0)], sizes=[3, 2, 6])
    env.run()
    assert rows(s) == [(0, 1.0, 4.0, 3, 0), (1, 6.0, 8.0, 2, 0), (2, 20.0, 26.0, 6, 0)]


def test_explicitly_named_model_bypasses_selection() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0}}, {"name": "b", "lat": {1: 2.0}}])
    inject(env, s, [(0.0, 1), (5.0, 0)], explicit=True)
    env.run()
    assert [(r.model, r.acc_spec) for r in s.requests] == [(1, 100.0), (0, 100.0)]
    assert rows(s) == [(0, 0.0, 2.0, 1, 0), (1, 5.0, 6.0, 1, 0)]
