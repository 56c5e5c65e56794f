"""The bracketing detector (defense.detect) and the flagged-only response (defense.flagged):
the test on both sides of its threshold, no flags on benign streams (fixed specs, classes,
continuous ranges; the Azure Functions 2019 replay, one client per function), the attacker
flagged within a few dozen requests, sybils spread round robin, responses that touch flagged
requests only, common random numbers, and bad parameters as user errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from attacks.config import AttackScenario
from attacks.run import run_attack
from defense import DEFENSES, Decision, DefenseStack
from defense.detect import hit_threshold, midpoint_hit
from experiments.detection import KINDS, azure_clients, benign_slo, flagged_by_client
from sim.plugins import Context
from sim.profiles import load_profile
from sim.request import Request
from sim.zoo import Zoo
from tests.sim.helpers import assert_simulate_refuses, run

ZOO = Zoo(load_profile("mnist5k-cpu"), 8)


def make(spec: dict[str, Any], seed: int = 0) -> Any:
    params = DEFENSES.params_class(spec["type"]).model_validate(spec)
    return DEFENSES.build(params, Context(zoo=ZOO, generator=np.random.default_rng(seed)))


def bisection(n: int, threshold: float = 93.2) -> list[float]:
    """An attacker's accuracy targets: both ends, then bisection towards ``threshold``."""
    lo, hi, out = 0.0, 100.0, [0.0, 100.0]
    while len(out) < n:
        mid = (lo + hi) / 2
        out.append(mid)
        lo, hi = (mid, hi) if mid < threshold else (lo, mid)
    return out


def decisions(d: Any, accs: list[float], lats: list[float] | None = None,
              tenant: int = 0) -> list[Decision]:
    lats = lats or [1e4] * len(accs)
    return [d.admit(Request(i, tenant, i * 0.02, a, lat))
            for i, (a, lat) in enumerate(zip(accs, lats, strict=True))]


# -- the test ----------------------------------------------------------------------------------

def test_midpoint_hit_on_both_sides_of_the_band() -> None:
    earlier = [0.0, 50.0, 100.0]
    assert midpoint_hit(75.0, earlier, 0.02, 50.0)           # the gap's midpoint
    assert midpoint_hit(75.0, earlier, 0.02, 100.0)          # either end may be the last
    assert not midpoint_hit(75.0, earlier, 0.02, 0.0)        # a gap the last did not leave
    assert midpoint_hit(75.49, earlier, 0.02, 50.0)          # inside 1 % of 50 either side
    assert not midpoint_hit(75.51, earlier, 0.02, 50.0)      # just outside
    assert not midpoint_hit(50.0, earlier, 0.02, 0.0)        # an earlier target: no hit
    assert not midpoint_hit(150.0, earlier, 0.02, 100.0)     # outside every gap
    assert not midpoint_hit(-1.0, earlier, 0.02, 0.0)
    assert not midpoint_hit(5.0, [], 0.02, 0.0)


def test_hit_threshold_is_the_first_count_whose_benign_tail_is_below_alpha() -> None:
    for window, band, alpha in [(20, 0.02, 1e-9), (20, 0.05, 1e-6), (50, 0.01, 1e-4)]:
        c = hit_threshold(window, band, alpha)
        p0 = 1 - (1 - band) ** 2
        assert binom.sf(c - 1, window, p0) <= alpha < binom.sf(c - 2, window, p0)
    assert hit_threshold(20, 0.02, 1e-9) == 11
    with pytest.raises(ValueError, match="window"):
        hit_threshold(4, 0.5, 1e-12)


def test_flags_at_the_threshold_hit_not_before_and_for_good() -> None:
    d = make({"type": "detect"})                          # 11 hits in 20 requests
    accs = bisection(2 + 11)                              # 0, 100, then 11 midpoints
    got = decisions(d, accs)
    assert got[:12] == [Decision.ADMIT] * 12              # 10 hits: not yet
    assert got[12] is Decision.FLAG                       # the 11th hit
    assert d.clients[0].flagged_at == 13
    later = decisions(d, [90.0] * 5)                      # benign-looking from now on
    assert later == [Decision.FLAG] * 5
    other = decisions(d, bisection(12), tenant=1)         # another client: its own window
    assert Decision.FLAG not in other


def test_asking_again_for_the_same_targets_does_not_dilute_the_window() -> None:
    """An attacker that identifies each spec 3 times in a row is flagged at the same hit."""
    d = make({"type": "detect"})
    got = decisions(d, [a for a in bisection(13) for _ in range(3)])
    assert got.index(Decision.FLAG) == 3 * 12             # the first request of the 11th hit


