"""Do a zoo's models give on another device the answers they give on the CPU?

A measured profile's accuracy is the CPU's (:mod:`zoo_profiles.train`), and a profile re-timed
on a GPU (``zoosim zoo profile NAME --device cuda``) keeps it. This module checks that claim on
the device at hand: each model, loaded from the same checked weights on the CPU and on
``device``, labels the zoo's test split; the rows give the agreement of the two label sets, the
largest logit difference and both accuracies. PyTorch lets cuDNN run convolutions in TF32 by
default (matrix products not), which can flip a prediction near a tie; ``tf32`` True or False
allows or forbids TF32 in both for the check, None keeps torch's settings
(docs/architecture.md, "The GPU profiles, measured").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sim.errors import UserError
from sim.profiles import load_profile, resolve_profile_path
from zoo_profiles.datasets import load_dataset
from zoo_profiles.models import build_model
from zoo_profiles.profiler import check_device, load_weights
from zoo_profiles.train import EVAL_BATCH, predict_logits


@dataclass(frozen=True)
class DeviceAgreement:
    """One model's test-split predictions on the CPU against those on another device."""

    model: str
    accuracy_cpu: float
    accuracy_device: float
    agreement: float
    max_logit_diff: float

    @property
    def agrees(self) -> bool:
        return self.agreement == 1.0


def agreement(name: str, cpu: np.ndarray, device: np.ndarray, labels: np.ndarray
              ) -> DeviceAgreement:
    """Compare two devices' logits (rows: test inputs) for model ``name``."""
    if cpu.shape != device.shape or cpu.shape[0] != len(labels) or len(labels) == 0:
        raise ValueError(f"{name}: logits {cpu.shape} / {device.shape} for {len(labels)} labels")
    pc, pd = cpu.argmax(axis=1), device.argmax(axis=1)

    def acc(pred: np.ndarray) -> float:
        return round(100.0 * float((pred == labels).mean()), 4)

    return DeviceAgreement(name, acc(pc), acc(pd), float((pc == pd).mean()),
                           float(np.abs(cpu - device).max()))


@contextmanager
def tf32(allowed: bool | None) -> Iterator[None]:
    """Allow or forbid TF32 in cuDNN convolutions and CUDA matrix products (None: leave torch's
    settings as they are), restoring them after."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if allowed is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _device_logits(model: torch.nn.Module, x: np.ndarray, dev: torch.device) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), EVAL_BATCH):
            batch = torch.from_numpy(x[start:start + EVAL_BATCH]).to(dev)
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out)


def compare_devices(name: str | Path, device: str, allow_tf32: bool | None = None,
                    data_dir: str | Path | None = None) -> list[DeviceAgreement]:
    """Each model of measured zoo ``name`` on the CPU against itself on ``device``."""
    dev = check_device(device)
    path = resolve_profile_path(str(name))
    prof = load_profile(path)
    md = prof.metadata
    if md.source != "measured" or md.input_shape is None or md.dataset is None:
        raise UserError(f"{path}: only a measured zoo with weights and a dataset can be checked")
    test = load_dataset(md.dataset, data_dir, md.split_seed).test
    for m in prof.models:
        if m.weights is None:
            raise UserError(f"{path}: model {m.name!r} has no weights to check")
    rows = []
    with tf32(allow_tf32):
        for m in prof.models:
            weights = (path.parent / str(m.weights)).resolve()
            model = build_model(m.arch, md.input_shape, md.num_classes)
            cpu = predict_logits(load_weights(model, weights, "cpu", sha256=m.weights_sha256),
                                 test.x)
            model = build_model(m.arch, md.input_shape, md.num_classes)
            on_device = load_weights(model, weights, device, sha256=m.weights_sha256)
            rows.append(agreement(m.name, cpu, _device_logits(on_device, test.x, dev), test.y))
    return rows
