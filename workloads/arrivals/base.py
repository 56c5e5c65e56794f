"""The arrival-process interface.

An arrival process yields *absolute* arrival times in seconds from the start of the run,
non-decreasing, in numpy chunks, so a million arrivals cost a handful of vectorised draws
rather than a million generator calls. The simulator's arrival source (:mod:`sim.source`)
merges every tenant's times into one event chain, never a process per request
(docs/architecture.md principle 1), and serves an arrival without an event when it would be
the next event anyway.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from sim.plugins import Context, PluginParams, Registry

CHUNK = 4096
"""Arrivals drawn per vectorised call."""


class ArrivalProcess(ABC):
    """Generates arrival times for one tenant from its own random stream."""

    Params: ClassVar[type[PluginParams]]
    finite: ClassVar[bool] = False
    """True when the process ends by itself (a trace); False when it needs a stop rule."""

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        self.params = params
        self.rng = ctx.rng()
        """The tenant's arrival stream (``arrivals/<tenant>``)."""

    @abstractmethod
    def chunks(self) -> Iterator[np.ndarray]:
        """Absolute arrival times (s), float64, non-decreasing within and across chunks."""

    def mean_rate(self) -> float | None:
        """Long-run arrivals per second, when known (used for reports, never for logic)."""
        return None


ARRIVALS: Registry[ArrivalProcess] = Registry("arrivals", ArrivalProcess)
"""Arrival processes by the name a scenario's ``arrivals: {type: ...}`` uses."""
