"""The scenarios whose outputs are pinned: the shipped examples, one study point per kind, and
one small run per plugin (every policy, defense, service time and arrival family), so a
refactoring of the engine or of the plugin contract shows any change in what a run produces.

``python -m tests.golden.cases`` rewrites ``pins.json`` (do it only for an intended change of
results, and say why in the commit).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import apply_override, read_yaml

REPO = Path(__file__).resolve().parents[2]
PINS = Path(__file__).with_name("pins.json")

WALL_CLOCK = {"wall_time_s", "events_per_s", "training_s"}
"""Fields that measure the machine, not the run."""
SCORES = {"accuracy", "fidelity"}
"""Surrogate scores: torch training may differ in the last bits between CPUs; compared to a
tolerance."""

GOODPUT = "experiments/goodput_base.yaml"
ATTACK = "experiments/attack_base.yaml"
SMALL = ("requests=2000", "warmup_s=0.05")
SMALL_ATTACK = ("attacker.budget=2400", "attacker.surrogate.steps=2",
                "attacker.fingerprint.candidates=64", "tenants.0.arrivals.rate_rps=500")

CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (kind, base file, --set overrides)
    "example-poisson": ("simulate", "examples/poisson.yaml", ("requests=3000", "warmup_s=0")),
    "example-azure2019": ("simulate", "examples/azure2019.yaml", ("requests=3000",)),
    "example-attack": ("attack", "examples/attack-fingerprint.yaml",
                       ("attacker.budget=1600", "attacker.surrogate.steps=2",
                        "tenants.0.arrivals.rate_rps=500")),
    "study-defense_goodput": ("simulate", GOODPUT, (
        "requests=4000", "warmup_s=0.1", "tenants.0.arrivals.rate_rps=4000",
        "defense={type: gaussian, accuracy_sd: 1}")),
    "study-defense_attack": ("attack", ATTACK, (
        *SMALL_ATTACK, "defense={type: gaussian, accuracy_sd: 1}")),
    "policy-pareto": ("simulate", GOODPUT, (*SMALL, "policy={type: pareto}")),
    "service-lognormal": ("simulate", GOODPUT, (*SMALL, "service_time={type: lognormal, cv: 0.3}")),
    "service-exponential": ("simulate", GOODPUT, (*SMALL, "service_time={type: exponential}")),
    "arrivals-gamma": ("simulate", GOODPUT, (
        *SMALL, "tenants.0.arrivals={type: gamma, rate_rps: 3000, cv: 2}")),
    "arrivals-mmpp": ("simulate", GOODPUT, (
        *SMALL, "tenants.0.arrivals={type: mmpp, rates_rps: [1000, 6000], "
        "mean_durations_s: [0.1, 0.05]}")),
    "arrivals-diurnal": ("simulate", GOODPUT, (
        *SMALL, "tenants.0.arrivals={type: diurnal, rate_rps: 3000, amplitude: 0.5, "
        "period_s: 0.2}")),
    "arrivals-constant": ("simulate", GOODPUT, (
        *SMALL, "tenants.0.arrivals={type: constant, rate_rps: 3000}")),
    "defense-laplace": ("simulate", GOODPUT, (*SMALL, "defense={type: laplace, accuracy_sd: 1, "
                                              "latency_sd_rel: 0.2}")),
    "defense-uniform": ("simulate", GOODPUT, (*SMALL, "defense={type: uniform, accuracy_sd: 2}")),
    "defense-exponential": ("simulate", GOODPUT, (*SMALL, "defense={type: exponential, eps: 4, "
                                                  "latency_scale_ms: 2}")),
    "defense-permute_and_flip": ("simulate", GOODPUT, (
        *SMALL, "defense={type: permute_and_flip, eps: 4, candidates: all}")),
    "defense-top1": ("simulate", GOODPUT, (*SMALL, "defense={type: top1}")),
    "defense-rounding": ("simulate", GOODPUT, (*SMALL, "defense={type: rounding, decimals: 1}")),
    "defense-reverse_sigmoid": ("simulate", GOODPUT, (*SMALL, "defense={type: reverse_sigmoid}")),
    "defense-gaussian_probs": ("simulate", GOODPUT, (*SMALL, "defense={type: gaussian_probs, "
                                                     "sd: 0.2}")),
    "defense-chain": ("simulate", GOODPUT, (*SMALL, "defense={type: chain, defenses: ["
                                            "{type: gaussian, accuracy_sd: 1}, "
                                            "{type: exponential, eps: 8}, "
                                            "{type: gaussian_probs, sd: 0.2}]}")),
    "attack-oracle": ("attack", ATTACK, (*SMALL_ATTACK, "attacker.strategy=oracle")),
    "attack-naive": ("attack", ATTACK, (*SMALL_ATTACK, "attacker.strategy=naive")),
    "attack-known-zoo": ("attack", ATTACK, (*SMALL_ATTACK, "attacker.strategy=known-zoo")),
    "attack-verify-kept": ("attack", ATTACK, (
        *SMALL_ATTACK, "attacker.verify=true", "attacker.budget_counts=kept",
        "attacker.budget=300", "defense={type: gaussian, accuracy_sd: 1}")),
    "attack-labels-outputs": ("attack", ATTACK, (
        *SMALL_ATTACK, "attacker.outputs=labels", "attacker.budget=5000",
        "defense={type: chain, defenses: [{type: rounding, decimals: 2}, "
        "{type: gaussian, accuracy_sd: 0.3}]}")),
}

SLOW = {name for name, (kind, _, _) in CASES.items() if kind == "attack"}


def records_digest(df: pd.DataFrame) -> str:
    """A digest of the records, floats rounded to 1e-9 (seconds) so that the last bit of a
    platform's libm cannot change it."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = np.round(out[col].to_numpy(dtype=float), 9)
    text = out.to_csv(index=False, float_format="%.9f")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def normalise(obj: Any) -> Any:
    """A JSON-like value with wall-clock fields dropped and floats to 10 significant digits."""
    if isinstance(obj, dict):
        return {str(k): normalise(v) for k, v in obj.items() if k not in WALL_CLOCK}
    if isinstance(obj, (list, tuple)):
        return [normalise(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)) or obj is None or isinstance(obj, str):
        return bool(obj) if isinstance(obj, np.bool_) else obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if not math.isfinite(x):
            return repr(x)   # JSON has no NaN; compared as text
        return float(f"{x:.10g}")
    return obj


