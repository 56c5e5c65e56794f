"""Goodput that sees answers: what an output defense costs benign clients.

Goodput (docs/paper.md) judges a request by the serving model's *profiled* accuracy and its latency,
so a defense that perturbs answers (top-1 only, rounding, reverse sigmoid, Gaussian noise on
the probabilities; PSML §5's baselines) costs nothing by construction. This second measure
gives every simulated request a real input: an index into the zoo's test split, drawn from its
tenant's own random stream (``("answers", tenant)``). The answers are computed after the run,
one batched forward pass per serving model, and perturbed by a copy of the defense drawing from
its own stream per tenant (``("defense", "answers", tenant)``), so the attacker's answers, the
arrivals and every other tenant's draws are unchanged (common random numbers). A request whose
perturbed top-1 differs from the unperturbed one is counted as lost (``answer_ok`` False).

The records come a chunk at a time (:mod:`sim.recorder`), so :class:`AnswerCheck` keeps each
tenant's two streams and the loaded zoo between chunks: a tenant's k-th request sees the same
draws whatever the chunking (one chunk for runs under 65,536 requests).

Without an output defense every answer is intact, and ``goodput_answers`` equals ``goodput``;
with one, on a zoo without weights (published figures), it is unknown (null).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from defense.stack import DefenseStack
from sim.errors import UserError

if TYPE_CHECKING:
    from attacks.victim import VictimZoo


class AnswerCheck:
    """Judges answers chunk by chunk, keeping each tenant's input and defense streams.

    Each tenant draws its inputs from ``inputs(tenant)`` and its perturbations from
    ``defense(tenant)`` (each called once per tenant), so a tenant's k-th request sees the
    same input and noise whatever the other tenants did (the attacker's traffic differs
    between defenses; the benign tenants' must not)."""

    def __init__(self, profile: str, base_dir: Path | None,
                 defense: Callable[[int], DefenseStack],
                 inputs: Callable[[int], np.random.Generator]) -> None:
        self.profile, self.base_dir = profile, base_dir
        self.defense, self.inputs = defense, inputs
        self._zoo: VictimZoo | None = None
        self._usable: bool | None = None
        self._streams: dict[int, tuple[np.random.Generator, DefenseStack]] = {}

    def _victims(self) -> VictimZoo | None:
        if self._usable is None:
            from attacks.victim import VictimZoo

            try:
                self._zoo = VictimZoo(self.profile, self.base_dir)
            except UserError:
                self._zoo = None
            zoo = self._zoo
            self._usable = zoo is not None and all(zoo.has_weights(m) for m in range(len(zoo)))
        return self._zoo if self._usable else None

    def intact(self, models: np.ndarray, tenants: np.ndarray,
               flagged: np.ndarray | None = None) -> np.ndarray | None:
        """Per request (served by ``models[i]``, from tenant ``tenants[i]``, rows in arrival
        order, after the rows of earlier calls): whether its answer's top-1 survived the
        output defense. ``flagged`` (per request) tells a ``flagged_only`` output defense
        which answers to perturb. None when the zoo has no weights to answer with."""
        zoo = self._victims()
        if zoo is None:
            return None
        test = zoo.dataset().test
        models = np.asarray(models, dtype=np.int64)
        intact = np.ones(len(models), dtype=bool)
        if flagged is None:
            flagged = np.zeros(len(models), dtype=bool)
        for t in np.unique(tenants):
            rows = np.flatnonzero(tenants == t)
            served = models[rows] >= 0   # a request rejected by an admission defense got none
            intact[rows[~served]] = False
            rows = rows[served]
            if not len(rows):
                continue
            stream = self._streams.get(int(t))
            if stream is None:
                stream = self._streams[int(t)] = (self.inputs(int(t)), self.defense(int(t)))
            picked = stream[0].integers(len(test), size=len(rows))
            clean = zoo.outputs_grouped(models[rows], test.x[picked])
            seen = stream[1].postprocess_rows(clean.copy(), flagged[rows])
            intact[rows] = seen.argmax(axis=1) == clean.argmax(axis=1)
        return intact
