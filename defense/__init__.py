"""Defenses against model extraction through a model zoo (PSML, arXiv 2307.01292, §5).

Sanyal et al., "Pareto-Secure Machine Learning (PSML): Fingerprinting and Securing Inference
Serving Systems". ``DEFENSES`` is the registry a scenario's ``defense: {type: ...}`` names.
"""

from __future__ import annotations

from typing import Any

from defense.base import Defense, NoDefense
from defense.spec_noise import GaussianNoise, LaplaceNoise, UniformNoise

DEFENSES: dict[str, Any] = {
    "none": NoDefense,
    "gaussian": GaussianNoise,
    "laplace": LaplaceNoise,
    "uniform": UniformNoise,
}

__all__ = ["DEFENSES", "Defense"]
