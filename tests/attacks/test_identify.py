"""attacks.identify.Identifier on synthetic clusters (no simulation): each threshold from both
sides, probe choice, the collision estimate; and identification_accuracy on hand-made pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attacks.fingerprint import identification_accuracy
from attacks.identify import EXACT, MISS, Cluster, Identifier

K, CLASSES = 8, 10
PROBES = np.arange(K, dtype=np.int64)
LOG_SPREAD = (-0.2, -0.1, 0.0, 0.1, 0.2)


def probabilities(seed: int, k: int = K) -> np.ndarray:
    """k random probability rows (Dirichlet), a model's answers on k probes."""
    out: np.ndarray = np.random.default_rng(seed).dirichlet(np.ones(CLASSES), size=k)
    return out


def one_hot(labels: list[int]) -> np.ndarray:
    out: np.ndarray = np.eye(CLASSES)[labels]
    return out


def exact_identifier(*answers: np.ndarray) -> tuple[Identifier, list[Cluster]]:
    """Clusters of deterministic answers (one answer each, no learned spread)."""
    ident = Identifier()
    ident.exact = True
    return ident, [ident.new_cluster(PROBES, a, 1.0) for a in answers]


def noisy_identifier(means: list[np.ndarray], sd: float, n: int = 10, seed: int = 0,
                     latencies: list[float] | None = None
                     ) -> tuple[Identifier, list[Cluster]]:
    """Clusters learned from ``n`` noisy answers each (Gaussian, ``sd``) through ``assign``,
    which learns the same-model spread; cluster i answers with latency ``latencies[i]`` ms
    times exp(-0.2, -0.1, 0, 0.1, 0.2, ...): log spread 0.1 (robust sd 1.4826 * 0.1)."""
    rng = np.random.default_rng(seed)
    ident = Identifier()
    lat = latencies or [1.0] * len(means)
    clusters = []
    for m, base in zip(means, lat, strict=True):
        times = [base * math.exp(LOG_SPREAD[i % len(LOG_SPREAD)]) for i in range(n)]
        c = ident.new_cluster(PROBES, m + rng.normal(0, sd, m.shape), times[0])
        for t in times[1:]:
            ident.assign(c, PROBES, m + rng.normal(0, sd, m.shape), t)
        clusters.append(c)
    return ident, clusters


def at_distance(ident: Identifier, c: Cluster, d: float) -> np.ndarray:
    """Answers whose mean per-probe squared distance from ``c``'s mean is exactly ``d``."""
    shift = np.zeros((K, CLASSES))
    shift[:, 0] = math.sqrt(d)
    out: np.ndarray = c.mean(PROBES) + shift
    assert ident.distance(c, PROBES, out) == pytest.approx(d)
    return out


# -- exact answers: equality -----------------------------------------------------------------

def test_exact_answers_identical_is_that_model_differing_is_nobody() -> None:
    a0, a1 = probabilities(0), probabilities(1)
    ident, (c0, c1) = exact_identifier(a0, a1)
    assert ident.noise() == (0.0, 0.0)
    for answers, model in ((a0, c0), (a1, c1)):
        d = ident.decide(PROBES, answers, [1.0])
        assert d.model is model and d.sure
        assert ident.classify(PROBES, answers, 1.0) is model
    # float noise of batched inference (far below EXACT) is still the same model ...
    tiny = a0.copy()
    tiny[0, 0] += 1e-6
    assert ident.distance(c0, PROBES, tiny) < EXACT
    assert ident.decide(PROBES, tiny, [1.0]).model is c0
    # ... a difference above it, on one probe of eight, is another model: nobody known
    other = a0.copy()
    other[3] = a0[3][::-1]
    assert ident.distance(c0, PROBES, other) > EXACT
    d = ident.decide(PROBES, other, [1.0])
    assert d.model is None and d.sure
    assert ident.classify(PROBES, other, 1.0) is None
    small = a0.copy()
    small[0, 0] += 1e-3
    assert ident.decide(PROBES, small, [1.0]).model is None


