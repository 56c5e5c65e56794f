"""Arrival processes, registered by the name a scenario's ``arrivals: {type: ...}`` uses.

Synthetic: ``poisson``, ``constant``, ``gamma`` (bursty renewal), ``mmpp`` (two-state
Markov-modulated Poisson), ``diurnal`` (sinusoidal rate, by thinning). Trace replay (finite):
``azure_functions_2019``, ``azure_functions_2021``, ``azure_llm_2023``, ``csv``; their file
loaders live in :mod:`workloads.traces`. Importing this package registers them all; another
process is one module with a ``@ARRIVALS.register("name")`` class (see :mod:`sim.plugins`).
"""

from __future__ import annotations

from workloads.arrivals import (
    constant,
    csv_trace,
    diurnal,
    functions2019,
    functions2021,
    gamma,
    llm2023,
    mmpp,
    poisson,
)
from workloads.arrivals.base import ARRIVALS, ArrivalProcess

BUILT_IN = (constant, csv_trace, diurnal, functions2019, functions2021, gamma, llm2023, mmpp,
            poisson)
"""The modules whose import registers the built-in processes."""

__all__ = ["ARRIVALS", "BUILT_IN", "ArrivalProcess"]
