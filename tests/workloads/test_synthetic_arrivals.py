"""Synthetic arrival processes: rates, burstiness, modulation, determinism, monotonicity."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import islice
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.workloads.helpers import build_arrivals
from workloads.arrivals import ARRIVALS
from workloads.arrivals.base import ArrivalProcess

Collect = Callable[..., np.ndarray]


def make(**params: Any) -> ArrivalProcess:
    return build_arrivals(params)


SYNTHETIC = [
    {"type": "poisson", "rate_rps": 250.0},
    {"type": "constant", "rate_rps": 250.0},
    {"type": "gamma", "rate_rps": 250.0, "cv": 0.5},
    {"type": "gamma", "rate_rps": 250.0, "cv": 3.0},
    {"type": "mmpp", "rates_rps": [600.0, 50.0], "mean_durations_s": [0.5, 2.0]},
    {"type": "diurnal", "rate_rps": 250.0, "amplitude": 0.8, "period_s": 10.0},
]


@pytest.mark.parametrize("params", SYNTHETIC, ids=lambda p: f"{p['type']}")
def test_empirical_rate_matches_mean_rate(params: dict[str, Any], collect: Collect) -> None:
    process = make(**params)
    horizon = 2000.0  # 200 diurnal periods, 800 mmpp cycles, ~500k arrivals at 250 rps
    times = collect(process, seed=7, until=horizon)
    rate = process.mean_rate()
    assert rate is not None
    # 4+ sigma: the slowest-mixing case (mmpp) has a relative sd of about 1.2 % here
    assert len(times) / horizon == pytest.approx(rate, rel=0.05)


def test_mmpp_mean_rate_is_time_weighted() -> None:
    process = make(type="mmpp", rates_rps=[600.0, 50.0], mean_durations_s=[0.5, 2.0])
    assert process.mean_rate() == pytest.approx((600 * 0.5 + 50 * 2.0) / 2.5)


def test_constant_is_evenly_spaced() -> None:
    process = make(type="constant", rate_rps=4.0)
    chunks = list(islice(process.chunks(), 3))
    times = np.concatenate(chunks)
    np.testing.assert_array_equal(times, np.arange(1, len(times) + 1) / 4.0)


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_gamma_gaps_have_the_requested_cv(cv: float, collect: Collect) -> None:
    process = make(type="gamma", rate_rps=100.0, cv=cv)
    gaps = np.diff(collect(process, seed=3, chunks=50))  # ~200k gaps
    assert gaps.mean() == pytest.approx(1 / 100.0, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


def test_mmpp_is_burstier_than_poisson(collect: Collect) -> None:
    """Counts per second: index of dispersion ~1 for Poisson, well above 1 for the MMPP."""
    mmpp = make(type="mmpp", rates_rps=[400.0, 20.0], mean_durations_s=[1.0, 3.0])
    poisson = make(type="poisson", rate_rps=115.0)
    for process, low, high in [(poisson, 0.9, 1.1), (mmpp, 5.0, math.inf)]:
        counts = np.bincount(collect(process, seed=5, until=2000.0).astype(int))
        assert low < counts.var() / counts.mean() < high


def test_mmpp_start_state_and_silent_state(collect: Collect) -> None:
    """With rates [0, r] nothing arrives during state-0 sojourns; start_state picks the first."""
    on_first = make(
        type="mmpp", rates_rps=[0.0, 1000.0], mean_durations_s=[50.0, 50.0], start_state=1
    )
    off_first = make(type="mmpp", rates_rps=[0.0, 1000.0], mean_durations_s=[50.0, 50.0])
    assert collect(on_first, seed=1, chunks=1)[0] < 0.1
    assert collect(off_first, seed=1, chunks=1)[0] > 0.1


def _diurnal_counts(phase: float, collect: Collect) -> tuple[int, int]:
    process = make(type="diurnal", rate_rps=100.0, amplitude=0.8, period_s=100.0, phase=phase)
    times = collect(process, seed=11, until=200 * 100.0)
    where = times % 100.0
    peak = int(((where >= 20) & (where < 30)).sum())  # sin peaks at t = 25 (phase 0)
    trough = int(((where >= 70) & (where < 80)).sum())
    return peak, trough


def test_diurnal_rate_in_peak_and_trough_windows(collect: Collect) -> None:
    window_s = 200 * 10.0  # 200 periods x 10 s windows
    mean_sin = math.sin(0.1 * math.pi) / (0.1 * math.pi)  # the sine averaged over the window
    peak, trough = _diurnal_counts(0.0, collect)
    assert peak / window_s == pytest.approx(100 * (1 + 0.8 * mean_sin), rel=0.02)
    assert trough / window_s == pytest.approx(100 * (1 - 0.8 * mean_sin), rel=0.05)
    shifted_peak, shifted_trough = _diurnal_counts(math.pi, collect)  # half a period later
    assert shifted_trough / window_s == pytest.approx(100 * (1 + 0.8 * mean_sin), rel=0.02)
    assert shifted_peak / window_s == pytest.approx(100 * (1 - 0.8 * mean_sin), rel=0.05)


@pytest.mark.parametrize("params", SYNTHETIC, ids=lambda p: f"{p['type']}")
def test_same_seed_same_times(params: dict[str, Any], collect: Collect) -> None:
    a = collect(make(**params), seed=42, chunks=3)
    b = collect(make(**params), seed=42, chunks=3)
    np.testing.assert_array_equal(a, b)
    if params["type"] != "constant":
        assert not np.array_equal(a, collect(make(**params), seed=43, chunks=3))


@settings(max_examples=40, deadline=None)
@given(
    rates=st.tuples(st.floats(0, 1e4), st.floats(0.01, 1e4)),
    durations=st.tuples(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3)),
    start=st.sampled_from([0, 1]),
    swap=st.booleans(),
)
def test_mmpp_times_non_decreasing(
    rates: tuple[float, float], durations: tuple[float, float], start: int, swap: bool
) -> None:
    r = list(rates[::-1] if swap else rates)
    process = make(type="mmpp", rates_rps=r, mean_durations_s=list(durations), start_state=start)
    _check_monotone(process)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.floats(1e-3, 1e5),
    cv=st.floats(0.05, 20),
    amplitude=st.floats(0, 1),
    period=st.floats(1e-2, 1e5),
    phase=st.floats(-10, 10),
)
def test_gamma_and_diurnal_non_decreasing(
    rate: float, cv: float, amplitude: float, period: float, phase: float
) -> None:
    _check_monotone(make(type="gamma", rate_rps=rate, cv=cv))
    diurnal = make(type="diurnal", rate_rps=rate, amplitude=amplitude, period_s=period, phase=phase)
    _check_monotone(diurnal)


def _check_monotone(process: ArrivalProcess) -> None:
    times = np.concatenate(list(islice(process.chunks(), 3)))
    assert len(times) > 0
    assert times[0] >= 0 and (np.diff(times) >= 0).all() and np.isfinite(times).all()


BAD_PARAMS = [
    {"type": "constant", "rate_rps": 0},
    {"type": "constant", "rate_rps": -1},
    {"type": "constant", "rate_rps": float("inf")},
    {"type": "gamma", "rate_rps": -5, "cv": 1},
    {"type": "gamma", "rate_rps": 5, "cv": 0},
    {"type": "gamma", "rate_rps": 5},
    {"type": "mmpp", "rates_rps": [0, 0], "mean_durations_s": [1, 1]},
    {"type": "mmpp", "rates_rps": [-1, 5], "mean_durations_s": [1, 1]},
    {"type": "mmpp", "rates_rps": [1, 5], "mean_durations_s": [0, 1]},
    {"type": "mmpp", "rates_rps": [1, 5, 3], "mean_durations_s": [1, 1]},
    {"type": "mmpp", "rates_rps": [1, 5], "mean_durations_s": [1, 1], "start_state": 2},
    {"type": "diurnal", "rate_rps": 5, "amplitude": 1.5, "period_s": 10},
    {"type": "diurnal", "rate_rps": 5, "amplitude": -0.1, "period_s": 10},
    {"type": "diurnal", "rate_rps": 5, "amplitude": 0.5, "period_s": 0},
    {"type": "diurnal", "rate_rps": 0, "amplitude": 0.5, "period_s": 10},
    {"type": "constant", "rate_rps": 5, "burst": 3},  # unknown key
]


@pytest.mark.parametrize("params", BAD_PARAMS, ids=lambda p: p["type"])
def test_bad_params_raise_validation_error(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ARRIVALS[params["type"]].Params(**params)


def test_registry_names_match_params_type() -> None:
    for name, cls in ARRIVALS.items():
        assert cls.Params.model_fields["type"].default == name
