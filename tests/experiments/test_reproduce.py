"""``zoosim reproduce`` end to end at a tiny scale: every study, every figure, claims.md."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from experiments.reproduce import HERE, STUDIES, reproduce

CHEAP = {"attacker.budget_counts": "extraction", "attacker.surrogate.steps": 2}
"""Tiny attacks: 60 extraction inputs after a full (free) fingerprinting, 2 training steps."""
TINY = {
    "attack_budget_1d": {"grid": {"attacker.budget": [60],
                                  "attacker.target": ["least-accurate"],
                                  "tenants.0.arrivals.rate_rps": [500]}, "set": CHEAP},
    "attack_budget": {"grid": {"attacker.budget": [60], "attacker.target": ["median"],
                               "tenants.0.arrivals.rate_rps": [500]}, "set": CHEAP},
    "attack_budget_regime": {"grid": {"attacker.budget": [60], "attacker.target": ["median"],
                                      "tenants.0.arrivals.rate_rps": [200]}, "set": CHEAP},
    "defense_attack_regime": {"grid": {"defense": [{"type": "gaussian", "accuracy_sd": 0},
                                                   {"type": "gaussian", "accuracy_sd": 16}]},
                              "zip": {"attacker.budget": [60, 30],
                                      "attacker.budget_counts": ["extraction", "kept"]},
                              "set": CHEAP},
    "defense_attack": {"grid": {"defense": [{"type": "gaussian", "accuracy_sd": 0},
                                            {"type": "gaussian", "accuracy_sd": 1}]},
                       "zip": {"attacker.budget": [60, 30],
                               "attacker.budget_counts": ["extraction", "kept"]},
                       "set": CHEAP},
    "defense_goodput": {"grid": {"defense": [{"type": "gaussian", "accuracy_sd": 0},
                                             {"type": "gaussian", "accuracy_sd": 1}],
                                 "tenants.0.arrivals.rate_rps": [2000]},
                        "set": {"requests": 2000}},
    "defense_frontier_c4": {"grid": {"defense": [{"type": "none"}, {"type": "top1"}],
                                     "tenants.0.arrivals.rate_rps": [500, 1000]},
                            "zip": {"attacker.budget": [60, 30],
                                    "attacker.budget_counts": ["extraction", "kept"],
                                    "attacker.fingerprint.sample_requests": [0, 0],
                                    "attacker.fingerprint.repeats": [1, 1]},
                            "set": CHEAP},
}


@pytest.mark.slow
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
    for claim in ("C1", "C2", "C3", "C3-mnist5k", "C4"):
        assert f"| {claim}:" in text
    verdicts = json.loads((out / "claims.json").read_text())["claims"]
    assert [c["id"] for c in verdicts] == ["C1", "C2", "C3", "C3-mnist5k", "C4"]
    for c in verdicts:
        assert isinstance(c["holds"], bool) and c["scenario"] and c["figures"]
    # the configuration nearest C4 was re-run on fresh seeds, at both loads, both attackers
    fresh = pd.read_parquet(out / "confirm" / "C4" / "results.parquet")
    assert len(fresh) == 2 * 2 * 2 * 2 and set(fresh["param.seed"]) == {1001, 1002}
    assert verdicts[4]["figures"]["selected"] == "top1"
    # the worst (C1) and best (C2) cells were re-run on fresh seeds
    for claim in ("C1", "C2"):
        fresh = pd.read_parquet(out / "confirm" / claim / "results.parquet")
        assert set(fresh["param.seed"]) == {1001, 1002}
        assert len(fresh) == 4
        assert verdicts[int(claim[1]) - 1]["figures"]["confirmed"]["seeds"] == [1001, 1002]
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert figures >= {"attack_budget_1d.png", "attack_budget.png", "attack_budget_regime.png",
                       "goodput_vs_noise.png", "frontier_c4.png", "attack_vs_noise.png",
                       "attack_vs_noise_regime.png", "zoo_mnist5k.png"}
    for name in STUDIES:
        assert (out / name / "results.parquet").is_file()
    again = reproduce(out, quick=True, progress=False, workers=1, study_dir=studies)
    # resumed: the same claims, and the header still counts the work of the first invocation
    assert again.read_text().split("\n", 1)[1] == text.split("\n", 1)[1]
    first, second = (re.search(r"(\d+) runs, ([\d.]+) min of compute", t.split("\n")[0])
                     for t in (text, again.read_text()))
    assert first is not None and second is not None
    assert first.groups() == second.groups() and float(first.group(2)) > 0
