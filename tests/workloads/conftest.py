"""Shared fixtures of the workload tests: the real traces and an arrival collector."""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from sim.schema import SHIPPED_TRACES
from workloads.arrivals.base import ArrivalProcess

TRACES = SHIPPED_TRACES

Collect = Callable[..., np.ndarray]


@pytest.fixture
def traces() -> Path:
    """The folder of real traces (the samples shipped in workloads/data)."""
    return TRACES


def collect_arrivals(
    process: ArrivalProcess, seed: int = 0, until: float | None = None, chunks: int = 10_000
) -> np.ndarray:
    """All arrivals (a finite process), or those before ``until``, checking monotonicity;
    the process draws from a fresh stream seeded ``seed``."""
    process.rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    last = -np.inf
    for chunk in islice(process.chunks(), chunks):
        assert chunk.dtype == np.float64
        assert len(chunk) == 0 or (chunk[0] >= last and (np.diff(chunk) >= 0).all())
        if len(chunk):
            last = float(chunk[-1])
        out.append(chunk)
        if until is not None and last >= until:
            break
    times = np.concatenate(out) if out else np.empty(0)
    return times if until is None else times[times < until]


@pytest.fixture
def collect() -> Collect:
    """:func:`collect_arrivals`, as a fixture (test folders are not packages)."""
    return collect_arrivals