def test_hits_outside_the_window_do_not_count() -> None:
    d = make({"type": "detect", "window": 20})
    accs = bisection(12)                                  # 10 hits...
    accs += [90.0 + 0.5 * (i % 2) for i in range(10)]     # ...pushed out by 10 plain requests
    accs += [10.0, 30.0, 20.0]                            # then one more hit (20 of 10, 30)
    assert Decision.FLAG not in decisions(d, accs)


def test_latency_bisection_is_caught_too() -> None:
    d = make({"type": "detect"})
    lats = [x / 10 for x in bisection(20, threshold=31.4)]   # 0 .. 10 ms
    got = decisions(d, [95.0] * 20, lats)
    assert Decision.FLAG in got


@pytest.mark.parametrize("kind", KINDS)
def test_no_flag_on_benign_streams(kind: str) -> None:
    """200 clients of each mix, 2,000 requests each (at alpha 1e-9 per request the chance of
    any flag among them is below 1e-3 for iid continuous targets)."""
    rng = np.random.default_rng(7)
    d = make({"type": "detect"})
    for client in range(200):
        slo = benign_slo(kind, rng)
        accs, lats = (_draw(slo[k], rng, 2000) for k in ("accuracy", "latency_ms"))
        got = decisions(d, accs.tolist(), lats.tolist(), tenant=client)
        assert Decision.FLAG not in got, (kind, client, slo)


