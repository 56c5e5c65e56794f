"""``zoosim reproduce``: the studies behind PSML's claims C1-C4 (docs/paper.md), their figures and
``claims.md`` (claim | paper's figure | this run | holds or not, and why)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from experiments.claims import Verdict, c1, c2, c3, c4, claims_markdown
from experiments.runner import run_study
from experiments.study import Study
from sim.output import atomic_write, write_json

HERE = Path(__file__).resolve().parent
STUDIES = ["attack_budget_1d", "attack_budget", "attack_budget_regime", "defense_attack",
           "defense_attack_regime", "defense_goodput", "defense_frontier_c4"]
ATTACK_STUDIES = ["attack_budget_1d", "attack_budget", "attack_budget_regime"]
"""The C1/C2 studies; ``attack_budget_regime`` is the paper's regime (a zoo whose front models
disagree, an oracle surrogate >= 90 % faithful): docs/results/claims.md."""
FRESH_SEEDS = 1000
"""Selected cells are confirmed on the study's seeds plus this (never used by a study)."""


def reproduce(out: Path, *, quick: bool, backend: Literal["local", "dask"] = "local",
              workers: int | None = None, scheduler: str | None = None,
              progress: bool = True, study_dir: Path = HERE) -> Path:
    """Run (or resume) every study (``study_dir/<name>.yaml``) into ``out/<name>/``, confirm
    the selected cells on fresh seeds (``out/confirm/<name>/``); write the figures,
    claims.md and claims.json."""
    from experiments import attack_report, defense_report

    started = time.perf_counter()
    studies = {name: Study(study_dir / f"{name}.yaml", quick=quick) for name in STUDIES}
    walls: list[float] = []
    """Every run's wall time (s), studies and confirmations."""

    def sweep(study: Study, folder: Path) -> pd.DataFrame:
        path = run_study(study, folder, backend=backend, workers=workers,
                         scheduler=scheduler, resume=True, progress=progress)
        df = pd.read_parquet(path)
        walls.extend(df.get("point_wall_s", pd.Series(0.0, index=df.index)).fillna(0.0))
        return df

    for name, study in studies.items():
        if progress:
            print(f"{name}: {len(study.points)} runs")
        sweep(study, out / name)

    def confirm(claim: str, name: str, fixed: dict[str, Any],
                vary: dict[str, list[Any]]) -> pd.DataFrame:
        study = studies[name]
        sub = study.narrowed(fixed, vary, [s + FRESH_SEEDS for s in study.cfg.seeds])
        if progress:
            print(f"{claim}: confirming the selected cell of {name} on fresh seeds "
                  f"({len(sub.points)} runs)")
        return sweep(sub, out / "confirm" / claim)

    figures = _figures(out, attack_report, defense_report)
    frames = {name: attack_report.load(out / name) for name in ATTACK_STUDIES}
    noise = defense_report.load(out / "defense_attack")
    regime = defense_report.load(out / "defense_attack_regime")
    claims = [c1(frames, confirm), c2(frames, confirm), c3(regime, "defense_attack_regime"),
              c3(noise, "defense_attack", claim_id="C3-mnist5k"),
              c4(defense_report.load(out / "defense_frontier_c4"), "defense_frontier_c4",
                 confirm)]
    return _write(out, claims, figures, quick, walls, time.perf_counter() - started)


def _figures(out: Path, attack_report: Any, defense_report: Any) -> Path:
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name in ATTACK_STUDIES:
        attack_report.report(out / name)
        (out / name / "extraction_vs_budget.png").replace(figures / f"{name}.png")
    defense_report.attack(out / "defense_attack")
    defense_report.attack(out / "defense_attack_regime")
    defense_report.goodput([out / "defense_goodput"])
    (out / "defense_goodput" / "goodput_vs_noise.png").replace(figures / "goodput_vs_noise.png")
    defense_report.c4(out / "defense_frontier_c4")
    (out / "defense_frontier_c4" / "frontier_c4.png").replace(figures / "frontier_c4.png")
    _noise_figure(out / "defense_attack", figures / "attack_vs_noise.png")
    _noise_figure(out / "defense_attack_regime", figures / "attack_vs_noise_regime.png")
    _zoo_figure(figures / "zoo_mnist5k.png")
    return figures


def _write(out: Path, claims: list[Verdict], figures: Path, quick: bool, walls: list[float],
           wall_s: float) -> Path:
    """claims.md and claims.json. The header counts every run behind the claims and their
    compute time (summed over runs, so a resumed reproduction reports the whole work)."""
    compute_min = sum(walls) / 60
    header = (f"# PSML claims, reproduced ({'quick' if quick else 'full'} run: {len(walls)} "
              f"runs, {compute_min:.1f} min of compute; this invocation {wall_s / 60:.1f} min)")
    text = (f"{header}\n\n{claims_markdown(claims)}\n\nFigures: "
            + ", ".join(f"`figures/{p.name}`" for p in sorted(figures.glob("*.png")))
            + ". Per-study tables: `*/report.md`; raw results: `*/results.parquet`; selected "
            "cells re-run on fresh seeds: `confirm/<claim>/results.parquet`. How each verdict is "
            "reached: docs/claims.md.\n")
    write_json(out / "claims.json", {"quick": quick, "runs": len(walls),
                                     "compute_min": round(compute_min, 2),
                                     "claims": [c.as_dict() for c in claims]})
    path = out / "claims.md"
    atomic_write(path, lambda p: p.write_text(text))
    return path


def _noise_figure(study_dir: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from experiments.defense_report import load

    df = load(study_dir)
    df["attacker"] = df["param.attacker.verify"].map({True: "adaptive", False: "paper"})
    long = df.melt(id_vars=["sd", "attacker"], value_vars=["surrogate.accuracy",
                                                           "surrogate.fidelity"],
                   var_name="metric", value_name="percent")
    long["metric"] = long["metric"].str.removeprefix("surrogate.")
    g = sns.relplot(data=long, x="sd", y="percent", hue="attacker", col="metric", kind="line",
                    marker="o", errorbar=("ci", 95), height=3.2,
                    facet_kws={"sharey": False})
    g.set_axis_labels("spec noise sd (accuracy points)", "percent")
    g.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(g.figure)


def _zoo_figure(path: Path) -> None:
    from zoo_profiles.plots import plot_front

    plot_front("mnist5k-cpu", path)
