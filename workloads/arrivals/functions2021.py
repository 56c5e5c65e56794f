"""Replay of the Azure Functions 2021 invocation trace (exact per-invocation timing).

Zhang et al., "Faster and Cheaper Serverless Computing on Harvested Resources" (SOSP'21),
released every invocation of a subset of functions with its end time and duration (seconds).
An invocation arrives at ``end_timestamp - duration``. The file is sorted by *end* time, so
arrivals are not sorted in the file (a long invocation started before shorter ones that ended
first): they are sorted on load. Times are relative to the first arrival; ``app``/``func``
keep one application's or function's invocations (a hash or a prefix of >= 8 characters).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sim.plugins import Context
from workloads.arrivals.base import ARRIVALS
from workloads.arrivals.replay import TimestampTrace, TraceParams
from workloads.traces import MIN_HASH_PREFIX, load_azure_functions_2021_arrivals

HashFilter = Annotated[str, Field(min_length=MIN_HASH_PREFIX)]


@ARRIVALS.register("azure_functions_2021")
class AzureFunctions2021Arrivals(TimestampTrace):
    """Invocation start times of the 2021 trace, optionally of one app or function."""

    class Params(TraceParams):
        type: Literal["azure_functions_2021"] = "azure_functions_2021"
        app: Annotated[HashFilter | None, Field(description="keep this app's invocations")] = None
        func: Annotated[HashFilter | None, Field(description="keep this function's")] = None

    def __init__(self, params: Params, ctx: Context) -> None:
        times = load_azure_functions_2021_arrivals(params.path, params.app, params.func)
        super().__init__(params, ctx, times)
