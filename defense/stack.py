"""The defense stack: a scenario's defenses sorted by role, applied at one place each.

The serving system (simulated or live) asks the stack, for each request: admit it
(:class:`~defense.base.Admission`, in order; a rejection wins over a flag), perturb its spec
(every :class:`~defense.base.SpecPerturber`, in order), choose its model (the one
:class:`~defense.base.Selector`, or the policy). Answers pass through :meth:`postprocess`, the
only place output post-processors run, for simulation, attacks and the live server alike.
"""

from __future__ import annotations

import numpy as np

from defense.base import (
    DEFENSES,
    Admission,
    Decision,
    Defense,
    OutputPostprocessor,
    Selector,
    SpecPerturber,
)
from defense.chain import Chain
from sim.plugins import Context, PluginParams
from sim.request import Request


class DefenseStack:
    """The defenses of one serving system, by role, in the order the scenario gives them."""

    def __init__(self, members: list[Defense]) -> None:
        flat = _flatten(members)
        self.members = flat
        self.admission = [d for d in flat if isinstance(d, Admission)]
        self.perturbers = [d for d in flat if isinstance(d, SpecPerturber)]
        selectors = [d for d in flat if isinstance(d, Selector)]
        if len(selectors) > 1:
            raise ValueError("at most one defense may select the model")
        self.selector: Selector | None = selectors[0] if selectors else None
        self.postprocessors = [d for d in flat if isinstance(d, OutputPostprocessor)]
        self.admits = bool(self.admission)
        """Some defense sees requests before selection (and may flag or reject them)."""
        self.changes_spec = bool(self.perturbers)
        self.changes_outputs = bool(self.postprocessors)

    def admit(self, req: Request) -> Decision:
        """Every admission defense's decision, combined: reject > flag > admit. A flagged
        request is marked ``req.flagged``."""
        decision = Decision.ADMIT
        for d in self.admission:
            verdict = d.admit(req)
            if verdict is Decision.REJECT:
                return verdict
            if verdict is Decision.FLAG:
                decision = verdict
        if decision is Decision.FLAG:
            req.flagged = True
        return decision

    def perturb(self, req: Request) -> None:
        """Every spec perturbation, in order."""
        for d in self.perturbers:
            d.perturb(req)

    def postprocess(self, probs: np.ndarray) -> np.ndarray:
        """The answers a client receives: ``probs`` through every output post-processor."""
        if not len(probs):
            return probs
        for d in self.postprocessors:
            probs = d(probs)
        return probs


def _flatten(members: list[Defense]) -> list[Defense]:
    out: list[Defense] = []
    for d in members:
        out.extend(_flatten(d.members) if isinstance(d, Chain) else [d])
    return out


def build_defenses(params: PluginParams, ctx: Context) -> DefenseStack:
    """The stack of a scenario's ``defense`` block; ``ctx`` carries its stream (``defense``)."""
    return DefenseStack([DEFENSES.build(params, ctx)])
