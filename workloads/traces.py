"""Loaders for public workload traces, usable without the simulator.

Each loader reads and validates a whole file and returns plain numpy arrays; any problem is a
:class:`~sim.errors.TraceError` naming the file, the line (1-based, header = line 1) and, where
it applies, the column. Formats (see ``workloads/data/README.md`` for the shipped samples):

- Azure Functions 2019 (Shahrad et al., "Serverless in the Wild", ATC'20; the arrival trace of
  Clockwork OSDI'20 and AlpaServe OSDI'23): per-minute invocation counts,
  ``HashOwner,HashApp,HashFunction,Trigger,1..1440``, one row per function.
- Azure Functions 2021 (Zhang et al., SOSP'21): ``app,func,end_timestamp,duration`` per
  invocation, seconds; the file is sorted by *end* time.
- Azure LLM inference 2023 (Patel et al., Splitwise, ISCA'24):
  ``TIMESTAMP,ContextTokens,GeneratedTokens``, wall-clock timestamps with 100 ns precision.
- A generic CSV with one column of numeric arrival timestamps.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sim.errors import TraceError

FunctionRef = int | str
"""A 2019 function: its 0-based data-row index, or its HashFunction (a prefix of >= 8 chars)."""

MIN_HASH_PREFIX = 8
UNITS_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6}


def _line(row: int) -> int:
    """The file line of 0-based data row ``row`` (the header is line 1)."""
    return row + 2


# ---------------------------------------------------------------------------- generic CSV


def _read_columns(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns of a CSV, as strings; blank lines kept so row ``i`` is line ``i + 2``.

    All columns are parsed (not just ``columns``) so a row with too many fields is an error.
    """
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise TraceError(f"{path}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: not a readable CSV: {e}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TraceError(
            f"{path}: missing column {missing[0]!r} (the header has: {', '.join(df.columns)})"
        )
    if len(df) == 0:
        raise TraceError(f"{path}: the trace is empty (a header but no rows)")
    return df[list(columns)]


