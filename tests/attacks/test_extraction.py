"""Surrogate training (Knockoff Nets / CopycatCNN): determinism, validation, quality floors.

The floors are conservative: measured on the shipped mnist5k-cpu zoo (target vgg_small, the most
accurate model; cnn_small surrogate, the default 1,000 steps at rate 0.01, seed 0, one thread),
fidelity was ~97 % with probabilities on the 1,500-image attacker pool, and ~17 % with
probabilities on the out-of-distribution ``digits`` pool (on which that victim answers "8" for
three inputs in four).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from attacks.augment import augment, gaussian_noise, random_shift
from attacks.extraction import OutputKind, evaluate_surrogate, train_surrogate
from attacks.victim import VictimZoo
from sim.profiles import PROFILE_DIR
from zoo_profiles.build import build_zoo
from zoo_profiles.datasets import Split, load_mnist5k, load_pool

SHIPPED = PROFILE_DIR / "mnist5k-cpu.yaml"


@dataclass
class Oracle:
    """A victim zoo, the attacker's target in it, and the data to attack and judge it with."""

    zoo: VictimZoo
    target: int
    pool: Split
    test: Split
    target_test: np.ndarray
    pool_answers: np.ndarray

    def answers(self, x: np.ndarray) -> np.ndarray:
        return self.zoo.probabilities(self.target, x)


def _victim_zoo(tmp_path_factory: pytest.TempPathFactory) -> VictimZoo:
    """The shipped zoo, or (while it is absent) a one-model zoo built here in seconds."""
    if SHIPPED.is_file():
        return VictimZoo("mnist5k-cpu")
    out = tmp_path_factory.mktemp("zoo")
    return VictimZoo(build_zoo("mnist5k", "fallback-cpu", "cpu", out, seed=0, epochs=3,
                               progress=False, archs=["cnn_small"], batch_sizes=(1,),
                               budget_s=0.01))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    zoo = _victim_zoo(tmp_path_factory)
    ds = load_mnist5k(split_seed=zoo.profile.metadata.model_dump().get("split_seed", 0))
    target = int(np.argmax(zoo.accuracies))
    return Oracle(zoo, target, ds.attacker, ds.test, zoo.predictions(target, ds.test.x),
                  zoo.probabilities(target, ds.attacker.x))


def test_victim_reproduces_its_profiled_accuracy(oracle: Oracle) -> None:
    acc = 100.0 * float((oracle.target_test == oracle.test.y).mean())
    assert round(acc, 4) == oracle.zoo.accuracies[oracle.target]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "floor"), [("probabilities", 85.0), ("labels", 85.0)])
def test_oracle_extraction_on_the_attacker_pool(oracle: Oracle, kind: OutputKind,
                                                floor: float) -> None:
    assert len(oracle.pool) == 1500
    surrogate = train_surrogate(oracle.pool.x, oracle.pool_answers, kind=kind, seed=0)
    scores = evaluate_surrogate(surrogate, oracle.test, oracle.target_test)
    assert scores["fidelity"] >= floor and scores["accuracy"] >= floor - 5, scores


@pytest.mark.slow
def test_extraction_from_the_digits_pool(oracle: Oracle) -> None:
    pool = load_pool("digits")
    surrogate = train_surrogate(pool.x, oracle.answers(pool.x), kind="probabilities", seed=0)
    scores = evaluate_surrogate(surrogate, oracle.test, oracle.target_test)
    assert scores["fidelity"] >= 13.0, scores  # above chance (~10 %), far below in-pool


def test_a_perfect_copy_has_full_fidelity(oracle: Oracle) -> None:
    cheap = int(np.argmin([m.params for m in oracle.zoo.profile.models]))
    scores = evaluate_surrogate(oracle.zoo.module(cheap), oracle.test,
                                oracle.zoo.predictions(cheap, oracle.test.x))
    assert scores == {"fidelity": 100.0, "accuracy": oracle.zoo.accuracies[cheap]}


@pytest.fixture(scope="module")
def small(oracle: Oracle) -> tuple[np.ndarray, np.ndarray]:
    x = oracle.pool.x[:192]
    return x, oracle.zoo.probabilities(0, x)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", ["probabilities", "labels"])
