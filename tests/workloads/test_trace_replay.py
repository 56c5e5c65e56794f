"""Trace loaders and replays against the real traces shipped in workloads/data."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.workloads.helpers import build_arrivals
from workloads.arrivals.base import ArrivalProcess
from workloads.traces import (
    load_azure_functions_2019_counts,
    load_azure_functions_2021_arrivals,
    load_azure_llm_2023_arrivals,
)

Collect = Callable[..., np.ndarray]

F2019 = "azure_functions_2019_10fn_invocations_per_minute.csv"
F2021 = "azure_functions_2021_sample_invocations.csv"
LLM = ["azure_llm_inference_2023_conv.csv", "azure_llm_inference_2023_code.csv"]


def make(base_dir: Path, **params: Any) -> ArrivalProcess:
    """Validate like the engine does (paths relative to ``base_dir``) and construct."""
    return build_arrivals(params, base_dir)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def per_minute(times: np.ndarray, minutes: int, minute_s: float = 60.0) -> np.ndarray:
    binned = np.floor(times / minute_s).astype(np.int64)
    assert binned.min() >= 0 and binned.max() < minutes
    return np.bincount(binned, minlength=minutes)


# ------------------------------------------------------------------ Azure Functions 2019


def test_2019_loader_matches_every_cell(traces: Path) -> None:
    table = rows(traces / F2019)
    assert len(table) == 10
    for i, row in enumerate(table):
        expected = np.array([int(row[str(m)]) for m in range(1, 1441)])
        by_index = load_azure_functions_2019_counts(traces / F2019, i)
        by_hash = load_azure_functions_2019_counts(traces / F2019, row["HashFunction"][:8])
        np.testing.assert_array_equal(by_index, expected)
        np.testing.assert_array_equal(by_hash, expected)


def test_2019_loader_sums_functions_over_a_window(traces: Path) -> None:
    table = rows(traces / F2019)
    got = load_azure_functions_2019_counts(traces / F2019, [1, table[6]["HashFunction"]], 101, 30)
    expected = [int(table[1][str(m)]) + int(table[6][str(m)]) for m in range(101, 131)]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("spread", ["uniform", "even"])
@pytest.mark.parametrize("function", [0, 6, [2, 3]], ids=["fn0", "fn6-busiest", "fn2+3"])
def test_2019_replay_reproduces_every_minute(
    traces: Path, collect: Collect, spread: str, function: Any
) -> None:
    start, minutes = 600, 45
    counts = load_azure_functions_2019_counts(traces / F2019, function, start, minutes)
    process = make(
        traces, type="azure_functions_2019", path=F2019, function=function,
        start_minute=start, minutes=minutes, spread=spread,
    )  # fmt: skip
    times = collect(process, seed=1)
    np.testing.assert_array_equal(per_minute(times, minutes), counts)
    assert process.mean_rate() == pytest.approx(counts.sum() / (minutes * 60))


def test_2019_whole_day_and_time_compression(traces: Path, collect: Collect) -> None:
    counts = load_azure_functions_2019_counts(traces / F2019, 3)
    process = make(traces, type="azure_functions_2019", path=F2019, function=3, time_compression=2)
    times = collect(process, seed=2)
    # minute m now covers [30 (m - 1), 30 m) seconds
    np.testing.assert_array_equal(per_minute(times, 1440, minute_s=30.0), counts)


def test_2019_even_spread_places_midpoints(traces: Path, collect: Collect) -> None:
    process = make(
        traces, type="azure_functions_2019", path=F2019, function=7, start_minute=1, minutes=1,
        spread="even",
    )  # fmt: skip
    times = collect(process)
    n = len(times)
    assert n == int(rows(traces / F2019)[7]["1"])
    np.testing.assert_allclose(times, (np.arange(n) + 0.5) * 60 / n)


def test_2019_integer_scale_is_exact(traces: Path, collect: Collect) -> None:
    counts = load_azure_functions_2019_counts(traces / F2019, 0, 1, 60)
    process = make(
        traces, type="azure_functions_2019", path=F2019, function=0, minutes=60, scale=3.0
    )
    np.testing.assert_array_equal(per_minute(collect(process), 60), 3 * counts)


@pytest.mark.parametrize("scale", [0.3, 1.7])
def test_2019_fractional_scale_rounds_each_minute(
    traces: Path, collect: Collect, scale: float
) -> None:
    counts = load_azure_functions_2019_counts(traces / F2019, 5, 1, 300)
    process = make(
        traces, type="azure_functions_2019", path=F2019, function=5, minutes=300, scale=scale
    )
    got = per_minute(collect(process, seed=4), 300)
    low = np.floor(counts * scale)
    assert ((got == low) | (got == low + 1)).all()
    # the Bernoulli extras make the expected total exactly scale x the count
    assert got.sum() == pytest.approx(scale * counts.sum(), abs=4 * np.sqrt(300) / 2 + 1)


def test_2019_same_seed_same_times(traces: Path, collect: Collect) -> None:
    params = {"type": "azure_functions_2019", "path": F2019, "function": 4, "scale": 1.3}
    a, b = collect(make(traces, **params), seed=9), collect(make(traces, **params), seed=9)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, collect(make(traces, **params), seed=10))


# ------------------------------------------------------------------ Azure Functions 2021


def test_2021_loader_gives_sorted_relative_starts(traces: Path) -> None:
    table = rows(traces / F2021)
    starts = np.sort([float(r["end_timestamp"]) - float(r["duration"]) for r in table])
    got = load_azure_functions_2021_arrivals(traces / F2021)
    assert len(got) == len(table) == 199  # (the README says 198: it miscounts by one)
    assert got[0] == 0.0 and (np.diff(got) >= 0).all()
    np.testing.assert_allclose(got, starts - starts[0], atol=1e-9)


def test_2021_filters(traces: Path) -> None:
    table = rows(traces / F2021)
    app, func = table[1]["app"], table[1]["func"]
    n_app = sum(r["app"] == app for r in table)
    n_func = sum(r["func"] == func for r in table)
    assert len(load_azure_functions_2021_arrivals(traces / F2021, app=app[:8])) == n_app
    assert len(load_azure_functions_2021_arrivals(traces / F2021, app=app, func=func)) == n_func


# --------------------------------------------------------------- Azure LLM inference 2023


def _ticks(stamp: str) -> int:
    """100 ns ticks since the epoch, parsed independently of the loader."""
    day, frac = stamp.split(".") if "." in stamp else (stamp, "0")
    seconds = datetime.strptime(day, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    return int(seconds.timestamp()) * 10**7 + int(frac.ljust(7, "0"))


@pytest.mark.parametrize("name", LLM)
def test_llm_loader_is_exact_to_100ns(traces: Path, name: str) -> None:
    stamps = [r["TIMESTAMP"] for r in rows(traces / name)]
    expected = np.array([_ticks(s) for s in stamps])
    got = load_azure_llm_2023_arrivals(traces / name)
    assert len(got) == len(stamps) == {"conv": 19366, "code": 8819}[name.split("_")[-1][:4]]
    assert got[0] == 0.0 and (np.diff(got) >= 0).all()
    np.testing.assert_allclose(got, (expected - expected[0]) * 1e-7, rtol=0, atol=1e-9)


def test_llm_replay_and_time_compression(traces: Path, collect: Collect) -> None:
    base = load_azure_llm_2023_arrivals(traces / LLM[1])
    plain = collect(make(traces, type="azure_llm_2023", path=LLM[1]))
    fast = collect(make(traces, type="azure_llm_2023", path=LLM[1], time_compression=2.0))
    np.testing.assert_array_equal(plain, base)
    np.testing.assert_array_equal(fast, base / 2)


def test_timestamp_scale_copies_and_thinning(traces: Path, collect: Collect) -> None:
    base = load_azure_llm_2023_arrivals(traces / LLM[1])
    triple = collect(make(traces, type="azure_llm_2023", path=LLM[1], scale=3.0), seed=1)
    assert len(triple) == 3 * len(base)
    assert np.isin(base, triple).all()  # every original arrival kept; extras fill the gaps
    assert triple[0] == base[0] and triple[-1] == base[-1]
    # arrival i and its two extras lie in [t_i, t_i+1) (ties and rounding aside)
    per_gap = np.bincount(np.searchsorted(base, triple, side="right") - 1, minlength=len(base))
    assert (per_gap == 3).mean() > 0.99
    half = collect(make(traces, type="azure_llm_2023", path=LLM[1], scale=0.5), seed=1)
    assert np.isin(half, base).all()
    assert len(half) == pytest.approx(len(base) / 2, abs=4 * np.sqrt(len(base) / 4))
    again = collect(make(traces, type="azure_llm_2023", path=LLM[1], scale=0.5), seed=1)
    np.testing.assert_array_equal(half, again)


def test_2021_replay_scale_between_floor_and_ceil(traces: Path, collect: Collect) -> None:
    n = len(load_azure_functions_2021_arrivals(traces / F2021))
    times = collect(make(traces, type="azure_functions_2021", path=F2021, scale=2.5), seed=3)
    assert 2 * n <= len(times) <= 3 * n
    process = make(traces, type="azure_functions_2021", path=F2021, time_compression=4.0)
    assert collect(process)[-1] == pytest.approx(
        load_azure_functions_2021_arrivals(traces / F2021)[-1] / 4
    )
