"""Replay of the Azure Functions 2019 trace (per-minute invocation counts).

The trace of Shahrad et al., "Serverless in the Wild" (ATC'20), gives, per function, how many
times it was invoked in each minute of a day; Clockwork (OSDI'20) and AlpaServe (OSDI'23) drive
inference-serving experiments with it. One or more functions (their counts summed) are replayed
over a window of minutes. The trace has no sub-minute timing, so each minute's count is spread
inside that minute: ``uniform`` places them as sorted uniform times (a Poisson process
conditioned on its count), ``even`` at the midpoints of ``count`` equal slots. Minute ``m``
(1-based) covers ``[(m - start_minute) * 60, +60)`` seconds, divided by ``time_compression``.
With ``scale = 1`` every minute's count is reproduced exactly; otherwise see
:mod:`workloads.arrivals.replay` (``floor(c * scale)`` + a Bernoulli extra per minute).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, StrictInt

from sim.errors import TraceError
from sim.plugins import Context
from workloads.arrivals.base import ARRIVALS, CHUNK, ArrivalProcess
from workloads.arrivals.replay import TraceParams, scale_counts
from workloads.traces import MIN_HASH_PREFIX, load_azure_functions_2019_counts

MINUTE_S = 60.0

FunctionRefParam = (
    Annotated[StrictInt, Field(ge=0)] | Annotated[str, Field(min_length=MIN_HASH_PREFIX)]
)


def spread_in_minutes(
    counts: np.ndarray, spread: Literal["uniform", "even"], rng: np.random.Generator
) -> np.ndarray:
    """Sorted times (s) placing ``counts[i]`` arrivals in ``[60 i, 60 (i + 1))``."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.arange(len(counts)) * MINUTE_S, counts)
    if spread == "uniform":
        inside = rng.random(len(starts)) * MINUTE_S
    else:
        first = np.repeat(np.cumsum(counts) - counts, counts)  # index of each minute's first
        slot = np.arange(len(starts)) - first
        inside = (slot + 0.5) * (MINUTE_S / np.repeat(counts, counts))
    times = np.sort(starts + inside)
    # starts + inside can round up to the next minute's start in float64: keep it inside
    return np.minimum(times, np.nextafter(starts + MINUTE_S, starts))


@ARRIVALS.register("azure_functions_2019")
class AzureFunctions2019Arrivals(ArrivalProcess):
    """Per-minute counts of Azure Functions 2019, spread within each minute."""

    finite: ClassVar[bool] = True

    class Params(TraceParams):
        type: Literal["azure_functions_2019"] = "azure_functions_2019"
        function: Annotated[
            FunctionRefParam | list[FunctionRefParam],
            Field(description="0-based data row or HashFunction (prefix >= 8 chars), or a list"),
        ]
        start_minute: Annotated[int, Field(ge=1, description="first minute replayed (1-based)")] = 1
        minutes: Annotated[
            int | None, Field(ge=1, description="minutes replayed; None: to the end")
        ] = None
        spread: Literal["uniform", "even"] = "uniform"

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.counts = load_azure_functions_2019_counts(
            params.path, params.function, params.start_minute, params.minutes
        )
        if self.counts.sum() == 0:
            last = params.start_minute + len(self.counts) - 1
            raise TraceError(
                f"{params.path}: function {params.function!r} has no invocations in minutes "
                f"{params.start_minute}..{last}: choose another function or window"
            )
        self.spread = params.spread
        self.scale = params.scale
        self.time_compression = params.time_compression

    def chunks(self) -> Iterator[np.ndarray]:
        rng = self.rng
        counts = scale_counts(self.counts, self.scale, rng)
        ends = np.cumsum(counts)
        lo = 0
        while lo < len(counts):
            # whole minutes, about CHUNK arrivals (at least one minute) per block
            hi = max(lo + 1, int(np.searchsorted(ends, ends[lo] - counts[lo] + CHUNK, "right")))
            times = spread_in_minutes(counts[lo:hi], self.spread, rng)
            if len(times):
                yield (times + lo * MINUTE_S) / self.time_compression
            lo = hi

    def mean_rate(self) -> float:
        duration = len(self.counts) * MINUTE_S / self.time_compression
        return float(self.counts.sum()) * self.scale / duration