@pytest.mark.parametrize("aug", [False, True])
def test_training_is_deterministic_for_a_seed(small: tuple[np.ndarray, np.ndarray],
                                              kind: OutputKind, aug: bool) -> None:
    x, probs = small
    state = torch.random.get_rng_state()

    def run(seed: int) -> dict[str, torch.Tensor]:
        return _weights(train_surrogate(x, probs, kind=kind, seed=seed, steps=6, augment=aug,
                                        noise_sd=0.05 if aug else 0.0))

    first = run(0)
    assert _same(first, run(0))
    assert not _same(first, run(1))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG was not touched


def test_labels_read_only_the_top1(small: tuple[np.ndarray, np.ndarray]) -> None:
    x, probs = small
    from_probs = train_surrogate(x, probs, kind="labels", seed=3, steps=3)
    from_labels = train_surrogate(x, probs.argmax(axis=1), kind="labels", seed=3, steps=3)
    soft = train_surrogate(x, probs, kind="probabilities", seed=3, steps=3)
    assert _same(_weights(from_probs), _weights(from_labels))
    assert not _same(_weights(from_probs), _weights(soft))
    assert not from_probs.training


def test_bad_training_inputs(small: tuple[np.ndarray, np.ndarray]) -> None:
    x, probs = small
    labels = probs.argmax(axis=1)
    cases: list[tuple[np.ndarray, np.ndarray, str, str]] = [
        (x[:0], probs[:0], "probabilities", "empty training set"),
        (x, probs[:10], "probabilities", "192 inputs"),
        (x, probs, "soft", "kind must be one of"),
        (x, labels, "probabilities", "probabilities answers must be"),
        (x, probs[:, :5], "probabilities", "10 columns"),
        (x, -probs, "probabilities", ">= 0"),
        (x, labels + 10, "labels", r"in \[0, 10\)"),
        (x[:, 0], probs, "labels", "images"),
    ]
    for xs, answers, kind, message in cases:
        with pytest.raises(ValueError, match=message):
            train_surrogate(xs, answers, kind=kind, seed=0, steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train_surrogate(x, probs, kind="labels", seed=0, steps=0)


@pytest.mark.parametrize("n", [40, 192])
def test_training_takes_the_same_number_of_steps_whatever_the_data_size(
        small: tuple[np.ndarray, np.ndarray], n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed optimiser budget: 7 steps on 40 inputs (one batch per pass) or on 192 (three
    per pass, the last pass cut short)."""
    x, probs = small
    taken = []
    step = torch.optim.Adam.step

    def counting(self: torch.optim.Adam, *args: object, **kwargs: object) -> object:
        taken.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    train_surrogate(x[:n], probs[:n], kind="probabilities", seed=0, steps=7)
    assert len(taken) == 7


def test_surrogate_config_gives_steps_or_epochs() -> None:
    from attacks.config import SurrogateConfig

    assert SurrogateConfig().train_steps(500) == SurrogateConfig.DEFAULT_STEPS
    assert SurrogateConfig(steps=50).train_steps(5000) == 50
    assert SurrogateConfig(epochs=2, batch_size=64).train_steps(500) == 16
    with pytest.raises(ValueError, match="not both"):
        SurrogateConfig(steps=5, epochs=2)


def test_bad_evaluation_inputs(oracle: Oracle) -> None:
    model = oracle.zoo.module(0)
    with pytest.raises(ValueError, match="target_predictions must have shape"):
        evaluate_surrogate(model, oracle.test, oracle.target_test[:5])
    empty = Split(oracle.test.x[:0], oracle.test.y[:0])
    with pytest.raises(ValueError, match="empty test split"):
        evaluate_surrogate(model, empty, oracle.target_test[:0])


def test_random_shift_moves_content_by_at_most_max_shift() -> None:
    x = torch.zeros(500, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    gen = torch.Generator().manual_seed(0)
    out = random_shift(x, 2, gen)
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(500))  # nothing lost near the centre
    rows, cols = torch.nonzero(out[:, 0], as_tuple=True)[1:]
    assert rows.min() == 12 and rows.max() == 16 and cols.min() == 12 and cols.max() == 16
    assert torch.equal(random_shift(x, 0, gen), x)
    again = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_noise_stays_in_range() -> None:
    x = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = gaussian_noise(x, 0.5, torch.Generator().manual_seed(2))
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    assert augment(x, torch.Generator().manual_seed(3), max_shift=0).equal(x)
    with pytest.raises(ValueError):
        gaussian_noise(x, -1.0, torch.Generator())

