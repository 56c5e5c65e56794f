"""The attacker end to end on the shipped zoo: fingerprinting maps the zoo, extraction works,
bad configs are user errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from attacks.config import AttackScenario, FingerprintConfig
from attacks.run import run_attack
from sim.cli import main
from sim.config import parse_scenario
from sim.profiles import load_profile
from tests.attacks.helpers import ZOO, attack_scenario, requires_zoo

pytestmark = requires_zoo


def attack(d: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = run_attack(parse_scenario(d, model=AttackScenario)).report
    return report


def test_fingerprint_finds_every_front_model_and_its_threshold() -> None:
    d = attack_scenario("fingerprint", budget=40, target="median", budget_counts="extraction")
    d["attacker"]["surrogate"] = {"steps": 2}
    r = attack(d)
    front = load_profile(ZOO).pareto_front
    fp = r["fingerprint"]
    assert fp["models_found"] == len(front)
    # the pareto policy switches to front model k+1 just above front model k's accuracy
    tol = FingerprintConfig().accuracy_tolerance
    expected = [m.accuracy for m in front[:-1]]
    assert len(fp["thresholds"]) == len(expected)
    for got, want in zip(fp["thresholds"], expected, strict=True):
        assert abs(got - want) <= tol, (fp["thresholds"], expected)
    assert fp["identification_accuracy"] >= 0.99
    assert fp["trigger_consistency"] == 1.0
    assert r["target_model"] == front[len(front) // 2].name
    # query-efficient: one input per mapping request where answers are exact
    assert r["queries"]["fingerprint"] <= 200
    assert fp["cost_per_model"] == round(r["queries"]["fingerprint"] / len(front), 1)


@pytest.mark.slow
def test_oracle_extraction_reaches_a_fidelity_floor_with_a_small_budget() -> None:
    d = attack_scenario("oracle", budget=1500, target="most-accurate")
    d["attacker"]["surrogate"] = {"steps": 150}
    r = attack(d)
    assert r["extraction"]["served_by"] == {r["target_model"]: 1500}
    assert r["queries"]["extraction"] == 1500 and r["queries"]["fingerprint"] == 0
    assert r["surrogate"]["fidelity"] >= 90.0
    assert r["fingerprint"]["trigger_consistency"] == 1.0


def test_labels_only_and_verification_count_their_queries() -> None:
    d = attack_scenario("fingerprint", budget=200, target="least-accurate",
                        outputs="labels", verify=True, budget_counts="extraction")
    d["attacker"]["surrogate"] = {"steps": 2}
    r = attack(d)
    q = r["queries"]
    assert q["extraction"] == 200
    riders = q["verification"] // q["requests"]["extraction"]   # the same probes ride along
    assert riders >= 1 and q["verification"] == q["requests"]["extraction"] * riders
    assert q["total"] == q["fingerprint"] + q["extraction"] + q["verification"]
    assert r["fingerprint"]["identified_on"] == "labels"
    assert r["fingerprint"]["identification_accuracy"] >= 0.99
    assert r["fingerprint"]["models_found"] == len(load_profile(ZOO).pareto_front)


def test_known_zoo_is_an_upper_bound_on_identification() -> None:
    d = attack_scenario("known-zoo", budget=40, target="median", budget_counts="extraction")
    d["attacker"]["surrogate"] = {"steps": 2}
    r = attack(d)
    assert r["fingerprint"]["identification_accuracy"] == 1.0
    assert r["extraction"]["served_by"] == {r["target_model"]: 40}


@pytest.mark.parametrize(("change", "needle"), [
    ({"budget": 0}, "attacker.budget"),
    ({"strategy": "guess"}, "attacker.strategy"),
    ({"target": "no_such_model"}, "attacker.target"),
    ({"strategy": "naive", "spec": None}, "attacker.strategy.spec"),
    ({"outputs": "logits"}, "attacker.outputs"),
])
def test_bad_attack_configs_exit_2(tmp_path: Path, change: dict[str, Any], needle: str) -> None:
    d = attack_scenario("fingerprint")
    d["attacker"].update(change)
    d["attacker"] = {k: v for k, v in d["attacker"].items() if v is not None}
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(main, ["attack", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_attack_cli_writes_the_contract(tmp_path: Path) -> None:
    import json

    d = attack_scenario("naive", rate=500, budget=100)
    d["attacker"]["surrogate"] = {"steps": 2}
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(main, ["attack", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "o" / "attack.json").read_text())
    assert set(r) >= {"strategy", "target_model", "queries", "fingerprint", "surrogate",
                      "victim", "benign"}
    assert set(r["queries"]) >= {"fingerprint", "extraction", "discarded", "total"}
    assert set(r["fingerprint"]) >= {"models_found", "identification_accuracy",
                                     "trigger_consistency"}
    assert set(r["surrogate"]) >= {"accuracy", "fidelity"}
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["tenants"].keys() == {"web"}
    assert (tmp_path / "o" / "requests.parquet").is_file()


def test_adaptive_attacker_keeps_its_budget_of_verified_answers_under_spec_noise() -> None:
    base = attack_scenario("fingerprint", budget=200, target="median", verify=True,
                           budget_counts="kept", fingerprint={"repeats": 3})
    base["attacker"]["surrogate"] = {"steps": 2}
    clean = attack(base)
    noisy_cfg = attack_scenario("fingerprint", budget=200, target="median", verify=True,
                                budget_counts="kept", fingerprint={"repeats": 3})
    noisy_cfg["attacker"]["surrogate"] = {"steps": 2}
    noisy_cfg["defense"] = {"type": "gaussian", "accuracy_sd": 1.0}
    noisy = attack(noisy_cfg)
    for r in (clean, noisy):
        assert r["extraction"]["kept_inputs"] == 200
        # verification keeps the answers of one model only (under noise the black-box
        # attacker may have mapped the zoo differently and aimed at a neighbour)
        assert list(r["extraction"]["served_by"].values()) == [200]
    assert clean["extraction"]["served_by"] == {clean["target_model"]: 200}
    assert clean["queries"]["discarded"] == 0
    assert noisy["queries"]["discarded"] > 0
    assert noisy["queries"]["extraction"] == 200 + noisy["queries"]["discarded"]


def test_spec_noise_mixes_models_for_the_non_adaptive_attacker() -> None:
    d = attack_scenario("fingerprint", budget=400, target="median", budget_counts="extraction")
    d["attacker"]["surrogate"] = {"steps": 2}
    d["defense"] = {"type": "gaussian", "accuracy_sd": 1.0}
    r = attack(d)
    assert r["fingerprint"]["trigger_consistency"] < 0.95
    assert len(r["extraction"]["served_by"]) >= 2


def test_output_perturbation_reaches_the_attackers_answers() -> None:
    d = attack_scenario("oracle", budget=100, target="median")
    d["attacker"]["surrogate"] = {"steps": 2}
    d["defense"] = {"type": "top1"}
    r = attack(d)
    assert r["extraction"]["kept_inputs"] == 100   # answers arrive, as one-hot labels


@pytest.mark.parametrize("seed", [1, 2])
def test_naive_fidelity_is_below_fingerprint_fidelity_under_mixing_load(seed: int) -> None:
    """The diverse MNIST-1D zoo under heavy benign load: infaas moves the naive attacker's
    queries for the smallest model to other models; the fingerprinting attacker's loose
    trigger spec keeps reaching it."""
    from sim.config import load_scenario
    from tests.helpers import REPO

    pytest.importorskip("mnist1d")
    overrides = ("attacker.target=least-accurate", "tenants.0.arrivals.rate_rps=7000",
                 "attacker.budget=500", "attacker.budget_counts=extraction",
                 "attacker.surrogate.steps=300", f"seed={seed}")
    fid = {}
    for strategy in ("naive", "fingerprint"):
        sc = load_scenario(REPO / "experiments" / "attack_base_1d.yaml", AttackScenario,
                           (*overrides, f"attacker.strategy={strategy}"))
        assert isinstance(sc, AttackScenario)
        r = run_attack(sc, REPO / "experiments").report
        fid[strategy] = r["surrogate"]["fidelity"]
        consistency = r["fingerprint"]["trigger_consistency"]
        assert (consistency < 0.8) if strategy == "naive" else (consistency == 1.0)
    assert fid["fingerprint"] > fid["naive"] + 5, fid


def test_validate_checks_attack_configs(tmp_path: Path) -> None:
    """`zoosim validate` reads an attack config as one (it used to call `attacker` an unknown
    key) and checks its target against the zoo."""
    from tests.helpers import REPO

    example = REPO / "examples" / "attack-fingerprint.yaml"
    ok = CliRunner().invoke(main, ["validate", str(example)])
    assert ok.exit_code == 0 and "ok (an attack)" in ok.output, ok.output
    bad = CliRunner().invoke(main, ["validate", str(example), "--set",
                                    "attacker.target=no_such_model"])
    assert bad.exit_code == 2 and "attacker.target" in bad.output
    assert "Traceback" not in bad.output
    typo = CliRunner().invoke(main, ["validate", str(example), "--set", "attacker.budgt=5"])
    assert typo.exit_code == 2 and "budgt" in typo.output
