"""Goodput that sees answers (defense.answers): an output defense that changes a benign answer's
top-1 loses that request; one that keeps every top-1 costs nothing; unknown without weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.sim.helpers import run


def scenario(defense: dict[str, Any], zoo: str = "mnist5k-cpu", seed: int = 2) -> dict[str, Any]:
    return {"seed": seed, "requests": 3000, "zoo": {"profile": zoo},
            "cluster": {"workers": 2, "max_batch": 8, "batch_timeout_ms": 0.5},
            "policy": {"type": "pareto"}, "defense": defense,
            "tenants": [{"name": "web", "arrivals": {"type": "poisson", "rate_rps": 500},
                         "slo": {"accuracy": {"type": "choice", "values": [90, 96]},
                                 "latency_ms": {"type": "fixed", "value": 50}}}]}


def test_without_an_output_defense_answer_goodput_is_goodput() -> None:
    r = run(scenario({"type": "gaussian", "accuracy_sd": 1.0}))
    assert "answer_ok" not in r.records
    assert r.summary["goodput_answers"] == r.summary["goodput"]


def test_noise_on_the_probabilities_costs_answer_goodput_and_top1_does_not() -> None:
    plain = run(scenario({"type": "none"})).summary
    noisy = run(scenario({"type": "gaussian_probs", "sd": 0.3}))
    top1 = run(scenario({"type": "top1"}))
    # the spec is untouched, so docs/paper.md's goodput cannot see either defense
    assert noisy.summary["goodput"] == top1.summary["goodput"] == plain["goodput"]
    lost = 1 - noisy.records["answer_ok"].to_numpy(dtype=bool).mean()
    assert 0.02 < lost < 0.9
    assert noisy.summary["goodput_answers"] < plain["goodput"] - 0.01
    assert top1.records["answer_ok"].to_numpy(dtype=bool).all()
    assert top1.summary["goodput_answers"] == plain["goodput"]


def test_answer_goodput_is_derived_from_the_records() -> None:
    r = run(scenario({"type": "gaussian_probs", "sd": 0.3}))
    df = r.records[r.records["arrival_s"] >= 0]
    expected = float((df["met_slo"] & df["answer_ok"].astype(bool)).mean())
    assert r.summary["goodput_answers"] == pytest.approx(expected)


def test_same_seed_same_answers_and_other_streams_untouched() -> None:
    a = run(scenario({"type": "gaussian_probs", "sd": 0.3}))
    b = run(scenario({"type": "gaussian_probs", "sd": 0.3}))
    plain = run(scenario({"type": "none"}))
    assert np.array_equal(a.records["answer_ok"].to_numpy(bool),
                          b.records["answer_ok"].to_numpy(bool))
    # common random numbers: the benign arrivals and choices do not depend on the defense
    assert np.array_equal(a.records["arrival_s"], plain.records["arrival_s"])
    assert (a.records["model"] == plain.records["model"]).all()


def test_a_zoo_without_weights_reports_null() -> None:
    r = run(scenario({"type": "gaussian_probs", "sd": 0.3}, zoo="cifar10-published"))
    assert r.summary["goodput_answers"] is None
    assert r.summary["goodput"] == r.summary["goodput"]   # still measured


def test_a_tenants_answers_do_not_depend_on_the_other_tenants_traffic() -> None:
    """Common random numbers per tenant: the attacker's traffic differs between defenses, so
    a benign tenant's inputs and noise are drawn from its own streams, in its own order."""
    def with_other(rate: float) -> Any:
        d = scenario({"type": "gaussian_probs", "sd": 0.3})
        d["tenants"].append({"name": "other", "arrivals": {"type": "poisson", "rate_rps": rate},
                             "slo": {"accuracy": {"type": "fixed", "value": 93},
                                     "latency_ms": {"type": "fixed", "value": 50}}})
        df = run(d).records
        return df[df["tenant"] == "web"]

    a, b = with_other(100), with_other(900)
    n = min(len(a), len(b))
    assert (a["model"].to_numpy()[:n] == b["model"].to_numpy()[:n]).all()   # pareto: no load
    assert np.array_equal(a["answer_ok"].to_numpy(bool)[:n], b["answer_ok"].to_numpy(bool)[:n])
