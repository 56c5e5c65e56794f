"""The workers' queued work: running sums that never drift.

Each worker's queued work is kept as a fixed-point running sum (:mod:`sim.cluster`), updated
for a model's holders on every enqueue, dispatch and placement change. At any instant it must
equal the sum recomputed from scratch from the queues and holders, exactly, and agree with the
plain float sum of the per-model shares to rounding.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import simpy

from sim.cluster import WORK_UNIT
from tests.helpers import scenario_dict, write_profile
from tests.sim.helpers import build


@pytest.mark.parametrize("policy", ["infaas", "pareto"])
def test_running_sums_equal_fresh_sums(tmp_path: Path, policy: str) -> None:
    prof = write_profile(tmp_path / "z.yaml", [
        {"name": "a", "accuracy": 80, "latency_ms": {1: 0.5, 8: 2.0}, "memory_mb": 5,
         "load_ms": 1.0},
        {"name": "b", "accuracy": 90, "latency_ms": {1: 1.0, 8: 4.0}, "memory_mb": 5,
         "load_ms": 2.0},
        {"name": "c", "accuracy": 95, "latency_ms": {1: 1.5, 8: 5.0}, "memory_mb": 5,
         "load_ms": 2.0}])
    d = scenario_dict(prof, seed=3, requests=20000, policy={"type": policy},
                      cluster={"workers": 3, "max_batch": 8, "batch_timeout_ms": 0.5,
                               "memory_mb": 11, "preload": "none", "replicate": True})
    d["tenants"][0]["arrivals"]["rate_rps"] = 5000
    d["tenants"][0]["slo"] = {"accuracy": {"type": "choice", "values": [70, 85, 92]},
                              "latency_ms": {"type": "uniform", "low": 1, "high": 10}}
    sim = build(d)
    env, st = sim.env, sim.system.state
    checks = 0

    def check() -> None:
        nonlocal checks
        st.workers[0].queued_s()  # the sums start at the first read (pareto: maybe here)
        for w in st.workers:
            fresh = sum(st.share(m) for m in w.held)
            assert w.work == fresh
            floats = sum(st.inputs[m] * st.cost_s[m] / len(st.holders[m])
                         for m in w.held if st.inputs[m])
            assert w.queued_s() == pytest.approx(floats, rel=1e-12, abs=1e-15)
        for m in range(len(st.work)):
            assert st.work[m] == st.share(m)
            assert st.work_per_holder_s(m) == st.work[m] * WORK_UNIT
        checks += 1

    def probe() -> Generator[simpy.Event, Any, None]:
        while sim.system.completed < 20000:
            yield env.timeout(0.00037)
            check()

    env.process(probe())
    env.run()
    assert checks > 1000
    assert sum(r.model == 2 for r in sim.system.requests) > 0  # the third model was used
