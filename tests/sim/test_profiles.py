"""Zoo profiles: validation, Pareto front, latency interpolation, INFaaS linear fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.errors import ConfigError
from sim.profiles import ZooProfile, available_profiles, l1_utility, load_profile
from sim.zoo import Zoo
from tests.helpers import write_profile


def model(name: str, acc: float, lat: dict[int, float], **kw: Any) -> dict[str, Any]:
    return {"name": name, "arch": "t", "params": 1, "accuracy": acc,
            "latency_ms": {b: {"p50": v, "p99": v * 1.2} for b, v in lat.items()},
            "memory_mb": 1, "load_ms": 1} | kw


def zoo(*models: dict[str, Any], **meta: Any) -> ZooProfile:
    return ZooProfile.model_validate({"name": "z", "metadata": {"source": "synthetic", **meta},
                                      "models": list(models)})


def test_pareto_front_drops_dominated_models() -> None:
    z = zoo(model("a", 90, {1: 1}), model("b", 95, {1: 2}), model("dominated", 92, {1: 3}),
            model("c", 97, {1: 5}), model("tie_slower", 97, {1: 6}))
    assert [m.name for m in z.pareto_front] == ["a", "b", "c"]


def test_latency_interpolates_and_extrapolates() -> None:
    m = zoo(model("a", 90, {1: 1.0, 4: 2.5, 8: 4.5})).models[0]
    assert m.latency_p50(1) == 1.0
    assert m.latency_p50(2) == pytest.approx(1.5)
    assert m.latency_p50(6) == pytest.approx(3.5)
    slope, icpt = m.linear_fit()
    assert slope == pytest.approx(0.5, rel=0.05) and icpt == pytest.approx(0.5, abs=0.1)
    assert m.latency_p50(10) == pytest.approx(4.5 + 2 * slope)


def test_zoo_tables_scale_time_and_use_linear_fit() -> None:
    p = zoo(model("a", 90, {1: 1.0, 2: 1.5, 4: 2.5}))
    assert Zoo(p, 4, time_scale=2.0).batch_s[0][2] == pytest.approx(3.0e-3)
    lin = Zoo(p, 4, latency_model="linear").batch_s[0]
    assert lin[3] == pytest.approx(2.0e-3)


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d["models"][0].pop("accuracy"), "models[0].accuracy"),
    (lambda d: d["models"][0].update(accuracy=101), "less than or equal to 100"),
    (lambda d: d["models"][0]["latency_ms"].update({1: {"p50": -1, "p99": 1}}), "p50"),
    (lambda d: d["models"][0]["latency_ms"].pop(1), "batch size 1"),
    (lambda d: d["metadata"].update(batch_sizes=[1, 2, 8]), "[8] missing"),
    (lambda d: d["metadata"].update(source="guessed"), "metadata.source"),
    (lambda d: d["models"].append(dict(d["models"][0])), "duplicate"),
])
def test_bad_profiles_are_config_errors(tmp_path: Path, mutate: Any, needle: str) -> None:
    d: dict[str, Any] = {"name": "z", "metadata": {"source": "measured"},
                         "models": [model("a", 90, {1: 1.0, 2: 1.5})]}
    mutate(d)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match=r"p\.yaml") as e:
        load_profile(path)
    assert needle in str(e.value)


def test_shipped_synthetic_profile_is_marked_synthetic() -> None:
    assert "synthetic-7" in available_profiles()
    p = load_profile("synthetic-7")
    assert p.metadata.source == "synthetic" and len(p.models) == 7


def test_relative_profile_path_resolves_from_base_dir(tmp_path: Path) -> None:
    write_profile(tmp_path / "mine.yaml", [{"name": "m"}])
    assert load_profile("mine.yaml", tmp_path).models[0].name == "m"


def test_l1_utility_matches_paper_definition() -> None:
    assert l1_utility(90, 10, 95, 5) == 1.0
    assert l1_utility(90, 10, 80, 30) == pytest.approx(((1 - 0.1) + (1 - 0.2)) / 2)
