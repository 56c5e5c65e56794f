"""The defense roles (PSML §5, and the baselines it is compared with).

A defense acts at one point of a request's life, its *role*, through one abstract method:

- :class:`Admission` sees each request with its client identity (``req.tenant``) before
  anything else, may keep per-client state, and admits, flags or rejects it (detection of
  fingerprinting clients, load shedding);
- :class:`SpecPerturber` rewrites the spec the selection policy sees (``acc_spec``,
  ``lat_spec_ms``); the original targets stay on the request and goodput is judged against
  them (docs/paper.md);
- :class:`Selector` chooses the serving model itself, replacing the policy (DP selection);
- :class:`OutputPostprocessor` changes the answers a client receives (as each of ART's
  post-processors is one ``__call__``).

A scenario's ``defense`` is one block or a stack of them (:mod:`defense.stack`); every defense
is a registered plugin (:data:`DEFENSES`, :mod:`sim.plugins`) built as ``cls(params, ctx)`` and
draws from its own named random stream, so a defended run sees the same arrivals as an
undefended one with the same seed (common random numbers).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import ClassVar, Literal

import numpy as np

from sim.plugins import Context, PluginParams, Registry
from sim.request import Request
from sim.zoo import Zoo

Candidates = Literal["front", "all"]
"""The models a selecting defense may serve with: the Pareto front, or every model."""


def candidate_models(zoo: Zoo, which: Candidates) -> list[int]:
    """The model numbers ``which`` names (the front fastest first, or all in profile order)."""
    return list(zoo.front) if which == "front" else list(range(len(zoo)))


class Defense(ABC):
    """Base of every defense: its parameters, the zoo and its random stream."""

    Params: ClassVar[type[PluginParams]]
    only_flagged: bool = False
    """Acts on flagged requests only (set by :mod:`defense.flagged`)."""

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        self.params = params
        self.zoo = ctx.zoo
        self.rng = ctx.rng()


def leaves(members: list[Defense]) -> list[Defense]:
    """The defenses that act, in order: containers (a chain, ``flagged_only``: anything with
    ``members``) replaced by their members, recursively."""
    out: list[Defense] = []
    for d in members:
        inner: list[Defense] | None = getattr(d, "members", None)
        out.extend([d] if inner is None else leaves(inner))
    return out


DEFENSES: Registry[Defense] = Registry("defense", Defense)
"""Defenses by the name a scenario's ``defense: {type: ...}`` uses."""


class Decision(Enum):
    """What an admission defense does with a request."""

    ADMIT = "admit"
    FLAG = "flag"
    """Admitted and marked (``req.flagged``): later roles may treat it differently."""
    REJECT = "reject"
    """Not served: it completes at once, unserved, and counts against goodput."""


class Admission(Defense):
    """Sees every request with its client identity before the spec is perturbed or a model
    chosen; may keep per-client state."""

    @abstractmethod
    def admit(self, req: Request) -> Decision:
        """The decision for ``req`` (``req.tenant`` identifies its client)."""


class SpecPerturber(Defense):
    """Rewrites the spec the selection policy sees."""

    @abstractmethod
    def perturb(self, req: Request) -> None:
        """Rewrite ``req.acc_spec`` and ``req.lat_spec_ms`` (they start as the request's own
        targets, and earlier perturbers' output, so perturbations compose in a stack)."""


class Selector(Defense):
    """Chooses the serving model itself, in place of the selection policy."""

    @abstractmethod
    def select(self, req: Request) -> tuple[int, bool] | None:
        """The serving model and whether it meets the (perturbed) spec; None leaves the choice
        to the policy (a selector that has nothing to randomise over)."""


class OutputPostprocessor(Defense):
    """Changes the answers a client receives."""

    @abstractmethod
    def __call__(self, probs: np.ndarray) -> np.ndarray:
        """Answers (rows of class probabilities) as the client receives them."""


@DEFENSES.register("none")
class NoDefense(Defense):
    """No defense: the policy sees the request's own targets."""

    class Params(PluginParams):
        type: Literal["none"] = "none"
