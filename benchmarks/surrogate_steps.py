"""Is the surrogate's fixed optimiser budget long enough? (issue: budget curves must measure
what the answers teach, not how many optimiser steps a budget happened to buy.)

The oracle attacker (the target named on every request, no benign load, no defense) extracts
the medium front model of the shipped mnist5k-cpu zoo at each budget; its answers are used to
train the surrogate twice: with ``--steps`` optimiser steps (the default of
``attacker.surrogate``) and with ``--factor`` times as many. If the default is long enough,
training longer changes fidelity by less than ``--tolerance`` points (mean over seeds).

    python benchmarks/surrogate_steps.py [--steps 1000] [--factor 3] [--budgets 500 1500]
                                         [--seeds 1 2 3] [--json out.json]

Each (budget, seed) runs the attack twice (same seed, so the same answers) and trains once
with each step count. It prints one row per (budget, seed), the mean difference per budget
with its 95 % t-interval, and a verdict per budget on the mean; the exit status is 1 if any
budget's mean misses the tolerance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from attacks.config import AttackScenario, SurrogateConfig
from attacks.run import run_attack
from experiments.analysis import mean_ci
from sim.config import load_scenario
from sim.output import json_text

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "experiments" / "attack_base.yaml"


def fidelity(budget: int, seed: int, steps: int) -> float:
    """The oracle surrogate's fidelity (%) with ``steps`` training steps."""
    sc = load_scenario(BASE, AttackScenario, (
        "tenants=[]", "attacker.strategy=oracle", "attacker.target=median",
        f"attacker.budget={budget}", f"attacker.surrogate={{arch: cnn_small, steps: {steps}}}",
        f"seed={seed}"))
    assert isinstance(sc, AttackScenario)
    report = run_attack(sc, BASE.parent).report
    return float(report["surrogate"]["fidelity"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=SurrogateConfig.DEFAULT_STEPS)
    ap.add_argument("--factor", type=int, default=3)
    ap.add_argument("--budgets", type=int, nargs="+", default=[500, 1500])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--tolerance", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    long_steps = args.steps * args.factor
    rows: list[dict[str, Any]] = []
    print(f"{'budget':>6} {'seed':>4} {f'fid@{args.steps}':>10} {f'fid@{long_steps}':>10} "
          f"{'diff':>6}")
    for budget in args.budgets:
        for seed in args.seeds:
            short = fidelity(budget, seed, args.steps)
            long = fidelity(budget, seed, long_steps)
            rows.append({"budget": budget, "seed": seed, "short": short, "long": long,
                         "diff": long - short})
            print(f"{budget:>6} {seed:>4} {short:>10.2f} {long:>10.2f} {long - short:>+6.2f}")
    ok = True
    verdicts = []
    for budget in args.budgets:
        diffs = [r["diff"] for r in rows if r["budget"] == budget]
        mean, half = mean_ci(diffs)
        within = abs(mean) <= args.tolerance
        ok &= within
        verdicts.append({"budget": budget, "mean_diff": mean, "ci95": half, "within": within})
        print(f"budget {budget}: training {args.factor}x longer changes fidelity by "
              f"{mean:+.2f} ± {half:.2f} points: "
              f"{'within' if within else 'NOT within'} {args.tolerance:g}")
    if args.json:
        args.json.write_text(json_text({"steps": args.steps, "factor": args.factor,
                                        "rows": rows, "verdicts": verdicts}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
