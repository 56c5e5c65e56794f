"""``zoosim report``: tell which kind of sweep a results folder holds and run its report.

The kind is read from ``results.parquet``: which parameters the study varied (``param.*``
columns) and which results it has (an attack sweep has ``surrogate.*`` columns).

=================  ===================================================  ======================
report             results that select it                               script
=================  ===================================================  ======================
attack             an attack sweep over ``attacker.budget`` or          ``attack_report``
                   ``attacker.strategy``, no defense varied
defense goodput    a simulate sweep over the defense's noise level      ``defense_report
                   (``defense`` blocks with ``accuracy_sd``)            goodput``
defense attack     an attack sweep over the defense and                 ``defense_report
                   ``attacker.verify`` (paper vs adaptive attacker)     attack``
defense whatif     an attack sweep over the noise level and the trace   ``defense_report
                   rate (``tenants.0.arrivals.scale``)                  whatif``
defense frontier   any other attack sweep over ``defense``              ``defense_report
                                                                        frontier``
=================  ===================================================  ======================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sim.errors import UserError

KINDS = ("attack", "defense")
"""What ``zoosim report KIND`` accepts; ``defense`` picks one of DEFENSE_REPORTS."""
DEFENSE_REPORTS = ("goodput", "attack", "whatif", "frontier")

ATTACK_PARAMS = ("param.attacker.budget", "param.attacker.strategy")
SCALE = "param.tenants.0.arrivals.scale"
KNOWN = ("an attack sweep over attacker.budget or attacker.strategy (attack_budget*.yaml) or a "
         "sweep over the defense (defense_*.yaml, whatif_noise_load.yaml)")


def _frame(out_dir: Path) -> pd.DataFrame:
    from experiments.analysis import read_results

    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: no such folder")
    return read_results(out_dir, [], "a sweep")


def _is_attack(df: pd.DataFrame) -> bool:
    return "surrogate.fidelity" in df.columns


def _defense_varied(df: pd.DataFrame) -> bool:
    return any(c == "param.defense" or c.startswith("param.defense.") for c in df.columns)


def _noise_only(df: pd.DataFrame) -> bool:
    """Every defense of the sweep is a noise level (``accuracy_sd``): the goodput report."""
    if "param.defense.accuracy_sd" in df.columns:
        return True
    return "param.defense" in df.columns and all(
        isinstance(d, dict) and d.get("accuracy_sd") is not None for d in df["param.defense"])


def defense_kind(df: pd.DataFrame, out_dir: Path) -> str:
    """Which defense report reads these results (one of DEFENSE_REPORTS)."""
    if not _defense_varied(df):
        raise UserError(f"{out_dir}: these results vary no defense, so no defense report reads "
                        f"them (parameters: {_params(df)})")
    if not _is_attack(df):
        if _noise_only(df):
            return "goodput"
        raise UserError(f"{out_dir}: a simulate sweep over defenses other than a noise level; "
                        "no report reads it (the goodput report reads accuracy_sd levels)")
    if SCALE in df.columns:
        return "whatif"
    if "param.attacker.verify" in df.columns:
        return "attack"
    return "frontier"


def detect(out_dir: Path) -> tuple[str, str | None]:
    """(``attack`` or ``defense``, the defense report or None) for the sweep in ``out_dir``."""
    df = _frame(out_dir)
    if _defense_varied(df):
        return "defense", defense_kind(df, out_dir)
    if _is_attack(df) and any(c in df.columns for c in ATTACK_PARAMS):
        return "attack", None
    raise UserError(f"{out_dir}: no report reads these results (parameters: {_params(df)}); "
                    f"a report reads {KNOWN}")


def _params(df: pd.DataFrame) -> str:
    names = [str(c).removeprefix("param.") for c in df.columns if str(c).startswith("param.")]
    return ", ".join(names) or "none"


def run_report(dirs: Sequence[Path], kind: str | None = None) -> str:
    """Run the report of the sweeps in ``dirs`` (several only for the goodput report, which
    puts them side by side); ``kind`` (attack or defense) skips the detection of which.
    Returns the markdown, also written to ``report.md`` in the first folder."""
    from experiments import attack_report, defense_report

    if not dirs:
        raise UserError("report: give a sweep's output folder")
    first = dirs[0]
    if kind is not None and kind not in KINDS:
        raise UserError(f"report: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "defense":
        which: str | None = defense_kind(_frame(first), first)
    elif kind == "attack":
        _frame(first)
        which = None
    else:
        kind, which = detect(first)
    if len(dirs) > 1 and which != "goodput":
        raise UserError(f"report: several folders are read side by side by the goodput report "
                        f"only; {first} holds {_label(kind, which)} sweep")
    for d in dirs[1:]:
        if detect(d) != (kind, which):
            raise UserError(f"{d}: not a sweep of the same kind as {first} "
                            f"({_label(kind, which)})")
    if kind == "attack":
        return attack_report.report(first)
    if which == "goodput":
        return defense_report.goodput(list(dirs))
    report = {"attack": defense_report.attack, "whatif": defense_report.whatif,
              "frontier": defense_report.frontier}[str(which)]
    return report(first)


def _label(kind: str, which: str | None) -> str:
    return "an attack-budget" if kind == "attack" else f"a defense ({which})"
