"""Every example scenario validates and runs (at a small scale), and trace replay through the
whole simulator reproduces the trace."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sim.cli import main
from tests.helpers import REPO, TRACES
from workloads.traces import load_azure_functions_2019_counts

ALL = sorted((REPO / "examples").glob("*.yaml"))
ATTACKS = [e for e in ALL if "attacker:" in e.read_text()]
EXAMPLES = [e for e in ALL if e not in ATTACKS]
AZURE_2019 = TRACES / "azure_functions_2019_10fn_invocations_per_minute.csv"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_example_runs_at_small_scale(tmp_path: Path, example: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["simulate", str(example), "-o", str(out),
                                    "--set", "requests=3000"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    for key in ("requests", "completed", "goodput", "goodput_rps", "slo_attainment",
                "latency_ms", "wait_ms", "served_by", "utilization", "sim_time_s",
                "wall_time_s", "events_per_s", "seed"):
        assert key in summary, key
    assert set(summary["latency_ms"]) >= {"mean", "p50", "p95", "p99"}
    assert (out / "config.resolved.yaml").is_file()
    assert len(pd.read_parquet(out / "requests.parquet")) == 3000
    assert "goodput" in res.output


@pytest.mark.parametrize("example", ATTACKS, ids=[e.stem for e in ATTACKS])
def test_attack_example_runs_at_small_scale(tmp_path: Path, example: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["attack", str(example), "-o", str(out), "--quiet",
                                    "--set", "attacker.budget=100",
                                    "--set", "attacker.budget_counts=extraction",
                                    "--set", "attacker.surrogate.steps=2"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "attack.json").read_text())
    assert report["queries"]["extraction"] == 100
    assert (out / "summary.json").is_file() and (out / "requests.parquet").is_file()


def test_set_overrides_fields_and_names_bad_paths(tmp_path: Path) -> None:
    args = ["simulate", str(REPO / "examples" / "poisson.yaml"), "-o", str(tmp_path / "o"),
            "--quiet", "--set", "requests=1000", "--set", "tenants.0.arrivals.rate_rps=50"]
    assert CliRunner().invoke(main, args).exit_code == 0
    df = pd.read_parquet(tmp_path / "o" / "requests.parquet")
    assert len(df) == 1000
    bad = CliRunner().invoke(main, [*args, "--set", "tenants.7.name=x"])
    assert bad.exit_code == 2 and "tenants.7" in bad.output


def test_azure_2019_replay_reproduces_every_minute_through_the_simulator(
        tmp_path: Path) -> None:
    from tests.sim.helpers import run

    scenario = {
        "seed": 4, "zoo": {"profile": "synthetic-7"}, "cluster": {"workers": 2, "max_batch": 8},
        "tenants": [{"name": "replay", "arrivals": {
            "type": "azure_functions_2019", "path": str(AZURE_2019), "function": [3, 8],
            "start_minute": 700, "minutes": 15},
            "slo": {"accuracy": {"type": "fixed", "value": 90},
                    "latency_ms": {"type": "fixed", "value": 20}}}]}
    df = run(scenario).records
    expected = load_azure_functions_2019_counts(AZURE_2019, [3, 8], 700, 15)
    got = np.bincount((df["arrival_s"].to_numpy() // 60).astype(int), minlength=15)
    assert got.tolist() == expected.tolist()