def test_exact_answers_ignore_latency() -> None:
    """Exact answers decide alone (load makes latency noisy): a 1000x slower identical answer
    is the same model, a differing one at the model's own latency is nobody."""
    a0, a1 = probabilities(0), probabilities(1)
    ident, (c0, _) = exact_identifier(a0, a1)
    assert ident.decide(PROBES, a0, [1000.0, 1000.0, 1000.0]).model is c0
    assert ident.decide(PROBES, probabilities(2), [1.0]).model is None
    assert ident.latency_decided == 0


def test_models_that_never_answered_the_probes_are_no_candidates() -> None:
    ident, (c0,) = exact_identifier(probabilities(0))
    other = np.arange(K, 2 * K, dtype=np.int64)
    assert not c0.knows(other)
    assert ident.decide(other, probabilities(0), [1.0]).model is None


# -- noisy answers: the learned spread ------------------------------------------------------

SD = 0.05


def test_assign_learns_the_spread_of_noisy_answers() -> None:
    ident, _ = noisy_identifier([probabilities(0), probabilities(1)], SD, n=30)
    v, s = ident.noise()
    # one answer's per-probe squared distance from the true mean: CLASSES * SD²
    assert v == pytest.approx(CLASSES * SD ** 2, rel=0.15)
    assert s > 0
    assert len(ident.spread) == 2 * 29 * K   # every answer after a cluster's first, per probe


def test_noisy_answer_within_the_learned_noise_is_identified() -> None:
    means = [probabilities(0), probabilities(1)]
    ident, (c0, c1) = noisy_identifier(means, SD)
    rng = np.random.default_rng(7)
    for _ in range(20):
        for m, c in zip(means, (c0, c1), strict=True):
            fresh = m + rng.normal(0, SD, m.shape)
            assert ident.decide(PROBES, fresh, [1.0]).model is c
            assert ident.classify(PROBES, fresh, 1.0) is c
    # far off (a third model, same noise): nobody
    far = probabilities(2) + rng.normal(0, SD, (K, CLASSES))
    d = ident.decide(PROBES, far, [1.0])
    assert d.model is None and d.sure


def test_noisy_threshold_from_both_sides() -> None:
    """The threshold is z standard deviations of the expected same-model distance."""
    ident, (c0,) = noisy_identifier([probabilities(0)], SD)
    mean, sd = ident.expected(c0, PROBES)
    assert mean > 0 and sd > 0
    z = ident.z
    inside = ident.decide(PROBES, at_distance(ident, c0, mean + 0.95 * z * sd), [1.0])
    assert inside.model is c0 and not inside.sure   # within z but outside z/2: unsure
    close = ident.decide(PROBES, at_distance(ident, c0, mean + 0.45 * z * sd), [1.0])
    assert close.model is c0 and close.sure
    outside = ident.decide(PROBES, at_distance(ident, c0, mean + 1.05 * z * sd), [1.0])
    assert outside.model is None and outside.sure
    # averaging r answers shrinks the noise: the same distance is then too far
    assert ident.decide(PROBES, at_distance(ident, c0, mean + 0.95 * z * sd),
                        [1.0] * 4).model is None


# -- latency ---------------------------------------------------------------------------------

def test_latency_alone_never_makes_a_stranger_of_one_answer() -> None:
    ident, (c0,) = noisy_identifier([probabilities(0)], SD)
    fits = c0.mean(PROBES)   # the answers fit perfectly
    d = ident.decide(PROBES, fits, [1000.0])   # one answer, 1000x slower
    assert d.model is c0 and not d.sure


