"""Output perturbation baselines, as ART's post-processors define them (Adversarial Robustness
Toolbox, ``art.defences.postprocessor``): what a client receives instead of the model's
probabilities. ``top1`` (ClassLabels: a one-hot label), ``rounding`` (Rounded: ``decimals``),
``reverse_sigmoid`` (ReverseSigmoid, Lee et al. 2019: ``beta``, ``gamma``), ``gaussian_probs``
(GaussianNoise: N(0, sd²) added, negatives clipped, rows renormalised). Every output is a valid
probability vector; selection and goodput are untouched (these defenses cost answer quality,
which ``goodput_answers`` measures: :mod:`defense.answers`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from defense.base import DEFENSES, OutputPostprocessor
from sim.plugins import Context, PluginParams


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


@DEFENSES.register("top1")
class Top1(OutputPostprocessor):
    """Only the top-1 label, as a one-hot vector."""

    class Params(PluginParams):
        type: Literal["top1"] = "top1"

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.eye(probs.shape[1], dtype=probs.dtype)[probs.argmax(axis=1)]
        return out


@DEFENSES.register("rounding")
class Rounding(OutputPostprocessor):
    """Probabilities rounded to ``decimals`` places (renormalised)."""

    class Params(PluginParams):
        type: Literal["rounding"] = "rounding"
        decimals: Annotated[int, Field(ge=0, le=10)] = 1

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.decimals = params.decimals

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        decimals = self.decimals
        return _renormalise(np.round(probs, decimals), probs)


@DEFENSES.register("reverse_sigmoid")
class ReverseSigmoid(OutputPostprocessor):
    """Lee et al.'s reverse-sigmoid perturbation (ART's formula), renormalised."""

    class Params(PluginParams):
        type: Literal["reverse_sigmoid"] = "reverse_sigmoid"
        beta: Annotated[float, Field(gt=0)] = 1.0
        gamma: Annotated[float, Field(gt=0)] = 0.1

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.beta, self.gamma = params.beta, params.gamma

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        beta, gamma = self.beta, self.gamma
        clipped = np.clip(probs, 1e-9, 1 - 1e-9)
        with np.errstate(divide="ignore"):   # float32 keeps 1 - 1e-9 at 1.0: log(0) = -inf
            r = beta * (1 / (1 + np.exp(gamma * np.log((1 - clipped) / clipped))) - 0.5)
        return _renormalise(np.clip(probs - r, 0.0, 1.0), probs)


@DEFENSES.register("gaussian_probs")
class GaussianProbs(OutputPostprocessor):
    """Gaussian noise on the probabilities, negatives clipped, rows renormalised."""

    class Params(PluginParams):
        type: Literal["gaussian_probs"] = "gaussian_probs"
        sd: Annotated[float, Field(gt=0)] = 0.1

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.sd = params.sd

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        sd = self.sd
        noisy = np.clip(probs + self.rng.normal(0.0, sd, probs.shape), 0.0, None)
        return _renormalise(noisy, probs)