def _numeric(path: str | Path, df: pd.DataFrame, column: str) -> np.ndarray:
    """A column as finite, non-negative numbers (int64 when all integers, else float64)."""
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce")
    arr = values.to_numpy(dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceError(
            f"{path}: line {_line(i)}, column {column!r}: {raw.iloc[i]!r} is not a number"
        )
    if (arr < 0).any():
        i = int(np.argmax(arr < 0))
        raise TraceError(f"{path}: line {_line(i)}, column {column!r}: {raw.iloc[i]!r} is negative")
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    return arr


def _check_sorted(path: str | Path, values: np.ndarray, column: str) -> None:
    """A TraceError naming the first line whose value is below the previous line's."""
    down = np.diff(values) < 0
    if down.any():
        i = int(np.argmax(down)) + 1
        raise TraceError(
            f"{path}: line {_line(i)}, column {column!r}: timestamps must be sorted "
            f"(non-decreasing), but this one is earlier than line {_line(i - 1)}'s"
        )


def _relative_seconds(values: np.ndarray, units_per_second: float) -> np.ndarray:
    """Offsets from the first value, in seconds; integer inputs are subtracted exactly first."""
    offsets: np.ndarray = (values - values[0]).astype(np.float64) / units_per_second
    return offsets


def load_csv_arrivals(
    path: str | Path, column: str = "timestamp", unit: Literal["s", "ms", "us"] = "s"
) -> np.ndarray:
    """Arrival times (s) from a CSV column of sorted numeric timestamps, relative to row 1."""
    values = _numeric(path, _read_columns(path, [column]), column)
    _check_sorted(path, values, column)
    return _relative_seconds(values, UNITS_PER_SECOND[unit])


# ----------------------------------------------------------------- Azure LLM inference 2023


def load_azure_llm_2023_arrivals(path: str | Path) -> np.ndarray:
    """Arrival times (s) relative to the first request, exact to the nanosecond.

    ``TIMESTAMP`` is an ISO-like wall-clock string (``2023-11-16 18:15:46.6805900``; a UTC
    offset, as in the 2024 release, is also accepted). Rows must be sorted by time.
    """
    column = "TIMESTAMP"
    raw = _read_columns(path, [column])[column]
    stamps = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceError(
            f"{path}: line {_line(i)}, column {column!r}: {raw.iloc[i]!r} is not a timestamp "
            "like 2023-11-16 18:15:46.6805900"
        )
    ns = stamps.dt.as_unit("ns").astype("int64").to_numpy()
    _check_sorted(path, ns, column)
    return _relative_seconds(ns, 1e9)


# -------------------------------------------------------------- Azure Functions 2021 trace


def load_azure_functions_2021_arrivals(
    path: str | Path, app: str | None = None, func: str | None = None
) -> np.ndarray:
    """Invocation start times (s), sorted, relative to the first start.

    A start is ``end_timestamp - duration``. The file is sorted by end time, so starts are not
    (a long invocation starts before shorter ones that end earlier): they are sorted here, not
    required sorted. ``app``/``func`` keep only rows whose hash equals or starts with them.
    """
    filters = {"app": app, "func": func}
    columns = [c for c, v in filters.items() if v is not None] + ["end_timestamp", "duration"]
    df = _read_columns(path, columns)
    keep = np.ones(len(df), dtype=bool)
    for name, prefix in filters.items():
        if prefix is not None:
            keep &= df[name].str.startswith(prefix).to_numpy(dtype=bool)
    end = _numeric(path, df, "end_timestamp").astype(np.float64)
    duration = _numeric(path, df, "duration").astype(np.float64)
    if not keep.any():
        wanted = ", ".join(f"{k}={v!r}" for k, v in filters.items() if v is not None)
        raise TraceError(f"{path}: no invocations match {wanted}")
    start = np.sort(end[keep] - duration[keep])
    relative: np.ndarray = start - start[0]
    return relative


# -------------------------------------------------------------- Azure Functions 2019 trace


def _split_row(text: str, first: int) -> tuple[list[str], str, int]:
    """(fields before the minute columns, the minute columns' text, number of fields).

    The minute part is left as one string so a row nobody selects is never split 1,440 ways.
    """
    if '"' in text:
        fields = next(csv.reader([text]))
        return fields[:first], ",".join(fields[first:]), len(fields)
    parts = text.split(",", first)
    if len(parts) <= first:
        return parts, "", len(parts)
    return parts[:first], parts[first], first + parts[first].count(",") + 1


def _header_2019(path: str | Path, header: list[str]) -> tuple[int, int]:
    """(index of HashFunction, index of minute column ``1``); checks minutes are ``1..N``."""
    names = [h.strip() for h in header]
    first = next((i for i, name in enumerate(names) if name.isdigit()), len(names))
    if "HashFunction" not in names[:first]:
        raise TraceError(f"{path}: line 1: missing column 'HashFunction'")
    if first == len(names) or names[first:] != [str(k) for k in range(1, len(names) - first + 1)]:
        raise TraceError(
            f"{path}: line 1: expected per-minute columns 1, 2, ..., N after "
            "HashOwner,HashApp,HashFunction,Trigger"
        )
    return names.index("HashFunction"), first


def _parse_counts(path: str | Path, row: int, rest: str, first_col: int) -> np.ndarray:
    """One row's per-minute counts; the slow path names the column of a bad value."""
    fields = rest.split(",")
    try:
        counts = np.array(fields, dtype=np.int64)
        if (counts >= 0).all():
            return counts
    except ValueError:
        pass
    for k, text in enumerate(fields):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (np.isfinite(value) and value >= 0 and value.is_integer()):
            raise TraceError(
                f"{path}: line {_line(row)}, column '{k + 1}' (field {first_col + k + 1}): "
                f"{text!r} is not a non-negative integer count"
            )
    return np.array([float(t) for t in fields]).astype(np.int64)


def _scan_2019(
    path: str | Path, refs: Sequence[FunctionRef]
) -> tuple[list[str], dict[int, np.ndarray], int]:
    """One pass: every HashFunction, the counts of the rows ``refs`` may select, minute count.

    Every row is checked (field count, non-negative integer counts) with cheap string tests;
    only candidate rows are converted to numbers.
    """
    indices = {r for r in refs if isinstance(r, int)}
    prefixes = tuple(r for r in refs if isinstance(r, str))
    hashes: list[str] = []
    counts: dict[int, np.ndarray] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            head = f.readline().rstrip("\r\n")
            if not head:
                raise TraceError(f"{path}: the file is empty (no header, no rows)")
            header = next(csv.reader([head]))
            hash_col, first = _header_2019(path, header)
            for row, line in enumerate(f):
                meta, rest, n_fields = _split_row(line.rstrip("\r\n"), first)
                if n_fields != len(header):
                    raise TraceError(
                        f"{path}: line {_line(row)}: {n_fields} fields, but the header has "
                        f"{len(header)} columns"
                    )
                hashes.append(meta[hash_col])
                clean = rest.replace(",", "").isdigit() and ",," not in f",{rest},"
                if not clean or row in indices or meta[hash_col].startswith(prefixes):
                    counts[row] = _parse_counts(path, row, rest, first)
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: cannot read the trace: {e}") from None
    if not hashes:
        raise TraceError(f"{path}: the trace is empty (a header but no rows)")
    return hashes, counts, len(header) - first


def _resolve(path: str | Path, ref: FunctionRef, hashes: list[str]) -> int:
    """The data row a function reference names."""
    if isinstance(ref, int):
        if not 0 <= ref < len(hashes):
            raise TraceError(
                f"{path}: unknown function index {ref}: the trace has {len(hashes)} functions "
                f"(rows 0..{len(hashes) - 1})"
            )
        return ref
    if len(ref) < MIN_HASH_PREFIX:
        raise TraceError(f"{path}: function hash {ref!r} is too short (use >= 8 characters)")
    rows = [i for i, h in enumerate(hashes) if h.startswith(ref)]
    if not rows:
        raise TraceError(f"{path}: unknown function: no HashFunction starts with {ref!r}")
    if len(rows) > 1:
        raise TraceError(
            f"{path}: function {ref!r} is ambiguous: it prefixes {len(rows)} HashFunctions "
            f"(lines {', '.join(str(_line(r)) for r in rows[:5])}); give more characters"
        )
    return rows[0]


def _refs(functions: FunctionRef | Sequence[FunctionRef]) -> list[FunctionRef]:
    """A list of references; numpy integers become ints."""
    items = [functions] if isinstance(functions, str | int | np.integer) else list(functions)
    return [int(r) if isinstance(r, np.integer) else r for r in items]


def load_azure_functions_2019_counts(
    path: str | Path,
    functions: FunctionRef | Sequence[FunctionRef],
    start_minute: int = 1,
    minutes: int | None = None,
) -> np.ndarray:
    """Per-minute invocation counts (int64) of the window, summed over ``functions``.

    ``functions`` is a data-row index (0-based), a HashFunction or a prefix of it (>= 8
    characters), or a list of them; listing a function twice is an error. The window is
    minutes ``start_minute .. start_minute + minutes - 1`` (1-based, inclusive; default: to the
    end of the trace).
    """
    refs = _refs(functions)
    if not refs:
        raise TraceError(f"{path}: no function selected")
    hashes, counts, n_minutes = _scan_2019(path, refs)
    rows = [_resolve(path, r, hashes) for r in refs]
    if len(set(rows)) != len(rows):
        raise TraceError(f"{path}: a function is selected twice in {refs!r}")
    if minutes is None:
        minutes = n_minutes - start_minute + 1
    if start_minute < 1 or minutes < 1 or start_minute + minutes - 1 > n_minutes:
        raise TraceError(
            f"{path}: window start_minute={start_minute}, minutes={minutes} is outside the "
            f"trace's minutes 1..{n_minutes}"
        )
    total = np.vstack([counts[r] for r in rows]).sum(axis=0)
    window: np.ndarray = total[start_minute - 1 : start_minute - 1 + minutes]
    return window
