"""MNIST idx and CIFAR-10 binary readers on tiny files written here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sim.errors import UserError
from zoo_profiles.datasets import load_dataset
from zoo_profiles.readers import CIFAR10_TEST, CIFAR10_TRAIN, read_cifar10_bin, read_mnist_idx


def _idx(path: Path, arr: np.ndarray, compress: bool = False) -> None:
    raw = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape)
    raw += arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def _write_mnist(folder: Path, n_train: int = 20, n_test: int = 10, compress: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    labels = np.arange(n_train) % 10
    sfx = ".gz" if compress else ""
    _idx(folder / f"train-images-idx3-ubyte{sfx}", imgs, compress)
    _idx(folder / f"train-labels-idx1-ubyte{sfx}", labels, compress)
    _idx(folder / f"t10k-images-idx3-ubyte{sfx}", imgs[:n_test], compress)
    _idx(folder / f"t10k-labels-idx1-ubyte{sfx}", labels[:n_test], compress)
    return imgs, labels


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(tmp_path: Path, compress: bool) -> None:
    imgs, labels = _write_mnist(tmp_path, compress=compress)
    (xtr, ytr), (xte, yte) = read_mnist_idx(tmp_path)
    assert xtr.shape == (20, 1, 28, 28) and xte.shape == (10, 1, 28, 28)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    np.testing.assert_allclose(xtr[:, 0] * 255, imgs, atol=1e-3)
    assert ytr.tolist() == labels.tolist() and yte.tolist() == labels[:10].tolist()


def test_mnist_dataset_from_idx(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    ds = load_dataset("mnist", tmp_path)
    assert ds.sizes() == {"train": 10, "attacker": 10, "test": 10}


def test_mnist_truncated_and_missing(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        read_mnist_idx(tmp_path)
    f.unlink()
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte.*not found"):
        read_mnist_idx(tmp_path)
    f.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(UserError, match="magic"):
        read_mnist_idx(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        read_mnist_idx(tmp_path / "nowhere")


def _write_cifar(folder: Path, per_file: int = 3) -> None:
    for k, name in enumerate([*CIFAR10_TRAIN, CIFAR10_TEST]):
        recs = bytearray()
        for i in range(per_file):
            label = (k + i) % 10
            pixels = bytes([label]) * 1024 + bytes([100]) * 1024 + bytes([200]) * 1024
            recs += bytes([label]) + pixels
        (folder / name).write_bytes(bytes(recs))


def test_cifar10_binary_roundtrip(tmp_path: Path) -> None:
    sub = tmp_path / "cifar-10-batches-bin"
    sub.mkdir()
    _write_cifar(sub)
    (xtr, ytr), (xte, yte) = read_cifar10_bin(tmp_path)  # finds the sub-folder itself
    assert xtr.shape == (15, 3, 32, 32) and xte.shape == (3, 3, 32, 32)
    assert ytr[:3].tolist() == [0, 1, 2] and yte.tolist() == [5, 6, 7]
    # channel-major: red plane holds the label byte, green 100, blue 200
    np.testing.assert_allclose(xtr[1, :, 0, 0] * 255, [1, 100, 200], atol=1e-3)
    assert load_dataset("cifar10", tmp_path).in_shape == (3, 32, 32)


def test_cifar10_truncated_and_missing(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    f = tmp_path / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(UserError, match=r"data_batch_3\.bin: truncated"):
        read_cifar10_bin(tmp_path)
    (tmp_path / CIFAR10_TEST).unlink()
    with pytest.raises(UserError, match=r"missing test_batch\.bin"):
        read_cifar10_bin(tmp_path)
