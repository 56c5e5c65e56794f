"""experiments/shedding.py without a live server: the saturation search's rule, the
simulator's replay of a schedule with several inputs per request, and the table."""

from __future__ import annotations

import math
from typing import Any

import pytest

from experiments.shedding import (
    DEFAULT_CONFIG,
    Settings,
    find_saturation,
    scenario_at,
    schedule_of,
    sim_figures,
    simulate_schedule,
    table,
)
from sim.config import read_yaml


def test_saturation_is_the_last_rate_under_ten_times_the_low_p99() -> None:
    """P99 of 5 ms up to 100 req/s, then 1 s: the search steps 10, 20, 40, 80, 160 (over),
    then tries sqrt(80 * 160) = 113 (over): saturation 80."""
    tried: list[float] = []

    def measure(rate: float) -> dict[str, Any]:
        tried.append(rate)
        return {"p99_ms": 5.0 if rate <= 100 else 1000.0}

    res = find_saturation(measure, Settings(low_rps=10, step=2), lambda _: None)
    assert res["saturation_rps"] == 80 and res["found"] and res["p99_limit_ms"] == 50
    assert tried == [10, 20, 40, 80, 160, pytest.approx(math.sqrt(80 * 160))]


def test_nothing_answered_counts_as_over_the_limit() -> None:
    res = find_saturation(lambda r: {"p99_ms": 1.0 if r < 15 else math.nan},
                          Settings(low_rps=10, step=2), lambda _: None)
    assert res["saturation_rps"] == pytest.approx(math.sqrt(10 * 20))


@pytest.mark.parametrize("mode", ["off", "deadline"])
def test_the_simulated_schedule_carries_its_inputs(mode: str) -> None:
    data = read_yaml(DEFAULT_CONFIG)
    sc = scenario_at(data, 400.0, 2.0, mode, 1.0, DEFAULT_CONFIG.parent)
    schedule = schedule_of(sc, 8)
    df, summary = simulate_schedule(sc, schedule, DEFAULT_CONFIG.parent)
    assert len(df) == len(schedule) and (df["size"] == 8).all()
    served = df[df["model"].notna()]
    assert (served["batch_size"] == 8).all()       # one 8-input request per batch
    f = sim_figures(df, summary)
    assert f["requests"] == len(df) and f["shed"] == summary.get("shed", 0)
    if mode == "deadline":
        assert 0 < f["shed"] < len(df)


def test_table_has_a_row_per_load_and_mode() -> None:
    live = {"throughput_rps": 10.0, "p50_ms": 5.0, "p99_ms": 9.0, "goodput_rps": 8.0,
            "shed": 3, "server_p50_ms": 2.0}
    result = {"config": "x.yaml", "settings": Settings().__dict__,
              "saturation": {"saturation_rps": 100.0, "low_p99_ms": 4.0},
              "sim_saturation": {"saturation_rps": 120.0},
              "calibration": {"time_scale": 1.5, "dispatch_ms": 0.5},
              "points": [{"multiple": m, "rate_rps": 100 * m, "mode": mode, "live": live,
                          "sim": {}} for m in (0.5, 1, 2) for mode in ("off", "deadline")],
              "wall_s": 60.0}
    text = table(result)
    assert text.count("\n| ") == 7        # the header and six rows
    assert "**100 req/s**" in text and "1.50 x profiled + 0.50 ms" in text
