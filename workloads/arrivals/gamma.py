"""Gamma renewal arrivals: i.i.d. gamma inter-arrival times of a given mean rate and CV.

The coefficient of variation ``cv`` sets burstiness: ``cv = 1`` is Poisson, ``cv > 1`` is
burstier (clumps of near-simultaneous arrivals between long gaps), ``cv < 1`` more regular.
AlpaServe (Li et al., OSDI'23) fits exactly this process to each Azure Functions 2019
function and replays the fit at a chosen rate and CV; it is the standard knob for "how bursty".
Shape ``k = 1 / cv**2``, scale ``cv**2 / rate``, so the mean gap is ``1 / rate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from sim.plugins import Context, PluginParams
from sim.schema import MAX_RATE_RPS
from workloads.arrivals.base import ARRIVALS, CHUNK, ArrivalProcess


@ARRIVALS.register("gamma")
class GammaArrivals(ArrivalProcess):
    """A renewal process with gamma(1/cv², cv²/rate) inter-arrival times."""

    class Params(PluginParams):
        type: Literal["gamma"] = "gamma"
        rate_rps: Annotated[
            float, Field(gt=0, le=MAX_RATE_RPS, description="mean arrivals per second")
        ]
        cv: Annotated[
            float,
            Field(gt=0, allow_inf_nan=False, description="coefficient of variation of the gaps"),
        ]

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.rate = params.rate_rps
        self.shape = 1.0 / params.cv**2
        self.scale = params.cv**2 / params.rate_rps

    def chunks(self) -> Iterator[np.ndarray]:
        rng = self.rng
        t = 0.0
        while True:
            times = t + np.cumsum(rng.gamma(self.shape, self.scale, CHUNK))
            t = float(times[-1])
            yield times

    def mean_rate(self) -> float:
        return self.rate
