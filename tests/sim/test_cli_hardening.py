"""The CLI against bad input (issue 16, "CLI"): a binary config, repeated YAML keys, an output
folder that cannot be written, an unreachable Dask scheduler, infinite or NaN floats, sizes
the engine cannot hold, all end with one line on stderr and exit status 2, no traceback;
every JSON file written is strict (null, never NaN); a run that measures no request says so.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from sim.cli import main
from sim.config import apply_override, read_yaml
from sim.errors import ConfigError, UserError
from sim.output import atomic_write, json_text, make_dir
from sim.schema import MAX_RATE_RPS, MAX_REQUESTS
from sim.yaml_io import load_yaml
from tests.helpers import REPO, scenario_dict

POISSON = REPO / "examples" / "poisson.yaml"
ATTACK = REPO / "examples" / "attack-fingerprint.yaml"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(res: Result, *needles: str) -> str:
    """``res`` exited 2 with exactly one line on stderr, ``Error: ...``, naming ``needles``."""
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def write(tmp_path: Path, data: Any, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def small() -> dict[str, Any]:
    return scenario_dict("synthetic-7", requests=200)


def write_study(tmp_path: Path) -> Path:
    """A one-point sweep of :func:`small`."""
    write(tmp_path, small(), "base.yaml")
    return write(tmp_path, {"kind": "simulate", "base": "base.yaml",
                            "grid": {"cluster.workers": [1]}, "seeds": [1]}, "study.yaml")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# 1. a binary file given as CONFIG

BINARY = {"not UTF-8": b"PAR1\x15\x04\x15\xa0\x9c\x01\xff\xfe\x00\x00",
          "NUL bytes": b"seed: 1\x00\x00\nzoo: {profile: synthetic-7}\n"}


@pytest.mark.parametrize("kind", sorted(BINARY))
@pytest.mark.parametrize("command", ["simulate", "validate"])
def test_a_binary_config_is_one_line(tmp_path: Path, kind: str, command: str) -> None:
    cfg = tmp_path / "model.parquet"
    cfg.write_bytes(BINARY[kind])
    extra = ["-o", str(tmp_path / "out")] if command == "simulate" else []
    refused(invoke(command, cfg, *extra), str(cfg), "not a YAML text file")
    assert not (tmp_path / "out").exists()


def test_a_binary_config_in_a_real_process(tmp_path: Path) -> None:
    cfg = tmp_path / "weights.pt"
    cfg.write_bytes(bytes(range(256)) * 4)
    p = subprocess.run([sys.executable, "-m", "sim", "validate", str(cfg)],
                       capture_output=True, text=True, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and "weights.pt" in p.stderr


# 2. repeated keys in a YAML mapping

def test_a_repeated_key_is_refused_naming_key_and_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(small(), sort_keys=False)
    assert text.startswith("seed: 1\n")
    cfg = write(tmp_path, text + "seed: 2\n")
    line = refused(invoke("simulate", cfg, "-o", tmp_path / "out"), "duplicate key 'seed'")
    assert f"line {text.count(chr(10)) + 1}" in line and "first given on line 1" in line
    refused(invoke("validate", cfg), "duplicate key 'seed'")


def test_a_repeated_nested_key_is_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(small(), sort_keys=False).replace(
        "max_batch: 1\n", "max_batch: 1\n  max_batch: 8\n")
    refused(invoke("validate", write(tmp_path, text)), "duplicate key 'max_batch'")
    flow = yaml.safe_dump(small(), sort_keys=False, default_flow_style=True)
    assert "rate_rps: 100}" in flow
    flow = flow.replace("rate_rps: 100}", "rate_rps: 100, rate_rps: 5}")
    refused(invoke("validate", write(tmp_path, flow, "f.yaml")), "duplicate key 'rate_rps'")


def test_a_repeated_key_in_a_set_value_is_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path, small())
    refused(invoke("validate", cfg, "--set",
                   "tenants.0.arrivals={type: poisson, rate_rps: 5, rate_rps: 50}"),
            "--set tenants.0.arrivals", "duplicate key 'rate_rps'")


def test_a_repeated_key_in_a_profile_or_a_study_is_refused(tmp_path: Path) -> None:
    prof = yaml.safe_load((REPO / "zoo_profiles" / "synthetic-7.yaml").read_text())
    write(tmp_path, yaml.safe_dump(prof) + "name: twice\n", "zoo.yaml")
    refused(invoke("validate", write(tmp_path, small() | {"zoo": {"profile": "zoo.yaml"}})),
            "zoo.yaml", "duplicate key 'name'")
    write(tmp_path, small(), "base.yaml")
    study = "kind: simulate\nbase: base.yaml\nseeds: [1]\nseeds: [2]\n"
    refused(invoke("sweep", write(tmp_path, study, "study.yaml"), "-o", tmp_path / "sw"),
            "study.yaml", "duplicate key 'seeds'")


def test_safe_load_semantics_are_kept() -> None:
    text = "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\nd: [1, 2.5, .inf, null, yes]\n"
    assert load_yaml(text, "t") == yaml.safe_load(text)
    with pytest.raises(ConfigError, match="t: not valid YAML: line 2"):
        load_yaml("a: [1,\nb", "t")
    with pytest.raises(ConfigError, match="t: line 2, column 1: duplicate key 'a'"):
        load_yaml("a: 1\na: 2\n", "t")
    with pytest.raises(ConfigError, match="duplicate key 1"):
        load_yaml("1: x\n1.0: y\n", "t")   # the same key to Python (safe_load keeps one)
    with pytest.raises(ConfigError, match="python/tuple"):  # safe: no Python objects
        load_yaml("!!python/tuple [1]", "t")
    d: dict[str, Any] = {"a": {}}
    apply_override(d, "a.b={x: 1}")
    assert d == {"a": {"b": {"x": 1}}}


def test_read_yaml_names_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        read_yaml(tmp_path / "none.yaml")


# 3. an output folder that cannot be made or written

def unwritable(tmp_path: Path) -> list[Path]:
    """Folders no one can create: below a regular file, and (on Linux) in /proc."""
    (tmp_path / "a-file").write_text("x")
    out = [tmp_path / "a-file" / "out"]
    if Path("/proc/self").is_dir():
        out.append(Path("/proc/zoosim-out"))
    return out


def test_simulate_refuses_an_unwritable_output_folder(tmp_path: Path) -> None:
    cfg = write(tmp_path, small())
    for out in unwritable(tmp_path):
        refused(invoke("simulate", cfg, "-o", out), str(out), "cannot write output")


def test_other_commands_refuse_an_unwritable_output_folder(tmp_path: Path) -> None:
    study = write_study(tmp_path)
    for out in unwritable(tmp_path):
        refused(invoke("sweep", study, "-o", out, "--quiet"), str(out))
        refused(invoke("attack", ATTACK, "-o", out, "--quiet"), str(out))
        refused(invoke("reproduce", "-o", out, "--quick", "--quiet"), str(out))
        refused(invoke("traces", "fetch", "azure-functions-2019", "-o", out), str(out))
        refused(invoke("zoo", "plot", "synthetic-7", "-o", out / "front.png"), str(out))


def test_output_helpers_raise_user_errors(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="cannot write output there"):
        make_dir(tmp_path / "f" / "d")
    with pytest.raises(UserError, match="cannot write output there"):
        atomic_write(tmp_path / "f" / "d" / "x.json", lambda p: p.write_text("{}"))
    assert make_dir(tmp_path / "new" / "deeper").is_dir()
    assert list((tmp_path / "new" / "deeper").iterdir()) == []   # the write probe is gone


# 4. an unreachable Dask scheduler

@pytest.mark.parametrize("address", ["tcp://127.0.0.1:{port}", "nonsense"])
def test_an_unreachable_scheduler_is_one_line(tmp_path: Path, address: str) -> None:
    pytest.importorskip("dask.distributed")
    study = write_study(tmp_path)
    addr = address.format(port=closed_port())
    refused(invoke("sweep", study, "-o", tmp_path / "out", "--backend", "dask",
                   "--scheduler", addr, "--quiet"), f"--scheduler {addr}", "Dask scheduler")


# 5. infinite and NaN floats

def tenant(d: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = d["tenants"][0]
    return t


NON_FINITE = {
    "rate .inf": (lambda d: tenant(d)["arrivals"].update(rate_rps=math.inf),
                  "tenants[0].arrivals.rate_rps"),
    "rate .nan": (lambda d: tenant(d)["arrivals"].update(rate_rps=math.nan),
                  "tenants[0].arrivals.rate_rps"),
    "memory .inf": (lambda d: d["cluster"].update(memory_mb=math.inf), "cluster.memory_mb"),
    "time scale .inf": (lambda d: d["zoo"].update(time_scale=math.inf), "zoo.time_scale"),
    "timeout .nan": (lambda d: d["cluster"].update(batch_timeout_ms=math.nan),
                     "cluster.batch_timeout_ms"),
    "duration .inf": (lambda d: d.update(duration_s=math.inf), "duration_s"),
    "warmup -.inf": (lambda d: d.update(warmup_s=-math.inf), "warmup_s"),
    "latency target .inf": (lambda d: tenant(d)["slo"].update(
        latency_ms={"type": "fixed", "value": math.inf}), "tenants[0].slo.latency_ms.value"),
}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_floats_are_refused(tmp_path: Path, case: str) -> None:
    mutate, where = NON_FINITE[case]
    d = small()
    mutate(d)
    cfg = write(tmp_path, d)
    assert ".inf" in cfg.read_text() or ".nan" in cfg.read_text()
    refused(invoke("simulate", cfg, "-o", tmp_path / "out"), where, "finite")
    assert not (tmp_path / "out").exists()


def test_non_finite_set_values_are_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path, small())
    for v in (".inf", ".nan", "-.Inf", "inf", "nan"):
        refused(invoke("validate", cfg, "--set", f"tenants.0.arrivals.rate_rps={v}"),
                "tenants[0].arrivals.rate_rps")


def test_a_finite_scenario_still_runs(tmp_path: Path) -> None:
    """Infinity used inside the engine (stop rules, timers, best-so-far searches) is not
    config: a scenario with no duration (an infinite stop time) runs."""
    res = invoke("simulate", write(tmp_path, small()), "-o", tmp_path / "out", "--quiet")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["requests"] == 200


# 6. sizes a run may not reach

def test_requests_are_bounded(tmp_path: Path) -> None:
    cfg = write(tmp_path, small())
    for v in (str(MAX_REQUESTS + 1), "1.0e+12", "1000000000000000"):
        refused(invoke("validate", cfg, "--set", f"requests={v}"), "requests",
                f"{MAX_REQUESTS}")
    assert invoke("validate", cfg, "--set", f"requests={MAX_REQUESTS}").exit_code == 0


def test_an_exponent_written_as_text_gets_a_hint(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e12`` (no decimal point, no exponent sign) as a string: not an
    integer, whatever its size; the message says why and what to write."""
    assert yaml.safe_load("requests: 1e12") == {"requests": "1e12"}
    refused(invoke("validate", write(tmp_path, small()), "--set", "requests=1e12"),
            "requests", "whole number", "1000000")


