"""The attacker, unchanged, against the live server (attacks.live; PSML §4): it maps the zoo
as in simulation, trains on the server's answers, copes without records and with a rate
limit, and the CLI's --target path works end to end."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from attacks.config import AttackScenario
from attacks.live import run_live_attack
from attacks.run import run_attack
from serve.auth import Credentials
from serve.config import ServeScenario
from serve.server import ServerThread
from sim.cli import main
from sim.config import parse_scenario
from sim.errors import UserError
from sim.profiles import load_profile
from tests.attacks.helpers import ZOO, attack_scenario, requires_zoo

pytestmark = requires_zoo

POLICY = "pareto"


def serve_scenario(**api: Any) -> ServeScenario:
    d = {"seed": 3, "zoo": {"profile": ZOO},
         "cluster": {"workers": 2, "max_batch": 8, "batch_timeout_ms": 0.2},
         "policy": {"type": POLICY}, "api": {"port": 0, "records": True} | api}
    scenario = parse_scenario(d, model=ServeScenario)
    assert isinstance(scenario, ServeScenario)
    return scenario


def admin(server: ServerThread) -> Credentials:
    """The operator's credentials (for the server's records)."""
    return Credentials(admin_token=server.admin_token)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(serve_scenario()) as s:
        yield s


def scenario(strategy: str, **attacker: Any) -> AttackScenario:
    d = attack_scenario(strategy, policy=POLICY, **attacker)
    s = parse_scenario(d, model=AttackScenario)
    assert isinstance(s, AttackScenario)
    return s


FINGERPRINT = {"budget": 40, "budget_counts": "extraction", "target": "median",
               "extract": False, "fingerprint": {"candidates": 64}}


def test_live_fingerprint_identifies_models_as_in_simulation(server: ServerThread) -> None:
    live = run_live_attack(scenario("fingerprint", **FINGERPRINT), server.url,
                           credentials=admin(server)).report
    sim = run_attack(scenario("fingerprint", **FINGERPRINT)).report
    fp = live["fingerprint"]
    assert fp["identification_accuracy"] >= 0.99
    assert fp["models_found"] == sim["fingerprint"]["models_found"] == \
        len(load_profile(ZOO).pareto_front)
    assert live["queries"]["requests"]["fingerprint"] > 0
    assert live["live"]["records"] is True and live["live"]["url"] == server.url
    assert "benign" not in live


def test_live_extraction_trains_on_the_servers_answers(server: ServerThread) -> None:
    r = run_live_attack(scenario("fingerprint", budget=200, budget_counts="extraction",
                                 target="median", fingerprint={"candidates": 64},
                                 surrogate={"steps": 2}),
                        server.url, credentials=admin(server))
    rep = r.report
    assert rep["extraction"]["kept_inputs"] == 200 == rep["queries"]["extraction"]
    assert sum(rep["extraction"]["served_by"].values()) == 200
    assert math.isfinite(rep["surrogate"]["fidelity"])
    assert rep["fingerprint"]["trigger_consistency"] is not None
    df = r.requests
    assert len(df) == rep["queries"]["requests"]["total"]
    assert df["extract_inputs"].sum() == 200
    assert (df["answer_s"] >= df["send_s"]).all() and (df["server_id"] >= 0).all()
    assert df["model"].notna().all()


def test_records_off_leaves_ground_truth_scores_null() -> None:
    with ServerThread(serve_scenario(records=False)) as s:
        rep = run_live_attack(scenario("fingerprint", **FINGERPRINT), s.url).report
    fp = rep["fingerprint"]
    assert fp["identification_accuracy"] is None and fp["trigger_consistency"] is None
    assert fp["models_found"] == len(load_profile(ZOO).pareto_front)
    assert rep["live"]["records"] is False


@pytest.mark.slow
def test_rate_limit_answers_are_retried() -> None:
    with ServerThread(serve_scenario(rate_limit_rps=50, rate_burst=1)) as s:
        r = run_live_attack(scenario("naive", budget=40, surrogate={"steps": 2}), s.url)
    rep = r.report
    assert rep["live"]["retries"] >= 1 and r.requests["retries"].sum() == rep["live"]["retries"]
    assert rep["extraction"]["kept_inputs"] == 40


def test_oracle_needs_the_model_api(server: ServerThread) -> None:
    with pytest.raises(UserError, match="model-api"):
        run_live_attack(scenario("oracle", budget=40), server.url)


def write_config(tmp_path: Path) -> Path:
    d = attack_scenario("fingerprint", policy=POLICY, **FINGERPRINT)
    d["tenants"] = [{"name": "web", "arrivals": {"type": "poisson", "rate_rps": 100},
                     "slo": {"accuracy": {"type": "choice", "values": [90]},
                             "latency_ms": {"type": "uniform", "low": 1, "high": 2}}}]
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump(d))
    return cfg


def test_attack_cli_target_writes_the_contract(server: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["attack", str(write_config(tmp_path)), "-o", str(out),
                                    "--target", server.url,
                                    "--admin-token", str(server.admin_token)])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "attack.json").read_text())
    assert set(r) >= {"strategy", "target_model", "queries", "fingerprint", "surrogate",
                      "victim", "live"}
    assert r["fingerprint"]["identification_accuracy"] >= 0.99
    assert not (out / "summary.json").exists()   # benign tenants are ignored live
    assert len(pd.read_parquet(out / "requests.parquet")) == r["queries"]["requests"]["total"]


def test_attack_cli_unreachable_target_exits_2(tmp_path: Path) -> None:
    with socket.socket() as sock:   # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = CliRunner().invoke(main, ["attack", str(write_config(tmp_path)), "-o",
                                    str(tmp_path / "o"), "--target", f"http://127.0.0.1:{port}"])
    assert res.exit_code == 2, res.output
    assert "cannot reach the server" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
