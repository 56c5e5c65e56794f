"""Same seed, same records; a defense changes selections, never the arrivals (CRN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sim.rng import SeedTree
from tests.sim.helpers import run

ZOO = "synthetic-7"


def scenario(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "seed": 11, "requests": 5000, "zoo": {"profile": ZOO},
        "cluster": {"workers": 3, "max_batch": 8, "batch_timeout_ms": 0.5},
        "service_time": {"type": "lognormal", "cv": 0.2}, "policy": {"type": "infaas"},
        "tenants": [
            {"name": "a", "arrivals": {"type": "poisson", "rate_rps": 2000},
             "slo": {"accuracy": {"type": "choice", "values": [90, 95, 97]},
                     "latency_ms": {"type": "uniform", "low": 1, "high": 8}}},
            {"name": "b", "arrivals": {"type": "poisson", "rate_rps": 500},
             "slo": {"accuracy": {"type": "fixed", "value": 93},
                     "latency_ms": {"type": "fixed", "value": 5}}}]}
    d.update(over)
    return d


def test_same_seed_same_records() -> None:
    a, b = run(scenario()).records, run(scenario()).records
    pd.testing.assert_frame_equal(a, b)


def test_same_seed_same_records_with_overload_shedding() -> None:
    """Shedding decides from the engine's state alone (no random stream of its own): same
    seed, same requests shed; the arrivals and targets are those of the run without it."""
    shed = {"cluster": {"workers": 1, "max_batch": 8, "batch_timeout_ms": 0.5,
                        "shedding": {"deadline": True, "slack": 1.2, "max_pending": 40}}}
    a, b = run(scenario(**shed)).records, run(scenario(**shed)).records
    pd.testing.assert_frame_equal(a, b)
    assert a["shed"].any() and not a["shed"].all()
    cols = ["id", "tenant", "arrival_s", "acc_req", "lat_req_ms"]
    plain = run(scenario(cluster=shed["cluster"] | {"shedding": {}})).records
    pd.testing.assert_frame_equal(a[cols], plain[cols])


def test_different_seed_different_records() -> None:
    a, b = run(scenario()).records, run(scenario(seed=12)).records
    assert not a["arrival_s"].equals(b["arrival_s"])


def test_defense_keeps_arrivals_and_targets() -> None:
    plain = run(scenario()).records
    noisy = run(scenario(defense={"type": "gaussian", "accuracy_sd": 3,
                                  "latency_sd_ms": 2})).records
    cols = ["id", "tenant", "arrival_s", "acc_req", "lat_req_ms"]
    pd.testing.assert_frame_equal(plain[cols], noisy[cols])
    assert not plain["acc_spec"].equals(noisy["acc_spec"])
    assert not plain["model"].equals(noisy["model"])


def test_zero_noise_is_identical_to_no_defense() -> None:
    plain = run(scenario()).records
    zero = run(scenario(defense={"type": "laplace", "accuracy_sd": 0})).records
    pd.testing.assert_frame_equal(plain, zero)


def test_named_streams_do_not_depend_on_creation_order() -> None:
    t = SeedTree(5)
    first = t.generator("arrivals", "a").random(3)
    t.generator("defense").random(10)
    assert (SeedTree(5).generator("arrivals", "a").random(3) == first).all()
    assert not (t.generator("arrivals", "b").random(3) == first).all()


def test_records_written_by_cli_round_trip(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from sim.cli import main

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(scenario(requests=1000)))
    res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "o" / "requests.parquet")
    pd.testing.assert_frame_equal(df, run(scenario(requests=1000)).records)
