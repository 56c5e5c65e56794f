"""Black-box fingerprinting under output defenses, benign load and noisy service times: it maps
the whole Pareto front and nothing more, it never reads the simulator's ground truth, and its
sanity bound turns an implausible map into a warning instead of invented models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import attacks.run
from attacks.agent import AttackerAgent, Observation
from attacks.config import AttackScenario, FingerprintConfig
from attacks.responders import Responder
from attacks.run import run_attack
from sim.cli import main
from sim.config import parse_scenario
from sim.profiles import load_profile
from sim.request import Request
from sim.zoo import Zoo
from tests.attacks.helpers import ZOO, attack_scenario, requires_zoo

pytestmark = requires_zoo


def front() -> list[Any]:
    """The zoo's Pareto front (7 models on mnist5k-cpu): what the map must find, no more."""
    return list(load_profile(ZOO).pareto_front)


def scenario(defense: dict[str, Any] | None = None, **attacker: Any) -> dict[str, Any]:
    """Fingerprinting of the median front model among benign load (500 rps) with log-normal
    service times (cv 0.3); 40 extraction inputs, fingerprinting not counted."""
    d = attack_scenario("fingerprint", budget=40, target="median", budget_counts="extraction",
                        rate=500, **attacker)
    d["attacker"]["surrogate"] = {"steps": 2}
    d["attacker"]["start_s"] = 0.2
    d["service_time"] = {"type": "lognormal", "cv": 0.3}
    if defense is not None:
        d["defense"] = defense
    return d


def attack(d: dict[str, Any]) -> dict[str, Any]:
    sc = parse_scenario(d, model=AttackScenario)
    assert isinstance(sc, AttackScenario)
    report: dict[str, Any] = run_attack(sc).report
    return report


# -- the map under output defenses ------------------------------------------------------------

GAUSSIAN_01 = {"type": "gaussian_probs", "sd": 0.1}
GAUSSIAN_02 = {"type": "gaussian_probs", "sd": 0.2}
CASES = [
    pytest.param(None, "probabilities", id="none"),
    pytest.param(GAUSSIAN_01, "probabilities", id="gaussian_probs-0.1"),
    pytest.param(GAUSSIAN_02, "probabilities", id="gaussian_probs-0.2"),
    pytest.param({"type": "rounding"}, "probabilities", id="rounding"),
    pytest.param({"type": "reverse_sigmoid"}, "probabilities", id="reverse_sigmoid"),
    pytest.param({"type": "top1"}, "probabilities", id="top1"),
    pytest.param(None, "labels", id="outputs-labels"),
]