def test_latency_makes_a_stranger_of_several_answers_far_from_every_fitting_model() -> None:
    """Cluster latencies: 1 ms with log spread 0.1 (robust sd 0.148); with three answers the
    standard error is 1.25 * 0.148 * sqrt(1/3 + 1/10) = 0.122 in log latency, so z = 4
    standard errors is a factor exp(0.488) = 1.63 and 2z = 8 a factor exp(0.976) = 2.65."""
    ident, (c0,) = noisy_identifier([probabilities(0)], SD)
    fits = c0.mean(PROBES)
    far = ident.decide(PROBES, fits, [10.0] * 3)           # 19 standard errors
    assert far.model is None and far.sure
    assert ident._latency_z(c0, K, [10.0] * 3) == pytest.approx(math.log(10) / 0.1217, rel=0.01)
    between = ident.decide(PROBES, fits, [2.2] * 3)        # 6.5: beyond z, within 2z
    assert between.model is c0 and not between.sure
    near = ident.decide(PROBES, fits, [1.0] * 3)
    assert near.model is c0 and near.sure
    # two answers are not "several"
    assert ident.decide(PROBES, fits, [10.0] * 2).model is c0


def test_latency_decides_between_models_that_answer_alike() -> None:
    same = probabilities(0)
    ident, (fast, slow) = noisy_identifier([same, same], SD, latencies=[1.0, 100.0])
    answer = 0.5 * (fast.mean(PROBES) + slow.mean(PROBES))
    assert ident.decide(PROBES, answer, [100.0]).model is slow
    assert ident.decide(PROBES, answer, [1.0]).model is fast
    assert ident.latency_decided == 2
    # without latency the answers cannot decide: the nearest, unsure
    blind = Identifier(latency=False)
    blind.clusters, blind.spread = ident.clusters, ident.spread
    d = blind.decide(PROBES, answer, [100.0])
    assert d.model in (fast, slow) and not d.sure
    assert blind.classify(PROBES, answer, 100.0) is None


# -- probe choice ----------------------------------------------------------------------------

def graded_pair(ident: Identifier, n: int = 16) -> tuple[Cluster, Cluster, np.ndarray]:
    """Two exact-answer clusters on probes 0..n-1 that differ on probe j by an amount growing
    with j (probe n-1 most)."""
    probes = np.arange(n, dtype=np.int64)
    a = np.full((n, CLASSES), 1.0 / CLASSES)
    b = a.copy()
    gap = np.linspace(0.01, 0.4, n)
    b[:, 0] += gap
    b[:, 1] -= gap
    ca, cb = ident.new_cluster(probes, a, 1.0), ident.new_cluster(probes, b, 1.0)
    return ca, cb, probes


def learn_noise(ident: Identifier, sd: float, n: int = 20) -> None:
    """Learn a spread of ``sd`` from a cluster on probes far from the others' (so it changes
    neither their means nor the collision estimate)."""
    rng = np.random.default_rng(1)
    probes = np.arange(1000, 1000 + K, dtype=np.int64)
    m = probabilities(3)
    c = ident.new_cluster(probes, m + rng.normal(0, sd, m.shape), 1.0)
    for _ in range(n):
        ident.assign(c, probes, m + rng.normal(0, sd, m.shape), 1.0)


def test_separating_picks_the_probes_where_two_models_differ_most() -> None:
    ident = Identifier()
    ident.exact = True
    ca, cb, _ = graded_pair(ident)
    assert ident.collision() == 0.0
    assert list(ident.separating([ca, cb], 1, 16)) == [15]
    assert sorted(ident.separating([ca, cb], 2, 16)) == [14, 15]
    assert sorted(ident.separating([cb, ca], 3, 16)) == [13, 14, 15]


def test_separating_takes_more_probes_when_noise_is_larger() -> None:
    counts = []
    for sd in (0.0, 0.01, 0.02, 0.03, 0.05, 0.1):
        ident = Identifier()
        ca, cb, _ = graded_pair(ident)
        if sd > 0:
            learn_noise(ident, sd)
        chosen = ident.separating([ca, cb], 1, 16)
        # the best ones, whatever their number
        assert sorted(chosen) == list(range(16 - len(chosen), 16))
        counts.append(len(chosen))
    # one probe without noise, more with each step of noise, until all 16 are needed
    assert counts[0] == 1 and counts[-1] == 16, counts
    below_cap = [c for c in counts if c < 16]
    assert below_cap == sorted(set(below_cap)) and len(below_cap) >= 4, counts


