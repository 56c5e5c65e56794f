"""Malformed traces fail at construction with a TraceError naming the file, line and column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sim.errors import TraceError, UserError
from tests.workloads.helpers import build_arrivals
from workloads.arrivals import ARRIVALS
from workloads.arrivals.functions2019 import spread_in_minutes
from workloads.arrivals.replay import replay_times, scale_counts
from workloads.traces import (
    load_azure_functions_2019_counts,
    load_azure_functions_2021_arrivals,
    load_azure_llm_2023_arrivals,
    load_csv_arrivals,
)

H1, H2, H3 = "aaaa1111" + "0" * 56, "bbbb2222" + "0" * 56, "aaaa1111" + "f" * 56


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def fn2019(rows: list[str], minutes: int = 3) -> str:
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(map(str, range(1, minutes + 1)))
    return "\n".join([header, *rows]) + "\n"


def build(path: Path, **params: Any) -> Any:
    """Validate as the engine does, then construct (which loads the trace)."""
    return build_arrivals({"path": path.name, **params}, path.parent)


Loader = Callable[[Path], Any]
LOADERS: dict[str, Loader] = {
    "csv": load_csv_arrivals,
    "llm": load_azure_llm_2023_arrivals,
    "2021": load_azure_functions_2021_arrivals,
    "2019": lambda p: load_azure_functions_2019_counts(p, 0),
}
HEADERS = {
    "csv": "timestamp",
    "llm": "TIMESTAMP,ContextTokens,GeneratedTokens",
    "2021": "app,func,end_timestamp,duration",
    "2019": fn2019([]).strip(),
}


@pytest.mark.parametrize("kind", LOADERS)
def test_empty_file_and_header_only(tmp_path: Path, kind: str) -> None:
    with pytest.raises(TraceError, match="empty") as e:
        LOADERS[kind](write(tmp_path, ""))
    assert "trace.csv" in str(e.value)
    with pytest.raises(TraceError, match="empty"):
        LOADERS[kind](write(tmp_path, HEADERS[kind] + "\n"))


def test_trace_error_is_a_user_error() -> None:
    assert issubclass(TraceError, UserError)


@pytest.mark.parametrize(
    ("text", "kind", "needles"),
    [
        ("timestamp\n1\n3\n2\n", "csv", ["line 4", "sorted"]),
        ("timestamp\n1\nabc\n", "csv", ["line 3", "'timestamp'", "not a number"]),
        ("timestamp\n1\n\n2\n", "csv", ["line 3", "not a number"]),
        ("timestamp\n-1\n2\n", "csv", ["line 2", "negative"]),
        ("t\n1\n", "csv", ["missing column 'timestamp'"]),
        ("timestamp\n1\n2,3\n", "csv", ["line 3"]),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,1,2\n"
            "2023-11-16 18:15:50.9951690,1,2\n2023-11-16 18:15:49.0000000,1,2\n",
            "llm",
            ["line 4", "sorted"],
        ),
        ("TIMESTAMP\n2023-11-16 18:15:46.68\nyesterday\n", "llm", ["line 3", "'TIMESTAMP'"]),
        ("time,ContextTokens\n2023-11-16 18:15:46.68,1\n", "llm", ["missing column 'TIMESTAMP'"]),
        (
            "app,func,end_timestamp,duration\na,f,1.0,0.5\na,f,2.0,x\n",
            "2021",
            ["line 3", "'duration'"],
        ),
        ("app,func,end_timestamp,duration\na,f,-1.0,0.5\n", "2021", ["line 2", "'end_timestamp'"]),
        ("app,func,end_timestamp\na,f,1.0\n", "2021", ["missing column 'duration'"]),
    ],
)
def test_bad_timestamp_traces(tmp_path: Path, text: str, kind: str, needles: list[str]) -> None:
    with pytest.raises(TraceError) as e:
        LOADERS[kind](write(tmp_path, text))
    for needle in needles:
        assert needle in str(e.value)


def test_2021_filter_matching_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, f"app,func,end_timestamp,duration\n{H1},{H2},1.0,0.5\n")
    with pytest.raises(TraceError, match="no invocations match app='bbbb2222'"):
        load_azure_functions_2021_arrivals(path, app="bbbb2222")


GOOD_2019 = [f"o,a,{H1},http,1,2,3", f"o,a,{H2},http,0,0,5", f"o,a,{H3},http,0,0,0"]


@pytest.mark.parametrize(
    ("rows", "function", "needles"),
    [
        (GOOD_2019, 3, ["unknown function index 3", "rows 0..2"]),
        (GOOD_2019, "cccc3333", ["unknown function", "cccc3333"]),
        (GOOD_2019, "aaaa1111", ["ambiguous", "lines 2, 4"]),
        (GOOD_2019, [0, H1], ["selected twice"]),
        ([f"o,a,{H1},http,1,x,3"], 0, ["line 2", "column '2'", "'x'"]),
        ([f"o,a,{H1},http,1,2,3", f"o,a,{H2},http,1,-2,3"], 0, ["line 3", "column '2'", "'-2'"]),
        ([f"o,a,{H1},http,1,2,3", f"o,a,{H2},http,1,,3"], 0, ["line 3", "column '2'"]),
        ([f"o,a,{H1},http,1,2"], 0, ["line 2", "6 fields", "7 columns"]),
        ([f"o,a,{H1},http,1,2,3", ""], 0, ["line 3", "1 fields"]),
    ],
)
def test_bad_2019_traces(
    tmp_path: Path, rows: list[str], function: Any, needles: list[str]
) -> None:
    path = write(tmp_path, fn2019(rows))
    with pytest.raises(TraceError) as e:
        load_azure_functions_2019_counts(path, function)
    for needle in needles:
        assert needle in str(e.value)


def test_bad_2019_headers_and_windows(tmp_path: Path) -> None:
    no_hash = write(tmp_path, "HashOwner,HashApp,Trigger,1,2\no,a,http,1,2\n", "a.csv")
    with pytest.raises(TraceError, match="missing column 'HashFunction'"):
        load_azure_functions_2019_counts(no_hash, 0)
    no_minutes = write(
        tmp_path, "HashOwner,HashApp,HashFunction,Trigger,1,3\no,a,h,t,1,2\n", "b.csv"
    )
    with pytest.raises(TraceError, match="per-minute columns"):
        load_azure_functions_2019_counts(no_minutes, 0)
    path = write(tmp_path, fn2019(GOOD_2019))
    with pytest.raises(TraceError, match=r"outside the trace's minutes 1\.\.3"):
        load_azure_functions_2019_counts(path, 0, start_minute=2, minutes=5)
    np.testing.assert_array_equal(load_azure_functions_2019_counts(path, [0, 1], 2), [2, 8])


def test_2019_zero_arrivals_in_window_fails_at_construction(tmp_path: Path) -> None:
    path = write(tmp_path, fn2019(GOOD_2019))
    with pytest.raises(TraceError, match=r"no invocations in minutes 1\.\.2"):
        build(path, type="azure_functions_2019", function=1, minutes=2)
    with pytest.raises(TraceError, match="unknown function index 7"):
        build(path, type="azure_functions_2019", function=7)
    assert (
        build(path, type="azure_functions_2019", function=1, start_minute=3).mean_rate() == 5 / 60
    )


def test_engine_path_raises_trace_error_for_unsorted_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "ts_ms\n5\n10\n7\n")
    with pytest.raises(TraceError, match="line 4, column 'ts_ms'"):
        build(path, type="csv", column="ts_ms", unit="ms")


BAD_TRACE_PARAMS = [
    {"type": "azure_functions_2019", "function": -1},
    {"type": "azure_functions_2019", "function": "abc"},
    {"type": "azure_functions_2019", "function": True},
    {"type": "azure_functions_2019", "function": 0, "start_minute": 0},
    {"type": "azure_functions_2019", "function": 0, "minutes": 0},
    {"type": "azure_functions_2019", "function": 0, "spread": "poisson"},
    {"type": "azure_functions_2019", "function": 0, "scale": 0},
    {"type": "azure_functions_2019", "function": 0, "scale": float("inf")},
    {"type": "azure_functions_2019", "function": 0, "time_compression": -2},
    {"type": "azure_functions_2021", "app": "short"},
    {"type": "csv", "unit": "h"},
    {"type": "csv", "path": "missing.csv"},
    {"type": "azure_llm_2023", "speed": 2},
]


@pytest.mark.parametrize("params", BAD_TRACE_PARAMS, ids=lambda p: p["type"])
def test_bad_trace_params_raise_validation_error(tmp_path: Path, params: dict[str, Any]) -> None:
    write(tmp_path, fn2019(GOOD_2019))
    with pytest.raises(ValidationError):
        ARRIVALS[params["type"]].Params.model_validate(
            {"path": "trace.csv", **params}, context={"base_dir": tmp_path}
        )


@pytest.mark.parametrize(("unit", "factor"), [("s", 1.0), ("ms", 1e-3), ("us", 1e-6)])
def test_csv_units_and_integer_exactness(tmp_path: Path, unit: str, factor: float) -> None:
    stamps = [1_700_000_000_123_456, 1_700_000_000_123_457, 1_700_000_001_000_000]
    path = write(tmp_path, "id,timestamp\n" + "".join(f"{i},{s}\n" for i, s in enumerate(stamps)))
    got = load_csv_arrivals(path, unit=unit)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, (np.array(stamps) - stamps[0]) * factor)


# ------------------------------------------------------------- properties of the replay rules


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    spread=st.sampled_from(["uniform", "even"]),
    seed=st.integers(0, 2**32),
)
def test_spread_keeps_each_minute_count(counts: list[int], spread: Any, seed: int) -> None:
    times = spread_in_minutes(np.array(counts), spread, np.random.default_rng(seed))
    assert len(times) == sum(counts) and (np.diff(times) >= 0).all()
    minutes = np.floor(times / 60).astype(int)
    np.testing.assert_array_equal(np.bincount(minutes, minlength=len(counts)), counts)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 10_000), min_size=1, max_size=50),
    scale=st.floats(0.01, 20),
    seed=st.integers(0, 2**32),
)
def test_scaled_counts_are_floor_or_ceil(counts: list[int], scale: float, seed: int) -> None:
    c = np.array(counts)
    got = scale_counts(c, scale, np.random.default_rng(seed))
    low = np.floor(c * scale)
    assert ((got == low) | (got == low + 1)).all()


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(0, 100), min_size=1, max_size=60),
    scale=st.floats(0.05, 6),
    chunk=st.integers(1, 8),
    seed=st.integers(0, 2**32),
)
def test_replayed_timestamps_sorted_and_bounded(
    gaps: list[float], scale: float, chunk: int, seed: int
) -> None:
    times = np.cumsum(gaps)
    blocks = list(replay_times(times, scale, np.random.default_rng(seed), chunk=chunk))
    out = np.concatenate(blocks) if blocks else np.empty(0)
    assert (np.diff(out) >= 0).all()
    assert np.floor(scale) * len(times) <= len(out) <= np.ceil(scale) * len(times)
    if len(out):
        assert times[0] <= out[0] and out[-1] <= times[-1]
    if scale == int(scale):
        assert len(out) == scale * len(times)