def scenario_of(name: str) -> tuple[Any, Path]:
    """Case ``name``'s validated scenario (an AttackScenario for attacks) and its folder."""
    from attacks.config import AttackScenario
    from sim.config import Scenario, parse_scenario

    kind, base, overrides = CASES[name]
    path = REPO / base
    data = copy.deepcopy(read_yaml(path))
    for o in overrides:
        apply_override(data, o)
    model = AttackScenario if kind == "attack" else Scenario
    return parse_scenario(data, path.parent, name, model), path.parent


def run_case(name: str) -> dict[str, Any]:
    """Run one case; what is pinned of it."""
    scenario, base_dir = scenario_of(name)
    if CASES[name][0] == "attack":
        from attacks.run import run_attack

        res = run_attack(scenario, base_dir)
        return {"records": records_digest(res.sim.records),
                "summary": normalise(res.sim.summary), "report": normalise(res.report)}
    from sim.run import simulate

    sim = simulate(scenario, base_dir)
    return {"records": records_digest(sim.records), "summary": normalise(sim.summary),
            "events": len(sim.events)}


def main(names: list[str]) -> None:
    pins = json.loads(PINS.read_text()) if PINS.is_file() else {}
    for name in names or list(CASES):
        print(name, file=sys.stderr)
        pins[name] = run_case(name)
    pins = {k: pins[k] for k in CASES if k in pins}
    PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
