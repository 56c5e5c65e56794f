"""The open-loop load generator: schedules equal the simulator's requests, replay against a
live server on a thread, the summary, and ``zoosim load``'s outputs and user errors."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from serve.config import ServeScenario
from serve.loadgen import fetch_server_records, join_server_records, load_summary, replay
from serve.server import ServerThread
from sim.cli import main
from sim.config import Scenario, load_scenario, parse_scenario
from sim.run import simulate
from workloads.schedule import request_schedule
from zoo_profiles.datasets import load_dataset

REPO = Path(__file__).resolve().parents[2]
POISSON = REPO / "examples" / "poisson.yaml"
AZURE = REPO / "examples" / "azure2019.yaml"
COLUMNS = ["id", "tenant", "arrival_s", "acc_req", "lat_req_ms", "size"]
LIGHT = ("requests=150", "warmup_s=0", "tenants.0.arrivals.rate_rps=80",
         "tenants.1.arrivals.rate_rps=20", "tenants.1.arrivals.cv=1.0")
"""poisson.yaml at 100 requests/s: well under what the default live server serves."""


def _same_requests(schedule: pd.DataFrame, scenario: Scenario) -> None:
    records = simulate(scenario).records
    pd.testing.assert_frame_equal(schedule[COLUMNS], records[COLUMNS])


@pytest.mark.parametrize("overrides", [("requests=3000",),
                                       ("requests=null", "duration_s=0.5")])
def test_schedule_equals_simulator_requests(overrides: tuple[str, ...]) -> None:
    scenario = load_scenario(POISSON, overrides=overrides)
    schedule = request_schedule(scenario, POISSON.parent)
    assert list(schedule.columns) == COLUMNS
    assert len(schedule) > 1000 and set(schedule["tenant"]) == {"web", "analytics"}
    assert (np.diff(schedule["arrival_s"]) >= 0).all()
    _same_requests(schedule, scenario)


def test_azure2019_trace_schedule() -> None:
    scenario = load_scenario(AZURE, overrides=("tenants.0.arrivals.minutes=1", "requests=400"))
    schedule = request_schedule(scenario, AZURE.parent)
    assert len(schedule) == 400 and (schedule["tenant"] == "replay").all()
    assert schedule["arrival_s"].is_monotonic_increasing
    assert set(schedule["lat_req_ms"]) <= {3.0, 5.0, 10.0}
    _same_requests(schedule, scenario)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    scenario = parse_scenario({"zoo": {"profile": "mnist5k-cpu"},
                               "api": {"port": 0, "records": True}}, None, "test", ServeScenario)
    assert isinstance(scenario, ServeScenario)
    with ServerThread(scenario) as s:
        yield s


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return load_dataset("mnist5k").test.x


def test_replay_against_live_server(server: ServerThread, inputs: np.ndarray) -> None:
    schedule = request_schedule(load_scenario(POISSON, overrides=LIGHT))
    records = asyncio.run(replay(server.url, schedule, inputs, max_connections=64))
    assert len(records) == len(schedule) == 150
    assert (records["id"] == schedule["id"]).all()
    assert (records["status"] == 200).all() and (records["error"] == "").all()
    assert records["server_id"].is_unique and (records["server_id"] >= 0).all()
    assert (records["latency_ms"] > 0).all() and (records["done_s"] > records["sent_s"]).all()
    assert records["label"].between(0, 9).all()
    # open loop: no request leaves before its scheduled time (how late it leaves depends on
    # how busy the machine is: a benchmark's question, not a test's)
    assert (records["send_lag_ms"] > -1.0).all()

    server_records = fetch_server_records(server.url, server.admin_token)
    assert server_records is not None
    joined = join_server_records(records, server_records)
    assert joined["model"].notna().all() and joined["met_accuracy"].notna().all()
    assert (joined["batch_size"] >= 1).all()
    # the client's latency (from the scheduled time) covers the server's
    assert (joined["latency_ms"] >= joined["server_latency_ms"] - 1.0).all()
    by_id = server_records.set_index("id")
    assert (by_id.loc[joined["server_id"], "tenant"].to_numpy()
            == joined["tenant"].astype(str).to_numpy()).all()

    summary = load_summary(joined)
    assert summary["requests"] == summary["ok"] == 150 and summary["errors"] == {}
    assert 0.0 <= summary["measured"]["goodput"] <= 1.0
    assert abs(sum(summary["model_share"].values()) - 1.0) < 1e-9
    lat = summary["measured"]["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]


def test_replay_does_not_wait_for_answers(server: ServerThread, inputs: np.ndarray) -> None:
    """A burst of 60 requests within 30 ms through 2 connections: they queue in the client
    (at most 2 on the wire, in arrival order), and their latency counts that wait from the
    scheduled time, not from when they went on the wire."""
    n = 60
    schedule = pd.DataFrame({"id": np.arange(n), "tenant": ["burst"] * n,
                             "arrival_s": np.linspace(0, 0.03, n), "acc_req": 99.0,
                             "lat_req_ms": 1000.0, "size": 1})
    records = asyncio.run(replay(server.url, schedule, inputs, max_connections=2))
    assert (records["status"] == 200).all()
    assert records["send_lag_ms"].iloc[-1] > records["send_lag_ms"].iloc[0]  # queued
    assert records["sent_s"].is_monotonic_increasing or \
        (np.diff(records["sent_s"].to_numpy()) > -1e-3).all()                # in order
    on_wire = (records["done_s"] - records["sent_s"]) * 1000
    assert (records["latency_ms"] >= on_wire - 1e-9).all()
    assert records["latency_ms"].iloc[-1] > records["latency_ms"].iloc[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_replay_records_transport_errors(inputs: np.ndarray) -> None:
    schedule = request_schedule(load_scenario(POISSON, overrides=("requests=20",)))
    url = f"http://127.0.0.1:{_closed_port()}"
    records = asyncio.run(replay(url, schedule, inputs))
    assert (records["status"] == 0).all() and (records["server_id"] == -1).all()
    assert (records["error"].str.len() > 0).all()
    summary = load_summary(records)
    assert summary["ok"] == 0 and summary["errors"] == {"0": 20}
    assert summary["measured"]["goodput"] == 0.0


def test_summary_goodput_needs_latency_and_accuracy() -> None:
    records = pd.DataFrame({
        "id": range(4), "tenant": pd.Categorical(["a", "a", "b", "b"]),
        "scheduled_s": [0.0, 1.0, 2.0, 4.0], "sent_s": [0.0, 1.0, 2.0, 4.0],
        "done_s": [0.01, 1.05, 2.01, 4.01], "latency_ms": [10.0, 50.0, 10.0, 10.0],
        "send_lag_ms": 0.0, "acc_req": 90.0, "lat_req_ms": 20.0,
        "status": [200, 200, 200, 503], "error": ["", "", "", "overloaded"],
        "server_id": [0, 1, 2, -1], "label": [1, 2, 3, -1]})
    s = load_summary(records)
    assert s["errors"] == {"503": 1} and s["offered_rps"] == 1.0
    assert s["measured"]["goodput"] == 0.5  # the slow one and the error miss
    assert s["measured"]["latency_ms"]["max"] == 50.0
    server = pd.DataFrame({"id": [0, 1, 2], "model": ["m", "m", "n"], "batch_size": [1, 1, 2],
                           "latency_ms": [5.0, 40.0, 5.0], "met_accuracy": [True, True, False]})
    joined = join_server_records(records, server)
    s = load_summary(joined)
    assert s["measured"]["goodput"] == 0.25
    assert s["served_by"] == {"m": 2, "n": 1} and s["model_share"]["m"] == pytest.approx(2 / 3)
    assert s["tenants"]["b"]["goodput"] == 0.0
    assert load_summary(joined, warmup_s=1.5)["measured"]["requests"] == 2


def test_cli_writes_records_and_summary(server: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "load"
    args = ["load", str(POISSON), "--target", server.url, "-o", str(out), "--quiet",
            "--admin-token", str(server.admin_token)]
    for o in LIGHT:
        args += ["--set", o]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    records = pd.read_parquet(out / "requests.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert len(records) == summary["requests"] == 150
    assert summary["ok"] == 150 and summary["server_records"] == "joined"
    assert records["model"].notna().all()


@pytest.mark.parametrize("case", ["unreachable", "bad_url", "missing_config", "bad_config"])
def test_cli_user_errors(case: str, tmp_path: Path) -> None:
    config, target = str(POISSON), f"http://127.0.0.1:{_closed_port()}"
    if case == "bad_url":
        target = "ftp://example"
    elif case == "missing_config":
        config = str(tmp_path / "nope.yaml")
    elif case == "bad_config":
        bad = tmp_path / "bad.yaml"
        bad.write_text("seed: 1\nzoo: {profile: mnist5k-cpu}\ntenants: []\n")
        config = str(bad)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["load", config, "--target", target, "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
