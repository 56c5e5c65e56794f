"""summary.json and attack.json keep their keys, in order, with their conditional keys: what
the hand-built dicts had before :class:`sim.summary.Summary` and
:class:`attacks.report.AttackReport` built them (the pins compare values, not key order).
Each file also survives a round trip through its model unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attacks.config import AttackScenario
from attacks.report import AttackReport, ExtractionReport, LiveReport
from attacks.run import run_attack
from sim.config import Scenario, parse_scenario
from sim.run import simulate
from sim.summary import Summary
from tests.attacks.helpers import attack_scenario
from tests.golden.cases import REPO, scenario_of

SLO_KEYS = ["requests", "completed", "goodput", "goodput_answers", "goodput_rps",
            "slo_attainment", "infeasible", "latency_ms", "wait_ms", "served_by"]
SUMMARY_KEYS = [*SLO_KEYS, "utilization", "mean_batch_size", "tenants", "littles_law",
                "model_loads", "evictions", "sim_time_s", "wall_time_s", "events_per_s", "seed"]
BENIGN_KEYS = [k for k in SUMMARY_KEYS if k != "littles_law"]
REPORT_KEYS = ["strategy", "target_model", "queries", "fingerprint", "extraction", "surrogate",
               "victim", "outputs", "verify", "seed"]
QUERIES_KEYS = ["screening", "mapping", "consistency", "extraction", "verification",
                "fingerprint", "discarded", "total", "requests", "budget", "budget_counts"]
REQUESTS_KEYS = ["screening", "mapping", "consistency", "extraction", "fingerprint", "total"]
FINGERPRINT_KEYS = ["complete", "models_found", "identification_accuracy",
                    "trigger_consistency", "estimated_consistency", "trigger_spec",
                    "thresholds", "zoo_models", "front_models"]
MAPPING_KEYS = ["cost_per_model", "identified_on", "noise", "latency_decided", "selection_varies",
                "sampled_requests", "latency_split", "warning"]
"""Written by the strategies that map the spec space (fingerprint, known-zoo) only."""
SURROGATE_KEYS = ["arch", "steps", "accuracy", "fidelity"]
TRAINED = ["kept_inputs", "distinct_inputs", "served_by", "from_target", "pool_exhausted",
           "training_s"]
UNTRAINED = ["kept_inputs", "distinct_inputs", "served_by", "pool_exhausted"]
NOT_EXTRACTED = ["kept_inputs", "served_by", "pool_exhausted"]


def _text(d: dict[str, Any]) -> str:
    return json.dumps(d)   # key order, int/float and NaN as written


def _check_summary(s: dict[str, Any], keys: list[str]) -> None:
    assert list(s) == keys
    assert list(s["slo_attainment"]) == ["latency", "accuracy"]
    assert list(s["latency_ms"]) == ["mean", "p50", "p95", "p99"]
    assert list(s["wait_ms"]) == ["mean"]
    for t in s["tenants"].values():
        assert list(t) == SLO_KEYS
    if "littles_law" in keys:
        assert list(s["littles_law"]) == ["L", "lambda_W"]
    assert _text(Summary.model_validate(s).to_json()) == _text(s)


def _golden_scenario(name: str) -> tuple[Scenario, Path]:
    """A case of :mod:`tests.golden.cases` and its base folder."""
    scenario, base_dir = scenario_of(name)
    return scenario, base_dir


def test_summary_keys() -> None:
    scenario, base = _golden_scenario("policy-pareto")
    _check_summary(simulate(scenario, base).summary, SUMMARY_KEYS)


def test_unknown_answer_goodput_stays_null() -> None:
    d = {"seed": 2, "requests": 300, "zoo": {"profile": "cifar10-published"},
         "cluster": {"workers": 2, "max_batch": 8, "batch_timeout_ms": 0.5},
         "policy": {"type": "pareto"}, "defense": {"type": "gaussian_probs", "sd": 0.3},
         "tenants": [{"name": "web", "arrivals": {"type": "poisson", "rate_rps": 500},
                      "slo": {"accuracy": {"type": "choice", "values": [90, 96]},
                              "latency_ms": {"type": "fixed", "value": 50}}}]}
    s = simulate(parse_scenario(d)).summary
    assert s["goodput_answers"] is None
    assert all(t["goodput_answers"] is None for t in s["tenants"].values())
    _check_summary(s, SUMMARY_KEYS)


def _oracle() -> AttackScenario:
    scenario, _ = _golden_scenario("attack-oracle")
    assert isinstance(scenario, AttackScenario)
    return scenario


def _small(strategy: str, **attacker: Any) -> AttackScenario:
    d = attack_scenario(strategy, target="median", **attacker)
    d["attacker"]["surrogate"] = {"steps": 1}
    scenario = parse_scenario(d, model=AttackScenario)
    assert isinstance(scenario, AttackScenario)
    return scenario


@pytest.mark.parametrize(("make", "extraction"), [
    pytest.param(_oracle, TRAINED, id="trained", marks=pytest.mark.slow),
    pytest.param(lambda: _small("fingerprint", budget=100), UNTRAINED,
                 id="fingerprinting-ate-the-budget", marks=pytest.mark.slow),
    pytest.param(lambda: _small("fingerprint", budget=40, extract=False, rate=300,
                                budget_counts="extraction", fingerprint={"candidates": 64}),
                 NOT_EXTRACTED, id="no-extraction"),
])
def test_attack_report_keys(make: Any, extraction: list[str]) -> None:
    r = run_attack(make(), REPO / "experiments").report
    assert list(r) == [*REPORT_KEYS, "benign"]
    assert list(r["queries"]) == QUERIES_KEYS
    assert list(r["queries"]["requests"]) == REQUESTS_KEYS
    mapping = MAPPING_KEYS if r["strategy"] in ("fingerprint", "known-zoo") else []
    assert list(r["fingerprint"]) == FINGERPRINT_KEYS + mapping
    assert list(r["extraction"]) == extraction
    assert list(r["surrogate"]) == SURROGATE_KEYS
    assert list(r["victim"]) == ["accuracy"]
    _check_summary(r["benign"], BENIGN_KEYS)
    assert _text(AttackReport.model_validate(r).to_json()) == _text(r)


def test_null_is_written_and_unset_is_absent() -> None:
    """A live attack without server records: ``served_by`` is null, not absent; ``live``
    comes last and ``benign`` is absent."""
    e = ExtractionReport(kept_inputs=40, distinct_inputs=40, served_by=None,
                         pool_exhausted=False, training_s=0.5)
    assert e.to_json() == {"kept_inputs": 40, "distinct_inputs": 40, "served_by": None,
                           "pool_exhausted": False, "training_s": 0.5}
    r = AttackReport.model_validate({
        "strategy": "naive", "target_model": "m",
        "queries": {**dict.fromkeys(QUERIES_KEYS[:8], 0),
                    "requests": dict.fromkeys(REQUESTS_KEYS, 0), "budget": 40,
                    "budget_counts": "sent"},
        "fingerprint": {**dict.fromkeys(FINGERPRINT_KEYS[:7]), "zoo_models": 8,
                        "front_models": 7},
        "extraction": e.to_json(),
        "surrogate": {"arch": "cnn_small", "steps": 0, "accuracy": float("nan"),
                      "fidelity": float("nan")},
        "victim": {"accuracy": 95.7}, "outputs": "probabilities", "verify": False, "seed": 3})
    r.live = LiveReport(url="http://x", wall_s=1.0, records=False, http_requests=3, retries=0)
    out = r.to_json()
    assert list(out) == [*REPORT_KEYS, "live"]
    assert out["fingerprint"]["complete"] is None and out["extraction"]["served_by"] is None
    assert out["surrogate"]["fidelity"] != out["surrogate"]["fidelity"]   # NaN stays NaN
