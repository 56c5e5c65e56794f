"""The defense interface (PSML §5: perturb what the selection policy sees).

A spec defense rewrites a request's ``acc_spec``/``lat_spec_ms`` before model selection; the
original targets stay on the request, and goodput is judged against them (PAPER.md).
Defenses draw from their own named random stream, so a defended run sees the same arrivals
as an undefended one with the same seed (common random numbers).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from sim.request import Request
from sim.schema import Strict


class Defense:
    """Base: the identity. Subclasses override ``perturb``."""

    Params: ClassVar[type[Strict]]
    active: ClassVar[bool] = True
    """False for the identity, so the engine can skip the call."""

    def __init__(self, params: Strict, rng: np.random.Generator) -> None:
        self.params = params

    def perturb(self, req: Request) -> None:
        """Set ``req.acc_spec`` and ``req.lat_spec_ms`` from the request's targets."""


class NoDefense(Defense):
    """No defense: the policy sees the request's own targets."""

    class Params(Strict):
        type: Literal["none"] = "none"

    active = False
