"""Readers for the standard on-disk image-dataset formats, from a local folder (never online).

- MNIST's idx files (LeCun et al. 1998): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzip-compressed
  (``.gz``) and also accepted with a dot before ``idx`` (``train-images.idx3-ubyte``). An idx file
  is a big-endian header (magic ``0x0000 08 nd``: unsigned bytes, ``nd`` dimensions; then ``nd``
  int32 sizes) followed by the values.
- CIFAR-10's binary version (Krizhevsky 2009): ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
  ``test_batch.bin``, each a run of 3073-byte records (1 label byte, then 3x32x32 pixel bytes
  in channel-major order); the folder may also be the one holding ``cifar-10-batches-bin/``.

Images come back as float32 ``(N, C, H, W)`` arrays scaled to [0, 1], labels as int64. A missing
or truncated file is a :class:`sim.errors.UserError` naming the file and what was expected.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from sim.errors import UserError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR10_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR10_TEST = "test_batch.bin"
CIFAR10_RECORD = 1 + 3 * 32 * 32


def _find(folder: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"MNIST idx file {stem!r} (or {stem}.gz) not found in {folder}; download "
                    "the four MNIST idx files there")


def read_idx(path: Path) -> np.ndarray:
    """One idx file as an array of unsigned bytes with the shape its header states."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte idx file (bad magic number)")
    nd = raw[3]
    header = 4 + 4 * nd
    if len(raw) < header:
        raise UserError(f"{path}: truncated idx header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=nd, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise UserError(f"{path}: truncated or corrupt: header says {dims} ({expected} bytes), "
                        f"file has {len(raw)} bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _idx_pair(folder: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(_find(folder, IDX_FILES[f"{which}_images"]))
    labels = read_idx(_find(folder, IDX_FILES[f"{which}_labels"]))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{folder}: MNIST {which} images {images.shape} and labels "
                        f"{labels.shape} do not match")
    x = (images.astype(np.float32) / 255.0)[:, None, :, :]
    return x, labels.astype(np.int64)


def read_mnist_idx(folder: str | Path) -> tuple[tuple[np.ndarray, np.ndarray],
                                                 tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` from a folder of MNIST idx files."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"MNIST folder {folder} does not exist")
    return _idx_pair(folder, "train"), _idx_pair(folder, "test")


def read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch file as ``(x (N, 3, 32, 32) in [0, 1], y)``."""
    if not path.is_file():
        raise UserError(f"CIFAR-10 batch file {path} not found; it should hold the binary "
                        "version (cifar-10-binary.tar.gz, unpacked)")
    raw = path.read_bytes()
    if not raw or len(raw) % CIFAR10_RECORD:
        raise UserError(f"{path}: truncated or corrupt: {len(raw)} bytes is not a positive "
                        f"multiple of the {CIFAR10_RECORD}-byte record size")
    rec = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR10_RECORD)
    y = rec[:, 0].astype(np.int64)
    if y.max() > 9:
        raise UserError(f"{path}: label {int(y.max())} out of range 0-9 (not CIFAR-10 binary?)")
    x = rec[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return x, y


def read_cifar10_bin(folder: str | Path) -> tuple[tuple[np.ndarray, np.ndarray],
                                                  tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))`` from the CIFAR-10 binary batches."""
    folder = Path(folder).expanduser()
    if (folder / "cifar-10-batches-bin").is_dir():
        folder = folder / "cifar-10-batches-bin"
    missing = [n for n in [*CIFAR10_TRAIN, CIFAR10_TEST] if not (folder / n).is_file()]
    if missing:
        raise UserError(f"CIFAR-10 folder {folder}: missing {', '.join(missing)}")
    parts = [read_cifar10_batch(folder / n) for n in CIFAR10_TRAIN]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, read_cifar10_batch(folder / CIFAR10_TEST)
