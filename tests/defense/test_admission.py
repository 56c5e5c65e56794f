"""The admission role: per-client decisions before selection (rate limiting as the built-in
example), rejected requests in the records and in goodput, flags, defense lists as stacks, and
an attacker whose rejected queries are sent again at its own cost."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from defense import DEFENSES, Decision
from sim.plugins import Context
from sim.request import Request
from tests.sim.helpers import run

PROFILE = "synthetic-7"


def scenario(defense: Any, rate: float = 1000.0, requests: int = 4000) -> dict[str, Any]:
    slo = {"accuracy": {"type": "fixed", "value": 80}, "latency_ms": {"type": "fixed",
                                                                    "value": 1000}}
    return {"seed": 2, "requests": requests, "zoo": {"profile": PROFILE},
            "cluster": {"workers": 2, "max_batch": 4}, "defense": defense,
            "tenants": [{"name": "a", "arrivals": {"type": "poisson", "rate_rps": rate},
                         "slo": slo},
                        {"name": "b", "arrivals": {"type": "poisson", "rate_rps": 50},
                         "slo": slo}]}


def limiter(**params: Any) -> Any:
    block = DEFENSES.params_class("rate_limit").model_validate({"type": "rate_limit", **params})
    return DEFENSES.build(block, Context(generator=np.random.default_rng(0)))


def test_token_bucket_decides_on_both_sides_of_the_limit() -> None:
    d = limiter(rate_rps=10, burst=2)
    at = [Request(i, 0, t, 0, 1) for i, t in enumerate([0.0, 0.0, 0.0, 0.05, 0.1, 0.3])]
    assert [d.admit(r) for r in at] == [Decision.ADMIT, Decision.ADMIT, Decision.REJECT,
                                        Decision.REJECT, Decision.ADMIT, Decision.ADMIT]
    other = Request(9, 1, 0.3, 0, 1)           # a second client has its own bucket
    assert d.admit(other) is Decision.ADMIT
    big = [Request(10 + i, 2, t, 0, 1, size=4) for i, t in enumerate([0.0, 0.1, 0.3, 0.4])]
    # one token per input; more inputs than the burst: admitted with a full bucket, in debt
    assert [d.admit(r) for r in big] == [Decision.ADMIT, Decision.REJECT, Decision.REJECT,
                                         Decision.ADMIT]


def test_rejected_requests_are_recorded_unserved_and_cost_goodput() -> None:
    res = run(scenario({"type": "rate_limit", "rate_rps": 200, "burst": 5}))
    df = res.records
    assert len(df) == 4000 and {"flagged", "rejected"} <= set(df.columns)
    rej = df[df["rejected"]]
    a = df["tenant"] == "a"
    share = rej["tenant"].eq("a").sum() / a.sum()
    assert 0.7 < share < 0.85            # a sends ~1,000/s, the limit lets ~200/s through
    assert not df.loc[~a, "rejected"].any()   # b stays under its own limit
    assert rej["model"].isna().all() and (rej["worker"] == -1).all()
    assert (rej["finish_s"] == rej["arrival_s"]).all() and not rej["met_slo"].any()
    served = df[~df["rejected"]]
    assert served["met_slo"].all()        # loose targets: everything served meets them
    summary = res.summary
    assert summary["goodput"] == pytest.approx(len(served) / len(df), abs=0.02)
    assert summary["rejected"] == summary["tenants"]["a"]["rejected"] == len(rej)
    assert summary["tenants"]["b"]["rejected"] == 0 and summary["infeasible"] == 0
    assert summary["mean_batch_size"] >= 1     # the unserved are no batch


def test_a_limit_above_the_load_rejects_nothing() -> None:
    res = run(scenario({"type": "rate_limit", "rate_rps": 5000, "burst": 200}))
    assert not res.records["rejected"].any()
    plain = run(scenario({"type": "none"}))
    cols = [c for c in plain.records.columns]
    assert res.records[cols].equals(plain.records)   # admitting everything changes nothing
    assert res.summary["rejected"] == 0 and "rejected" not in plain.summary


def test_flagging_marks_without_rejecting() -> None:
    df = run(scenario({"type": "rate_limit", "rate_rps": 200, "burst": 5,
                       "action": "flag"})).records
    assert not df["rejected"].any()
    assert 0.7 < df.loc[df["tenant"] == "a", "flagged"].mean() < 0.85


def test_a_list_of_defenses_is_a_stack() -> None:
    stack = [{"type": "gaussian", "accuracy_sd": 2}, {"type": "top1"}]
    as_list = run(scenario(stack, requests=1500)).records
    as_chain = run(scenario({"type": "chain", "defenses": stack}, requests=1500)).records
    assert as_list.equals(as_chain)


@pytest.mark.slow
def test_an_attacker_resends_what_admission_rejected() -> None:
    from attacks.config import AttackScenario
    from attacks.run import run_attack
    from sim.config import parse_scenario
    from tests.attacks.helpers import attack_scenario

    data = attack_scenario("oracle", budget=400, surrogate={"steps": 2})
    data["defense"] = {"type": "rate_limit", "rate_rps": 2000, "burst": 20}
    report = run_attack(parse_scenario(data, model=AttackScenario)).report
    q = report["queries"]
    assert q["total"] == 400                      # rejections are paid from the budget
    assert q["discarded"] > 0                     # ... and their inputs were sent again
    assert report["extraction"]["kept_inputs"] == 400 - q["discarded"]
