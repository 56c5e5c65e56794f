"""Helpers for attack tests: small attack scenarios on the shipped zoo (the fixtures are in
conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sim.profiles import available_profiles

ZOO = "mnist5k-cpu"

requires_zoo = pytest.mark.skipif(ZOO not in available_profiles(),
                                  reason="the shipped mnist5k-cpu zoo is missing")


def attack_scenario(strategy: str, *, rate: float = 0.0, budget: int = 600,
                    policy: str = "pareto", **attacker: Any) -> dict[str, Any]:
    """An attack on the shipped zoo; ``rate`` > 0 adds a benign tenant with tight latency
    targets, whose load makes infaas move requests between models."""
    tenants = []
    if rate > 0:
        tenants.append({"name": "web", "arrivals": {"type": "poisson", "rate_rps": rate},
                        "slo": {"accuracy": {"type": "choice", "values": [90, 93, 96]},
                                "latency_ms": {"type": "uniform", "low": 0.3, "high": 2}}})
    return {
        "seed": 3, "zoo": {"profile": ZOO},
        "cluster": {"workers": 2, "max_batch": 8, "batch_timeout_ms": 0.2},
        "policy": {"type": policy}, "tenants": tenants,
        "attacker": {"strategy": strategy, "budget": budget, "inputs_per_request": 20,
                     "rate_rps": 200, "surrogate": {"epochs": 4},
                     "spec": {"accuracy": 96.5, "latency_ms": 1.0}} | attacker,
    }
