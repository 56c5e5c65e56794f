"""The attack's progress bar: it counts the inputs sent (against the budget), changes nothing
in the results, and stays silent off a terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from attacks.config import AttackScenario
from attacks.run import AttackResult, run_attack
from sim.cli import main
from sim.config import parse_scenario
from sim.run import Progress
from tests.attacks.helpers import attack_scenario, requires_zoo

pytestmark = requires_zoo


def scenario(**attacker: Any) -> dict[str, Any]:
    return attack_scenario("fingerprint", rate=200, budget=400, extract=False, **attacker)


def attack(d: dict[str, Any], progress: bool | Progress = False) -> AttackResult:
    return run_attack(parse_scenario(d, model=AttackScenario), progress=progress)


def without_timings(report: dict[str, Any]) -> str:
    """attack.json as written (NaN as NaN), less the run's wall-clock time."""
    out = dict(report)
    out["benign"] = {k: v for k, v in report["benign"].items() if k != "wall_time_s"}
    return json.dumps(out)


@pytest.mark.parametrize("counts", ["sent", "extraction"])
def test_the_bar_ends_at_the_inputs_sent_and_changes_nothing(counts: str) -> None:
    d = scenario(budget_counts=counts)
    plain = attack(d)
    drawn = io.StringIO()
    shown = attack(d, Progress(file=drawn, delay=0, leave=True))
    sent = shown.report["queries"]["total"]
    final = drawn.getvalue().split("\r")[-1]
    assert final.startswith("attack:")
    assert (f"{sent}/400 " if counts == "sent" else f" {sent}input") in final, final
    assert without_timings(shown.report) == without_timings(plain.report)
    pd.testing.assert_frame_equal(shown.sim.records, plain.sim.records)


def test_no_bar_off_a_terminal(tmp_path: Path) -> None:
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump(scenario()))
    res = CliRunner().invoke(main, ["attack", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert res.stderr == "" and "attack:" not in res.stdout
