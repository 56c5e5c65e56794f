"""Shared test helpers: tiny profiles, scenario dicts, and where the repository and the
shipped traces are. (Fixtures live in conftest.py; helpers are imported from here.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sim.schema import SHIPPED_TRACES

REPO = Path(__file__).resolve().parents[1]
TRACES = SHIPPED_TRACES
"""The real traces: the samples shipped in workloads/data."""


def write_profile(path: Path, models: list[dict[str, Any]], name: str = "tiny") -> Path:
    """A profile YAML with the given models; missing fields get harmless defaults."""
    full = []
    for m in models:
        lat = m.get("latency_ms", {1: m.pop("lat1", 1.0)})
        lat = {b: v if isinstance(v, dict) else {"p50": v, "p99": v} for b, v in lat.items()}
        full.append({"name": m["name"], "arch": m.get("arch", "test"), "params": 1,
                     "accuracy": m.get("accuracy", 90.0), "latency_ms": lat,
                     "memory_mb": m.get("memory_mb", 1.0), "load_ms": m.get("load_ms", 0.0)})
    path.write_text(yaml.safe_dump({"name": name, "metadata": {"source": "synthetic"},
                                    "models": full}))
    return path


def scenario_dict(profile: str | Path, **over: Any) -> dict[str, Any]:
    """A one-tenant Poisson scenario; keyword arguments replace top-level keys."""
    base: dict[str, Any] = {
        "seed": 1,
        "requests": 2000,
        "zoo": {"profile": str(profile)},
        "cluster": {"workers": 1, "max_batch": 1, "batch_timeout_ms": 0},
        "policy": {"type": "pareto"},
        "tenants": [{"name": "t", "arrivals": {"type": "poisson", "rate_rps": 100},
                     "slo": {"accuracy": {"type": "fixed", "value": 0},
                             "latency_ms": {"type": "fixed", "value": 1000}}}],
    }
    base.update(over)
    return base
