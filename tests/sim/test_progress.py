"""The simulate progress bar: it counts the requests, changes nothing in the results, and is
asked for only on a terminal (issue 17)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from click.testing import CliRunner

from sim.cli import main
from sim.config import parse_scenario
from sim.run import Progress, Simulation
from tests.sim.test_record_stream import scenario


def test_the_bar_ends_at_the_requests_and_changes_nothing() -> None:
    plain = Simulation(parse_scenario(scenario())).run()
    drawn = io.StringIO()
    shown = Simulation(parse_scenario(scenario())).run(Progress(file=drawn, delay=0,
                                                                leave=True))
    final = drawn.getvalue().split("\r")[-1]
    assert final.startswith("simulate:") and "3000/3000" in final, final
    pd.testing.assert_frame_equal(shown.frame, plain.frame)


def test_no_bar_off_a_terminal(tmp_path: Path, monkeypatch: Any) -> None:
    asked: list[Any] = []
    run = Simulation.run

    def spy(self: Simulation, progress: Any = False, **kw: Any) -> Any:
        asked.append(progress)
        return run(self, progress, **kw)

    monkeypatch.setattr(Simulation, "run", spy)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(scenario(requests=300)))
    res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert asked == [False]            # CliRunner's stderr is not a terminal
    assert "simulate:" not in res.output
