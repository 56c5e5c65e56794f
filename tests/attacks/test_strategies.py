"""Strategies are registered plugins (sim.plugins): blocks parse by ``type``, older configs
(a bare name, an attacker-level ``spec``) still parse, and a strategy defined outside zoosim
runs an attack like a shipped one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest

from attacks.agent import AttackerAgent, Extraction
from attacks.config import AttackScenario, SpecConfig
from attacks.run import run_attack
from attacks.strategies import STRATEGIES, Naive, Oracle, Plan, Process, Strategy
from sim.config import load_scenario, parse_scenario
from sim.errors import ConfigError
from sim.plugins import Context, PluginParams
from tests.attacks.helpers import attack_scenario, requires_zoo

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attack-fingerprint.yaml"
OUTSIDE = "test-outside-fixed-spec"
"""A name no shipped strategy uses: the registry is global to the process."""


@STRATEGIES.register(OUTSIDE)
class FixedSpecFromOutside(Strategy):
    """A strategy as another package would write it: its own params, built from a Context."""

    seen: ClassVar[list[Context]] = []

    class Params(PluginParams):
        type: Literal["test-outside-fixed-spec"] = "test-outside-fixed-spec"
        accuracy: float
        latency_ms: float = 1.0

    def __init__(self, params: Params, ctx: Context) -> None:
        self.params = params
        self.seen.append(ctx)

    def run(self, agent: AttackerAgent, ext: Extraction, plan: Plan,
            candidates: np.ndarray) -> Process:
        p = self.params
        yield from ext.run(SpecConfig(accuracy=p.accuracy, latency_ms=p.latency_ms))


def scenario(**attacker: Any) -> AttackScenario:
    d = attack_scenario("oracle", budget=40)
    d["attacker"].pop("spec")
    d["attacker"].update(attacker)
    return load(d)


def load(d: Any) -> AttackScenario:
    sc = parse_scenario(d, model=AttackScenario)
    assert isinstance(sc, AttackScenario)
    return sc


def example(*overrides: str) -> AttackScenario:
    sc = load_scenario(EXAMPLE, AttackScenario, overrides)
    assert isinstance(sc, AttackScenario)
    return sc


def test_a_bare_name_is_a_block_with_its_type() -> None:
    cfg = scenario(strategy="oracle").attacker
    assert isinstance(cfg.strategy, Oracle.Params) and cfg.strategy.type == "oracle"
    assert cfg.model_dump()["strategy"] == {"type": "oracle"}


def test_a_block_round_trips_through_its_dump() -> None:
    sc = scenario(strategy={"type": "naive", "spec": {"latency_ms": 0.5}})
    again = load(sc.model_dump(mode="json"))
    assert again.attacker.strategy == sc.attacker.strategy
    assert isinstance(again.attacker.strategy, Naive.Params)
    assert again.attacker.strategy.spec.latency_ms == 0.5


def test_an_attacker_level_spec_moves_into_naive_and_is_dropped_elsewhere() -> None:
    spec = {"accuracy": 96.5, "latency_ms": 1.0}
    naive = scenario(strategy="naive", spec=spec).attacker
    assert isinstance(naive.strategy, Naive.Params)
    assert naive.strategy.spec.model_dump() == spec
    fingerprint = scenario(strategy="fingerprint", spec=spec).attacker
    assert fingerprint.model_dump()["strategy"] == {"type": "fingerprint"}
    assert "spec" not in fingerprint.model_dump()


def test_set_strategy_on_a_fingerprint_example_takes_its_spec() -> None:
    sc = example("attacker.strategy=naive")
    assert isinstance(sc.attacker.strategy, Naive.Params)
    assert sc.attacker.strategy.spec.latency_ms == 1.0
    assert example().attacker.strategy.type == "fingerprint"


@pytest.mark.parametrize(("attacker", "needles"), [
    ({"strategy": "naive"}, ["attacker.strategy.spec", "missing"]),
    ({"strategy": {"type": "naive"}, "spec": None}, ["attacker.strategy.spec"]),
    ({"strategy": "guess"},
     ["attacker.strategy", "'guess'", "'oracle'", "'naive'", "'fingerprint'", "'known-zoo'"]),
    ({"strategy": {"type": "oracle", "spec": {"latency_ms": 1}}},
     ["attacker.strategy", "unknown key 'spec'"]),
    ({"strategy": {"type": "naive", "spec": {"latency_ms": 1}}, "spec": {"latency_ms": 2}},
     ["attacker", "given twice"]),
])
def test_bad_strategy_blocks_name_the_field(attacker: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as e:
        scenario(**attacker)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def test_every_strategy_declares_its_name_in_its_params() -> None:
    assert {"oracle", "naive", "fingerprint", "known-zoo"} <= set(STRATEGIES)
    for name, cls in STRATEGIES.items():
        assert cls.Params.model_fields["type"].default == name


@requires_zoo
def test_a_strategy_registered_from_outside_runs_an_attack() -> None:
    sc = scenario(strategy={"type": OUTSIDE, "accuracy": 96.5}, budget=40,
                  budget_counts="extraction", surrogate={"steps": 2})
    FixedSpecFromOutside.seen.clear()
    r = run_attack(sc).report
    assert r["strategy"] == OUTSIDE
    assert r["queries"]["extraction"] == 40 and r["queries"]["fingerprint"] == 0
    assert r["fingerprint"]["complete"] is None   # it does not fingerprint
    (ctx,) = FixedSpecFromOutside.seen
    assert ctx.stream == ("attacker",) and ctx.zoo is not None and ctx.clock is not None
    assert ctx.rng() is ctx.rng()
