"""SLO-aware selection noise (defense.slo_aware): the request's own SLO stays reachable, the
noise moves what an attacker's spec reaches, goodput is judged against the original targets,
common random numbers hold, and bad parameters are user errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from defense import DEFENSES
from sim.plugins import Context
from sim.profiles import load_profile
from sim.request import Request
from sim.zoo import Zoo
from tests.sim.helpers import assert_simulate_refuses, run

ZOO = Zoo(load_profile("mnist5k-cpu"), 8)
FRONT_ACC = [ZOO.accuracy[m] for m in ZOO.front]   # 90.0 ... 97.9


def make(spec: dict[str, Any], seed: int = 0) -> Any:
    params = DEFENSES.params_class(spec["type"]).model_validate(spec)
    return DEFENSES.build(params, Context(zoo=ZOO, generator=np.random.default_rng(seed)))


def request(acc: float, lat_ms: float) -> Request:
    return Request(0, 0, 0.0, acc, lat_ms)


def cheapest_meeting(acc: float, lat_ms: float) -> int | None:
    """The pareto policy's choice when one is feasible (the first front model accurate
    enough), None otherwise."""
    for m in ZOO.front:
        if ZOO.accuracy[m] >= acc:
            return m if ZOO.lat1_ms[m] <= lat_ms else None
    return None


# -- one_sided ---------------------------------------------------------------------------------

def test_one_sided_noise_only_asks_for_more_and_keeps_a_model_that_meets_the_slo() -> None:
    d = make({"type": "one_sided", "accuracy_sd": 3.0}, seed=1)
    rng = np.random.default_rng(2)
    raised = 0
    for _ in range(2000):
        acc, lat = float(rng.uniform(85, 98)), float(rng.uniform(0.05, 3))
        req = request(acc, lat)
        d.perturb(req)
        assert req.acc_spec >= acc and req.lat_spec_ms == lat
        own = cheapest_meeting(acc, lat)
        if own is not None:   # the perturbed spec is met by a model that meets the original
            chosen = cheapest_meeting(req.acc_spec, req.lat_spec_ms)
            assert chosen is not None and ZOO.meets(chosen, acc, lat)
            raised += chosen != own
        else:
            assert req.acc_spec == acc   # nothing to protect: unchanged
    assert raised > 200   # and it does move the selection


def test_one_sided_noise_moves_an_attackers_median_spec_to_more_accurate_models() -> None:
    """The attacker's trigger for cnn_small (95.7): the middle of its interval at the loosest
    latency. sd 1 sends a measurable share of those to lenet5 and above; sd 0 sends none."""
    def share_above(sd: float) -> float:
        d = make({"type": "one_sided", "accuracy_sd": sd}, seed=3)
        hits = 0
        for _ in range(4000):
            req = request(94.45, 10_000.0)
            d.perturb(req)
            hits += req.acc_spec > 95.7
        return hits / 4000

    assert share_above(0.0) == 0.0
    assert 0.15 < share_above(1.0) < 0.35   # P(|N(0,1)| > 1.25) = 0.211


# -- feasible_random --------------------------------------------------------------------------

def test_feasible_random_draws_uniformly_among_models_that_meet_the_targets() -> None:
    d = make({"type": "feasible_random"}, seed=4)
    req = request(93.0, 10_000.0)   # every front model from mlp_large (93.2) up meets it
    ok = [m for m in ZOO.front if ZOO.meets(m, 93.0, 10_000.0)]
    counts = {m: 0 for m in ok}
    for _ in range(5000):
        m, feasible = d.select(req)
        assert feasible and m in counts
        counts[m] += 1
    share = np.asarray(list(counts.values())) / 5000
    assert np.all(np.abs(share - 1 / len(ok)) < 0.03)


def test_feasible_random_misses_at_its_share_and_defers_when_nothing_meets() -> None:
    d = make({"type": "feasible_random", "infeasible_share": 0.2}, seed=5)
    req = request(96.0, 10_000.0)
    misses = sum(not d.select(req)[1] for _ in range(5000)) / 5000
    assert 0.17 < misses < 0.23
    assert make({"type": "feasible_random", "infeasible_share": 1.0}).select(
        request(99.5, 10_000.0)) is None   # no model meets 99.5: the policy chooses


# -- in the engine: goodput against the original targets, common random numbers ------------

def scenario(defense: dict[str, Any], seed: int = 1) -> dict[str, Any]:
    return {"seed": seed, "requests": 4000, "zoo": {"profile": "mnist5k-cpu"},
            "cluster": {"workers": 4, "max_batch": 8, "batch_timeout_ms": 0.2},
            "policy": {"type": "pareto"}, "defense": defense,
            "tenants": [{"name": "t", "arrivals": {"type": "poisson", "rate_rps": 300},
                         "slo": {"accuracy": {"type": "choice", "values": [90, 93, 96]},
                                 "latency_ms": {"type": "uniform", "low": 0.5, "high": 3}}}]}


@pytest.mark.parametrize("defense", [{"type": "one_sided", "accuracy_sd": 2.0},
                                     {"type": "feasible_random"}])
def test_slo_aware_noise_keeps_every_feasible_request_feasible(defense: dict[str, Any]) -> None:
    """Light load: what symmetric noise of the same scale loses to accuracy misses, the
    SLO-aware defenses do not (the share of requests served by an accurate enough model)."""
    base = run(scenario({"type": "none"}))
    aware = run(scenario(defense))
    symmetric = run(scenario({"type": "gaussian", "accuracy_sd": 2.0}))
    met = {k: float(r.records["met_accuracy"].mean())
           for k, r in (("base", base), ("aware", aware), ("symmetric", symmetric))}
    assert met["aware"] == met["base"] == 1.0
    assert met["symmetric"] < 0.9
    assert aware.records["arrival_s"].equals(base.records["arrival_s"])   # same arrivals
    assert not aware.records["model"].equals(base.records["model"])       # other models


@pytest.mark.parametrize(("defense", "needle"), [
    ({"type": "one_sided", "accuracy_sd": -1}, "defense.accuracy_sd"),
    ({"type": "one_sided"}, "defense.accuracy_sd"),
    ({"type": "feasible_random", "infeasible_share": 1.5}, "defense.infeasible_share"),
    ({"type": "feasible_random", "candidates": "some"}, "defense.candidates"),
])
def test_bad_parameters_exit_2(tmp_path: Path, defense: dict[str, Any], needle: str) -> None:
    assert_simulate_refuses(tmp_path, scenario(defense), needle)
