"""Defenses against model extraction through a model zoo (PSML, arXiv 2307.01292, §5).

Sanyal et al., "Pareto-Secure Machine Learning (PSML): Fingerprinting and Securing Inference
Serving Systems". ``DEFENSES`` is the registry a scenario's ``defense: {type: ...}`` names:
spec noise (the paper's), DP selection over the Pareto front, output perturbation baselines,
and ``chain`` to combine them.
"""

from __future__ import annotations

from typing import Any

from defense.base import Defense, NoDefense
from defense.chain import Chain
from defense.dp_selection import ExponentialMechanism, PermuteAndFlip
from defense.outputs import GaussianProbs, ReverseSigmoid, Rounding, Top1
from defense.spec_noise import GaussianNoise, LaplaceNoise, UniformNoise

DEFENSES: dict[str, Any] = {
    "none": NoDefense,
    "gaussian": GaussianNoise,
    "laplace": LaplaceNoise,
    "uniform": UniformNoise,
    "exponential": ExponentialMechanism,
    "permute_and_flip": PermuteAndFlip,
    "top1": Top1,
    "rounding": Rounding,
    "reverse_sigmoid": ReverseSigmoid,
    "gaussian_probs": GaussianProbs,
    "chain": Chain,
}

__all__ = ["DEFENSES", "Defense"]
