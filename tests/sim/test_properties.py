"""Properties of the engine and the policies, checked on generated inputs (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import simpy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from defense import DefenseStack
from defense.dp_selection import ExponentialMechanism
from sim.plugins import Context
from sim.policies.infaas import InfaasPolicy
from sim.policies.pareto import ParetoPolicy
from sim.profiles import ZooProfile
from sim.request import Request
from sim.service_time import ProfileTime
from sim.system import ServingSystem
from sim.zoo import Zoo
from tests.helpers import scenario_dict, write_profile
from tests.sim.helpers import build

model_st = st.tuples(st.floats(50, 100), st.floats(0.01, 50))


def _zoo(models: list[tuple[float, float]], time_scale: float = 1.0,
         dispatch_ms: float = 0.0) -> Zoo:
    profile = ZooProfile.model_validate({
        "name": "h", "metadata": {"source": "synthetic"},
        "models": [{"name": f"m{i}", "arch": "t", "params": 1, "accuracy": a,
                    "latency_ms": {1: {"p50": lat, "p99": lat}}, "memory_mb": 1,
                    "load_ms": 0} for i, (a, lat) in enumerate(models)]})
    return Zoo(profile, 1, time_scale=time_scale, dispatch_ms=dispatch_ms)


@given(st.lists(model_st, min_size=1, max_size=12), st.floats(40, 100), st.floats(0.005, 60))
def test_pareto_picks_the_cheapest_feasible_model(models: list[tuple[float, float]],
                                                  acc: float, lat: float) -> None:
    zoo = _zoo(models)
    policy = ParetoPolicy(ParetoPolicy.Params(), Context(zoo=zoo))
    m, feasible = policy.select(Request(0, 0, 0.0, acc, lat), None, 0.0)  # type: ignore[arg-type]
    ok = [i for i, (a, la) in enumerate(models) if a >= acc and la <= lat]
    assert feasible == bool(ok)
    if ok:
        assert zoo.accuracy[m] >= acc, "never picks a model below the accuracy target"
        assert zoo.lat1_ms[m] <= lat
        assert zoo.lat1_ms[m] == min(zoo.lat1_ms[i] for i in ok)


@example(models=[(90.0, 31.3203125)], pick=0, scaled=None)  # was 31.320312500000004 ms
@example(models=[(95.7, 0.1245)], pick=0, scaled=None)          # mnist5k-cpu's m3
@example(models=[(90.0, 31.3203125)], pick=0, scaled=(1.3, 0.4))
@given(models=st.lists(model_st, min_size=1, max_size=12), pick=st.integers(0, 11),
       scaled=st.none() | st.tuples(st.floats(0.1, 20), st.floats(0, 5)))
def test_asking_exactly_a_front_models_spec_is_feasible(
        models: list[tuple[float, float]], pick: int,
        scaled: tuple[float, float] | None) -> None:
    """A request asking exactly a front model's accuracy and batch-1 latency is feasible and
    served by that model (pareto), feasible for DP selection, and met by an idle ``infaas``
    server. Unscaled, the latency asked is the profile's p50 itself, which ``lat1_ms`` keeps
    exactly; with a time scale and a dispatch cost it is the zoo's ``lat1_ms``."""
    zoo = _zoo(models) if scaled is None else _zoo(models, *scaled)
    m = zoo.front[pick % len(zoo.front)]
    lat = models[m][1] if scaled is None else zoo.lat1_ms[m]
    if scaled is None:
        assert zoo.lat1_ms[m] == lat
    req = Request(0, 0, 0.0, zoo.accuracy[m], lat)
    pareto = ParetoPolicy(ParetoPolicy.Params(), Context(zoo=zoo))
    assert pareto.select(req, None, 0.0) == (m, True)  # type: ignore[arg-type]
    dp = ExponentialMechanism(ExponentialMechanism.Params(eps=1.0),
                              Context(zoo=zoo, generator=np.random.default_rng(0)))
    assert dp._done(req, list(dp.models).index(m)) == (m, True)
    infaas = InfaasPolicy(InfaasPolicy.Params(), Context(zoo=zoo))
    idle = ServingSystem(simpy.Environment(), zoo, workers=1, memory_mb=100.0, max_batch=1,
                         batch_timeout_ms=0.0, policy=infaas,
                         defense=DefenseStack([]),
                         service=ProfileTime(ProfileTime.Params(), Context()),
                         preload="all")
    chosen, feasible = infaas.select(req, idle, 0.0)
    assert feasible and zoo.accuracy[chosen] >= zoo.accuracy[m]
    assert zoo.lat1_ms[chosen] <= zoo.lat1_ms[m]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workers=st.integers(1, 4), max_batch=st.integers(1, 8),
       timeout=st.sampled_from([0.0, 0.3, 2.0]), rate=st.floats(200, 5000),
       stop_at=st.floats(0.001, 0.5), preload=st.sampled_from(["all", "spread", "none"]),
       seed=st.integers(0, 2**16))
def test_conservation_at_any_instant(tmp_path: Path, workers: int, max_batch: int,
                                     timeout: float, rate: float, stop_at: float,
                                     preload: str, seed: int) -> None:
    """arrived = completed + in flight, and in flight = queued + in service, at any time."""
    prof = write_profile(tmp_path / "z.yaml", [
        {"name": "a", "accuracy": 80, "latency_ms": {1: 0.5, 8: 2.0}, "memory_mb": 5,
         "load_ms": 1.0},
        {"name": "b", "accuracy": 90, "latency_ms": {1: 1.0, 8: 4.0}, "memory_mb": 5,
         "load_ms": 2.0}])
    d = scenario_dict(prof, seed=seed, requests=3000, policy={"type": "infaas"},
                      cluster={"workers": workers, "max_batch": max_batch,
                               "batch_timeout_ms": timeout, "memory_mb": 6,
                               "preload": preload})
    d["tenants"][0]["arrivals"]["rate_rps"] = rate
    d["tenants"][0]["slo"] = {"accuracy": {"type": "choice", "values": [70, 85]},
                              "latency_ms": {"type": "uniform", "low": 1, "high": 10}}
    sim = build(d)
    sim.env.run(until=stop_at)
    s = sim.system
    queued = sum(len(q) for q in s.queues)
    assert s.arrived == s.completed + s.in_system
    assert sum(r.finish >= 0 for r in s.requests) == s.completed
    assert s.in_system >= queued
    sim.env.run()
    assert s.arrived == s.completed == 3000 and s.in_system == 0
    assert all(not q for q in s.queues)
