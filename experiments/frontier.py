"""The C4 frontier (issue 15): every defense configuration of one scenario at each load, with the
three figures the C4 rule reads (:class:`~experiments.verdicts.FrontierCell`) and the
surrogate's change at equal budget beside them.

From a study that runs each defense against both attackers (``attacker.verify`` false: the
paper's; true: the adaptive one), per configuration and load, over seeds:

- goodput: the paper attacker's run's benign ``goodput_answers`` over the undefended run's of
  the same seed and load (the same benign arrivals: common random numbers);
- aim: the share of the paper attacker's extraction queries that the target served; an attack
  that spent its whole budget mapping sent none and scores 0;
- fidelity and accuracy change: the paper attacker's surrogate minus the undefended one's, same
  seed and load (equal total budget: every input counts);
- multiplier: the adaptive attacker's inputs sent over its undefended run's. A run where it
  did not keep its whole budget of answers (``unfinished``: it reached its cap of inputs sent,
  or gave up after its requests were refused) needed more than it sent, so its ratio is a
  lower bound and enters the interval as one; with every run stopped the multiplier is
  infinite (the defense stopped the attacker in every run).

The runs end when the attacker is done, so a defended run's benign window is the attack's
span, longer where the defense slows the attacker; the benign arrivals are the same process,
drawn from the same stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from experiments.verdicts import FrontierCell, Interval

LOAD = "param.tenants.0.arrivals.rate_rps"
ADAPTIVE = "param.attacker.verify"
SEED = "param.seed"
GOODPUT = "benign.goodput_answers"
AIM = "fingerprint.trigger_consistency"
NONE = "none"


def label(d: Any) -> str:
    """A defense block as one short name: ``gaussian(accuracy_sd=4)``, a stack as its members
    joined by `` + ``, ``flagged_only(...)`` around what it wraps."""
    if isinstance(d, list | tuple | np.ndarray):
        return " + ".join(label(m) for m in d)
    if not isinstance(d, dict):
        return str(d)
    if d.get("type") == "chain":
        members = d.get("defenses")
        return label([] if members is None else members)
    if d.get("type") == "flagged_only":
        return f"flagged_only({label(d.get('defense'))})"
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in d.items() if k != "type" and v is not None)
    return f"{d['type']}({args})" if args else str(d["type"])


@dataclass(frozen=True)
class FrontierRow:
    """One configuration at one load."""

    defense: str
    load: float
    cell: FrontierCell
    fidelity_change: Interval
    accuracy_change: Interval
    unfinished: int
    """Adaptive runs that did not keep their whole budget of answers."""
    runs: int
    """Seeds of the paper attacker's runs."""
    missing: int
    """Runs without a figure or an undefended run of the same seed to pair with."""

    def as_dict(self) -> dict[str, Any]:
        c = self.cell
        return {"defense": self.defense, "load": self.load, "goodput": c.goodput.as_dict(),
                "aim": c.aim.as_dict(), "multiplier": c.multiplier.as_dict(),
                "fidelity_change": self.fidelity_change.as_dict(),
                "accuracy_change": self.accuracy_change.as_dict(),
                "adaptive_unfinished": self.unfinished}


def _by_seed(runs: pd.DataFrame, base: pd.DataFrame, metric: str, ratio: bool) -> pd.Series:
    """``metric`` of ``runs`` minus (or over) the same seed's in ``base``."""
    x = runs.set_index(SEED)[metric].astype(float)
    y = base.set_index(SEED)[metric].astype(float).reindex(x.index)
    return ((x / y) if ratio else (x - y)).dropna()


def _paired(runs: pd.DataFrame, base: pd.DataFrame, metric: str, ratio: bool) -> Interval:
    return Interval.of(_by_seed(runs, base, metric, ratio).to_numpy())


def _multiplier(runs: pd.DataFrame, base: pd.DataFrame) -> tuple[Interval, int, int]:
    """The adaptive attacker's multiplier over seeds, how many runs it did not finish, and
    how many runs had no undefended run to pair with."""
    ratio = _by_seed(runs, base, "queries.total", True)
    kept = runs.set_index(SEED)["extraction.kept_inputs"].astype(float)
    stopped = (kept < runs.set_index(SEED)["param.attacker.budget"].astype(float))
    stopped = stopped.reindex(ratio.index)
    unpaired = len(runs) - len(ratio)
    if len(ratio) and stopped.all():
        return Interval(math.inf, 0.0, len(ratio)), len(ratio), unpaired
    return Interval.of(ratio.to_numpy()), int(stopped.sum()), unpaired


def frontier_rows(df: pd.DataFrame) -> list[FrontierRow]:
    """Every configuration at every load (in the study's order of configurations)."""
    df = df.copy()
    df["defense"] = df["param.defense"].map(label)
    df[AIM] = df[AIM].astype(float).fillna(0.0)     # budget spent mapping: nothing aimed
    adaptive = df[ADAPTIVE].astype(bool)
    rows = []
    for name in df["defense"].unique():
        for load in sorted(df[LOAD].unique()):
            at = df[LOAD] == load
            base = df[at & (df["defense"] == NONE)]
            mine = df[at & (df["defense"] == name)]
            p, bp = mine[~adaptive[mine.index]], base[~adaptive[base.index]]
            a, ba = mine[adaptive[mine.index]], base[adaptive[base.index]]
            multiplier, unfinished, unpaired = _multiplier(a, ba)
            cell = FrontierCell(goodput=_paired(p, bp, GOODPUT, True),
                                aim=Interval.of(p[AIM].to_numpy(dtype=float)),
                                multiplier=multiplier)
            fidelity = _paired(p, bp, "surrogate.fidelity", False)
            rows.append(FrontierRow(
                str(name), float(load), cell, fidelity,
                _paired(p, bp, "surrogate.accuracy", False), unfinished, len(p),
                unpaired + len(p) - min(cell.goodput.n, fidelity.n)))
    return rows


def by_defense(rows: list[FrontierRow]) -> dict[str, list[FrontierRow]]:
    """The rows of each configuration (one per load), in order."""
    out: dict[str, list[FrontierRow]] = {}
    for r in rows:
        out.setdefault(r.defense, []).append(r)
    return out


def select_c4(groups: dict[str, list[FrontierRow]]) -> tuple[list[str], str]:
    """The configurations (the undefended one aside) that meet C4 at every load, and the one
    C4 is confirmed on: among those that hold, the one with the widest margin (the largest
    worst bound over its threshold); if none holds, the one that comes nearest."""
    from experiments import verdicts as v

    options = {d: [r.cell for r in g] for d, g in groups.items() if d != NONE}
    holding = [d for d, cells in options.items() if v.c4_frontier_holds(cells)]
    chosen = max(holding or list(options), key=lambda d: v.c4_closeness(options[d]))
    return holding, chosen
