"""Claim checks (docs/paper.md, C1-C4) from the studies' results: claims.md rows and claims.json.

The rules are :mod:`experiments.verdicts`; this module computes their inputs from the results.
Where a claim is about the best (C2, "up to") or the worst (C1) cell of a grid, or about the
defense configuration nearest the frontier rule (C4), the cell is *selected* on the study's
seeds and *confirmed* on fresh seeds (``confirm``), and the verdict reads the fresh seeds only,
so the selection cannot flatter it. Every number in the text is computed here. Cells that
could not be scored are listed as missing; attacks that spent their whole budget
fingerprinting keep no answer and are scored with their untrained surrogate (what they hold),
and listed as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments import verdicts as v
from experiments.verdicts import Interval

Confirm = Callable[[str, str, dict[str, Any], dict[str, list[Any]]], pd.DataFrame]
"""(claim, study, parameters held fixed, parameters varied) -> that sub-study's results on
fresh seeds (the same base scenario and quick overrides)."""

ACC, FID = "surrogate.accuracy", "surrogate.fidelity"
CONS = "fingerprint.trigger_consistency"
STRATEGY, SEED = "param.attacker.strategy", "param.seed"


@dataclass
class Verdict:
    """One claim as judged on this run (a row of claims.md, an entry of claims.json)."""

    id: str
    claim: str
    paper: str
    holds: bool
    strength: str
    ours: str
    why: str
    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    """Cells that could not be scored."""
    out_of_budget: list[str] = field(default_factory=list)
    """Cells where fingerprinting ran out of budget before extracting (scored with the
    attacker's untrained surrogate: what it holds)."""

    def row(self) -> str:
        verdict = ("yes" if self.holds else "no") + (f" ({self.strength})"
                                                     if self.strength else "")
        ours = self.ours + (f" Missing: {'; '.join(self.missing)}." if self.missing else "")
        if self.out_of_budget:
            ours += (" Out of budget before extracting (untrained surrogate): "
                     f"{'; '.join(self.out_of_budget)}.")
        return (f"| {self.id}: {self.claim} | {self.paper} | {ours} | {verdict} | "
                f"{self.why} |")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _plain(x: Any) -> Any:
    """A parquet value as the plain YAML value it came from (numpy scalars and arrays
    unwrapped, null fields of a struct dropped)."""
    if isinstance(x, dict):
        return {k: _plain(val) for k, val in x.items() if val is not None}
    if isinstance(x, np.ndarray | list | tuple):
        return [_plain(val) for val in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _cells(df: pd.DataFrame, skip: tuple[str, ...]) -> list[str]:
    """The parameter columns that name a cell (everything varied but ``skip`` and the seed)."""
    return [c for c in df.columns if c.startswith("param.") and c not in (*skip, SEED)]


def _params(row: pd.Series, cols: list[str]) -> dict[str, Any]:
    return {c.removeprefix("param."): _plain(row[c]) for c in cols}


def _paired(df: pd.DataFrame, col: str, a: Any, b: Any, metric: str) -> Interval:
    """``metric`` where ``col == a`` minus where ``col == b``, paired by seed."""
    pa = df[df[col] == a].set_index(SEED)[metric].astype(float)
    pb = df[df[col] == b].set_index(SEED)[metric].astype(float)
    return Interval.of((pa - pb).dropna().to_numpy())


def _seeds(df: pd.DataFrame) -> str:
    return ", ".join(str(int(s)) for s in sorted(df[SEED].unique()))


def _cell_name(row: pd.Series, study: str) -> str:
    load = row.get("param.tenants.0.arrivals.rate_rps")
    parts = [str(row.get("target_model", "?"))]
    if load is not None and not pd.isna(load):
        parts.append(f"at {float(load):g} req/s")
    if "param.attacker.budget" in row:
        parts.append(f"budget {int(row['param.attacker.budget'])}")
    return f"{', '.join(parts)} ({study})"


@dataclass
class _Cell:
    study: str
    row: pd.Series
    cols: list[str]
    acc: Interval
    fid: Interval


def _out_of_budget(g: pd.DataFrame, name: str) -> list[str]:
    """``name: k of n runs`` where the attack kept no extraction answer (its budget went to
    fingerprinting), if any."""
    if "extraction.kept_inputs" not in g:
        return []
    bad = int((g["extraction.kept_inputs"] == 0).sum())
    return [f"{name}: {bad} of {len(g)} runs"] if bad else []


def _attack_cells(frames: dict[str, pd.DataFrame], a: str,
                  b: str) -> tuple[list[_Cell], list[str], list[str]]:
    """Every cell of the attack studies with the paired gaps ``a - b``, the cells that lack a
    seed (an attack with nothing to score) and those whose fingerprinting ran out of budget."""
    cells, missing, short = [], [], []
    for study, df in frames.items():
        cols = _cells(df, (STRATEGY,))
        for _, g in df.groupby(cols, sort=True, dropna=False):
            pair = g[g[STRATEGY].isin([a, b])]
            acc = _paired(pair, STRATEGY, a, b, ACC)
            fid = _paired(pair, STRATEGY, a, b, FID)
            row = pair.iloc[0]
            seeds = pair[SEED].nunique()
            if min(acc.n, fid.n) < seeds:
                missing.append(f"{_cell_name(row, study)}: {seeds - min(acc.n, fid.n)} of "
                               f"{seeds} seeds without a surrogate")
            short += _out_of_budget(pair[pair[STRATEGY] == a], _cell_name(row, study))
            cells.append(_Cell(study, row, cols, acc, fid))
    return cells, missing, short


def _explain(df: pd.DataFrame, a: str, b: str) -> tuple[str, dict[str, Any]]:
    """What the two strategies spent and where their extraction queries went (computed)."""
    parts, figures = [], {}
    for s in (a, b):
        g = df[df[STRATEGY] == s]
        fp = Interval.of(g["queries.fingerprint"].to_numpy(float))
        ext = Interval.of(g["queries.extraction"].to_numpy(float))
        cons = Interval.of(g[CONS].to_numpy(float))
        figures[s] = {"fingerprint_inputs": fp.as_dict(), "extraction_inputs": ext.as_dict(),
                      "share_reaching_target": cons.as_dict()}
        text = f"{s}: {ext.mean:.0f} extraction inputs"
        if fp.mean > 0:
            text += f" after {fp.mean:.0f} spent fingerprinting"
        if math.isfinite(cons.mean):
            text += f", {cons.mean:.2f} of them served by the target"
        parts.append(text)
    return "; ".join(parts), figures


def c1(frames: dict[str, pd.DataFrame], confirm: Confirm) -> Verdict:
    """Fingerprinting is as good as attacking the named model: the worst cell, confirmed."""
    cells, missing, short = _attack_cells(frames, "fingerprint", "oracle")
    scored = [c for c in cells if c.acc.known and c.fid.known]
    claim, paper = ("fingerprinting is as good as attacking one named model",
                    "within 1 % (accuracy and fidelity)")
    largest = {s: max(int(c.row["param.attacker.budget"]) for c in scored if c.study == s)
               for s in {c.study for c in scored}}
    judged = [c for c in scored if int(c.row["param.attacker.budget"]) == largest[c.study]]
    if not judged:
        return Verdict("C1", claim, paper, False, "no data", "no cell could be scored",
                       "", "", missing=missing, out_of_budget=short)
    worst = max(judged, key=lambda c: v.c1_distance(c.acc, c.fid))
    conf = confirm("C1", worst.study, _params(worst.row, worst.cols),
                   {"attacker.strategy": ["fingerprint", "oracle"]})
    acc, fid = (_paired(conf, STRATEGY, "fingerprint", "oracle", m) for m in (ACC, FID))
    holds = v.c1_within(acc, fid)
    why, spent = _explain(conf, "fingerprint", "oracle")
    name = _cell_name(worst.row, worst.study)
    ours = (f"worst of the {len(judged)} cells at each study's largest budget (seeds "
            f"{_seeds(frames[worst.study])}): {name}, "
            f"gap fingerprint - oracle {worst.acc.text()} accuracy, {worst.fid.text()} "
            f"fidelity; on fresh seeds {_seeds(conf)}: {acc.text()} accuracy, {fid.text()} "
            f"fidelity (points). Worst per budget (seeds as selected): {_per_budget(scored)}.")
    return Verdict("C1", claim, paper, holds, "within 1 point" if holds else "", ours,
                   f"Budget {int(worst.row['param.attacker.budget'])} inputs in all: {why}.",
                   name, {"selected": {"accuracy": worst.acc.as_dict(),
                                       "fidelity": worst.fid.as_dict()},
                          "confirmed": {"accuracy": acc.as_dict(), "fidelity": fid.as_dict(),
                                        "seeds": sorted(int(s) for s in conf[SEED].unique())},
                          "spent": spent, "cells": len(judged)}, missing, short)


def _per_budget(cells: list[_Cell]) -> str:
    """The worst C1 cell at each budget of each study, as text."""
    parts = []
    for study in dict.fromkeys(c.study for c in cells):
        budgets = sorted({int(c.row["param.attacker.budget"]) for c in cells
                          if c.study == study})
        for b in budgets:
            at = [c for c in cells if c.study == study
                  and int(c.row["param.attacker.budget"]) == b]
            w = max(at, key=lambda c: v.c1_distance(c.acc, c.fid))
            parts.append(f"{study} at {b}: {w.fid.text()} fidelity, {w.acc.text()} accuracy "
                         f"({'within' if v.c1_within(w.acc, w.fid) else 'not within'} 1)")
    return "; ".join(parts)


def c2(frames: dict[str, pd.DataFrame], confirm: Confirm) -> Verdict:
    """Fingerprinting beats the naive attack: the best cell, confirmed on fresh seeds."""
    cells, missing, short = _attack_cells(frames, "fingerprint", "naive")
    scored = [c for c in cells if c.acc.known and c.fid.known]
    claim, paper = ("fingerprinting beats the naive attack",
                    f"up to +{v.C2_PAPER['accuracy']} accuracy, +{v.C2_PAPER['fidelity']} "
                    "fidelity")
    if not scored:
        return Verdict("C2", claim, paper, False, "no data", "no cell could be scored",
                       "", "", missing=missing, out_of_budget=short)
    best = max(scored, key=lambda c: min(c.acc.mean, c.fid.mean))
    conf = confirm("C2", best.study, _params(best.row, best.cols),
                   {"attacker.strategy": ["fingerprint", "naive"]})
    acc, fid = (_paired(conf, STRATEGY, "fingerprint", "naive", m) for m in (ACC, FID))
    holds = v.c2_holds(acc, fid)
    grade = {m: v.strength(x, v.C2_PAPER[m]) for m, x in (("accuracy", acc), ("fidelity", fid))}
    why, spent = _explain(conf, "fingerprint", "naive")
    name = _cell_name(best.row, best.study)
    ours = (f"best cell of {len(scored)} (seeds {_seeds(frames[best.study])}): {name}, gap "
            f"fingerprint - naive {best.acc.text()} accuracy, {best.fid.text()} fidelity; on "
            f"fresh seeds {_seeds(conf)}: {acc.text()} accuracy, {fid.text()} fidelity "
            "(points).")
    return Verdict("C2", claim, paper, holds,
                   f"accuracy {grade['accuracy']}, fidelity {grade['fidelity']}", ours,
                   f"{why}.", name,
                   {"selected": {"accuracy": best.acc.as_dict(), "fidelity": best.fid.as_dict()},
                    "confirmed": {"accuracy": acc.as_dict(), "fidelity": fid.as_dict(),
                                  "seeds": sorted(int(s) for s in conf[SEED].unique())},
                    "strength": grade, "spent": spent, "cells": len(scored)}, missing, short)


def _paper_attacker(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["param.attacker.verify"].astype(bool)]


def _noise_change(df: pd.DataFrame, sd: float, metric: str) -> Interval:
    """``metric`` at noise ``sd`` minus without noise, paired by seed."""
    return _paired(df, "sd", sd, 0.0, metric)


def c3(df: pd.DataFrame, study: str, claim_id: str = "C3") -> Verdict:
    """Spec noise thwarts fingerprinting: the study's largest noise against none (the
    paper's attacker), with the adaptive attacker's query factor beside it. ``claim_id``
    tells apart the same claim judged on another study."""
    paper = _paper_attacker(df)
    top = float(paper["sd"].max())
    acc, fid = (_noise_change(paper, top, m) for m in (ACC, FID))
    aim0 = Interval.of(paper[paper["sd"] == 0][CONS].to_numpy(float))
    aim = Interval.of(paper[paper["sd"] == top][CONS].to_numpy(float))
    aim_change = _noise_change(paper, top, CONS)
    adaptive = df[df["param.attacker.verify"].astype(bool)]
    factor = Interval.of([]) if adaptive.empty else _ratio(adaptive, top, "queries.total")
    holds = v.c3_holds(acc, fid)
    if holds:
        grade = (f"accuracy {v.strength(acc, v.C3_PAPER['accuracy'])}, "
                 f"fidelity {v.strength(fid, v.C3_PAPER['fidelity'])}")
    else:
        grade = "only the aim" if v.significant_drop(aim_change) else "not significant"
    missing = _missing_noise(paper, (ACC, FID))
    short = _noise_out_of_budget(paper)
    target = str(paper["target_model"].iloc[0])
    ours = (f"noise sd {top:g} ({target}, seeds {_seeds(paper)}): accuracy {acc.text()}, "
            f"fidelity {fid.text()} points; share of extraction queries reaching the target "
            f"{aim.text(sign=False)} ({aim0.text(sign=False)} without noise)"
            + (f"; the adaptive attacker sends {factor.text(sign=False)}x the inputs"
               if factor.known else "") + ".")
    moved = v.significant_drop(aim_change)
    why = ((f"The noise moves the paper attacker's queries off the target (share "
            f"{aim_change.text()})" if moved else
            f"The share of the attacker's queries reaching the target changes by "
            f"{aim_change.text()}, not significantly")
           + (", and its surrogate loses accuracy and fidelity significantly." if holds else
              f"; its surrogate's change ({acc.text()} accuracy, {fid.text()} fidelity) is not "
              "significant on both metrics over these seeds.")
           + (" Some attacks spent their budget mapping the noisy spec space and extracted "
              "nothing." if short else ""))
    return Verdict(claim_id, "noise on the requested metrics thwarts fingerprinting",
                   f"medium target: accuracy {v.C3_PAPER['accuracy']} %, fidelity "
                   f"{v.C3_PAPER['fidelity']} %", holds, grade, ours, why,
                   f"{study}: gaussian spec noise sd {top:g} vs none, {target}",
                   {"sd": top, "accuracy_change": acc.as_dict(),
                    "fidelity_change": fid.as_dict(), "aim": aim.as_dict(),
                    "aim_without_noise": aim0.as_dict(), "adaptive_query_factor":
                    factor.as_dict()}, missing, short)


def _ratio(df: pd.DataFrame, sd: float, metric: str) -> Interval:
    a = df[df["sd"] == sd].set_index(SEED)[metric].astype(float)
    b = df[df["sd"] == 0].set_index(SEED)[metric].astype(float)
    return Interval.of((a / b).dropna().to_numpy())


def _missing_noise(df: pd.DataFrame, metrics: tuple[str, ...]) -> list[str]:
    out = []
    for sd in sorted(float(x) for x in df["sd"].unique()):
        g = df[df["sd"] == sd]
        bad = int(g[list(metrics)].isna().any(axis=1).sum())
        if bad:
            out.append(f"noise sd {sd:g}: {bad} of {len(g)} seeds without a surrogate")
    return out


def _noise_out_of_budget(df: pd.DataFrame) -> list[str]:
    return [x for sd in sorted(float(s) for s in df["sd"].unique())
            for x in _out_of_budget(df[df["sd"] == sd], f"noise sd {sd:g}")]


def c4(df: pd.DataFrame, study: str, confirm: Confirm) -> Verdict:
    """Protection at goodput >= 0.80, on the frontier (:mod:`experiments.frontier`; issue 15's
    rule, :func:`~experiments.verdicts.c4_frontier_holds`): one configuration that at every
    load keeps relative benign goodput >= 0.80 while the paper attacker's aim is <= 0.5 and the
    adaptive attacker needs >= 2x the inputs, intervals included. The configuration is
    selected on the study's seeds (:func:`~experiments.frontier.select_c4`: among those that
    hold the one with the widest margin, else the one that comes nearest) and confirmed on
    fresh seeds at every load, where the verdict is read."""
    from experiments.frontier import LOAD, NONE, by_defense, frontier_rows, label, select_c4

    claim, figure = ("protection trades off against goodput, configurably",
                     f"goodput > {v.C4_GOODPUT:.0%} at significant protection")
    groups = by_defense(frontier_rows(df))
    holding, chosen = select_c4(groups)
    blocks = {label(b): _plain(b) for b in df["param.defense"]}
    loads = sorted(float(x) for x in df[LOAD].unique())
    conf = confirm("C4", study, {}, {"defense": [blocks[NONE], blocks[chosen]],
                                     LOAD.removeprefix("param."): loads})
    fresh = by_defense(frontier_rows(conf))[chosen]
    holds = v.c4_frontier_holds([r.cell for r in fresh])

    def at(r: Any) -> str:
        c = r.cell
        return (f"at {r.load:g} req/s goodput {c.goodput.text(3, sign=False)}, aim "
                f"{c.aim.text(2, sign=False)}, fidelity change {r.fidelity_change.text()}, "
                f"multiplier {c.multiplier.text(2, sign=False)}x"
                + (f" ({r.unfinished} of {r.runs} adaptive runs stopped)" if r.unfinished
                   else ""))

    ours = (f"{len(holding)} of {len(groups) - 1} defense configurations meet the rule at every "
            f"load on seeds {_seeds(df)}; " + (f"selected {chosen}" if holding else
                                                f"none does; closest: {chosen}")
            + f". On fresh seeds {_seeds(conf)}: " + "; ".join(at(r) for r in fresh) + ".")
    if holds:
        why = ("It keeps benign goodput and stops the paper's attacker aiming at the target "
               "while doubling what the adaptive attacker must send, at every load.")
    else:
        misses = [f"at {r.load:g} req/s: {', '.join(v.c4_shortfalls(r.cell))}" for r in fresh
                  if v.c4_shortfalls(r.cell)]
        why = (("No configuration meets the rule on the study's seeds. " if not holding else
                "The selected configuration does not hold on fresh seeds. ")
               + f"{chosen} misses " + "; ".join(misses) + ".")
    figures = {"frontier": [r.as_dict() for g in groups.values() for r in g],
               "holding": holding, "selected": chosen,
               "confirmed": [r.as_dict() for r in fresh],
               "seeds": sorted(int(s) for s in conf[SEED].unique())}
    scenario = (f"{study}: every defense at {', '.join(f'{x:g}' for x in loads)} benign req/s, "
                "the paper's and the adaptive attacker in the same scenario")
    missing = ([f"{r.defense} at {r.load:g} req/s: {r.missing} runs"
                for g in groups.values() for r in g if r.missing]
               + [f"{r.defense} at {r.load:g} req/s, fresh seeds: {r.missing} runs"
                  for r in fresh if r.missing])
    return Verdict("C4", claim, figure, holds, "", ours, why, scenario, figures, missing)


def claims_markdown(claims: list[Verdict]) -> str:
    lines = ["| claim | paper's figure | this run (mean ± 95 % t-interval over seeds) | holds "
             "| why |", "|---|---|---|---|---|"]
    return "\n".join(lines + [c.row() for c in claims])
