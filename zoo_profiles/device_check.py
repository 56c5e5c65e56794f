"""Do a zoo's models give on another device the answers they give on the CPU?

A measured profile's accuracy is the CPU's (:mod:`zoo_profiles.train`), and a profile re-timed
on a GPU (``zoosim zoo profile NAME --device cuda``) keeps it. This module checks that claim on
the device at hand: each model, loaded from the same checked weights on the CPU and on
``device``, labels the zoo's test split (on the CPU with torch's deterministic algorithms, as
the profile's accuracy was measured; on the device with the ones torch picks, as a deployment
runs, so a near tie may come out differently from one run to the next); the rows
give the agreement of the two label sets, the largest logit difference and both accuracies.
PyTorch lets cuDNN run convolutions in TF32 by default (matrix products not), which can flip a
prediction near a tie; ``allow_tf32`` True or False allows or forbids TF32 in both for the
check, None keeps torch's settings (docs/architecture.md, "The GPU profiles, measured").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sim.errors import UserError
from sim.profiles import load_profile, resolve_profile_path
from zoo_profiles.datasets import load_dataset, split_digest
from zoo_profiles.models import Shape, build_model
from zoo_profiles.profiler import check_device, load_weights, warn_unchecked
from zoo_profiles.train import predict_logits, top1


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
    return DeviceAgreement(name, top1(pc, labels), top1(pd, labels), float((pc == pd).mean()),
                           float(np.abs(cpu - device).max()))


def _tf32_settings() -> tuple[list[tuple[Any, str]], tuple[object, object]]:
    """Where torch keeps the TF32 switches of CUDA matrix products and cuDNN convolutions,
    and the values that allow and forbid it: the ``fp32_precision`` settings (torch 2.9
    on; mixing them with the older flags is an error) or the older ``allow_tf32`` flags."""
    new = [(torch.backends.cuda.matmul, "fp32_precision"),
           (getattr(torch.backends.cudnn, "conv", None), "fp32_precision")]
    if all(owner is not None and hasattr(owner, attr) for owner, attr in new):
        return new, ("tf32", "ieee")
    return [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32")], \
        (True, False)


@contextmanager
def tf32(allowed: bool | None) -> Iterator[None]:
    """Allow or forbid TF32 in CUDA matrix products and cuDNN convolutions (None: leave torch's
    settings as they are), restoring the settings after."""
    if allowed is None:
        yield
        return
    where, (on, off) = _tf32_settings()
    before = [getattr(owner, attr) for owner, attr in where]
    for owner, attr in where:
        setattr(owner, attr, on if allowed else off)
    try:
        yield
    finally:
        for (owner, attr), value in zip(where, before, strict=True):
            setattr(owner, attr, value)


def compare_devices(name: str | Path, device: str, allow_tf32: bool | None = None,
                    data_dir: str | Path | None = None) -> list[DeviceAgreement]:
    """Each model of measured zoo ``name`` on the CPU against itself on ``device``."""
    dev = check_device(device)
    path = resolve_profile_path(str(name))
    prof = load_profile(path)
    md = prof.metadata
    if md.source != "measured" or md.input_shape is None or md.dataset is None:
        raise UserError(f"{path}: only a measured zoo with weights and a dataset can be checked")
    unweighted = [m.name for m in prof.models if m.weights is None]
    if unweighted:
        raise UserError(f"{path}: models {unweighted} have no weights to check")
    warn_unchecked(path, [m.name for m in prof.models if m.weights_sha256 is None])
    extra = md.model_extra or {}  # what a build records beyond the schema
    data = load_dataset(md.dataset, data_dir, md.split_seed).subset(extra.get("subset"))
    digest = extra.get("split_digest")
    if digest is not None and split_digest(data) != digest:
        raise UserError(f"{path}: this {md.dataset} split is not the one the zoo was tested on "
                        f"(split_digest {split_digest(data)}, the profile's {digest})")
    rows = []
    with tf32(allow_tf32):
        for m in prof.models:
            model = (m.arch, md.input_shape, md.num_classes,
                     (path.parent / str(m.weights)).resolve(), m.weights_sha256)
            rows.append(agreement(m.name, _logits(*model, torch.device("cpu"), data.test.x),
                                  _logits(*model, dev, data.test.x), data.test.y))
    return rows


def _logits(arch: str, shape: Shape, num_classes: int, weights: Path, sha256: str | None,
            on: torch.device, x: np.ndarray) -> np.ndarray:
    """A zoo model's logits on ``x`` on device ``on`` (deterministic on the CPU only)."""
    model = load_weights(build_model(arch, shape, num_classes), weights, str(on), sha256=sha256)
    return predict_logits(model, x, device=on, exact=on.type == "cpu")
