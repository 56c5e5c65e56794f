"""Replay of the Azure LLM inference trace 2023 (conversation or coding service).

Patel et al., "Splitwise" (ISCA'24) released one hour of requests to two Azure LLM services
with wall-clock arrival timestamps at 100 ns precision (``TIMESTAMP,ContextTokens,
GeneratedTokens``). Arrivals are the differences from the first row, exact to the nanosecond;
rows must be sorted by time (an unsorted row is an error naming its line). Token counts are
not used by image-classification serving.
"""

from __future__ import annotations

from typing import Literal

from sim.plugins import Context
from workloads.arrivals.base import ARRIVALS
from workloads.arrivals.replay import TimestampTrace, TraceParams
from workloads.traces import load_azure_llm_2023_arrivals


@ARRIVALS.register("azure_llm_2023")
class AzureLLM2023Arrivals(TimestampTrace):
    """Request arrival times of the Azure LLM inference trace."""

    class Params(TraceParams):
        type: Literal["azure_llm_2023"] = "azure_llm_2023"

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx, load_azure_llm_2023_arrivals(params.path))
