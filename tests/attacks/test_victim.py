"""The victim zoo: weights loaded in profile order, real outputs grouped by served model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from attacks.extraction import agreement
from attacks.victim import VictimZoo
from sim.errors import UserError
from sim.profiles import PROFILE_DIR, load_profile
from zoo_profiles.build import build_zoo
from zoo_profiles.datasets import Split, load_mnist5k
from zoo_profiles.train import predict_logits

ARCHS = ["logreg", "mlp_small", "cnn_small"]
SUBSET = 300
SHIPPED = PROFILE_DIR / "mnist5k-cpu.yaml"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    return build_zoo("mnist5k", "tiny-cpu", "cpu", out, seed=0, epochs=2, subset=SUBSET,
                     progress=False, archs=ARCHS, batch_sizes=(1, 2), budget_s=0.01)


@pytest.fixture(scope="module")
def zoo(tiny: Path) -> VictimZoo:
    return VictimZoo(tiny)


@pytest.fixture(scope="module")
def test_split() -> Split:
    return load_mnist5k().subset(SUBSET).test


def test_models_in_profile_order_with_their_profiled_accuracy(zoo: VictimZoo,
                                                              test_split: Split) -> None:
    assert zoo.names == ARCHS and len(zoo) == 3
    assert [zoo.index(n) for n in ARCHS] == [0, 1, 2]
    assert zoo.in_shape == (1, 28, 28) and zoo.num_classes == 10
    for i in range(len(zoo)):
        assert zoo.has_weights(i) and not zoo.module(i).training
        acc = agreement(zoo.predictions(i, test_split.x), test_split.y)
        assert acc == zoo.accuracies[i] == load_profile(zoo.path).models[i].accuracy


def test_probabilities_are_a_distribution(zoo: VictimZoo, test_split: Split) -> None:
    for i in range(len(zoo)):
        p = zoo.probabilities(i, test_split.x[:50])
        assert p.shape == (50, 10) and p.dtype == np.float32
        assert (p >= 0).all() and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
        assert np.array_equal(zoo.predictions(i, test_split.x[:50]), p.argmax(axis=1))
    assert zoo.probabilities(0, test_split.x[:0]).shape == (0, 10)


def test_loading_leaves_the_global_rng_alone(tiny: Path) -> None:
    state = torch.random.get_rng_state()
    VictimZoo(tiny)
    assert torch.equal(state, torch.random.get_rng_state())


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the forward passes (``predict_logits`` calls) of the victim module, by batch."""
    calls: list[int] = []

    def wrapped(model: torch.nn.Module, x: np.ndarray, *args: Any, **kw: Any) -> np.ndarray:
        calls.append(len(x))
        return predict_logits(model, x, *args, **kw)

    monkeypatch.setattr("attacks.victim.predict_logits", wrapped)
    return calls


def test_grouped_outputs_equal_per_model_outputs_one_pass_per_model(
        zoo: VictimZoo, test_split: Split, monkeypatch: pytest.MonkeyPatch) -> None:
    x = test_split.x[:120]
    served = np.random.default_rng(0).choice([0, 2], size=len(x))  # model 1 never served
    calls = _counting(monkeypatch)
    grouped = zoo.outputs_grouped(served, x)
    assert sorted(calls) == sorted(int((served == m).sum()) for m in (0, 2))
    assert grouped.shape == (120, 10) and grouped.dtype == np.float32
    for m in (0, 2):
        rows = served == m
        per_model = zoo.probabilities(m, x)[rows]
        np.testing.assert_allclose(grouped[rows], per_model, rtol=0, atol=1e-6)
    calls.clear()
    assert zoo.outputs_grouped(np.zeros(0, np.int64), x[:0]).shape == (0, 10) and not calls


def test_grouped_outputs_reject_bad_model_numbers(zoo: VictimZoo, test_split: Split) -> None:
    x = test_split.x[:4]
    with pytest.raises(ValueError, match="one per input"):
        zoo.outputs_grouped(np.zeros(3, np.int64), x)
    with pytest.raises(ValueError, match=r"must be in \[0, 3\)"):
        zoo.outputs_grouped(np.array([0, 1, 2, 3]), x)
    with pytest.raises(ValueError, match="integer"):
        zoo.outputs_grouped(np.zeros(4), x)
    with pytest.raises(ValueError, match="shape"):
        zoo.probabilities(0, x[:, 0])


def test_unknown_model_name(zoo: VictimZoo) -> None:
    with pytest.raises(UserError, match="no model 'vgg'"):
        zoo.index("vgg")


@pytest.mark.parametrize("name", ["synthetic-7", "cifar10-published"])
def test_zoo_without_weights_is_a_user_error(name: str) -> None:
    with pytest.raises(UserError, match="no extraction on zoos without weights"):
        VictimZoo(name)


def _edited_copy(tiny: Path, name: str, edit: dict[str, Any]) -> Path:
    """A copy of the tiny profile beside it (weights paths stay valid), one model edited."""
    data = yaml.safe_load(tiny.read_text())
    for m in data["models"]:
        if m["name"] == "mlp_small":
            m.update(edit)
            if m["weights"] is None:
                del m["weights"]
    path = tiny.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_model_without_weights_keeps_its_number(tiny: Path, test_split: Split) -> None:
    zoo = VictimZoo(_edited_copy(tiny, "partial", {"weights": None}))
    assert zoo.names == ARCHS and not zoo.has_weights(1) and zoo.has_weights(2)
    with pytest.raises(UserError, match=r"'mlp_small'.*no weights"):
        zoo.probabilities(1, test_split.x[:2])
    assert zoo.outputs_grouped(np.array([0, 2]), test_split.x[:2]).shape == (2, 10)


def test_missing_weights_file_is_a_user_error(tiny: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        VictimZoo(_edited_copy(tiny, "missing", {"weights": "tiny-cpu/nope.safetensors"}))


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped zoo mnist5k-cpu not built")
def test_shipped_zoo_loads_every_model() -> None:
    zoo = VictimZoo("mnist5k-cpu")
    assert zoo.names == load_profile("mnist5k-cpu").names
    x = load_mnist5k().test.x[:8]
    out = zoo.outputs_grouped(np.arange(8) % len(zoo), x)
    assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
