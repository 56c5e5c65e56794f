"""Defenses against model extraction through a model zoo (PSML, arXiv 2307.01292, §5).

Sanyal et al., "Pareto-Secure Machine Learning (PSML): Fingerprinting and Securing Inference
Serving Systems". ``DEFENSES`` is the registry a scenario's ``defense: {type: ...}`` names, by
role (:mod:`defense.base`): admission (``rate_limit``, the bracketing detector ``detect``),
spec noise (the paper's, and SLO-aware variants that never make a request's own SLO
unreachable), DP selection over the Pareto front, output post-processing baselines,
``flagged_only`` to act on flagged clients alone, and ``chain`` (or a list) to stack them
(:mod:`defense.stack`). Importing this package registers them all.
"""

from __future__ import annotations

from defense import (
    admission,
    chain,
    detect,
    dp_selection,
    flagged,
    outputs,
    slo_aware,
    spec_noise,
)
from defense.base import (
    DEFENSES,
    Admission,
    Decision,
    Defense,
    OutputPostprocessor,
    Selector,
    SpecPerturber,
)
from defense.stack import DefenseStack, build_defenses

BUILT_IN = (admission, chain, detect, dp_selection, flagged, outputs, slo_aware, spec_noise)
"""The modules whose import registers the built-in defenses."""

__all__ = ["BUILT_IN", "DEFENSES", "Admission", "Decision", "Defense", "DefenseStack",
           "OutputPostprocessor", "Selector", "SpecPerturber", "build_defenses"]
