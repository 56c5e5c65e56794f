"""One budget, everything counted: every input an attacker sends is paid from ``budget``
(``budget_counts: sent``), whatever the strategy; extraction inputs are distinct unless the
config asks for repeats or shifted copies."""

from __future__ import annotations

from typing import Any

import pytest

from attacks.config import AttackScenario
from attacks.run import run_attack
from sim.config import parse_scenario
from tests.attacks.helpers import attack_scenario, requires_zoo

pytestmark = requires_zoo

POOL = 1500
"""Inputs in the mnist5k attacker pool."""


def attack(d: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """attack.json and the inputs the attacker's requests carried, counted in the records."""
    result = run_attack(parse_scenario(d, model=AttackScenario))
    df = result.sim.records
    sent = int(df.loc[df["tenant"] == "attacker", "size"].sum())
    return result.report, sent


@pytest.mark.parametrize(("strategy", "extra"), [
    ("oracle", {}), ("naive", {}), ("fingerprint", {}), ("known-zoo", {}),
    ("fingerprint", {"verify": True}),
])
def test_a_budget_of_1500_sends_at_most_1500_inputs_in_all(strategy: str,
                                                          extra: dict[str, Any]) -> None:
    d = attack_scenario(strategy, budget=1500, target="median", rate=300, policy="infaas",
                        **extra)
    d["attacker"]["surrogate"] = {"steps": 1}
    r, sent = attack(d)
    q = r["queries"]
    assert sent == q["total"] <= 1500
    parts = ("screening", "mapping", "consistency", "extraction", "verification")
    assert q["total"] == sum(q[p] for p in parts)
    assert q["fingerprint"] == q["screening"] + q["mapping"] + q["consistency"]
    if strategy in ("oracle", "naive"):
        assert q["fingerprint"] == 0 and q["extraction"] == 1500
    else:
        assert r["fingerprint"]["complete"] is True
        assert 0 < q["extraction"] < 1500 - q["fingerprint"] + 1
        # what is left after fingerprinting goes to extraction, up to one request's worth
        assert 1500 - q["total"] < 20 + (16 if extra.get("verify") else 0)
    assert r["extraction"]["kept_inputs"] == r["extraction"]["distinct_inputs"]


@pytest.mark.parametrize("outputs", ["probabilities", "labels"])
def test_fingerprinting_that_outruns_the_budget_stops_and_says_so(outputs: str) -> None:
    """Mapping costs about 170 inputs with probabilities and more than 1,500 with top-1
    labels (the mnist5k zoo's models answer most inputs alike)."""
    budget = 100 if outputs == "probabilities" else 1500
    d = attack_scenario("fingerprint", budget=budget, target="median", outputs=outputs)
    d["attacker"]["surrogate"] = {"steps": 1}
    r, sent = attack(d)
    assert r["fingerprint"]["complete"] is False
    assert sent == r["queries"]["total"] <= budget
    assert r["queries"]["extraction"] == 0 and r["extraction"]["kept_inputs"] == 0
    # scored with what it holds: an untrained surrogate (about chance on 10 classes)
    assert r["surrogate"]["steps"] == 0 and r["surrogate"]["fidelity"] < 40


def test_the_extraction_view_leaves_fingerprinting_out_of_the_budget() -> None:
    d = attack_scenario("fingerprint", budget=300, target="median",
                        budget_counts="extraction")
    d["attacker"]["surrogate"] = {"steps": 1}
    r, _ = attack(d)
    assert r["fingerprint"]["complete"] is True
    assert r["queries"]["extraction"] == 300
    assert r["queries"]["total"] == 300 + r["queries"]["fingerprint"]
    assert r["queries"]["budget_counts"] == "extraction"


@pytest.mark.parametrize(("beyond_pool", "extracted", "distinct"), [
    ("stop", POOL, POOL), ("repeat", 1800, POOL), ("augment", 1800, None),
])
def test_past_the_pool_an_attack_stops_unless_asked_to_repeat(
        beyond_pool: str, extracted: int, distinct: int | None) -> None:
    d = attack_scenario("oracle", budget=1800, target="least-accurate",
                        beyond_pool=beyond_pool)
    d["attacker"]["surrogate"] = {"steps": 1}
    r, sent = attack(d)
    e = r["extraction"]
    assert sent == r["queries"]["extraction"] == e["kept_inputs"] == extracted
    assert e["pool_exhausted"] is (beyond_pool == "stop")
    if distinct is not None:
        assert e["distinct_inputs"] == distinct
    else:   # shifted copies are new inputs (a few draws may repeat a shift of 0 px)
        assert e["distinct_inputs"] > POOL + 200


def test_answers_discarded_after_the_pool_ran_out_are_queried_again() -> None:
    """The verifying attacker under spec noise: every pool input ends up kept, including
    those whose answers were discarded after the last fresh input went out."""
    d = attack_scenario("fingerprint", budget=9000, target="median", verify=True)
    d["defense"] = {"type": "gaussian", "accuracy_sd": 1.0}
    d["attacker"]["surrogate"] = {"steps": 1}
    r, sent = attack(d)
    e, q = r["extraction"], r["queries"]
    assert e["pool_exhausted"] is True and q["discarded"] > 0
    assert e["kept_inputs"] == e["distinct_inputs"] == POOL
    assert q["extraction"] == POOL + q["discarded"]
    assert sent == q["total"] <= 9000
