"""Bad input exits with status 2 and one clear line naming the field or line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sim.cli import main
from tests.helpers import scenario_dict


def simulate(tmp_path: Path, data: Any) -> tuple[int, str]:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    res = CliRunner().invoke(main, ["simulate", str(cfg), "-o", str(tmp_path / "out")])
    return res.exit_code, res.output


def good() -> dict[str, Any]:
    return scenario_dict("synthetic-7")


def tenant(d: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = d["tenants"][0]
    return t


CASES = {
    "unknown policy": (lambda d: d.update(policy={"type": "fastest"}),
                       ["policy", "'fastest'", "pareto"]),
    "unknown arrival type": (lambda d: tenant(d)["arrivals"].update(type="poison"),
                             ["tenants[0].arrivals", "'poison'"]),
    "misspelled key": (lambda d: d["cluster"].update(max_bacth=4),
                       ["cluster", "max_bacth", "max_batch"]),
    "misspelled top-level key": (lambda d: d.update(sed=3), ["unknown key 'sed'", "seed"]),
    "negative rate": (lambda d: tenant(d)["arrivals"].update(rate_rps=-5),
                      ["tenants[0].arrivals.rate_rps", "greater than 0"]),
    "accuracy over 100": (lambda d: tenant(d)["slo"].update(
        accuracy={"type": "fixed", "value": 101}), ["tenants[0].slo", "[0, 100]"]),
    "latency not positive": (lambda d: tenant(d)["slo"].update(
        latency_ms={"type": "uniform", "low": 0, "high": 5}), ["latency_ms", "> 0"]),
    "missing zoo": (lambda d: d.update(zoo={"profile": "no-such-zoo"}),
                    ["zoo.profile", "no-such-zoo"]),
    "missing trace": (lambda d: tenant(d).update(
        arrivals={"type": "csv", "path": "nowhere.csv"}), ["tenants[0].arrivals.path",
                                                            "nowhere.csv"]),
    "no stop rule": (lambda d: d.pop("requests"), ["requests", "duration_s"]),
    "bad service time": (lambda d: d.update(service_time={"type": "lognormal", "cv": -1}),
                         ["service_time.cv"]),
    "negative noise": (lambda d: d.update(defense={"type": "gaussian", "accuracy_sd": -1}),
                       ["defense.accuracy_sd"]),
    "model too big": (lambda d: d["cluster"].update(memory_mb=1), ["cluster", "memory_mb"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_scenario_exits_2_with_one_clear_line(tmp_path: Path, case: str) -> None:
    mutate, needles = CASES[case]
    d = good()
    mutate(d)
    code, out = simulate(tmp_path, d)
    assert code == 2, out
    assert "Traceback" not in out
    assert out.startswith("Error: ") and out.count("\n") == 1, out
    for n in needles:
        assert n in out, (n, out)
    assert not (tmp_path / "out").exists(), "nothing half-written"


@pytest.mark.parametrize(("name", "text", "needle"), [
    ("empty trace", "timestamp\n", "empty"),
    ("unsorted trace", "timestamp\n0.0\n2.0\n1.0\n", "line 4"),
])
def test_bad_trace_exits_2(tmp_path: Path, name: str, text: str, needle: str) -> None:
    (tmp_path / "t.csv").write_text(text)
    d = good()
    tenant(d)["arrivals"] = {"type": "csv", "path": "t.csv"}
    code, out = simulate(tmp_path, d)
    assert code == 2, out
    assert needle in out and "t.csv" in out, out


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert simulate(tmp_path, "seed: [1, 2\n")[0] == 2
    code, out = simulate(tmp_path, "- just\n- a list\n")
    assert code == 2 and "mapping" in out


def test_missing_config_file(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["simulate", str(tmp_path / "none.yaml"), "-o", "x"])
    assert res.exit_code == 2 and "not found" in res.output


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    d = good()
    d["policy"] = {"type": "nope"}
    cfg.write_text(yaml.safe_dump(d))
    p = subprocess.run([sys.executable, "-m", "sim", "simulate", str(cfg), "-o",
                        str(tmp_path / "o")], capture_output=True, text=True, check=False)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "policy" in p.stderr
