"""Sweeps: grid expansion, resumption after a kill, keys that follow the inputs, Dask = local,
bad study files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from experiments.study import Study
from sim.cli import main

WALL = ["wall_time_s", "events_per_s", "point_wall_s"]


def write_study(tmp_path: Path, requests: int = 2000, **study: Any) -> Path:
    base = {"seed": 1, "requests": requests, "zoo": {"profile": "synthetic-7"},
            "cluster": {"workers": 2, "max_batch": 4},
            "tenants": [{"name": "t", "arrivals": {"type": "poisson", "rate_rps": 1000},
                         "slo": {"accuracy": {"type": "fixed", "value": 90},
                                 "latency_ms": {"type": "fixed", "value": 5}}}]}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"kind": "simulate", "base": "base.yaml",
            "grid": {"tenants.0.arrivals.rate_rps": [500, 4000],
                     "policy.type": ["pareto", "infaas"]},
            "seeds": [1, 2]} | study
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_grid_zip_and_seeds_expand(tmp_path: Path) -> None:
    path = write_study(tmp_path, zip={"cluster.workers": [1, 2, 3],
                                      "cluster.max_batch": [1, 2, 4]})
    s = Study(path)
    assert len(s.points) == 2 * 2 * 3 * 2
    assert {(p["cluster.workers"], p["cluster.max_batch"]) for p in s.points} == \
        {(1, 1), (2, 2), (3, 4)}


def test_narrowed_keeps_the_zip_it_does_not_name(tmp_path: Path) -> None:
    path = write_study(tmp_path, zip={"cluster.workers": [1, 2], "cluster.max_batch": [1, 4]})
    sub = Study(path).narrowed({}, {"tenants.0.arrivals.rate_rps": [500]}, [9])
    assert {(p["cluster.workers"], p["cluster.max_batch"]) for p in sub.points} == \
        {(1, 1), (2, 4)}
    fixed = Study(path).narrowed({"cluster.workers": 2, "cluster.max_batch": 4},
                                 {"policy.type": ["pareto"]}, [9])
    assert len(fixed.points) == 1 and fixed.points[0]["seed"] == 9


def test_defense_stacks_in_a_grid_are_recorded_in_one_form(tmp_path: Path) -> None:
    """A list (a stack) beside single blocks, at any depth, gathers into one results table."""
    path = write_study(tmp_path, requests=300, seeds=[1], grid={"defense": [
        {"type": "none"},
        [{"type": "detect"}, {"type": "flagged_only", "defense": [
            {"type": "gaussian", "accuracy_sd": 1}, {"type": "top1"}]}]]})
    stack = Study(path).points[1]["defense"]
    assert stack == {"type": "chain", "defenses": [
        {"type": "detect"}, {"type": "flagged_only", "defense": {"type": "chain", "defenses": [
            {"type": "gaussian", "accuracy_sd": 1.0}, {"type": "top1"}]}}]}
    res = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "o" / "results.parquet")
    assert list(df["flagged"].fillna(-1)) == [-1, 0]


def test_sweep_writes_one_row_per_point(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    res = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "o"),
                                    "--workers", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(tmp_path / "o" / "results.parquet")
    assert len(df) == 8
    assert set(df["param.policy.type"]) == {"pareto", "infaas"}
    heavy = df[df["param.tenants.0.arrivals.rate_rps"] == 4000]
    assert (heavy["requests"] == 2000).all() and heavy["goodput"].between(0, 1).all()
    again = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "o")])
    assert again.exit_code == 2 and "--resume" in again.output


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_or_losing(tmp_path: Path) -> None:
    path = write_study(tmp_path, requests=150_000)
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "sim", "sweep", str(path), "-o", str(out), "--workers", "1",
           "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    points = out / "points"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(points.glob("*.json"))) < 2:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in points.glob("*.json")}
    assert 2 <= len(finished) < 8, "the kill should land mid-sweep"
    assert not list(points.glob(".*")), "no half-written point files"
    res = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    after = {p.name: p.stat().st_mtime_ns for p in points.glob("*.json")}
    assert len(after) == 8
    assert all(after[name] == mtime for name, mtime in finished.items()), "redone points"
    assert len(pd.read_parquet(out / "results.parquet")) == 8


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}


def test_resume_recomputes_exactly_the_points_whose_inputs_changed(tmp_path: Path) -> None:
    path = write_study(tmp_path, requests=300, seeds=[1])
    out = tmp_path / "o"
    sweep = ["sweep", str(path), "-o", str(out), "--workers", "1", "--quiet", "--resume"]
    assert CliRunner().invoke(main, sweep).exit_code == 0
    first = _mtimes(out)
    assert len(first) == 4
    assert CliRunner().invoke(main, sweep).exit_code == 0
    assert _mtimes(out) == first, "an unchanged study recomputed points"
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["tenants"][0]["arrivals"]["rate_rps"] = 7   # every point sets it: no point changes
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    assert CliRunner().invoke(main, sweep).exit_code == 0
    assert _mtimes(out) == first, "an edit that no point sees recomputed points"
    base["requests"] = 200                              # every point changes
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    assert CliRunner().invoke(main, sweep).exit_code == 0
    after = _mtimes(out)
    assert len(after) == 8 and set(first) < set(after), "stale results were reused"
    assert all(after[name] == mtime for name, mtime in first.items())
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == 4 and (df["requests"] == 200).all(), "stale rows were gathered"
    assert {c for c in df.columns if c.startswith("param.")} == \
        {"param.seed", "param.policy.type", "param.tenants.0.arrivals.rate_rps"}


def test_quick_and_full_runs_share_only_identical_points(tmp_path: Path) -> None:
    path = write_study(tmp_path, quick={"seeds": [1]})
    full, quick = Study(path), Study(path, quick=True)
    assert {quick.key(p) for p in quick.points} < {full.key(p) for p in full.points}
    path = write_study(tmp_path, quick={"seeds": [1], "set": {"requests": 100}})
    full, quick = Study(path), Study(path, quick=True)
    assert not {quick.key(p) for p in quick.points} & {full.key(p) for p in full.points}


def test_keys_follow_the_zoo_profile_file(tmp_path: Path) -> None:
    from sim.profiles import resolve_profile_path

    profile = tmp_path / "zoo.yaml"
    text = resolve_profile_path("synthetic-7").read_text()
    profile.write_text(text)
    path = write_study(tmp_path, grid={"zoo.profile": ["zoo.yaml"], "policy.type": ["pareto"]})
    before = Study(path).key(Study(path).points[0])
    assert Study(path).key(Study(path).points[0]) == before
    profile.write_text(text + "\n# measured again\n")
    assert Study(path).key(Study(path).points[0]) != before


def test_dask_backend_gives_the_same_results_as_local(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    path = write_study(tmp_path, seeds=[3], grid={"policy.type": ["pareto", "infaas"]})
    for backend in ("local", "dask"):
        res = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / backend),
                                        "--backend", backend, "--workers", "1", "--quiet"])
        assert res.exit_code == 0, res.output
    local = pd.read_parquet(tmp_path / "local" / "results.parquet").drop(columns=WALL)
    dask = pd.read_parquet(tmp_path / "dask" / "results.parquet").drop(columns=WALL)
    pd.testing.assert_frame_equal(local, dask)


@pytest.mark.parametrize(("study", "needle"), [
    ({"grid": {"tenants.0.arivals.rate_rps": [1, 2]}}, "unknown key 'arivals'"),
    ({"grid": {"tenants.3.name": ["x"]}}, "tenants.3"),
    ({"grid": {}, "seeds": [1]}, "grid"),
    ({"grid": {"policy.type": []}}, "grid"),
    ({"grid": {"policy.type": ["fastest"]}}, "fastest"),
    ({"zip": {"cluster.workers": [1, 2], "cluster.max_batch": [1]}}, "same length"),
])
def test_bad_study_files_exit_2(tmp_path: Path, study: dict[str, Any], needle: str) -> None:
    path = write_study(tmp_path, **study)
    res = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


STUDIES = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))
STUDIES = [s for s in STUDIES if "grid:" in s.read_text() or "zip:" in s.read_text()]


@pytest.mark.parametrize("path", STUDIES, ids=[s.stem for s in STUDIES])
def test_every_shipped_study_validates_every_point(path: Path) -> None:
    study = Study(path)   # the Azure replay studies read the shipped trace
    assert len(study.points) >= 2
