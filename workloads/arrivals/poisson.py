"""Poisson arrivals: exponential inter-arrival times at a fixed rate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from sim.plugins import Context, PluginParams
from sim.schema import MAX_RATE_RPS
from workloads.arrivals.base import ARRIVALS, CHUNK, ArrivalProcess


@ARRIVALS.register("poisson")
class PoissonArrivals(ArrivalProcess):
    """A homogeneous Poisson process of rate ``rate_rps``."""

    class Params(PluginParams):
        type: Literal["poisson"] = "poisson"
        rate_rps: Annotated[float, Field(gt=0, le=MAX_RATE_RPS,
                                          description="mean arrivals per second")]

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.rate = params.rate_rps

    def chunks(self) -> Iterator[np.ndarray]:
        rng = self.rng
        t = 0.0
        while True:
            times = t + np.cumsum(rng.exponential(1.0 / self.rate, CHUNK))
            t = float(times[-1])
            yield times

    def mean_rate(self) -> float:
        return self.rate
