"""Two-state Markov-modulated Poisson process (MMPP-2): bursts and lulls.

The process alternates between state 0 and state 1; a sojourn in state ``s`` lasts an
exponential time of mean ``mean_durations_s[s]``, during which arrivals are Poisson at
``rates_rps[s]`` (Fischer & Meier-Hellstern 1993, the classic model of bursty request traffic).
It is generated vectorised: a block of sojourns is drawn at once, each gets a Poisson count,
placed uniformly within the sojourn (a Poisson process conditioned on its count); a sojourn
expecting more than a chunk of arrivals is streamed by exponential gaps instead.
Long-run rate: ``(r0*d0 + r1*d1) / (d0 + d1)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import pairwise
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from sim.plugins import Context, PluginParams
from sim.schema import MAX_RATE_RPS
from workloads.arrivals.base import ARRIVALS, CHUNK, ArrivalProcess

MAX_SOJOURNS = 1 << 16
"""Upper bound on sojourns drawn per block (keeps a near-idle process's blocks small)."""


@ARRIVALS.register("mmpp")
class MMPPArrivals(ArrivalProcess):
    """Poisson arrivals whose rate switches between two levels at exponential times."""

    class Params(PluginParams):
        type: Literal["mmpp"] = "mmpp"
        rates_rps: Annotated[
            list[Annotated[float, Field(ge=0, le=MAX_RATE_RPS)]],
            Field(min_length=2, max_length=2, description="arrival rate in state 0 and 1"),
        ]
        mean_durations_s: Annotated[
            list[Annotated[float, Field(gt=0, allow_inf_nan=False)]],
            Field(min_length=2, max_length=2, description="mean sojourn in state 0 and 1"),
        ]
        start_state: Literal[0, 1] = 0

        @model_validator(mode="after")
        def _some_rate(self) -> MMPPArrivals.Params:
            if not any(r > 0 for r in self.rates_rps):
                raise ValueError("rates_rps: at least one state needs a rate > 0")
            return self

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self.rates = np.asarray(params.rates_rps, dtype=np.float64)
        self.durations = np.asarray(params.mean_durations_s, dtype=np.float64)
        self.start_state = params.start_state
        per_cycle = float(self.rates @ self.durations)  # expected arrivals per 0-1 cycle
        self.block = 2 * min(MAX_SOJOURNS // 2, max(1, math.ceil(CHUNK / per_cycle)))

    def chunks(self) -> Iterator[np.ndarray]:
        rng = self.rng
        states = (self.start_state + np.arange(self.block)) % 2  # even block: pattern repeats
        rates = self.rates[states]
        t = 0.0
        while True:
            lengths = rng.exponential(self.durations[states])
            starts = t + np.cumsum(lengths) - lengths
            t = float(starts[-1] + lengths[-1])
            big = rates * lengths > CHUNK
            edges = [0, *(np.flatnonzero(np.diff(big)) + 1).tolist(), len(big)]
            for lo, hi in pairwise(edges):
                if big[lo]:  # sojourns expecting > CHUNK arrivals: streamed, CHUNK at a time
                    for i in range(lo, hi):
                        yield from _poisson_interval(starts[i], lengths[i], rates[i], rng)
                else:
                    times = _conditioned(starts[lo:hi], lengths[lo:hi], rates[lo:hi], rng)
                    if len(times):
                        yield times

    def mean_rate(self) -> float:
        return float(self.rates @ self.durations / self.durations.sum())


def _conditioned(
    starts: np.ndarray, lengths: np.ndarray, rates: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Poisson arrivals on consecutive intervals: a Poisson count each, placed uniformly."""
    counts = rng.poisson(rates * lengths)
    offsets = rng.random(int(counts.sum())) * np.repeat(lengths, counts)
    return np.sort(np.repeat(starts, counts) + offsets)


def _poisson_interval(
    start: float, length: float, rate: float, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Poisson arrivals on ``[start, start + length)`` by exponential gaps, CHUNK at a time."""
    end, t = start + length, start
    while True:
        times = t + np.cumsum(rng.exponential(1.0 / rate, CHUNK))
        t = float(times[-1])
        inside = times[times < end]
        if len(inside):
            yield inside
        if t >= end:
            return
