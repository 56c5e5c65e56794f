"""Shared machinery of trace replay: the common options and the rescaling rules.

Every trace process takes ``time_compression`` (all times are divided by it: 2.0 replays the
trace twice as fast, so at twice the rate) and ``scale`` (a rate multiplier that keeps the
trace's shape, as in the "rate scale" of AlpaServe OSDI'23 and Clockwork OSDI'20 replays).

Rescaling rules (both use only the tenant's arrival stream, and none at ``scale = 1``):

- per-minute counts (Azure Functions 2019): a minute's count ``c`` becomes
  ``floor(c * scale)`` plus one more with probability ``frac(c * scale)``, so the expected
  count is exactly ``c * scale``;
- timestamps: each arrival becomes ``floor(scale)`` copies plus one more with probability
  ``frac(scale)``; the first copy keeps the arrival's time, the extra copies are uniform
  between it and the next arrival (the last arrival's extras coincide with it). With
  ``scale < 1`` this is independent thinning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from sim.plugins import Context, PluginParams
from sim.schema import ExistingFile
from workloads.arrivals.base import CHUNK, ArrivalProcess


class TraceParams(PluginParams):
    """Options every trace replay accepts."""

    path: Annotated[ExistingFile, Field(description="the trace file (relative to the config), "
                                        "or the file name of a shipped trace (workloads/data)")]
    time_compression: Annotated[
        float,
        Field(
            gt=0, allow_inf_nan=False, description="divides every time: 2.0 replays twice as fast"
        ),
    ] = 1.0
    scale: Annotated[
        float,
        Field(
            gt=0, allow_inf_nan=False, description="rate multiplier (see workloads.arrivals.replay)"
        ),
    ] = 1.0


def scale_counts(counts: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``floor(c * scale)`` plus a Bernoulli(``frac(c * scale)``) extra per count ``c``."""
    counts = np.asarray(counts, dtype=np.int64)
    if scale == 1.0:
        return counts
    target = counts * scale
    base = np.floor(target)
    extra = rng.random(len(counts)) < (target - base)
    return base.astype(np.int64) + extra


def replicate(
    times: np.ndarray, scale: float, rng: np.random.Generator, successor: float | None = None
) -> np.ndarray:
    """Sorted times after giving each arrival ``floor(scale)`` + Bernoulli(frac) copies.

    ``times`` must be sorted; extra copies fall uniformly in ``[t_i, t_{i+1})``, where the last
    arrival's next one is ``successor`` (its extras coincide with it when None).
    """
    if scale == 1.0 or len(times) == 0:
        return times
    whole = int(np.floor(scale))
    copies = whole + (rng.random(len(times)) < scale - whole)
    gaps = np.diff(times, append=times[-1] if successor is None else successor)
    extras = np.maximum(copies - 1, 0)
    extra_times = np.repeat(times, extras) + rng.random(int(extras.sum())) * np.repeat(gaps, extras)
    return np.sort(np.concatenate([times[copies > 0], extra_times]), kind="stable")


def replay_times(
    times: np.ndarray, scale: float, rng: np.random.Generator, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """:func:`replicate` in blocks of ``chunk`` arrivals, each block told its successor."""
    for lo in range(0, len(times), chunk):
        hi = lo + chunk
        successor = float(times[hi]) if hi < len(times) else None
        out = replicate(times[lo:hi], scale, rng, successor)
        if len(out):
            yield out


class TimestampTrace(ArrivalProcess):
    """Replays a sorted array of relative arrival times (s), rescaled by the common options."""

    finite: ClassVar[bool] = True

    def __init__(self, params: TraceParams, ctx: Context, relative_times: np.ndarray) -> None:
        super().__init__(params, ctx)
        self.times = np.asarray(relative_times, dtype=np.float64) / params.time_compression
        self.scale = params.scale

    def chunks(self) -> Iterator[np.ndarray]:
        yield from replay_times(self.times, self.scale, self.rng)

    def mean_rate(self) -> float | None:
        span = float(self.times[-1] - self.times[0])
        return len(self.times) * self.scale / span if span > 0 else None
