"""The labels fallback of the fingerprinter when the answers are also noisy (a randomised
selection): the re-screening on top-1 labels can use up every candidate, and the extra screening
of noisy answers then has none left (it crashed on the empty batch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from attacks.run import run_attack
from experiments.study import Study
from tests.attacks.helpers import requires_zoo

STUDY = Path(__file__).resolve().parents[2] / "experiments" / "adaptive_defenses.yaml"


@requires_zoo
@pytest.mark.slow
def test_a_fallback_to_labels_that_screened_every_candidate_still_maps() -> None:
    study = Study(STUDY)
    point = next(p for p in study.points
                 if p["defense"]["type"] == "exponential" and p["seed"] == 1)
    # the paper's attacker (no sampling map): it takes the selection's randomness for output
    # noise and its map for implausible
    scenario = study.scenario(point | {"attacker.extract": False,
                                       "attacker.fingerprint.sample_requests": 0})
    report = run_attack(scenario, study.base_path.parent).report
    fp = report["fingerprint"]
    assert fp["complete"]
    assert fp["identified_on"] == "labels"
    assert "fell back to top-1 labels" in fp["warning"]
