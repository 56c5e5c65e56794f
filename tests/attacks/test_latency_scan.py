"""The latency scan (attacks.latency_scan): its test on both sides of its thresholds, its
false-split rate when one model answers the whole segment, and a map where it finds the model
that bisection took for its neighbour."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attacks.config import AttackScenario
from attacks.latency_scan import (
    ALPHA,
    LOOKS,
    SCREEN_P,
    distinct,
    find_step,
    nearer_left,
    same_model,
    spread,
    step_test,
)
from attacks.run import run_attack
from sim.config import load_scenario
from tests.attacks.helpers import requires_zoo


def segment(n: int, step_at: float | None, ratio: float, seed: int,
            sd: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """``n`` log latencies over accuracies spread on (90, 100): lognormal noise of ``sd``,
    ``ratio`` times slower above ``step_at`` (no step: None)."""
    rng = np.random.default_rng(seed)
    acc = spread(90.0, 100.0, n, rng)
    lat = rng.normal(0.0, sd, n)
    if step_at is not None:
        lat = lat + np.log(ratio) * (acc > step_at)
    return acc, lat, rng


def test_spread_covers_each_stratum_once_in_random_order() -> None:
    acc = spread(0.0, 10.0, 10, np.random.default_rng(1))
    assert sorted(np.floor(acc).astype(int).tolist()) == list(range(10))
    assert not np.all(np.diff(acc) > 0)   # sent in random order, not sorted


def test_a_twofold_step_is_suggestive_at_12_samples_and_conclusive_at_24() -> None:
    """Two models 2x apart at batch size 1, in little noise: 12 samples cannot be conclusive
    (even a perfect split of 6 and 6 has p near 1 / C(12, 6)), so the scan looks again with
    24, where the split falls between the two groups."""
    acc, lat, rng = segment(12, 95.0, 2.0, seed=1, sd=0.1)
    p, _ = step_test(acc, lat, rng)
    assert ALPHA / LOOKS < p <= SCREEN_P
    acc, lat, rng = segment(24, 95.0, 2.0, seed=1, sd=0.1)
    p, at = step_test(acc, lat, rng)
    assert p <= ALPHA / LOOKS
    below, above = np.sort(acc[acc < 95.0])[-1], np.sort(acc[acc > 95.0])[0]
    assert below < at < above


def test_a_slower_left_side_is_no_step() -> None:
    """The test is one-sided: along the front the more accurate model is the slower one."""
    acc, lat, rng = segment(12, 95.0, 0.5, seed=1, sd=0.1)
    p, _ = step_test(acc, lat, rng)
    assert p > SCREEN_P


def test_a_small_step_in_noise_is_not_conclusive() -> None:
    """1.1x in lognormal noise of sd 0.3 cannot be told from a flat segment with 12 samples."""
    acc, lat, rng = segment(12, 95.0, 1.1, seed=2)
    p, _ = step_test(acc, lat, rng)
    assert p > ALPHA / LOOKS


def test_too_few_samples_decide_nothing() -> None:
    acc, lat, rng = segment(3, 95.0, 10.0, seed=1)
    assert step_test(acc, lat, rng)[0] == 1.0


@pytest.mark.parametrize("n", [12, 24])
def test_one_model_splits_no_more_often_than_the_threshold_allows(n: int) -> None:
    """The permutation p-value is valid: over 200 flat segments (with queueing spikes), the
    share below SCREEN_P is about SCREEN_P, and none reaches ALPHA / LOOKS."""
    ps = []
    for seed in range(200):
        acc, lat, rng = segment(n, None, 1.0, seed=seed)
        spikes = rng.random(n) < 0.1
        lat[spikes] += rng.exponential(2.0, spikes.sum())
        ps.append(step_test(acc, lat, rng)[0])
    below = float(np.mean(np.asarray(ps) < SCREEN_P))
    assert 0.01 <= below <= 0.10
    assert sum(p <= ALPHA / LOOKS for p in ps) <= 1   # 0.1 expected


def test_nearer_left_compares_medians() -> None:
    left, right = np.log([1.0, 1.1, 0.9]), np.log([2.0, 2.2, 1.8])
    assert nearer_left(np.log([1.2, 1.0, 5.0]), left, right)   # a spike does not move a median
    assert not nearer_left(np.log([1.9, 2.1, 0.1]), left, right)


def drain(gen: Generator[Any, Any, Any]) -> Any:
    """Run a scan generator whose requests answer at once (no SimPy): its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def server(step_at: float, ratio: float, seed: int, sd: float = 0.3,
           sent: list[int] | None = None) -> Any:
    """Timings of a fake server: log latency N(0, sd), ``ratio`` times slower above
    ``step_at``; ``sent`` counts the requests of each call."""
    rng = np.random.default_rng(seed)

    def timings(acc: np.ndarray) -> Generator[Any, Any, np.ndarray]:
        if sent is not None:
            sent.append(len(acc))
        out: np.ndarray = rng.normal(0.0, sd, len(acc)) + np.log(ratio) * (acc > step_at)
        return out
        yield  # a generator, as the attacker's requests are

    return timings


def test_the_scan_never_splits_a_flat_segment_over_its_looks() -> None:
    """The whole sequential procedure (12, 24, 48 samples): 200 flat segments, no split
    (ALPHA = 1e-3 bounds the chance per segment)."""
    found = [drain(find_step(90.0, 100.0, 12, np.random.default_rng(s), server(95.0, 1.0, s)))
             for s in range(200)]
    assert found.count(None) == 200