def test_arrival_rates_are_bounded(tmp_path: Path) -> None:
    cfg = write(tmp_path, small())
    too_fast = f"{MAX_RATE_RPS * 2:.1f}"
    for block in (f"{{type: poisson, rate_rps: {too_fast}}}",
                  f"{{type: constant, rate_rps: {too_fast}}}",
                  f"{{type: gamma, rate_rps: {too_fast}, cv: 2}}",
                  f"{{type: diurnal, rate_rps: {too_fast}, amplitude: 0.5, period_s: 10}}",
                  f"{{type: mmpp, rates_rps: [1, {too_fast}], mean_durations_s: [1, 1]}}"):
        refused(invoke("validate", cfg, "--set", f"tenants.0.arrivals={block}"),
                "tenants[0].arrivals.rate", "less than or equal to 1000000")


def test_a_duration_only_run_is_bounded(tmp_path: Path) -> None:
    d = small()
    d.pop("requests")
    d["duration_s"] = MAX_REQUESTS  # at 100 req/s: a trillion requests
    refused(invoke("validate", write(tmp_path, d)), "duration_s", f"{MAX_REQUESTS:,}")
    d["duration_s"] = 10.0
    assert invoke("validate", write(tmp_path, d)).exit_code == 0


# 7. strict JSON