def _draw(block: dict[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    if block["type"] == "fixed":
        return np.full(n, block["value"])
    if block["type"] == "choice":
        return rng.choice(block["values"], size=n)
    return rng.uniform(block["low"], block["high"], n)


def test_no_flag_on_the_azure_2019_replay_one_client_per_function() -> None:
    scenario = azure_clients(seed=1, minutes=3)
    clients = list(flagged_by_client(scenario))
    assert len(clients) == 10 and sum(n for _, n, _ in clients) > 20_000
    assert not any(flagged for _, _, flagged in clients)


# -- the response: flagged requests only --------------------------------------------------------

def stack(*blocks: dict[str, Any]) -> DefenseStack:
    return DefenseStack([make(b, seed=i) for i, b in enumerate(blocks)])


def test_flagged_only_spec_noise_touches_flagged_requests_alone() -> None:
    s = stack({"type": "detect"},
              {"type": "flagged_only", "defense": {"type": "gaussian", "accuracy_sd": 4}})
    assert s.changes_spec and s.admits
    reqs = [Request(i, 0, i * 0.02, a, 1e4) for i, a in enumerate(bisection(40))]
    for r in reqs:
        s.admit(r)
        s.perturb(r)
    flagged = [r for r in reqs if r.flagged]
    assert len(flagged) == 40 - 12
    assert all(r.acc_spec == r.acc_req for r in reqs if not r.flagged)
    assert all(r.acc_spec != r.acc_req for r in flagged)


def test_flagged_only_selector_and_outputs() -> None:
    s = stack({"type": "flagged_only", "defense": {"type": "chain", "defenses": [
        {"type": "exponential", "eps": 0.1}, {"type": "top1"}]}})
    plain, marked = Request(0, 0, 0.0, 95.0, 5.0), Request(1, 1, 0.0, 95.0, 5.0)
    marked.flagged = True
    assert s.select(plain) is None                        # the policy chooses
    assert s.select(marked) is not None
    probs = np.tile([0.1, 0.7, 0.2], (4, 1))
    out = s.postprocess_rows(probs, np.array([False, True, False, True]))
    assert np.array_equal(out[[0, 2]], probs[[0, 2]])
    assert np.array_equal(out[[1, 3]], np.tile([0.0, 1.0, 0.0], (2, 1)))


def test_flagged_only_rate_limit_sees_the_detectors_flag_on_the_same_request() -> None:
    s = stack({"type": "detect"},
              {"type": "flagged_only", "defense": {"type": "rate_limit", "rate_rps": 1}})
    got = [s.admit(Request(i, 0, i * 0.02, a, 1e4)) for i, a in enumerate(bisection(20))]
    assert got[:12] == [Decision.ADMIT] * 12
    assert got[12] is Decision.FLAG                        # the bucket pays this one
    assert set(got[13:]) == {Decision.REJECT}               # 50 req/s against 1 input/s


def test_two_selectors_are_refused_through_flagged_only() -> None:
    with pytest.raises(ValueError, match="select"):
        DEFENSES.params_class("chain").model_validate({"type": "chain", "defenses": [
            {"type": "exponential", "eps": 1},
            {"type": "flagged_only", "defense": {"type": "feasible_random"}}]})


# -- in the simulator ---------------------------------------------------------------------------

def benign(defense: Any, seed: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"seed": seed, "duration_s": 4.0, "zoo": {"profile": "mnist5k-cpu"},
            "cluster": {"workers": 2, "max_batch": 8, "batch_timeout_ms": 0.5},
            "defense": defense,
            "tenants": [{"name": f"{k}-{i}", "arrivals": {"type": "poisson", "rate_rps": 300},
                         "slo": benign_slo(k, rng)} for k in KINDS for i in range(2)]}


def test_unflagged_benign_traffic_is_served_exactly_as_without_a_defense() -> None:
    """Common random numbers: a detector and a flagged-only response that flag no benign
    client leave every benign record (arrival, targets, model, latency) unchanged."""
    base = run(benign({"type": "none"}))
    guarded = run(benign([{"type": "detect"}, {"type": "flagged_only", "defense": {
        "type": "gaussian", "accuracy_sd": 4}}]))
    df = guarded.records
    assert len(df) > 5000 and not df["flagged"].any() and guarded.summary["flagged"] == 0
    cols = ["tenant", "arrival_s", "acc_req", "lat_req_ms", "model", "latency_ms"]
    assert df[cols].equals(base.records[cols])
    assert guarded.summary["goodput"] == base.summary["goodput"]
    answers = run(benign([{"type": "detect"}, {"type": "flagged_only", "defense": {
        "type": "top1"}}])).summary    # an output defense on flagged clients: no answer lost
    assert answers["goodput_answers"] == answers["goodput"] == base.summary["goodput"]


ATTACK = {
    "seed": 1, "zoo": {"profile": "mnist5k-cpu"},
    "cluster": {"workers": 4, "max_batch": 8, "batch_timeout_ms": 0.5},
    "defense": [{"type": "detect"},
                {"type": "flagged_only", "defense": {"type": "gaussian", "accuracy_sd": 4}}],
    "tenants": [{"name": "web", "arrivals": {"type": "poisson", "rate_rps": 500},
                 "slo": {"accuracy": {"type": "uniform", "low": 90, "high": 97},
                         "latency_ms": {"type": "uniform", "low": 0.5, "high": 3}}}],
    "attacker": {"strategy": "fingerprint", "target": "median", "budget": 600,
                 "inputs_per_request": 10, "pool": "mnist5k-attacker", "extract": False,
                 "rate_rps": 50, "start_s": 0.2},
}


def attack(**attacker: Any) -> Any:
    data = {**ATTACK, "attacker": {**ATTACK["attacker"], **attacker}}
    return run_attack(AttackScenario.model_validate(data))


def test_the_fingerprinting_attacker_is_flagged_early_and_benign_clients_are_not() -> None:
    res = attack()
    det = res.attack.detection
    assert det is not None and det.identities == 1 and det.flagged_identities == 1
    assert det.first_flag_request is not None and det.first_flag_request <= 30
    assert det.first_flag_inputs is not None and det.first_flag_inputs <= 200
    df = res.sim.records
    assert not df.loc[df["tenant"] == "web", "flagged"].any()
    assert df.loc[df["tenant"] == "attacker", "flagged"].mean() > 0.5


def test_sybils_take_turns_and_are_reported() -> None:
    res = attack(identities=3)
    df = res.sim.records
    counts = df["tenant"].value_counts()
    sent = [int(counts[t]) for t in ("attacker", "attacker.2", "attacker.3")]
    assert max(sent) - min(sent) <= 1                       # round robin
    det = res.attack.detection
    assert det is not None and det.identities == 3
    assert res.attack.benign is not None and set(res.attack.benign.tenants) == {"web"}


# -- bad parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize(("defense", "needle"), [
    ({"type": "detect", "window": 2}, "defense.window"),
    ({"type": "detect", "band": 1.5}, "defense.band"),
    ({"type": "detect", "window": 4, "band": 0.5, "alpha": 1e-12}, "alpha"),
    ({"type": "detect", "action": "block"}, "defense.action"),
    ({"type": "flagged_only"}, "defense.defense"),
    ({"type": "flagged_only", "defense": {"type": "nope"}}, "nope"),
])
def test_bad_parameters_exit_2(tmp_path: Path, defense: dict[str, Any], needle: str) -> None:
    assert_simulate_refuses(tmp_path, benign(defense), needle)
