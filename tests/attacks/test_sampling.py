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


def timed(seen: Sightings, models: list[Cluster], log_ms: dict[int, list[float]]) -> None:
    for i, xs in log_ms.items():
        for x in xs:
            seen.time(models[i], float(np.exp(x)))


def test_settling_needs_the_means_order_z_standard_errors_apart() -> None:
    # two models, n answers each at accuracies spread +-1 around their means: the standard
    # error of the difference is sqrt(2 var / n); a gap just above z of them settles the
    # order, just below does not
    n = 10
    spread = np.linspace(-1, 1, n)
    se = float(np.sqrt(2 * np.var(spread, ddof=1) / n))
    for gap, expected in ((ORDER_Z * se * 1.05, True), (ORDER_Z * se * 0.95, False)):
        seen, (a, b) = sightings({0: list(90 + spread), 1: list(90 + gap + spread)})
        assert seen.settled(a, b) is expected
        assert not seen.settled(b, a)   # the wrong way round never settles


def test_settling_needs_enough_answers_of_both() -> None:
    few = MIN_SIGHTINGS - 1
    seen, (a, b) = sightings({0: [90.0 + 0.01 * i for i in range(few)],
                              1: [99.0 + 0.01 * i for i in range(20)]})
    assert not seen.settled(a, b)


def test_latency_settles_what_the_accuracies_cannot() -> None:
    # the same accuracies (the exponential mechanism at a loose latency), latencies 2x apart
    n = MIN_SIGHTINGS
    same = list(90 + np.linspace(-5, 5, n))
    seen, (a, b) = sightings({0: same, 1: same})
    assert not seen.settled(a, b)
    spread = list(np.linspace(-0.1, 0.1, n))
    timed(seen, [a, b], {0: [-2 + x for x in spread], 1: [-2 + np.log(2) + x for x in spread]})
    assert seen.by_latency
    assert seen.order() == [a, b]
    assert seen.settled(a, b) and not seen.settled(b, a)


def test_the_latency_orders_the_models_once_every_one_is_timed() -> None:
    # by accuracy b (mean 91) comes first; its latency says it is the slower
    seen, (a, b) = sightings({0: [95.0] * MIN_SIGHTINGS, 1: [91.0] * MIN_SIGHTINGS})
    assert seen.order() == [b, a]
    spread = list(np.linspace(-0.1, 0.1, MIN_SIGHTINGS))
    timed(seen, [a, b], {0: [-2 + x for x in spread], 1: [-1 + x for x in spread[:-1]]})
    assert not seen.by_latency and seen.order() == [b, a]   # b has one timing too few
    seen.time(b, float(np.exp(-1.0)))
    assert seen.by_latency and seen.order() == [a, b]


def test_latency_and_accuracy_disagreeing_settle_nothing() -> None:
    n = 10
    spread = list(np.linspace(-0.5, 0.5, n))
    seen, (a, b) = sightings({0: [95 + x for x in spread], 1: [90 + x for x in spread]})
    timed(seen, [a, b], {0: [-2 + x for x in spread], 1: [-1 + x for x in spread]})
    assert not seen.settled(a, b) and not seen.settled(b, a)


def test_a_model_seen_once_leaves_the_map_unresolved() -> None:
    far = {0: [90.0 + 0.01 * i for i in range(20)], 1: [95.0 + 0.01 * i for i in range(20)]}
    seen, (a, b) = sightings(far)
    assert seen.resolved([a, b], a)
    seen, (a, b, c) = sightings(far | {2: [99.0]})
    assert not seen.resolved([a, b, c], a)   # Good-Turing: an unseen model is still likely


def test_the_targets_rank_must_be_settled_against_every_model() -> None:
    # a and c settled around the target b; d, not next to b but spread widely, overlaps it:
    # b's rank is open
    steady = [0.01 * i for i in range(20)]
    wide = list(np.linspace(-12, 12, 20))
    seen, (a, b, c, d) = sightings({0: [90 + x for x in steady], 1: [94 + x for x in steady],
                                    2: [95 + x for x in steady], 3: [96 + x for x in wide]})
    assert seen.order() == [a, b, c, d]
    assert seen.settled(a, b) and seen.settled(b, c) and not seen.settled(b, d)
    assert not seen.resolved([a, b, c, d], b)
    assert seen.resolved([a, b, c], b)


def test_the_varying_range_leaves_out_where_one_model_answers_alone() -> None:
    seen, _ = sightings({0: [10.0, 50.0, 86.0], 1: [88.0, 93.0], 2: [95.0, 99.0]})
    assert seen.varying() == [88.0, 93.0]
    seen, _ = sightings({0: [10.0, 50.0]})
    assert seen.varying() == []


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


def sampling_attack(seed: int, defense: dict[str, Any], sample_requests: int
                    ) -> dict[str, Any]:
    """The adaptive attacker (3 identifications per spec, sampling map, verification, 200
    kept answers) on the median target under ``defense``."""
    d = attack_scenario("fingerprint", budget=200, target="median", verify=True,
                        budget_counts="kept",
                        fingerprint={"repeats": 3, "sample_requests": sample_requests})
    d["seed"] = seed
    d["attacker"]["surrogate"] = {"steps": 2}
    d["defense"] = defense
    r = attack(d)
    assert r["fingerprint"]["selection_varies"]
    assert 0 < r["fingerprint"]["sampled_requests"] < sample_requests   # resolved
    assert r["fingerprint"]["models_found"] == 7
    assert r["extraction"]["served_by"] == {r["target_model"]: 200}
    return r


@requires_zoo
@pytest.mark.parametrize("seed", [1, 3])   # seeds where bisection's map misses a model
def test_the_sampling_attacker_keeps_only_the_targets_answers_under_spec_noise(
        seed: int) -> None:
    # trusting bisection's map (sample_requests 0), these seeds keep mlp_large's answers
    r = sampling_attack(seed, {"type": "gaussian", "accuracy_sd": 1.0}, 600)
    assert r["fingerprint"]["thresholds"]   # bisection's thresholds set the window


@requires_zoo
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sampling_attacker_keeps_only_the_targets_answers_under_dp_selection(
        seed: int) -> None:
    # the exponential mechanism at accuracy 100 draws among every model: screening sees it,
    # bisection is skipped and batch-1 latencies order the models
    r = sampling_attack(seed, {"type": "exponential", "eps": 100, "latency_scale_ms": 1}, 2000)
    assert r["fingerprint"]["thresholds"] == []