def test_separating_takes_more_probes_when_known_models_often_answer_alike() -> None:
    """Label-like answers: known models agree on many probes, so a model not yet seen may too;
    enough probes that it agrees on all of them with chance below MISS."""
    labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5]
    probes = np.arange(16, dtype=np.int64)
    for differ, need in ((8, 5), (4, 11)):   # 0.5^5 < MISS < 0.5^4; 0.75^11 < MISS < 0.75^10
        ident = Identifier()
        ident.exact = True
        a = ident.new_cluster(probes, one_hot(labels), 1.0)
        b = ident.new_cluster(probes, one_hot([(x + 1) % CLASSES if j < differ else x
                                               for j, x in enumerate(labels)]), 1.0)
        alike = ident.collision()
        assert alike == (16 - differ) / 16
        assert alike ** need <= MISS < alike ** (need - 1)
        chosen = ident.separating([a, b], 2, 16)
        assert len(chosen) == need
        # those that differ come first
        first, got = set(range(min(differ, need))), set(chosen.tolist())
        assert first <= got if need > differ else got == first
    # models that agree everywhere: as many as allowed
    ident = Identifier()
    ident.exact = True
    a = ident.new_cluster(probes, one_hot(labels), 1.0)
    b = ident.new_cluster(probes, one_hot(labels), 1.0)
    assert ident.collision() == 1.0
    assert len(ident.separating([a, b], 2, 12)) == 12


def test_collision_is_zero_when_models_differ_on_every_probe() -> None:
    ident, _ = exact_identifier(probabilities(0), probabilities(1), probabilities(2))
    assert ident.collision() == 0.0


def test_collision_is_high_for_labels_that_mostly_agree() -> None:
    labels = [3, 1, 4, 1, 5, 9, 2, 6]
    flipped = [3, 1, 4, 1, 5, 9, 2, 7]   # one probe of eight differs
    ident, _ = exact_identifier(one_hot(labels), one_hot(flipped), one_hot(labels))
    # pairs: (a, b) 7 alike, (a, c) 8, (b, c) 7 over 3 x 8 probes
    assert ident.collision() == pytest.approx(22 / 24)
    assert Identifier().collision() == 0.0   # no pairs


def test_collision_counts_means_closer_than_the_noise_as_alike() -> None:
    """With a learned spread s, means closer than 2 z s are alike: the same two models that
    differ on every probe without noise collide everywhere once the noise is large."""
    ident = Identifier()
    graded_pair(ident, n=8)
    assert ident.collision() == 0.0
    learn_noise(ident, 0.3)
    assert ident.collision() == 1.0


# -- identification_accuracy: purity and inverse purity ----------------------------------------

def test_identification_accuracy_perfect() -> None:
    # the attacker's names need not be the models' numbers
    pairs = [(0, 5), (0, 5), (1, 3), (2, 0), (1, 3), (2, 0)]
    assert identification_accuracy(pairs) == 1.0


def test_identification_accuracy_merged_models() -> None:
    """The attacker takes two real models for one: purity suffers."""
    pairs = [(0, 5)] * 6 + [(0, 3)] * 2 + [(1, 7)] * 2
    # purity: cluster 0 holds 6 of 5 and 2 of 3 -> (6 + 2) / 10; inverse purity: 1
    assert identification_accuracy(pairs) == pytest.approx(0.8)


def test_identification_accuracy_split_model() -> None:
    """The attacker takes one real model for two: inverse purity suffers."""
    pairs = [(0, 5)] * 3 + [(1, 5)] * 5 + [(2, 3)] * 2
    # purity 1; inverse purity: model 5 is 5 of 8 in its largest cluster -> (5 + 2) / 10
    assert identification_accuracy(pairs) == pytest.approx(0.7)


