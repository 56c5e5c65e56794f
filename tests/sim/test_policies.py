"""Selection behaviour end to end: infaas moves load between models, pareto does not."""

from __future__ import annotations

from typing import Any

from tests.sim.helpers import run


def scenario(policy: str, rate: float, replicate: bool = False) -> dict[str, Any]:
    """Two workers, the zoo spread over them: cnn_small (the cheapest model meeting 94 %)
    sits on worker 1 alone, lenet5 (next cheapest) on worker 0."""
    return {"seed": 2, "requests": 20000, "zoo": {"profile": "synthetic-7"},
            "cluster": {"workers": 2, "max_batch": 4, "batch_timeout_ms": 0.2,
                        "preload": "spread", "replicate": replicate},
            "policy": {"type": policy},
            "tenants": [{"name": "t", "arrivals": {"type": "poisson", "rate_rps": rate},
                         "slo": {"accuracy": {"type": "fixed", "value": 94},
                                 "latency_ms": {"type": "fixed", "value": 3}}}]}


def test_pareto_always_serves_the_cheapest_feasible_model() -> None:
    s = run(scenario("pareto", 8000)).summary
    assert s["served_by"] == {"cnn_small": 20000}


def test_infaas_spills_to_other_models_under_load_and_keeps_goodput() -> None:
    light = run(scenario("infaas", 500)).summary
    heavy = run(scenario("infaas", 6000)).summary
    assert light["served_by"].get("cnn_small", 0) > 0.99 * 20000
    assert len(heavy["served_by"]) >= 2
    assert heavy["served_by"].get("cnn_small", 0) < 0.9 * 20000
    pareto = run(scenario("pareto", 6000)).summary
    assert pareto["served_by"] == {"cnn_small": 20000}
    assert heavy["goodput"] > pareto["goodput"] + 0.2


def test_replication_scales_a_hot_model_out_instead() -> None:
    s = run(scenario("infaas", 8000, replicate=True)).summary
    assert s["model_loads"] >= 1
    assert s["served_by"].get("cnn_small", 0) > 0.95 * 20000
    assert s["goodput"] > 0.9


def test_summary_is_recomputable_from_records() -> None:
    res = run(scenario("infaas", 4000))
    df, s = res.records, res.summary
    assert s["requests"] == len(df) == 20000
    assert s["goodput"] == df["met_slo"].mean()
    assert s["latency_ms"]["p50"] == df["latency_ms"].median()
    assert sum(s["served_by"].values()) == len(df)
    assert (df["finish_s"] >= df["start_s"]).all() and (df["start_s"] >= df["arrival_s"]).all()
    for w, u in s["utilization"].items():
        assert 0 <= u <= 1, w
