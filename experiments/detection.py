"""False positives of the bracketing detector on benign clients (issue 15, part 2).

Benign clients come in four SLO mixes, each client with its own parameters drawn from the
study's seed: ``fixed`` (one spec, its own), ``classes`` (2-5 accuracy targets and 2-3 latency
targets of its own, at random), ``grid`` (accuracy on a grid of step 1, 0.5 or 0.1 points and
latency in whole milliseconds, over ranges of its own: targets typed by hand), ``range``
(accuracy and latency drawn uniformly from a range of its own). Two arrival setups: many Poisson
clients, and the Azure Functions 2019 replay with one client per function (the shipped 10
functions, one hour at the trace's own rate, about 548,000 requests). Every run serves them on
the mnist5k-cpu zoo behind the detector (``action: flag``); a client is a false positive when
any of its requests was flagged. The rate is reported with its exact (Clopper-Pearson) 95 %
upper bound.

Run: ``python -m experiments.detection [--quick]`` (prints the markdown table).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import beta

from sim.config import Scenario
from sim.rng import SeedTree
from sim.run import simulate

KINDS = ("fixed", "classes", "grid", "range")
LATENCIES_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
"""Latency targets a ``classes`` client picks its own from."""
AZURE_FUNCTIONS = 10
DETECTOR: dict[str, Any] = {"type": "detect"}


def benign_slo(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """One client's SLO block of mix ``kind``, its parameters drawn from ``rng``."""
    if kind == "fixed":
        return {"accuracy": {"type": "fixed", "value": round(float(rng.uniform(85, 99)), 1)},
                "latency_ms": {"type": "fixed", "value": round(float(rng.uniform(1, 50)), 1)}}
    if kind == "classes":
        acc = rng.choice(np.arange(85.0, 99.5, 0.5), size=int(rng.integers(2, 6)),
                         replace=False)
        lat = rng.choice(LATENCIES_MS, size=int(rng.integers(2, 4)), replace=False)
        return {"accuracy": {"type": "choice", "values": sorted(acc.tolist())},
                "latency_ms": {"type": "choice", "values": sorted(lat.tolist())}}
    if kind == "grid":
        step = float(rng.choice([1.0, 0.5, 0.1]))
        first, first_ms = float(rng.integers(80, 90)), int(rng.integers(1, 20))
        acc = np.round(np.arange(first, first + float(rng.integers(2, 10)) + step / 2, step), 1)
        lat = np.arange(first_ms, first_ms + int(rng.integers(5, 100)) + 1, dtype=float)
        return {"accuracy": {"type": "choice", "values": acc.tolist()},
                "latency_ms": {"type": "choice", "values": lat.tolist()}}
    lo, lat_lo = float(rng.uniform(80, 95)), float(rng.uniform(1, 20))
    return {"accuracy": {"type": "uniform", "low": lo, "high": lo + float(rng.uniform(0.5, 5))},
            "latency_ms": {"type": "uniform", "low": lat_lo,
                           "high": lat_lo * float(rng.uniform(1.5, 5))}}


def _base(seed: int, tenants: list[dict[str, Any]], **extra: Any) -> Scenario:
    return Scenario.model_validate({
        "seed": seed, "zoo": {"profile": "mnist5k-cpu"},
        "cluster": {"workers": 4, "max_batch": 8, "batch_timeout_ms": 0.5},
        "policy": {"type": "infaas"}, "defense": DETECTOR, "tenants": tenants, **extra})


def poisson_clients(seed: int, per_kind: int, rate_rps: float, duration_s: float) -> Scenario:
    """``per_kind`` Poisson clients of each mix, each at ``rate_rps``."""
    rng = SeedTree(seed).generator("detection", "clients")
    tenants = [{"name": f"{kind}-{i}", "arrivals": {"type": "poisson", "rate_rps": rate_rps},
                "slo": benign_slo(kind, rng)}
               for kind in KINDS for i in range(per_kind)]
    return _base(seed, tenants, duration_s=duration_s)


def azure_clients(seed: int, minutes: int, start_minute: int = 900) -> Scenario:
    """One client per function of the shipped Azure Functions 2019 sample, mixes in turn."""
    rng = SeedTree(seed).generator("detection", "azure")
    tenants = [{"name": f"{KINDS[f % len(KINDS)]}-fn{f}",
                "arrivals": {"type": "azure_functions_2019",
                             "path": "azure_functions_2019_10fn_invocations_per_minute.csv",
                             "function": f, "start_minute": start_minute, "minutes": minutes},
                "slo": benign_slo(KINDS[f % len(KINDS)], rng)}
               for f in range(AZURE_FUNCTIONS)]
    return _base(seed, tenants)


@dataclass
class ClientCounts:
    """Clients of one mix in one setup: how many, how many flagged, their requests."""

    setup: str
    kind: str
    clients: int = 0
    flagged: int = 0
    requests: int = 0

    def row(self) -> dict[str, Any]:
        """One table row: the rate and its exact 95 % upper bound."""
        upper = float(beta.ppf(0.95, self.flagged + 1, self.clients - self.flagged)) \
            if self.flagged < self.clients else 1.0
        return {"setup": self.setup, "mix": self.kind, "clients": self.clients,
                "requests/client": round(self.requests / max(self.clients, 1)),
                "flagged": self.flagged,
                "rate": round(self.flagged / max(self.clients, 1), 4),
                "95% upper": round(upper, 4)}


def flagged_by_client(scenario: Scenario) -> Iterator[tuple[str, int, bool]]:
    """(client, requests, whether any was flagged) for every client of a run."""
    df = simulate(scenario).frame
    by = df.groupby("tenant", observed=True)["flagged"].agg(["size", "any"])
    for name, row in by.iterrows():
        yield str(name), int(row["size"]), bool(row["any"])


def false_positives(quick: bool = False) -> list[ClientCounts]:
    """The study: Poisson clients (10 seeds of 10 per mix; quick: 2 seeds) and the Azure
    replay (3 seeds of 10 functions, one hour; quick: 1 seed, 10 minutes)."""
    counts: dict[tuple[str, str], ClientCounts] = {}
    runs = [("poisson", poisson_clients(seed, 10, 20.0, 60.0))
            for seed in range(1, 3 if quick else 11)]
    runs += [("azure2019", azure_clients(seed, 10 if quick else 60))
             for seed in range(1, 2 if quick else 4)]
    for setup, scenario in runs:
        for name, n, flagged in flagged_by_client(scenario):
            kind = name.split("-")[0]
            c = counts.setdefault((setup, kind), ClientCounts(setup, kind))
            c.clients += 1
            c.flagged += flagged
            c.requests += n
    return list(counts.values())


def main(argv: list[str]) -> int:
    """Print the false-positive table (markdown)."""
    import pandas as pd

    from experiments.analysis import markdown

    rows = [c.row() for c in false_positives(quick="--quick" in argv)]
    total = ClientCounts("all", "all", sum(r["clients"] for r in rows),
                         sum(r["flagged"] for r in rows),
                         sum(r["clients"] * r["requests/client"] for r in rows))
    print(markdown(pd.DataFrame([*rows, total.row()]), digits=4))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