def test_identification_accuracy_nobody_is_a_cluster_of_its_own() -> None:
    """-1 (nobody known) answers count like one more attacker model."""
    assert identification_accuracy([(0, 5)] * 9 + [(-1, 5)]) == pytest.approx(0.9)
    assert identification_accuracy([(-1, 5), (-1, 3)]) == pytest.approx(0.5)


def test_identification_accuracy_without_attempts_is_nan() -> None:
    assert math.isnan(identification_accuracy([]))


def test_prefers_takes_the_targets_noisy_answers_and_leaves_a_rivals() -> None:
    """The verifier's likelihood ratio on noise as large as the models' difference (sd 0.1 per
    class; the means differ by 0.05 per class on every probe): "only the target within its
    threshold" would accept few of the target's answers, the ratio most of them, and almost
    none of the rival's."""
    rng = np.random.default_rng(5)
    target_mean = probabilities(1)
    rival_mean = target_mean + 0.05 * np.sign(rng.standard_normal(target_mean.shape))
    ident, (target, rival) = noisy_identifier([target_mean, rival_mean], sd=0.1, n=200)

    def answer(mean: np.ndarray) -> np.ndarray:
        out: np.ndarray = mean + rng.normal(0, 0.1, mean.shape)
        return out

    ratio = [ident.prefers(target, [rival], PROBES, answer(target_mean)) for _ in range(400)]
    alone = [ident.classify(PROBES, answer(target_mean), math.nan) is target
             for _ in range(400)]
    fooled = [ident.prefers(target, [rival], PROBES, answer(rival_mean)) for _ in range(400)]
    assert np.mean(ratio) >= 0.9 > np.mean(alone)
    assert np.mean(fooled) <= 0.01


def test_prefers_rejects_an_answer_that_fits_no_model() -> None:
    ident, (target, rival) = noisy_identifier([probabilities(1), probabilities(2)], sd=0.05)
    far = target.mean(PROBES) + 0.5   # far from both, though nearer the target than the rival
    assert not ident.prefers(target, [rival], PROBES, far)
    assert ident.prefers(target, [rival], PROBES, target.mean(PROBES))


@pytest.mark.parametrize(("sd", "takes"), [(0.1, 0.9), (0.2, 0.3)])
def test_prefers_holds_under_the_clipped_renormalised_noise_of_gaussian_probs(
        sd: float, takes: float) -> None:
    """The real defense (Gaussian noise on the probabilities, negatives clipped, rows
    renormalised) puts its noise on the likely classes, where two confident models differ:
    the test's spread comes from the rival's own answers, so a rival's answers pass at most
    1 % of the time (a spread from isotropic noise of the learned mean spread let 3.7 % and
    4.3 % through here), while most (sd 0.1) or a third (sd 0.2) of the target's are taken."""
    from defense import DEFENSES
    from sim.plugins import Context

    params = DEFENSES.params_class("gaussian_probs").model_validate(
        {"type": "gaussian_probs", "sd": sd})
    noise = DEFENSES.build(params, Context(zoo=None, generator=np.random.default_rng(7)))
    rng = np.random.default_rng(8)
    labels = rng.integers(0, CLASSES, K)
    target_true = np.full((K, CLASSES), 0.02)
    target_true[np.arange(K), labels] = 0.82
    rival_true = target_true.copy()
    rival_true[np.arange(K), labels] -= 0.2
    rival_true[np.arange(K), (labels + 1) % CLASSES] += 0.2

    ident = Identifier()
    target = ident.new_cluster(PROBES, noise(target_true), math.nan)
    rival = ident.new_cluster(PROBES, noise(rival_true), math.nan)
    for _ in range(200):
        ident.assign(target, PROBES, noise(target_true), math.nan)
        ident.assign(rival, PROBES, noise(rival_true), math.nan)
    fooled = np.mean([ident.prefers(target, [rival], PROBES, noise(rival_true))
                      for _ in range(1000)])
    taken = np.mean([ident.prefers(target, [rival], PROBES, noise(target_true))
                     for _ in range(1000)])
    assert fooled <= 0.01
    assert taken >= takes
