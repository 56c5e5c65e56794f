"""Profiles that fail validation are ConfigErrors (exit 2) with a message naming the problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sim.errors import ConfigError
from sim.profiles import load_profile
from zoo_profiles.profile_io import dump_profile, write_profile

GOOD: dict[str, Any] = {
    "name": "t",
    "metadata": {"source": "measured", "batch_sizes": [1, 2]},
    "models": [{"name": "a", "arch": "logreg", "params": 10, "accuracy": 90.0,
                "latency_ms": {1: {"p50": 0.1, "p99": 0.2}, 2: {"p50": 0.15, "p99": 0.3}},
                "memory_mb": 0.1, "load_ms": 1.0}],
}


def _load(tmp_path: Path, data: dict[str, Any]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(dump_profile(data))
    load_profile(path)


def test_good_profile_roundtrips(tmp_path: Path) -> None:
    prof = write_profile(tmp_path / "good.yaml", GOOD)
    assert prof.models[0].latency_ms[2].p50 == 0.15
    assert "1: {p50: 0.1, p99: 0.2}" in (tmp_path / "good.yaml").read_text()


def test_missing_field(tmp_path: Path) -> None:
    bad = copy.deepcopy(GOOD)
    del bad["models"][0]["accuracy"]
    with pytest.raises(ConfigError, match="accuracy"):
        _load(tmp_path, bad)


def test_negative_latency(tmp_path: Path) -> None:
    bad = copy.deepcopy(GOOD)
    bad["models"][0]["latency_ms"][1]["p50"] = -0.1
    with pytest.raises(ConfigError, match="p50"):
        _load(tmp_path, bad)


def test_accuracy_over_100(tmp_path: Path) -> None:
    bad = copy.deepcopy(GOOD)
    bad["models"][0]["accuracy"] = 100.5
    with pytest.raises(ConfigError, match="accuracy"):
        _load(tmp_path, bad)


def test_batch_size_missing_from_table(tmp_path: Path) -> None:
    bad = copy.deepcopy(GOOD)
    bad["metadata"]["batch_sizes"] = [1, 2, 4]
    with pytest.raises(ConfigError, match=r"batch sizes \[4\] missing"):
        _load(tmp_path, bad)


def test_unknown_source(tmp_path: Path) -> None:
    bad = copy.deepcopy(GOOD)
    bad["metadata"]["source"] = "guessed"
    with pytest.raises(ConfigError, match="source"):
        _load(tmp_path, bad)


def test_write_profile_refuses_to_leave_an_invalid_file_unnoticed(tmp_path: Path) -> None:
    bad = copy.deepcopy(GOOD)
    bad["models"][0]["accuracy"] = 101
    with pytest.raises(ConfigError):
        write_profile(tmp_path / "w.yaml", bad)
