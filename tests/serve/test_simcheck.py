"""The simulator against the live server: the comparison's arithmetic, and a small real run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from serve import simcheck
from serve.simcheck import at_rate, compare, overhead_ms, run_simcheck, service_fit
from sim.errors import ConfigError
from sim.profiles import load_profile
from tests.helpers import REPO

CONFIG = REPO / "experiments" / "simcheck_mnist5k.yaml"
ZOO_MODELS = {m.name for m in load_profile("mnist5k-cpu").models}


def frames(lat: list[float], models: list[str], server_lat: list[float] | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(lat)
    live = pd.DataFrame({"scheduled_s": np.arange(n, dtype=float), "status": 200,
                         "latency_ms": lat, "server_latency_ms": server_lat or lat,
                         "lat_req_ms": 5.0, "met_accuracy": True, "model": models})
    sim = pd.DataFrame({"arrival_s": np.arange(n, dtype=float), "latency_ms": server_lat or lat,
                        "lat_req_ms": 5.0, "met_accuracy": True, "model": models})
    return live, sim


def test_identical_runs_compare_with_no_error() -> None:
    live, sim = frames([1.0, 2.0, 3.0, 10.0], ["a", "a", "b", "b"])
    row = compare(live, sim, np.zeros(3), np.random.default_rng(0))
    assert row["error_pct"] == {"mean": 0.0, "p50": 0.0, "p99": 0.0}
    assert row["mix_tvd"] == 0.0 and row["goodput_error_points"] == 0.0
    assert row["live"]["goodput"] == 0.75          # the 10 ms request misses its 5 ms target


def test_overhead_is_drawn_from_the_calibration_samples() -> None:
    live, sim = frames([3.0] * 200, ["a"] * 200, server_lat=[1.0] * 200)
    over = overhead_ms(live)
    assert np.allclose(over, 2.0)
    row = compare(live, sim, over, np.random.default_rng(0))
    assert row["sim"]["mean_ms"] == pytest.approx(3.0)
    assert row["server_side"]["error_pct"] == pytest.approx(0.0)
    spread = compare(live, sim, np.array([0.0, 4.0]), np.random.default_rng(0))
    assert spread["sim"]["p99_ms"] == pytest.approx(5.0) and spread["sim"]["p50_ms"] in (1, 3, 5)


def test_selection_mix_distance() -> None:
    live, sim = frames([1.0] * 4, ["a", "a", "a", "b"])
    sim["model"] = ["a", "b", "b", "b"]
    row = compare(live, sim, np.zeros(1), np.random.default_rng(0))
    assert row["mix_tvd"] == pytest.approx(0.5)
    assert row["mix"]["a"] == {"live": 0.75, "sim": 0.25}


def test_service_fit_recovers_scale_and_dispatch() -> None:
    prof = load_profile("mnist5k-cpu")
    rows = []
    for i, (m, b) in enumerate([(0, 1), (3, 1), (3, 4), (6, 1), (7, 2), (7, 8)]):
        spec = prof.models[m]
        live_ms = 1.3 * spec.latency_p50(b) + 0.4
        rows.append({"batch_id": i, "model": spec.name, "batch_size": b, "start_s": float(i),
                     "finish_s": i + live_ms / 1000})
    fit = service_fit(pd.DataFrame(rows), prof)
    assert fit["time_scale"] == pytest.approx(1.3) and fit["dispatch_ms"] == pytest.approx(0.4)
    assert fit["batches"] == 6 and fit["kinds"] == 6 and fit["cv"] < 1e-5


def test_load_is_set_by_scaling_every_tenant_rate() -> None:
    data = {"tenants": [{"arrivals": {"type": "poisson", "rate_rps": 30}},
                        {"arrivals": {"type": "poisson", "rate_rps": 10}}]}
    out = at_rate(data, 200, 500)
    assert [t["arrivals"]["rate_rps"] for t in out["tenants"]] == [150, 50]
    assert out["requests"] == 500 and data["tenants"][0]["arrivals"]["rate_rps"] == 30
    with pytest.raises(ConfigError, match="rate_rps"):
        at_rate({"tenants": [{"arrivals": {"type": "azure_functions_2019"}}]}, 100, None)


@pytest.mark.slow
def test_small_simcheck_against_a_real_server_and_its_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["warmup_s"] = 0.5
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    kw: dict[str, Any] = {"profile": "mnist5k-cpu", "requests": 300,
                          "calibration_requests": 150, "progress": False, "echo": lambda _: None}
    res = run_simcheck(path, out, [60.0, 150.0], **kw)
    assert [r["rate_rps"] for r in res["loads"]] == [60.0, 150.0]
    for r in res["loads"]:
        assert r["live"]["requests"] > 150 and r["sim"]["requests"] > 150
        # the errors and the mix distance are measured, not bounded: how close the simulator
        # comes (and, as the policy weighs queues, which models it picks) depends on how busy
        # the machine is (README, "Simulator against reality", has the figures)
        assert all(math.isfinite(v) for v in r["error_pct"].values())
        assert 0.0 <= r["mix_tvd"] <= 1.0 and set(r["mix"]) <= ZOO_MODELS
    for rate in (60, 150):
        cal = json.loads((out / "loads" / f"{rate}-calibration.json").read_text())
        assert cal["frontend_ms"]["median"] > 0 and len(cal["frontend_ms"]["samples"]) >= 40
        assert cal["service"]["time_scale"] > 0 and cal["service"]["dispatch_ms"] >= 0
    assert json.loads((out / "simcheck.json").read_text())["loads"][1]["rate_rps"] == 150.0
    assert "| 150 |" in (out / "simcheck.md").read_text()
    assert (out / "loads" / "live-60.parquet").is_file()

    def no_more_runs(*_: Any, **__: Any) -> Any:
        raise AssertionError("a finished step ran again")

    monkeypatch.setattr(simcheck, "live_server", no_more_runs)
    again = run_simcheck(path, out, [60.0, 150.0], **kw)
    assert again["loads"] == res["loads"]


@pytest.mark.parametrize(("args", "says"), [
    (["--loads", "fast"], "--loads"),
    (["--loads", "0"], "positive"),
    (["--profile", "nope"], "nope"),
])
def test_simcheck_cli_bad_input_exits_2(tmp_path: Path, args: list[str], says: str) -> None:
    r = subprocess.run([sys.executable, "-m", "sim", "simcheck", str(CONFIG), "-o",
                        str(tmp_path / "o"), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
