"""Seeded training and deterministic evaluation of zoo models.

Training is mini-batch Adam (Kingma and Ba, ICLR 2015) on cross-entropy, its learning rate
annealed to zero along a cosine over all steps (Loshchilov and Hutter, ICLR 2017), so the last
epoch's weights are stable rather than caught mid-oscillation. Randomness comes
only from named streams of :class:`sim.rng.SeedTree`: the initial weights are drawn inside
``torch.random.fork_rng`` from a seed named ``(arch, "init")`` (so torch's global RNG is left as
it was), and the order of the mini-batches from a ``torch.Generator`` seeded ``(arch,
"shuffle")``. Deterministic algorithms are switched on while training and evaluating; on a given
machine and torch build the same seed gives bit-identical weights.

Evaluation is top-1 accuracy in percent over a fixed split, in eval mode (batch norm uses its
running statistics), under ``torch.inference_mode``, in fixed-size batches: the same weights on
the same split give exactly the same accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sim.rng import SeedTree
from zoo_profiles.datasets import Split
from zoo_profiles.models import Shape, build_model

EVAL_BATCH = 250


@dataclass(frozen=True)
class Recipe:
    """Training hyperparameters of a zoo (every model of it gets the same)."""

    epochs: int = 12
    lr: float = 3e-3
    batch_size: int = 64

    def describe(self) -> str:
        return (f"Adam lr {self.lr:g} cosine-annealed to 0, batch {self.batch_size}, "
                f"{self.epochs} epochs, cross-entropy, no augmentation, CPU")


RECIPES: dict[str, Recipe] = {
    "mnist5k": Recipe(epochs=12, lr=3e-3, batch_size=64),
    "mnist1d": Recipe(epochs=40, lr=1e-2, batch_size=128),  # about 2,500 steps, as Greydanus
}
"""Per-dataset recipes, tuned so a CPU build takes minutes; others use ``Recipe()``."""


def recipe_for(dataset: str, epochs: int | None = None) -> Recipe:
    """The recipe of ``dataset``, with ``epochs`` overriding its epoch count."""
    r = RECIPES.get(dataset, Recipe())
    return r if epochs is None else Recipe(epochs, r.lr, r.batch_size)


@contextmanager
def deterministic() -> Iterator[None]:
    """Switch torch's deterministic algorithms on, restoring the previous setting after."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def init_model(arch: str, in_shape: Shape, num_classes: int, seed: int) -> nn.Module:
    """A freshly initialised ``arch`` whose weights depend only on ``seed`` and ``arch``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SeedTree(seed).integer_seed(arch, "init"))
        return build_model(arch, in_shape, num_classes)


def train_model(model: nn.Module, data: Split, *, arch: str, seed: int, epochs: int,
                batch_size: int = 64, lr: float = 3e-3) -> list[float]:
    """Train ``model`` in place (Adam, cosine-annealed rate); returns each epoch's mean loss."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    gen = torch.Generator().manual_seed(SeedTree(seed).integer_seed(arch, "shuffle"))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(y) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses: list[float] = []
    model.train()
    with deterministic():
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=gen)
            total = 0.0
            for start in range(0, len(y), batch_size):
                idx = order[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                torch.autograd.backward(loss)
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / len(y))
    model.zero_grad(set_to_none=True)
    model.eval()
    return losses


def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = EVAL_BATCH,
                   device: torch.device | None = None, exact: bool = True) -> np.ndarray:
    """Logits of ``model`` (in eval mode, on ``device``: the CPU when None) on images ``x``,
    in fixed-size batches, with torch's deterministic algorithms (``exact``; else the ones
    torch picks, as a GPU deployment runs)."""
    model.eval()
    out = []
    with deterministic() if exact else nullcontext(), torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(x[start:start + batch_size])
            if device is not None:
                batch = batch.to(device)
            out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def top1(pred: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent of predicted labels ``pred`` (rounded as profiles keep it)."""
    if len(labels) == 0:
        raise ValueError("cannot measure accuracy on an empty split")
    return round(100.0 * float((pred == labels).sum()) / len(labels), 4)


def accuracy(model: nn.Module, data: Split) -> float:
    """Top-1 accuracy in percent on ``data``."""
    if len(data) == 0:
        raise ValueError("cannot measure accuracy on an empty split")
    return top1(predict_logits(model, data.x).argmax(axis=1), data.y)
