"""The README's extending section runs as written: its policy, defense, arrival process and
attack strategy register, and scenarios use them by ``type:``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from attacks.config import SpecConfig
from attacks.strategies import STRATEGIES, Strategy
from defense import DEFENSES, SpecPerturber
from sim.plugins import PluginParams
from sim.policies import POLICIES, Policy
from tests.sim.helpers import run
from workloads.arrivals import ARRIVALS, ArrivalProcess

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def snippets() -> dict[str, Any]:
    text = README.read_text()
    section = text[text.index("## Layout and extending"):]
    section = section[:section.index("\n## ", 3)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 4
    names: dict[str, Any] = {
        "np": np, "Literal": Literal, "PluginParams": PluginParams, "POLICIES": POLICIES,
        "Policy": Policy, "DEFENSES": DEFENSES, "SpecPerturber": SpecPerturber,
        "ARRIVALS": ARRIVALS, "ArrivalProcess": ArrivalProcess, "STRATEGIES": STRATEGIES,
        "Strategy": Strategy, "SpecConfig": SpecConfig}
    for code in blocks:
        exec(compile(code, str(README), "exec", dont_inherit=True), names)
    return names


def test_the_readme_policy_defense_and_arrivals_run(snippets: dict[str, Any]) -> None:
    res = run({"seed": 1, "requests": 500, "zoo": {"profile": "synthetic-7"},
               "policy": {"type": "cheapest"}, "defense": {"type": "floor", "floor": 95},
               "tenants": [{"name": "t", "arrivals": {"type": "every", "gap_s": 0.01},
                            "slo": {"accuracy": {"type": "fixed", "value": 80},
                                    "latency_ms": {"type": "fixed", "value": 100}}}]})
    df = res.records
    assert np.allclose(np.diff(df["arrival_s"]), 0.01)
    assert (df["acc_spec"] == 95).all() and (df["model"] == "logreg").all()
    assert not df["feasible"].any()        # the cheapest model (88 %) misses the floor of 95


@pytest.mark.slow
def test_the_readme_strategy_runs(snippets: dict[str, Any]) -> None:
    from attacks.config import AttackScenario
    from attacks.run import run_attack
    from sim.config import parse_scenario
    from tests.attacks.helpers import attack_scenario

    data = attack_scenario("oracle", budget=200, surrogate={"steps": 2})
    data["attacker"]["strategy"] = {"type": "fixed"}
    report = run_attack(parse_scenario(data, model=AttackScenario)).report
    assert report["strategy"] == "fixed" and report["queries"]["extraction"] == 200
