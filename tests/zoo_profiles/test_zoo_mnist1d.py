"""MNIST-1D (optional: needs the mnist1d package): generated offline, seeded, split, shipped zoo."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("mnist1d")

from sim.profiles import PROFILE_DIR, load_profile
from zoo_profiles.datasets import load_mnist1d, load_pool, split_digest
from zoo_profiles.models import build_model
from zoo_profiles.profiler import load_weights
from zoo_profiles.train import accuracy


def test_mnist1d_split_and_global_rng_untouched() -> None:
    np.random.seed(123)
    random.seed(123)
    expect_np, expect_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    ds = load_mnist1d()
    assert np.random.random() == expect_np and random.random() == expect_py
    assert ds.sizes() == {"train": 8000, "attacker": 4000, "test": 2000}
    assert ds.in_shape == (1, 1, 40) and ds.train.x.dtype == np.float32
    assert np.bincount(ds.test.y, minlength=10).tolist() == [200] * 10
    assert split_digest(ds) == split_digest(load_mnist1d())


def test_mnist1d_shifted_pool_differs() -> None:
    pool = load_pool("mnist1d-shifted")
    assert pool.x.shape == (4000, 1, 1, 40)
    assert len(load_pool("mnist1d-attacker")) == 4000
    assert not np.allclose(pool.x[:100], load_mnist1d().attacker.x[:100])


def test_mnist1d_cpu_weights_reproduce_the_profiled_accuracy() -> None:
    prof = load_profile("mnist1d-cpu")
    meta = prof.metadata.model_dump()
    assert meta["source"] == "measured" and meta["dataset"] == "mnist1d"
    accs = [m.accuracy for m in prof.models]
    assert max(accs) - min(accs) >= 30  # a zoo as diverse as an ImageNet one
    test = load_mnist1d(split_seed=meta["split_seed"]).test
    for m in prof.models:
        assert m.weights is not None
        model = load_weights(build_model(m.arch, (1, 1, 40)), PROFILE_DIR / m.weights)
        assert accuracy(model, test) == m.accuracy, m.name
