"""Building a published-figures profile from a CSV, and the CSV's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.errors import UserError
from sim.profiles import load_profile
from zoo_profiles.cli import zoo
from zoo_profiles.published import build_published


def test_build_from_small_csv(tmp_path: Path) -> None:
    csv = tmp_path / "cifar10_zoo_published.csv"
    csv.write_text("model,top1_accuracy_pct,latency_ms\nnet_a,90.5,11.0\nnet_b,93.0,20.5\n")
    res = CliRunner().invoke(zoo, ["published", "--csv", str(csv), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    prof = load_profile(tmp_path / "cifar10-published.yaml")
    meta = prof.metadata.model_dump()
    assert meta["source"] == "published" and meta["dataset"] == "cifar10"
    assert meta["csv"] == csv.name  # a file name, never a machine path
    b = prof.model("net_b")
    assert b.latency_ms[1].p50 == b.latency_ms[1].p99 == 20.5
    assert b.params == 0 and b.memory_mb == 0 and b.load_ms == 0
    assert [m.name for m in prof.pareto_front] == ["net_a", "net_b"]


@pytest.mark.parametrize(("text", "message"), [
    ("model,acc,latency_ms\nx,1,2\n", "missing column"),
    ("model,top1_accuracy_pct,latency_ms\nx,abc,2\n", ":2: accuracy and latency must be numbers"),
    ("model,top1_accuracy_pct,latency_ms\nx,101,2\n", "0 <= accuracy <= 100"),
    ("model,top1_accuracy_pct,latency_ms\nx,90,-1\n", "latency > 0"),
    ("model,top1_accuracy_pct,latency_ms\n", "no rows"),
])
def test_bad_csv(tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "cifar100_zoo_published.csv"
    csv.write_text(text)
    with pytest.raises(UserError, match=message):
        build_published(csv, tmp_path)


def test_dataset_from_file_name(tmp_path: Path) -> None:
    csv = tmp_path / "zoo.csv"
    csv.write_text("model,top1_accuracy_pct,latency_ms\nx,90,2\n")
    with pytest.raises(UserError, match="cannot tell the dataset"):
        build_published(csv, tmp_path)
    with pytest.raises(UserError, match="not found"):
        build_published(tmp_path / "missing.csv", tmp_path)
