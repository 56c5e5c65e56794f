"""Records, summaries and attack reports are what they were when pinned (wall-clock fields
excepted; surrogate scores to a tolerance): see :mod:`tests.golden.cases`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.golden.cases import CASES, PINS, SCORES, SLOW, run_case

PINNED: dict[str, Any] = json.loads(PINS.read_text())
PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES]


def _split_scores(report: dict[str, Any]) -> dict[str, float]:
    surrogate = report.get("surrogate", {})
    return {k: surrogate.pop(k) for k in list(surrogate) if k in SCORES}


@pytest.mark.parametrize("name", PARAMS)
def test_outputs_match_the_pins(name: str) -> None:
    assert name in PINNED, f"{name}: no pin; run python -m tests.golden.cases {name}"
    got, want = run_case(name), json.loads(json.dumps(PINNED[name]))
    if "report" in got:
        got_scores, want_scores = _split_scores(got["report"]), _split_scores(want["report"])
        assert got_scores.keys() == want_scores.keys()
        for k, v in want_scores.items():
            assert got_scores[k] == pytest.approx(v, abs=1.0, nan_ok=True), k
    for part in want:
        assert got[part] == want[part], part
    assert got.keys() == want.keys()
