"""The sampling map of a selection that varies (attacks.sampling): its order, stopping rule and
trigger choice on made-up sightings, and the adaptive attacker under spec noise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attacks.config import AttackScenario
from attacks.identify import Cluster
from attacks.run import run_attack
from attacks.sampling import MIN_SIGHTINGS, ORDER_Z, Sightings, window
from sim.config import parse_scenario
from tests.attacks.helpers import attack_scenario, requires_zoo


def sightings(specs: dict[int, list[float]]) -> tuple[Sightings, list[Cluster]]:
    models = [Cluster(i) for i in range(len(specs))]
    seen = Sightings()
    for m, accs in zip(models, specs.values(), strict=True):
        for a in accs:
            seen.add(a, m)
    return seen, models


def test_models_are_ordered_by_the_mean_accuracy_that_drew_them() -> None:
    seen, (a, b, c) = sightings({0: [96.0, 97.0], 1: [90.0, 91.0], 2: [93.0, 94.0]})
    assert seen.order() == [b, c, a]
    assert seen.total == 6


def test_separation_needs_the_means_order_z_standard_errors_apart() -> None:
    # two models, n answers each at accuracies spread +-1 around their means: the standard
    # error of the difference is sqrt(2 var / n); a gap just above z of them separates, just
    # below does not
    n = 10
    spread = np.linspace(-1, 1, n)
    se = float(np.sqrt(2 * np.var(spread, ddof=1) / n))
    for gap, expected in ((ORDER_Z * se * 1.05, True), (ORDER_Z * se * 0.95, False)):
        seen, (a, b) = sightings({0: list(90 + spread), 1: list(90 + gap + spread)})
        assert seen.separated(a, b) is expected


def test_separation_needs_enough_answers_of_both() -> None:
    few = MIN_SIGHTINGS - 1
    seen, (a, b) = sightings({0: [90.0 + 0.01 * i for i in range(few)],
                              1: [99.0 + 0.01 * i for i in range(20)]})
    assert not seen.separated(a, b)


def test_a_model_seen_once_leaves_the_map_unresolved() -> None:
    far = {0: [90.0 + 0.01 * i for i in range(20)], 1: [95.0 + 0.01 * i for i in range(20)]}
    seen, (a, b) = sightings(far)
    assert seen.resolved([a, b], a)
    seen, (a, b, c) = sightings(far | {2: [99.0]})
    assert not seen.resolved([a, b, c], a)   # Good-Turing: an unseen model is still likely


def test_the_trigger_is_where_the_target_answers_most_often() -> None:
    rng = np.random.default_rng(0)
    # the target answers alone in [94, 95]; beside it a rival shares [92, 94]
    target = list(rng.uniform(92, 95, 60))
    rival = list(rng.uniform(90, 94, 60))
    seen, (t, _) = sightings({0: target, 1: rival})
    assert 94 <= seen.best_accuracy(t) <= 95


def test_the_window_spans_the_thresholds_with_a_margin() -> None:
    assert window([]) == (0.0, 100.0)
    assert window([92.0, 96.0]) == (91.0, 97.0)
    assert window([99.5]) == (98.5, 100.0)


def attack(d: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = run_attack(parse_scenario(d, model=AttackScenario)).report
    return report


@requires_zoo
@pytest.mark.parametrize("seed", [1, 3])   # seeds where bisection's map misses a model
def test_the_sampling_attacker_keeps_only_the_targets_answers_under_spec_noise(
        seed: int) -> None:
    d = attack_scenario("fingerprint", budget=200, target="median", verify=True,
                        budget_counts="kept",
                        fingerprint={"repeats": 3, "sample_requests": 600})
    d["seed"] = seed
    d["attacker"]["surrogate"] = {"steps": 2}
    d["defense"] = {"type": "gaussian", "accuracy_sd": 1.0}
    r = attack(d)
    fp = r["fingerprint"]
    # trusting bisection's map (sample_requests 0), these seeds keep mlp_large's answers
    assert fp["selection_varies"] and fp["sampled_requests"] > 0
    assert fp["models_found"] == 7
    assert r["extraction"]["served_by"] == {r["target_model"]: 200}
