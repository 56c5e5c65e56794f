"""Output perturbation baselines, as ART's post-processors define them (Adversarial Robustness
Toolbox, ``art.defences.postprocessor``): what a client receives instead of the model's
probabilities. ``top1`` (ClassLabels: a one-hot label), ``rounding`` (Rounded: ``decimals``),
``reverse_sigmoid`` (ReverseSigmoid, Lee et al. 2019: ``beta``, ``gamma``), ``gaussian_probs``
(GaussianNoise: N(0, sd²) added, negatives clipped, rows renormalised). Every output is a valid
probability vector; selection and goodput are untouched (these defenses cost answer quality).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from defense.base import Defense
from sim.schema import Strict
from sim.zoo import Zoo


def _renormalise(p: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows divided by their sums; an all-zero row becomes the one-hot of ``fallback``'s top-1."""
    sums = p.sum(axis=1, keepdims=True)
    dead = sums[:, 0] <= 0
    if dead.any():
        p = p.copy()
        p[dead] = np.eye(p.shape[1])[fallback[dead].argmax(axis=1)]
        sums = p.sum(axis=1, keepdims=True)
    out: np.ndarray = p / sums
    return out


class OutputDefense(Defense):
    changes_outputs = True

    def __init__(self, params: Strict, rng: np.random.Generator, zoo: Zoo) -> None:
        super().__init__(params, rng, zoo)


class Top1(OutputDefense):
    """Only the top-1 label, as a one-hot vector."""

    class Params(Strict):
        type: Literal["top1"] = "top1"

    def perturb_outputs(self, probs: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.eye(probs.shape[1], dtype=probs.dtype)[probs.argmax(axis=1)]
        return out


class Rounding(OutputDefense):
    """Probabilities rounded to ``decimals`` places (renormalised)."""

    class Params(Strict):
        type: Literal["rounding"] = "rounding"
        decimals: Annotated[int, Field(ge=0, le=10)] = 1

    def perturb_outputs(self, probs: np.ndarray) -> np.ndarray:
        decimals = self.params.decimals  # type: ignore[attr-defined]
        return _renormalise(np.round(probs, decimals), probs)


class ReverseSigmoid(OutputDefense):
    """Lee et al.'s reverse-sigmoid perturbation (ART's formula), renormalised."""

    class Params(Strict):
        type: Literal["reverse_sigmoid"] = "reverse_sigmoid"
        beta: Annotated[float, Field(gt=0)] = 1.0
        gamma: Annotated[float, Field(gt=0)] = 0.1

    def perturb_outputs(self, probs: np.ndarray) -> np.ndarray:
        beta, gamma = self.params.beta, self.params.gamma  # type: ignore[attr-defined]
        clipped = np.clip(probs, 1e-9, 1 - 1e-9)
        r = beta * (1 / (1 + np.exp(gamma * np.log((1 - clipped) / clipped))) - 0.5)
        return _renormalise(np.clip(probs - r, 0.0, 1.0), probs)


class GaussianProbs(OutputDefense):
    """Gaussian noise on the probabilities, negatives clipped, rows renormalised."""

    class Params(Strict):
        type: Literal["gaussian_probs"] = "gaussian_probs"
        sd: Annotated[float, Field(gt=0)] = 0.1

    def perturb_outputs(self, probs: np.ndarray) -> np.ndarray:
        sd = self.params.sd  # type: ignore[attr-defined]
        noisy = np.clip(probs + self.rng.normal(0.0, sd, probs.shape), 0.0, None)
        return _renormalise(noisy, probs)
