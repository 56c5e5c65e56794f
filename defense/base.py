"""The defense interface (PSML §5, and the baselines it is compared with).

A defense may act at three points of a request's life, each an optional hook:
- ``perturb(req)``: rewrite the spec the selection policy sees (``acc_spec``, ``lat_spec_ms``);
  the original targets stay on the request and goodput is judged against them (PAPER.md);
- ``select(req)``: choose the model itself, replacing the policy (DP selection);
- ``perturb_outputs(probs)``: change the answers a client receives (output perturbation).
Defenses draw from their own named random stream, so a defended run sees the same arrivals
as an undefended one with the same seed (common random numbers).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from sim.request import Request
from sim.schema import Strict
from sim.zoo import Zoo


class Defense:
    """Base: the identity at every hook. Subclasses set the flags of the hooks they use."""

    Params: ClassVar[type[Strict]]
    active: bool = False
    """``perturb`` changes specs."""
    selects: bool = False
    """``select`` replaces the policy."""
    changes_outputs: bool = False
    """``perturb_outputs`` changes answers."""

    def __init__(self, params: Strict, rng: np.random.Generator, zoo: Zoo) -> None:
        self.params = params
        self.rng = rng
        self.zoo = zoo

    def perturb(self, req: Request) -> None:
        """Rewrite ``req.acc_spec`` and ``req.lat_spec_ms`` (they start as the request's own
        targets, so perturbations compose in a chain)."""

    def select(self, req: Request) -> tuple[int, bool]:
        """The serving model and whether it meets the (perturbed) spec."""
        raise NotImplementedError

    def perturb_outputs(self, probs: np.ndarray) -> np.ndarray:
        """Answers (rows of class probabilities) as the client receives them."""
        return probs


class NoDefense(Defense):
    """No defense: the policy sees the request's own targets."""

    class Params(Strict):
        type: Literal["none"] = "none"
