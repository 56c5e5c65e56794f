"""Run helpers for engine tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.config import parse_scenario
from sim.run import SimResult, Simulation


def run(data: dict[str, Any], base_dir: Path | None = None) -> SimResult:
    """Validate and run a scenario dict."""
    return Simulation(parse_scenario(data, base_dir)).run()


def build(data: dict[str, Any]) -> Simulation:
    return Simulation(parse_scenario(data), keep_requests=True)


def assert_littles_law(summary: dict[str, Any], rel: float = 1e-9) -> None:
    """L (time-integrated by the engine) equals lambda * W (from the records)."""
    law = summary["littles_law"]
    assert abs(law["L"] - law["lambda_W"]) <= rel * max(law["L"], 1e-12)


def assert_simulate_refuses(tmp_path: Path, data: dict[str, Any], needle: str) -> None:
    """``zoosim simulate`` on this scenario exits 2 with one message naming ``needle``."""
    import yaml
    from click.testing import CliRunner

    from sim.cli import main

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