def strict_loads(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_text_writes_null_for_non_finite_floats() -> None:
    data = {"a": math.nan, "b": [1.5, np.float64("inf"), -math.inf], "c": {"d": (math.nan,)},
            "e": None, "f": 2}
    assert strict_loads(json_text(data)) == {"a": None, "b": [1.5, None, None],
                                             "c": {"d": [None]}, "e": None, "f": 2}


# 8. a run that measures no request (with 7: its summary.json stays valid JSON)

def test_a_run_all_in_warmup_warns_and_writes_strict_json(tmp_path: Path) -> None:
    cfg = write(tmp_path, small() | {"warmup_s": 1000.0})   # 200 requests at 100 req/s: ~2 s
    out = tmp_path / "out"
    res = invoke("simulate", cfg, "-o", out, "--quiet")
    assert res.exit_code == 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), res.stderr
    assert "all 200 requests" in lines[0] and "warmup_s" in lines[0]
    text = (out / "summary.json").read_text()
    assert "NaN" not in text
    summary = strict_loads(text)
    assert summary["requests"] == 0 and summary["goodput"] is None
    assert summary["latency_ms"] == {"mean": None, "p50": None, "p95": None, "p99": None}


def test_a_measured_run_does_not_warn(tmp_path: Path) -> None:
    res = invoke("simulate", write(tmp_path, small()), "-o", tmp_path / "out", "--quiet")
    assert res.exit_code == 0 and res.stderr == "", res.stderr


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    from serve.config import ServeScenario
    from serve.server import ServerThread
    from sim.config import parse_scenario

    scenario = parse_scenario({"zoo": {"profile": "mnist5k-cpu"}, "api": {"port": 0}}, None,
                              "test", ServeScenario)
    assert isinstance(scenario, ServeScenario)
    with ServerThread(scenario) as s:
        yield s.url


def test_load_all_in_warmup_warns(live_url: str, tmp_path: Path) -> None:
    out = tmp_path / "load"
    res = invoke("load", POISSON, "--target", live_url, "-o", out, "--quiet",
                 "--set", "requests=20", "--set", "warmup_s=1000")
    assert res.exit_code == 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "all 20" in lines[0]
    summary = strict_loads((out / "summary.json").read_text())
    assert summary["requests"] == 20 and summary["measured"]["requests"] == 0
    assert summary["measured"]["goodput"] is None


def test_load_refuses_an_unwritable_output_folder(live_url: str, tmp_path: Path) -> None:
    for out in unwritable(tmp_path):
        refused(invoke("load", POISSON, "--target", live_url, "-o", out, "--quiet",
                       "--set", "requests=20"), str(out))