@pytest.mark.parametrize(("defense", "outputs"), CASES)
def test_fingerprint_maps_the_front_under_output_defenses(
        defense: dict[str, Any] | None, outputs: str) -> None:
    """Every front model found, none invented; the attacker's models are the real ones; the
    trigger spec reaches the target. Exact answers (no defense, rounding, reverse sigmoid,
    top-1, labels) have no learned noise; Gaussian ones do, and cost more to average out.
    The scenario's own seed (3): no seed was searched for."""
    d = scenario(defense, outputs=outputs)
    assert d["seed"] == 3
    r = attack(d)
    fp, q = r["fingerprint"], r["queries"]
    assert fp["complete"] is True and fp["warning"] is None
    models = front()
    assert fp["models_found"] == len(models) == fp["front_models"]
    assert fp["identification_accuracy"] >= 0.99
    assert fp["trigger_consistency"] == 1.0
    assert r["target_model"] == models[len(models) // 2].name
    assert r["extraction"]["served_by"] == {r["target_model"]: 40}
    assert fp["identified_on"] == outputs
    if defense is None and outputs == "probabilities":
        assert q["fingerprint"] <= 200
    if defense is not None and defense["type"] == "gaussian_probs":
        assert fp["noise"] > 0
    else:
        assert fp["noise"] == 0


# -- no peeking at the simulator ------------------------------------------------------------

class Leak(Exception):
    """The strategy touched what the harness keeps for scoring only."""


class Sealed:
    """Stands for a :class:`Request` in the observations the strategy gets: while sealed,
    every attribute read is logged, and ``model`` (and ``batch``, which names it too) are
    wrong; once the run is over (``state["sealed"]`` False) it is the request itself, for
    scoring."""

    __slots__ = ("_req", "_state")

    def __init__(self, req: Request, state: dict[str, Any]) -> None:
        self._req = req
        self._state = state

    def __getattr__(self, name: str) -> Any:
        req, state = self._req, self._state
        if not state["sealed"]:
            return getattr(req, name)
        state["reads"].append(name)
        if name == "model":   # another model of the zoo, at random
            n: int = state["n_models"]
            return int((req.model + 1 + state["rng"].integers(n - 1)) % n)
        if name == "batch":
            return None
        return getattr(req, name)


class Forbidden:
    """Stands for ``agent.zoo`` / ``agent.responder``: any use is logged and raises."""

    def __init__(self, what: str, log: list[str]) -> None:
        self._what = what
        self._log = log

    def _leak(self, how: str) -> Leak:
        self._log.append(f"{self._what}{how}")
        return Leak(f"the fingerprint strategy used {self._what}{how}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._leak(f".{name}")

    def __len__(self) -> int:
        raise self._leak(" (len)")

    def __iter__(self) -> Any:
        raise self._leak(" (iteration)")

    def __getitem__(self, key: Any) -> Any:
        raise self._leak(f"[{key!r}]")


def sealed_attack(d: dict[str, Any], monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``d`` with the strategy's view of the simulator sealed: every observation it gets
    carries a :class:`Sealed` request, and the agent's (and its link's) zoo and responder are
    :class:`Forbidden`. The harness unseals the requests before scoring. Returns the report
    and the seal's log."""
    n_models = len(load_profile(ZOO).models)
    state: dict[str, Any] = {"sealed": True, "reads": [], "forbidden": [], "observed": 0,
                             "rng": np.random.default_rng(0), "n_models": n_models,
                             "agents": []}
    observe, init, report = AttackerAgent.observe, AttackerAgent.__init__, attacks.run.attack_report

    def sealed_init(self: AttackerAgent, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        log = state["forbidden"]
        self.zoo = self.link.zoo = cast(Zoo, Forbidden("agent.zoo", log))
        self.responder = cast(Responder, Forbidden("agent.responder", log))
        state["agents"].append(self)

    def sealed_observe(self: AttackerAgent, req: Request) -> Observation:
        obs = observe(self, req)   # the answers and latency are the real ones
        state["observed"] += 1
        return Observation(obs.probe_answers, obs.latency_ms,
                           cast(Request, Sealed(obs.request, state)))

    def unsealing_report(*args: Any, **kwargs: Any) -> Any:
        state["sealed"] = False   # the simulation is over: scoring reads the ground truth
        return report(*args, **kwargs)

    monkeypatch.setattr(AttackerAgent, "__init__", sealed_init)
    monkeypatch.setattr(AttackerAgent, "observe", sealed_observe)
    monkeypatch.setattr(attacks.run, "attack_report", unsealing_report)
    r = attack(d)
    monkeypatch.undo()
    return r, state


@pytest.mark.parametrize("defense", [None, GAUSSIAN_01], ids=["none", "gaussian_probs-0.1"])
def test_fingerprinter_never_reads_simulator_internals(
        defense: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same fingerprint-only attack with and without the seal maps the zoo identically,
    and under the seal the strategy reads nothing of the requests it is handed (which model
    served them is ground truth, for scoring only) and never uses the zoo or the responder
    (the known-zoo strategy may; this one may not)."""
    d = scenario(defense, extract=False)
    plain = attack(d)
    sealed, state = sealed_attack(d, monkeypatch)
    assert state["observed"] > 0, "the seal was not applied"
    assert state["reads"] == [], f"the strategy read request.{state['reads'][0]}"
    assert state["forbidden"] == [], state["forbidden"]
    # every identification attempt the harness scores came through the seal
    (agent,) = state["agents"]
    assert agent.truth and all(isinstance(req, Sealed) for _, req in agent.truth)
    fp = plain["fingerprint"]
    assert fp["models_found"] == len(front())
    for key in ("thresholds", "models_found", "trigger_spec", "identification_accuracy"):
        assert sealed["fingerprint"][key] == fp[key], key
    assert sealed["fingerprint"] == fp
    assert sealed["queries"] == plain["queries"]


# -- the sanity bound -------------------------------------------------------------------------

def test_implausible_map_is_a_warning_not_invented_models(tmp_path: Path) -> None:
    """At most 2 models is implausible on the 7-model front: on probabilities, then on top-1
    labels. attack.json says so, reports fingerprinting incomplete and extracts nothing; no
    map with more than 2 models is reported."""
    d = scenario(fingerprint={"max_models": 2})
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(main, ["attack", str(cfg), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "o" / "attack.json").read_text())
    fp = r["fingerprint"]
    assert fp["complete"] is False
    assert "implausible map" in fp["warning"] and "labels too" in fp["warning"], fp["warning"]
    assert fp["models_found"] is None or fp["models_found"] <= 2
    assert fp["thresholds"] is None or len(fp["thresholds"]) <= 1
    assert fp["trigger_spec"] is None
    assert r["queries"]["extraction"] == 0 and r["extraction"]["kept_inputs"] == 0
    assert r["queries"]["fingerprint"] > 0


TINY_Z = {"type": "gaussian_probs", "sd": 0.002}


@pytest.fixture(scope="module")
def fallback() -> dict[str, Any]:
    """Nearly exact probabilities (Gaussian noise of sd 0.002) judged with a same-model
    threshold far too tight for them (``noise_z`` 0.2): probabilities invent models (measured
    at seed 3: 9 after 7 mapping answers), top-1 labels, which this noise hardly ever flips,
    do not."""
    return attack(scenario(TINY_Z, fingerprint={"noise_z": 0.2}))


def test_implausible_probabilities_fall_back_to_labels_that_map_the_front(
        fallback: dict[str, Any]) -> None:
    r = fallback
    fp = r["fingerprint"]
    assert fp["complete"] is True
    assert fp["warning"] is not None
    assert "implausible map" in fp["warning"] and "fell back to top-1 labels" in fp["warning"]
    assert fp["identified_on"] == "labels"
    models = front()
    assert fp["models_found"] == len(models)
    tol = FingerprintConfig().accuracy_tolerance
    want = [m.accuracy for m in models[:-1]]
    assert len(fp["thresholds"]) == len(want)
    for got, w in zip(fp["thresholds"], want, strict=True):
        assert abs(got - w) <= tol, (fp["thresholds"], want)
    assert fp["trigger_consistency"] == 1.0
    assert r["extraction"]["served_by"] == {r["target_model"]: 40}


def test_identification_accuracy_after_a_fallback_scores_the_labels_map(
        fallback: dict[str, Any]) -> None:
    """The abandoned probabilities map's answers are not scored (its models were another
    identifier's): measured before that was fixed, 0.766 over both maps, 0.968 on labels."""
    fp = fallback["fingerprint"]
    assert fp["identification_accuracy"] >= 0.95
    assert "answers of the abandoned map are not scored" in fp["warning"]
