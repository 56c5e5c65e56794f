"""``zoosim reproduce`` end to end at a tiny scale: every study, every figure, claims.md."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from experiments.reproduce import HERE, STUDIES, reproduce

TINY = {
    "attack_budget_1d": {"grid": {"attacker.budget": [60], "attacker.surrogate.epochs": [1],
                                  "attacker.target": ["least-accurate"],
                                  "tenants.0.arrivals.rate_rps": [500]}},
    "attack_budget": {"grid": {"attacker.budget": [60], "attacker.surrogate.epochs": [1],
                               "attacker.target": ["median"],
                               "tenants.0.arrivals.rate_rps": [500]}},
    "defense_attack": {"grid": {"defense": [{"type": "gaussian", "accuracy_sd": 0},
                                            {"type": "gaussian", "accuracy_sd": 1}]},
                       "set": {"attacker.budget": 60, "attacker.surrogate.epochs": 1}},
    "defense_goodput": {"grid": {"defense": [{"type": "gaussian", "accuracy_sd": 0},
                                             {"type": "gaussian", "accuracy_sd": 1}],
                                 "tenants.0.arrivals.rate_rps": [2000]},
                        "set": {"requests": 2000}},
    "defense_frontier_mnist5k": {"grid": {"defense": [{"type": "none"}, {"type": "top1"}]},
                                 "set": {"attacker.budget": 60,
                                         "attacker.surrogate.epochs": 1}},
}


def test_reproduce_runs_every_study_and_writes_claims(tmp_path: Path) -> None:
    pytest.importorskip("mnist1d")
    studies = tmp_path / "studies"
    studies.mkdir()
    for base in HERE.glob("*base*.yaml"):
        shutil.copy(base, studies / base.name)
    for name in STUDIES:
        spec = yaml.safe_load((HERE / f"{name}.yaml").read_text())
        spec["quick"] = TINY[name] | {"seeds": [1, 2]}
        (studies / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    path = reproduce(out, quick=True, progress=False, workers=2, study_dir=studies)
    text = path.read_text()
    for claim in ("C1", "C2", "C3", "C4"):
        assert f"| {claim}:" in text
    assert "| yes |" in text or "| no |" in text or "| yes, " in text
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert figures >= {"attack_budget_1d.png", "attack_budget.png", "goodput_vs_noise.png",
                       "frontier.png", "attack_vs_noise.png", "zoo_mnist5k.png"}
    for name in STUDIES:
        assert (out / name / "results.parquet").is_file()
    again = reproduce(out, quick=True, progress=False, workers=1, study_dir=studies)
    assert again.read_text().split("\n", 1)[1] == text.split("\n", 1)[1]  # resumed: same claims
