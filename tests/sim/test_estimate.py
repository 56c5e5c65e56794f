"""The INFaaS-style latency estimate against the latency a request then gets.

Deterministic service (the profile's medians) and no arrival after the request whose estimate
is checked, so the estimate should be the request's latency exactly.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from sim.request import Request
from sim.system import ServingSystem
from tests.sim.test_timeline import MS, make


def estimates(env: simpy.Environment, system: ServingSystem,
              arrivals: list[tuple[float, int, int]]) -> list[float]:
    """Submit (time ms, model, inputs) requests, each naming its model; return, per request,
    ``estimate_latency_s`` of its model read just before it is submitted (ms)."""
    out: list[float] = []

    def proc() -> Generator[simpy.Event, Any, None]:
        for i, (t_ms, m, size) in enumerate(arrivals):
            yield env.timeout(t_ms * MS - env.now)
            out.append(system.estimate_latency_s(m, env.now) / MS)
            system.submit(Request(i, 0, env.now, 100.0, 1e-3, size=size, model=m))

    env.process(proc())
    env.run()
    return out


def latency_ms(system: ServingSystem, i: int) -> float:
    r = system.requests[i]
    return (r.finish - r.arrival) / MS


def test_own_queue_counted_once_three_inputs_queued() -> None:
    """The reported case: a 1 ms-per-input model (batch b: b ms), max_batch 8, timeout 0.5 ms.
    A 2-input request holds the worker until 2.5 ms; 3 inputs queue behind it; at 1.0 ms a
    fourth request joins their batch of 4 (4 ms), which starts at 2.5 ms (its oldest request
    has waited past the timeout by then): latency 1.5 + 4 = 5.5 ms. The old estimate added the
    3 queued inputs twice (3 ms amortised, and again in the batch of 4) and the whole timeout:
    9.0 ms."""
    env, s = make([{"name": "a", "lat": {1: 1.0}}], max_batch=8, batch_timeout_ms=0.5)
    est = estimates(env, s, [(0.0, 0, 2), (0.6, 0, 1), (0.7, 0, 1), (0.8, 0, 1), (1.0, 0, 1)])
    assert latency_ms(s, 4) == pytest.approx(5.5)
    assert est[4] == pytest.approx(5.5)
    assert s.requests[4].batch is not None and s.requests[4].batch.size == 4


@pytest.mark.parametrize("timeout_ms", [0.0, 0.5])
def test_full_batches_ahead_then_the_batch_it_joins(timeout_ms: float) -> None:
    """More than max_batch inputs queued: a request waits for the full batches ahead of it,
    then its own partial batch (max_batch 2; 1 ms per input)."""
    # Request 0 (2 inputs, a full batch) holds the worker from 0 to 2 ms; 3, 4 or 5 inputs
    # queue behind it before the last request arrives at 0.9 ms.
    arrivals = [(0.0, 0, 2), (0.1, 0, 1), (0.2, 0, 1), (0.3, 0, 1)]
    for extra in range(3):
        env, s = make([{"name": "a", "lat": {1: 1.0}}], max_batch=2,
                      batch_timeout_ms=timeout_ms)
        run = arrivals + [(0.4 + 0.1 * k, 0, 1) for k in range(extra)] + [(0.9, 0, 1)]
        est = estimates(env, s, run)
        last = len(run) - 1
        assert est[last] == pytest.approx(latency_ms(s, last))


def test_other_models_queued_work_still_counts() -> None:
    """One worker holds a (1 ms) and b (2 ms), no batching: a request for a waits for the
    current batch and the two b requests that arrived before it (oldest first)."""
    env, s = make([{"name": "a", "lat": {1: 1.0}}, {"name": "b", "lat": {1: 2.0}}])
    est = estimates(env, s, [(0.0, 0, 1), (0.1, 1, 1), (0.2, 1, 1), (0.3, 0, 1)])
    assert latency_ms(s, 3) == pytest.approx(1.0 + 2.0 + 2.0 + 1.0 - 0.3)
    assert est[3] == pytest.approx(latency_ms(s, 3))


def test_timeout_counts_from_the_oldest_request_of_the_batch() -> None:
    """An idle worker waiting to fill a batch: a request joining it waits only what is left of
    the oldest request's timeout, not a whole timeout more."""
    env, s = make([{"name": "a", "lat": {1: 1.0, 4: 2.5}}], max_batch=4, batch_timeout_ms=2.0)
    est = estimates(env, s, [(0.0, 0, 1), (0.5, 0, 1), (1.0, 0, 1)])
    lat3 = 1.0 + (2.5 - 1.0) * 2 / 3
    assert latency_ms(s, 2) == pytest.approx(1.0 + lat3)
    assert est[2] == pytest.approx(latency_ms(s, 2))
    assert est[0] == pytest.approx(2.0 + 1.0), "alone: the whole timeout, then a batch of 1"


def test_no_holder_estimate_is_the_load_then_a_batch_of_one() -> None:
    env, s = make([{"name": "a", "lat": {1: 1.0}, "load_ms": 5.0}], preload="none")
    est = estimates(env, s, [(0.0, 0, 1)])
    assert est[0] == pytest.approx(6.0) == latency_ms(s, 0)
