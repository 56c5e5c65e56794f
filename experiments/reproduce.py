"""``zoosim reproduce``: the studies behind PSML's claims C1-C4 (PAPER.md), their figures and
``claims.md`` (claim | paper's figure | this run | holds or not, and why)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from experiments.claims import c1, c2, c3, c4, claims_markdown
from experiments.runner import run_study
from experiments.study import Study

HERE = Path(__file__).resolve().parent
STUDIES = ["attack_budget_1d", "attack_budget", "defense_attack", "defense_goodput",
           "defense_frontier_mnist5k"]


def reproduce(out: Path, *, quick: bool, backend: Literal["local", "dask"] = "local",
              workers: int | None = None, scheduler: str | None = None,
              progress: bool = True, study_dir: Path = HERE) -> Path:
    """Run (or resume) every study (``study_dir/<name>.yaml``) into ``out/<name>/``; write
    the figures and claims.md."""
    from experiments import attack_report, defense_report

    started = time.perf_counter()
    for name in STUDIES:
        study = Study(study_dir / f"{name}.yaml", quick=quick)
        if progress:
            print(f"{name}: {len(study.points)} runs")
        run_study(study, out / name, backend=backend, workers=workers, scheduler=scheduler,
                  resume=True, progress=progress)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name in ("attack_budget_1d", "attack_budget"):
        attack_report.report(out / name)
        (out / name / "extraction_vs_budget.png").replace(figures / f"{name}.png")
    defense_report.attack(out / "defense_attack")
    defense_report.goodput([out / "defense_goodput"])
    (out / "defense_goodput" / "goodput_vs_noise.png").replace(figures / "goodput_vs_noise.png")
    defense_report.frontier(out / "defense_frontier_mnist5k")
    (out / "defense_frontier_mnist5k" / "frontier.png").replace(figures / "frontier.png")
    _noise_figure(out / "defense_attack", figures / "attack_vs_noise.png")
    _zoo_figure(figures / "zoo_mnist5k.png")
    claims = [c1(out, ["attack_budget_1d", "attack_budget"]),
              c2(out, ["attack_budget_1d", "attack_budget"]),
              c3(out, "defense_attack"), c4(out, "defense_goodput", "defense_attack")]
    minutes = (time.perf_counter() - started) / 60
    text = (f"# PSML claims, reproduced ({'quick' if quick else 'full'} run, "
            f"{minutes:.1f} min)\n\n{claims_markdown(claims)}\n\nFigures: "
            + ", ".join(f"`figures/{p.name}`" for p in sorted(figures.glob("*.png")))
            + ". Per-study tables: `*/report.md`; raw results: `*/results.parquet`.\n")
    path = out / "claims.md"
    path.write_text(text)
    return path


def _noise_figure(study_dir: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    from experiments.defense_report import load

    df = load(study_dir)
    df["attacker"] = df["param.attacker.verify"].map({True: "adaptive", False: "paper"})
    long = df.melt(id_vars=["sd", "attacker"], value_vars=["surrogate.accuracy",
                                                           "surrogate.fidelity"],
                   var_name="metric", value_name="percent")
    g = sns.relplot(data=long, x="sd", y="percent", hue="attacker", col="metric", kind="line",
                    marker="o", errorbar=("ci", 95), height=3.2,
                    facet_kws={"sharey": False})
    g.set_axis_labels("spec noise sd (accuracy points)", "percent")
    g.savefig(path, dpi=110, bbox_inches="tight")


def _zoo_figure(path: Path) -> None:
    from zoo_profiles.plots import plot_front

    plot_front("mnist5k-cpu", path)
