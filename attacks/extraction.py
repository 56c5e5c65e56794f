"""Surrogate training from victim answers, and the surrogate's accuracy and fidelity.

Two attacker views of the victim's answers, as in PSML (Sanyal et al., arXiv 2307.01292, §4):

- ``probabilities``: Knockoff Nets (Orekondy et al., CVPR'19): the surrogate is trained on the
  victim's soft labels with the soft cross-entropy ``-sum_k p_k log q_k`` (the KL divergence
  ``KL(p || q)`` up to a constant in the surrogate);
- ``labels``: CopycatCNN (Correia-Silva et al., IJCNN'18): only the top-1 label is used, with
  ordinary cross-entropy.

Training is the zoo's recipe (:mod:`zoo_profiles.train`): Adam, learning rate cosine-annealed to
zero, deterministic algorithms, eval mode at the end. Randomness comes only from named streams of
:class:`sim.rng.SeedTree` under the ``"surrogate"`` name (so a surrogate never starts from the
initial weights of a victim trained with the same seed): the initial weights (inside
``torch.random.fork_rng``), the mini-batch order and the optional augmentation
(:mod:`attacks.augment`, redrawn every epoch), each a ``torch.Generator``.

Evaluation (docs/paper.md, "Definitions"): **accuracy** is top-1 agreement with the ground truth of
the test split, **fidelity** is top-1 agreement with the target victim's predictions on the same
split (Jagielski et al., USENIX Security 2020), both in percent.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from attacks.augment import augment as jitter
from sim.rng import SeedTree
from zoo_profiles.datasets import Split
from zoo_profiles.models import Shape, build_model
from zoo_profiles.train import deterministic, predict_logits

OutputKind = Literal["probabilities", "labels"]
KINDS: tuple[OutputKind, ...] = ("probabilities", "labels")


def _targets(answers: np.ndarray, kind: str, n: int, num_classes: int) -> torch.Tensor:
    """Soft targets (N, classes) float32 or hard targets (N,) int64, validated."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    a = np.asarray(answers)
    if len(a) != n:
        raise ValueError(f"answers has {len(a)} rows but x has {n} inputs")
    if a.ndim == 2:
        if a.shape[1] != num_classes:
            raise ValueError(f"answers must have {num_classes} columns, got {a.shape[1]}")
        p = a.astype(np.float64)
        sums = p.sum(axis=1, keepdims=True)
        if not np.isfinite(p).all() or (p < 0).any() or (sums <= 0).any():
            raise ValueError("probability answers must be finite, >= 0, with positive row sums")
        if kind == "labels":  # the top-1 attacker reads only the label
            return torch.from_numpy(p.argmax(axis=1).astype(np.int64))
        return torch.from_numpy((p / sums).astype(np.float32))
    if a.ndim != 1 or kind == "probabilities":
        raise ValueError(f"{kind} answers must be (N, {num_classes}) probabilities"
                         + (" or (N,) labels" if kind == "labels" else "")
                         + f", got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= num_classes:
        raise ValueError(f"label answers must be integers in [0, {num_classes})")
    return torch.from_numpy(a.astype(np.int64))


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if target.ndim == 2:  # soft cross-entropy (Knockoff Nets)
        return -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return nn.functional.cross_entropy(logits, target)


def init_surrogate(arch: str, in_shape: Shape, num_classes: int, seed: int) -> nn.Module:
    """A fresh ``arch`` initialised from the stream ``("surrogate", arch, "init")``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SeedTree(seed).integer_seed("surrogate", arch, "init"))
        return build_model(arch, in_shape, num_classes)


def train_surrogate(x: np.ndarray, answers: np.ndarray, *, kind: OutputKind,
                    arch: str = "cnn_small", steps: int = 1000, seed: int,
                    batch_size: int = 64, lr: float = 1e-2, augment: bool = False,
                    max_shift: int = 2, noise_sd: float = 0.0,
                    num_classes: int = 10) -> nn.Module:
    """Train a surrogate ``arch`` on inputs ``x`` and the victim's ``answers`` (eval mode).

    ``answers`` are (N, classes) probabilities or, for ``kind="labels"``, (N,) labels (or
    probabilities, of which only the top-1 is used). Training runs ``steps`` mini-batches
    (passes over the data in seeded random orders, the last one cut short), the rate
    cosine-annealed to zero over them: the same optimiser budget whatever the number of
    answers. ``augment`` redraws, every pass, a shift of up to ``max_shift`` pixels per image
    and, if ``noise_sd`` > 0, Gaussian pixel noise.
    Same arguments and seed: bit-identical weights (on one machine, torch build and thread
    count).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) == 0:
        raise ValueError("cannot train a surrogate on an empty training set (no answers)")
    if x.ndim != 4:
        raise ValueError(f"x must be images (N, C, H, W), got shape {x.shape}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    target = _targets(answers, kind, len(x), num_classes)
    c, h, w = x.shape[1:]
    model = init_surrogate(arch, (int(c), int(h), int(w)), num_classes, seed)
    tree = SeedTree(seed)
    order_gen = torch.Generator().manual_seed(tree.integer_seed("surrogate", "shuffle"))
    aug_gen = torch.Generator().manual_seed(tree.integer_seed("surrogate", "augment"))
    inputs = torch.from_numpy(x)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    done = 0
    with deterministic():
        while done < steps:
            xs = jitter(inputs, aug_gen, max_shift, noise_sd) if augment else inputs
            order = torch.randperm(len(x), generator=order_gen)
            for start in range(0, len(x), batch_size):
                idx = order[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                torch.autograd.backward(_loss(model(xs[idx]), target[idx]))
                opt.step()
                sched.step()
                done += 1
                if done == steps:
                    break
    return model.eval()


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Percent of positions where the label arrays ``a`` and ``b`` agree."""
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"label arrays must be 1-D of equal length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("cannot measure agreement on an empty split")
    return round(100.0 * float((a == b).sum()) / len(a), 4)


def evaluate_surrogate(surrogate: nn.Module, test: Split,
                       target_predictions: np.ndarray) -> dict[str, float]:
    """``accuracy`` (vs ground truth) and ``fidelity`` (vs the target's top-1), percent."""
    target = np.asarray(target_predictions)
    if target.shape != test.y.shape:
        raise ValueError(f"target_predictions must have shape {test.y.shape} (one per test "
                         f"input), got {target.shape}")
    if len(test) == 0:
        raise ValueError("cannot evaluate a surrogate on an empty test split")
    pred = predict_logits(surrogate, test.x).argmax(axis=1)
    return {"accuracy": agreement(pred, test.y), "fidelity": agreement(pred, target)}
