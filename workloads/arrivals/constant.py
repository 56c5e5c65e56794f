"""Constant-rate arrivals: a deterministic, evenly spaced stream (the D in D/M/c, D/D/1).

Useful as the no-burstiness baseline of a what-if study and for exact-timeline tests: the k-th
arrival (k = 1, 2, ...) is at ``k / rate_rps`` seconds. The random stream is not used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from sim.plugins import Context, PluginParams
from sim.schema import MAX_RATE_RPS
from workloads.arrivals.base import ARRIVALS, CHUNK, ArrivalProcess


@ARRIVALS.register("constant")
class ConstantArrivals(ArrivalProcess):
    """One arrival every ``1 / rate_rps`` seconds."""

    class Params(PluginParams):
        type: Literal["constant"] = "constant"
        rate_rps: Annotated[
            float, Field(gt=0, le=MAX_RATE_RPS, description="arrivals per second")
        ]

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.rate = params.rate_rps

    def chunks(self) -> Iterator[np.ndarray]:
        k = 1
        while True:
            # k / rate, not a running sum: no drift however long the run
            yield np.arange(k, k + CHUNK, dtype=np.float64) / self.rate
            k += CHUNK

    def mean_rate(self) -> float:
        return self.rate
