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
    leaves,
)
from sim.plugins import Context, PluginParams
from sim.request import Request


class DefenseStack:
    """The defenses of one serving system, by role, in the order the scenario gives them."""

    def __init__(self, members: list[Defense]) -> None:
        flat = leaves(members)
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
        """Every admission defense's decision, in order, combined: reject > flag > admit. A
        flag marks ``req.flagged`` at once, so the admission defenses after it (and every
        later role) see it; a ``flagged_only`` member acts on flagged requests only."""
        decision = Decision.ADMIT
        for d in self.admission:
            if d.only_flagged and not req.flagged:
                continue
            verdict = d.admit(req)
            if verdict is Decision.REJECT:
                return verdict
            if verdict is Decision.FLAG:
                req.flagged = True
                decision = verdict
        return decision

    def perturb(self, req: Request) -> None:
        """Every spec perturbation, in order."""
        for d in self.perturbers:
            if req.flagged or not d.only_flagged:
                d.perturb(req)

    def select(self, req: Request) -> tuple[int, bool] | None:
        """The selecting defense's choice, or None to leave it to the policy."""
        d = self.selector
        if d is None or (d.only_flagged and not req.flagged):
            return None
        return d.select(req)

    def postprocess(self, probs: np.ndarray, flagged: bool = False) -> np.ndarray:
        """The answers a client receives: ``probs`` through every output post-processor
        (those inside ``flagged_only`` only when the request was ``flagged``)."""
        if not len(probs):
            return probs
        for d in self.postprocessors:
            if flagged or not d.only_flagged:
                probs = d(probs)
        return probs

    def postprocess_rows(self, probs: np.ndarray, flagged: np.ndarray) -> np.ndarray:
        """:meth:`postprocess` of rows from several requests, ``flagged`` per row: the
        unflagged rows in one pass, then the flagged ones (one pass when no post-processor
        tells them apart, drawing noise exactly as :meth:`postprocess` does)."""
        if not any(d.only_flagged for d in self.postprocessors):
            return self.postprocess(probs)
        out = np.array(probs, copy=True)
        for rows, flag in ((~flagged, False), (flagged, True)):
            if rows.any():
                out[rows] = self.postprocess(probs[rows], flag)
        return out


def build_defenses(params: PluginParams, ctx: Context) -> DefenseStack:
    """The stack of a scenario's ``defense`` block; ``ctx`` carries its stream (``defense``)."""
    return DefenseStack([DEFENSES.build(params, ctx)])
