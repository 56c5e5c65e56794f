"""Arrival processes, registered by the name a scenario's ``arrivals: {type: ...}`` uses.

Synthetic: ``poisson``, ``constant``, ``gamma`` (bursty renewal), ``mmpp`` (two-state
Markov-modulated Poisson), ``diurnal`` (sinusoidal rate, by thinning). Trace replay (finite):
``azure_functions_2019``, ``azure_functions_2021``, ``azure_llm_2023``, ``csv``; their file
loaders live in :mod:`workloads.traces`.
"""

from __future__ import annotations

from typing import Any

from workloads.arrivals.base import ArrivalProcess
from workloads.arrivals.constant import ConstantArrivals
from workloads.arrivals.csv_trace import CsvArrivals
from workloads.arrivals.diurnal import DiurnalArrivals
from workloads.arrivals.functions2019 import AzureFunctions2019Arrivals
from workloads.arrivals.functions2021 import AzureFunctions2021Arrivals
from workloads.arrivals.gamma import GammaArrivals
from workloads.arrivals.llm2023 import AzureLLM2023Arrivals
from workloads.arrivals.mmpp import MMPPArrivals
from workloads.arrivals.poisson import PoissonArrivals

ARRIVALS: dict[str, Any] = {
    "poisson": PoissonArrivals,
    "constant": ConstantArrivals,
    "gamma": GammaArrivals,
    "mmpp": MMPPArrivals,
    "diurnal": DiurnalArrivals,
    "azure_functions_2019": AzureFunctions2019Arrivals,
    "azure_functions_2021": AzureFunctions2021Arrivals,
    "azure_llm_2023": AzureLLM2023Arrivals,
    "csv": CsvArrivals,
}

__all__ = ["ARRIVALS", "ArrivalProcess"]
