"""Replay of a generic CSV of arrival timestamps (one numeric column, sorted).

For traces from anywhere else: one column of numeric timestamps in seconds, milliseconds or
microseconds (epoch or relative, integers or decimals); other columns are ignored. Rows must
be sorted; arrivals are relative to the first row.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sim.plugins import Context
from workloads.arrivals.base import ARRIVALS
from workloads.arrivals.replay import TimestampTrace, TraceParams
from workloads.traces import load_csv_arrivals


@ARRIVALS.register("csv")
class CsvArrivals(TimestampTrace):
    """Arrival times read from a column of a CSV file."""

    class Params(TraceParams):
        type: Literal["csv"] = "csv"
        column: Annotated[str, Field(min_length=1, description="the timestamp column")] = (
            "timestamp"
        )
        unit: Literal["s", "ms", "us"] = "s"

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx, load_csv_arrivals(params.path, params.column, params.unit))