def test_the_scan_finds_a_twofold_step_and_brackets_it() -> None:
    sent: list[int] = []
    step = drain(find_step(90.0, 100.0, 12, np.random.default_rng(1),
                           server(97.0, 2.0, 1, sent=sent)))
    assert step is not None
    at, left, right = step
    assert 96.0 < at < 98.0 and len(left) + len(right) == sum(sent)
    # 12 cannot be conclusive (test_a_twofold_step...): the second look, 24 in all, is
    assert sent == [12, 12]


@pytest.mark.parametrize(("ratio", "same_at_least", "same_at_most"),
                         [(1.0, 0.9, 1.0), (1.3, 0.0, 0.1), (2.0, 0.0, 0.0)])
def test_same_model_needs_evidence_both_ways(ratio: float, same_at_least: float,
                                             same_at_most: float) -> None:
    """One model's latencies over two ranges are taken for one model; neighbours 1.3x and 2x
    apart (log sd 0.3, the study's cv) are not, whatever the first look says."""
    verdicts = [drain(same_model((90.0, 95.0), (95.0, 100.0), 12, np.random.default_rng(s),
                                 server(95.0, ratio, s)))
                for s in range(100)]
    assert same_at_least <= np.mean(verdicts) <= same_at_most


BASE = Path(__file__).resolve().parents[2] / "experiments" / "fingerprint_base.yaml"


def fingerprint(defense: str, scan_samples: int, seed: int = 1001,
                adaptive: bool = True) -> dict[str, Any]:
    """The fingerprinting study's scenario (mnist5k-cpu, lognormal service, 500 benign
    requests/s), mapping only: the adaptive attacker of adaptive_defenses.yaml (3
    identifications per spec, sampling map on call) or the paper's (fingerprint_defenses)."""
    overrides = [f"seed={seed}", f"defense={defense}",
                 f"attacker.fingerprint.scan_samples={scan_samples}"]
    if adaptive:
        overrides += ["attacker.fingerprint.repeats=3", "attacker.fingerprint.sample_requests=2000",
                      "attacker.inputs_per_request=10"]
    sc = load_scenario(BASE, AttackScenario, tuple(overrides))
    assert isinstance(sc, AttackScenario)
    report: dict[str, Any] = run_attack(sc, BASE.parent).report
    return report


FRONT_THRESHOLDS = [90.0, 91.1, 93.2, 95.7, 96.4, 97.6]
"""Where mnist5k-cpu's pareto selection changes model (the front models' accuracies)."""


@requires_zoo
@pytest.mark.parametrize("defense", ["{type: top1}", "{type: gaussian_probs, sd: 0.1}"])
def test_the_scan_finds_the_model_bisection_took_for_its_neighbour(defense: str) -> None:
    """Seed 1001 (found in a fresh-seed sweep): resnet_small answers bisection's probes like
    vgg_small, so without the scan the map has 6 models and its median is mlp_large; the scan
    finds the latency step at resnet_small's threshold (97.6) and the map is whole."""
    target = (93.2, 95.7)   # cnn_small's accuracy interval: the trigger must be inside
    without = fingerprint(defense, 0)["fingerprint"]
    assert without["models_found"] == 6 and without["latency_split"] == 0
    assert not target[0] < without["trigger_spec"]["accuracy"] < target[1]
    with_scan = fingerprint(defense, 12)["fingerprint"]
    assert with_scan["models_found"] == 7 and with_scan["latency_split"] == 1
    assert target[0] < with_scan["trigger_spec"]["accuracy"] < target[1]
    assert with_scan["thresholds"][-1] == pytest.approx(97.6, abs=0.2)


def test_distinct_tells_neighbours_apart_and_one_model_from_itself() -> None:
    """Twice as slow (a front neighbour) with 12 samples each is distinct; two draws of one
    model's latencies are not."""
    rng = np.random.default_rng(4)
    one, again = rng.normal(0, 0.3, 12), rng.normal(0, 0.3, 12)
    assert not distinct(one, again)
    assert distinct(one, again + np.log(2.0))


@requires_zoo
def test_the_scan_moves_a_threshold_bisection_misplaced() -> None:
    """Seed 2 under rounding (found in the fingerprint_defenses study): bisection took one of
    resnet_small's answers for vgg_small's and put their threshold at 96.87 instead of 97.6,
    with 7 models in all. The scan finds the latency step at 97.6; the side below it answers
    the profile as resnet_small does, so it is resnet_small's, not a new model."""
    def near(thresholds: list[float]) -> bool:
        return len(thresholds) == len(FRONT_THRESHOLDS) and all(
            abs(t - f) <= 0.2 for t, f in zip(thresholds, FRONT_THRESHOLDS, strict=True))

    without = fingerprint("{type: rounding, decimals: 1}", 0, seed=2, adaptive=False)
    assert not near(without["fingerprint"]["thresholds"])
    with_scan = fingerprint("{type: rounding, decimals: 1}", 12, seed=2, adaptive=False)
    assert near(with_scan["fingerprint"]["thresholds"])
    assert with_scan["fingerprint"]["models_found"] == 7
    assert with_scan["fingerprint"]["latency_split"] == 0
