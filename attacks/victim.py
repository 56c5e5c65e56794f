"""The victim zoo, for real: a measured profile's weights, answering the attacker's inputs.

PSML (Sanyal et al., arXiv 2307.01292, §4) extracts a model from a zoo whose serving system picks
the model per request. The simulation decides *which* model answered each attacker request; this
module then computes what that model answered (docs/architecture.md, "Data flow"): the outputs are
computed for real, grouped by served model, with one batched forward pass per distinct model
(:meth:`VictimZoo.outputs_grouped`), never one torch call per simulated event.

Models are numbered as in the simulator's zoo (:class:`sim.zoo.Zoo`): the order of
``ZooProfile.models``. Weights are read from safetensors files only (no pickle), checked against
the profile's ``weights_sha256`` (a mismatch is a :class:`~sim.errors.UserError`), into eval mode,
and inference goes through :func:`zoo_profiles.train.predict_logits` (deterministic algorithms,
fixed-size chunks of ``EVAL_BATCH`` to bound memory), so a victim's top-1 accuracy on the test
split is exactly the accuracy in its profile. Zoos without weights (published or synthetic
figures) cannot be extracted from: loading one is a :class:`~sim.errors.UserError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from sim.errors import UserError
from sim.profiles import ModelProfile, ZooProfile, load_profile, resolve_profile_path
from zoo_profiles.models import Shape, build_model
from zoo_profiles.profiler import load_weights, warn_unchecked
from zoo_profiles.train import predict_logits

if TYPE_CHECKING:
    from zoo_profiles.datasets import Dataset


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (numerically stable, computed in float64), as float32."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)


def _shape_and_classes(profile: ZooProfile) -> tuple[Shape, int]:
    meta = profile.metadata
    return meta.shape, meta.num_classes


class VictimZoo:
    """The models of a measured zoo profile, loaded from their weights, in profile order."""

    def __init__(self, profile: str | Path, base_dir: Path | None = None) -> None:
        path = resolve_profile_path(str(profile), base_dir)
        self.profile = load_profile(path)
        self.path = path
        self.in_shape, self.num_classes = _shape_and_classes(self.profile)
        if all(m.weights is None for m in self.profile.models):
            source = self.profile.metadata.source
            raise UserError(f"{path}: zoo {self.profile.name!r} ({source}) has no model weights; "
                            "no extraction on zoos without weights (use a measured zoo, e.g. "
                            "mnist5k-cpu)")
        warn_unchecked(path, [m.name for m in self.profile.models
                              if m.weights is not None and m.weights_sha256 is None])
        self._models: list[nn.Module | None] = [self._load(m) for m in self.profile.models]

    def _load(self, spec: ModelProfile) -> nn.Module | None:
        if spec.weights is None:
            return None
        with torch.random.fork_rng(devices=[]):  # build_model draws an init we overwrite
            model = build_model(spec.arch, self.in_shape, self.num_classes)
        return load_weights(model, (self.path.parent / spec.weights).resolve(), "cpu",
                            sha256=spec.weights_sha256).eval()

    def __len__(self) -> int:
        return len(self._models)

    def dataset(self) -> Dataset:
        """The dataset the zoo was trained and tested on (its profile's metadata), with the
        same split."""
        from zoo_profiles.datasets import load_dataset

        meta = self.profile.metadata
        return load_dataset(meta.dataset or "mnist5k", split_seed=meta.split_seed)

    @property
    def names(self) -> list[str]:
        """Model names; position = model number in the simulator's zoo."""
        return self.profile.names

    @property
    def accuracies(self) -> list[float]:
        """Profiled test top-1 accuracy (percent) of each model."""
        return [m.accuracy for m in self.profile.models]

    def index(self, name: str) -> int:
        """The model number of ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise UserError(f"no model {name!r} in zoo {self.profile.name!r}; choose one of "
                            f"{self.names}") from None

    def has_weights(self, model: int) -> bool:
        """Whether model number ``model`` can answer (its profile entry has weights)."""
        return self._slot(model) is not None

    def module(self, model: int) -> nn.Module:
        """The torch module of model number ``model`` (eval mode)."""
        module = self._slot(model)
        if module is None:
            raise UserError(f"model {self.names[int(model)]!r} of zoo {self.profile.name!r} has "
                            "no weights to answer with")
        return module

    def _slot(self, model: int) -> nn.Module | None:
        if not 0 <= int(model) < len(self._models):
            raise ValueError(f"model number {model} out of range [0, {len(self._models)})")
        return self._models[int(model)]

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"inputs must have shape (N, {', '.join(map(str, self.in_shape))}), "
                             f"got {x.shape}")
        return x

    def probabilities(self, model: int, x: np.ndarray) -> np.ndarray:
        """Softmax outputs (N, classes) float32 of model ``model``: one ``predict_logits`` call."""
        module = self.module(model)
        x = self._inputs(x)
        if len(x) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        return softmax(predict_logits(module, x))

    def predictions(self, model: int, x: np.ndarray) -> np.ndarray:
        """Top-1 labels (N,) int64 of model ``model``."""
        labels: np.ndarray = self.probabilities(model, x).argmax(axis=1).astype(np.int64)
        return labels

    def outputs_grouped(self, models: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Row ``i``'s probabilities from model ``models[i]`` (the model the simulation chose).

        One batched forward pass (one ``predict_logits`` call) per distinct model, whatever the
        number of rows; rows keep their order.
        """
        models = np.asarray(models)
        x = self._inputs(x)
        if models.shape != (len(x),):
            raise ValueError(f"models must have shape ({len(x)},) (one per input), "
                             f"got {models.shape}")
        if models.size and not np.issubdtype(models.dtype, np.integer):
            raise ValueError(f"models must be integer model numbers, got dtype {models.dtype}")
        if models.size and not 0 <= models.min() <= models.max() < len(self):
            raise ValueError(f"model numbers must be in [0, {len(self)}), got "
                             f"{models.min()}..{models.max()}")
        out = np.empty((len(x), self.num_classes), np.float32)
        for m in np.unique(models):
            rows = np.flatnonzero(models == m)
            out[rows] = self.probabilities(int(m), x[rows])
        return out
