"""summary.json, derived from the records alone (ARCHITECTURE.md, "Contracts").

Goodput follows PAPER.md: the fraction of requests whose serving model's profiled accuracy
meets the *original* accuracy target and whose end-to-end latency meets the original latency
target; ``goodput_rps`` is the number of such requests per second of the measured window.
``goodput_answers`` also requires the answer's top-1 to have survived an output defense
(:mod:`defense.answers`).
Requests that arrived before ``warmup_s`` are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _stats(lat: np.ndarray) -> dict[str, float]:
    if len(lat) == 0:
        return {"mean": float("nan"), "p50": float("nan"), "p95": float("nan"),
                "p99": float("nan")}
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"mean": float(lat.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _goodput_answers(df: pd.DataFrame, met: int) -> float | None:
    """Share of requests meeting their SLO *and* answered with an intact top-1
    (:mod:`defense.answers`); equal to goodput without an output defense, None when unknown."""
    n = len(df)
    if "answer_ok" not in df:
        return met / n if n else float("nan")
    ok = df["answer_ok"]
    if ok.isna().any():
        return None
    return float((df["met_slo"].to_numpy() & ok.to_numpy(dtype=bool)).sum() / n) if n \
        else float("nan")


def slo_summary(df: pd.DataFrame, window_s: float) -> dict[str, Any]:
    """Counts, goodput, SLO attainment and latency of a set of records."""
    n = len(df)
    met = int(df["met_slo"].sum())
    return {
        "requests": n,
        "completed": int((df["finish_s"] >= 0).sum()),
        "goodput": met / n if n else float("nan"),
        "goodput_answers": _goodput_answers(df, met),
        "goodput_rps": met / window_s if window_s > 0 else float("nan"),
        "slo_attainment": {
            "latency": float(df["met_latency"].mean()) if n else float("nan"),
            "accuracy": float(df["met_accuracy"].mean()) if n else float("nan"),
        },
        "infeasible": int((~df["feasible"]).sum()),
        "latency_ms": _stats(df["latency_ms"].to_numpy()),
        "wait_ms": {"mean": float(df["wait_ms"].mean()) if n else float("nan")},
        "served_by": {str(k): int(v) for k, v in
                      df["model"].value_counts(sort=False).items() if v},
    }


def summarize(df: pd.DataFrame, *, warmup_s: float, n_workers: int, seed: int,
              wall_time_s: float, sim_events: int | None, area: float | None,
              loads: int, evictions: int) -> dict[str, Any]:
    """The run's summary: overall figures, per tenant, per worker, and run statistics."""
    sim_time = float(df["finish_s"].max()) if len(df) else 0.0
    kept = df[df["arrival_s"] >= warmup_s]
    window = float(kept["arrival_s"].max()) - warmup_s if len(kept) else 0.0
    out = slo_summary(kept, window)
    batches = df.drop_duplicates("batch_id")
    busy = (batches["finish_s"] - batches["start_s"]).groupby(batches["worker"]).sum()
    out["utilization"] = {str(w): float(busy.get(w, 0.0)) / sim_time if sim_time > 0 else 0.0
                          for w in range(n_workers)}
    out["mean_batch_size"] = float(batches["batch_size"].mean()) if len(batches) else 0.0
    out["tenants"] = {str(t): slo_summary(g, window)
                      for t, g in kept.groupby("tenant", observed=False)}
    if area is not None:  # the engine's occupancy integral covers every request recorded here
        sojourn = float((df["finish_s"] - df["arrival_s"]).sum())
        out["littles_law"] = {
            "L": area / sim_time if sim_time > 0 else 0.0,
            "lambda_W": sojourn / sim_time if sim_time > 0 else 0.0,
        }
    out["model_loads"] = loads
    out["evictions"] = evictions
    out["sim_time_s"] = sim_time
    out["wall_time_s"] = wall_time_s
    out["events_per_s"] = (sim_events / wall_time_s if sim_events and wall_time_s > 0
                           else float("nan"))
    out["seed"] = seed
    return out
