"""Reports of the defense studies (claims C3 and C4, and the protection/goodput frontier).

    python -m experiments.defense_report goodput  out/defense_goodput [out/defense_goodput_azure]
    python -m experiments.defense_report attack   out/defense_attack_1d
    python -m experiments.defense_report frontier out/defense_frontier
    python -m experiments.defense_report whatif   out/whatif
    python -m experiments.defense_report c4       out/defense_frontier_c4
each writes ``report.md`` (and a figure) beside ``results.parquet``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.analysis import markdown, mean_ci, read_results, report_main, table
from experiments.frontier import label

DEF = "param.defense"
GOODPUT = "benign.goodput_answers"
"""The frontier's goodput: it also loses the benign answers an output defense changes."""


def noise(d: Any) -> float:
    return float(d.get("accuracy_sd") or 0.0) if isinstance(d, dict) else 0.0


def load(out_dir: Path) -> pd.DataFrame:
    df = read_results(out_dir, ["param.seed"], "a sweep of a defense study")
    if DEF in df:
        df["defense"] = df[DEF].map(label)
        df["sd"] = df[DEF].map(noise)
    else:  # the study varied only the noise level of the base scenario's defense
        df["sd"] = df.get(f"{DEF}.accuracy_sd", 0.0)
        df["defense"] = "gaussian(accuracy_sd=" + df["sd"].astype(str) + ")"
    return df


def _paired(df: pd.DataFrame, by: list[str], metric: str, base: pd.Series,
            ratio: bool = False) -> tuple[float, float]:
    """Mean and 95 % half-width of metric minus (or over) its baseline, paired by seed."""
    merged = df.set_index([*by, "param.seed"])[metric]
    ref = base.reindex(merged.index)
    vals = (merged / ref) if ratio else (merged - ref)
    return mean_ci(vals.to_numpy(dtype=float))


def goodput(dirs: list[Path]) -> str:
    parts = []
    for out_dir in dirs:
        df = load(out_dir)
        loads = "param.tenants.0.arrivals.rate_rps"
        by = [loads] if loads in df else []
        if by:
            df[loads] = df[loads].astype(int)
        df["latency_miss"] = 1 - df["slo_attainment.latency"]
        df["accuracy_miss"] = 1 - df["slo_attainment.accuracy"]
        base = df[df["sd"] == 0].set_index([*by, "param.seed"])["goodput"]
        rows = []
        for key, g in df.groupby([*by, "sd"]):
            row: dict[str, Any] = dict(zip([*by, "sd"], key if isinstance(key, tuple)
                                           else (key,), strict=True))
            for m in ("goodput", "latency_miss", "accuracy_miss"):
                row[m], row[f"{m}±"] = mean_ci(g[m].to_numpy())
            row["relative"], row["relative±"] = _paired(g, by, "goodput", base, ratio=True)
            rows.append(row)
        t = pd.DataFrame(rows)
        parts += [f"## Goodput vs spec noise ({out_dir.name}): mean ± 95 % t-interval; "
                  "relative = goodput / goodput without noise, paired by seed", markdown(t, 3)]
        ok = t[(t["goodput"] >= 0.8)]
        keys = ok.groupby(by)["sd"].max().to_dict() if by else {"all": ok["sd"].max()}
        parts.append("Largest noise sd (accuracy points) with goodput >= 0.80: " +
                     ", ".join(f"{k} req/s: {v:g}" if by else f"{v:g}" for k, v in keys.items()))
        _plot_goodput(df, by, out_dir / "goodput_vs_noise.png")
    text = "\n\n".join(parts) + "\n"
    (dirs[0] / "report.md").write_text(text)
    return text


def _plot_goodput(df: pd.DataFrame, by: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(data=df, x="sd", y="goodput", hue=by[0] if by else None, marker="o",
                 errorbar=("ci", 95), palette="viridis" if by else None, ax=ax)
    ax.axhline(0.8, color="grey", ls="--", lw=1)
    ax.set(xlabel="spec noise sd (accuracy points)", ylabel="benign goodput",
           title="Goodput vs spec noise (mean, 95 % CI over seeds)")
    if by:
        ax.legend(title="offered load (req/s)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def attack(out_dir: Path) -> str:
    df = load(out_dir)
    df["attacker"] = np.where(df["param.attacker.verify"], "adaptive", "paper")
    by = ["attacker"]
    means = table(df, [*by, "sd"], ["surrogate.fidelity", "surrogate.accuracy",
                                    "fingerprint.trigger_consistency", "queries.total",
                                    "fingerprint.models_found"])
    rows = []
    for (who, sd), g in df.groupby([*by, "sd"]):
        base = df[(df["sd"] == 0) & (df["attacker"] == who)]
        row: dict[str, Any] = {"attacker": who, "sd": sd}
        for m, ratio in (("surrogate.fidelity", False), ("surrogate.accuracy", False),
                         ("queries.total", True)):
            ref = base.set_index([*by, "param.seed"])[m]
            row[m], row[f"{m}±"] = _paired(g, by, m, ref, ratio=ratio)
        rows.append(row)
    gaps = pd.DataFrame(rows).rename(columns={
        "surrogate.fidelity": "fidelity change", "surrogate.fidelity±": "fidelity change±",
        "surrogate.accuracy": "accuracy change", "surrogate.accuracy±": "accuracy change±",
        "queries.total": "query factor", "queries.total±": "query factor±"})
    text = "\n\n".join([
        f"## Attack vs spec noise ({out_dir.name}): mean ± 95 % t-interval", markdown(means, 2),
        "## Change against no noise, paired by seed (points; query factor = queries / queries "
        "without noise)", markdown(gaps, 2)]) + "\n"
    (out_dir / "report.md").write_text(text)
    return text


def frontier(out_dir: Path) -> str:
    df = load(out_dir)
    base = df[df["defense"] == "none"].set_index("param.seed")
    rows = []
    for name, g in df.groupby("defense"):
        g = g.set_index("param.seed")
        prot = (base["surrogate.fidelity"] - g["surrogate.fidelity"]).to_numpy(dtype=float)
        cost = (1 - g[GOODPUT] / base[GOODPUT]).to_numpy(dtype=float)
        row: dict[str, Any] = {"defense": name, "family": str(name).split("(")[0]}
        row["protection"], row["protection±"] = mean_ci(prot)
        row["goodput cost"], row["goodput cost±"] = mean_ci(cost)
        row["fidelity"], row["fidelity±"] = mean_ci(g["surrogate.fidelity"].to_numpy())
        row["goodput"], row["goodput±"] = mean_ci(g[GOODPUT].to_numpy(dtype=float))
        row["no answer kept"] = f"{int((g['extraction.kept_inputs'] == 0).sum())}/{len(g)}"
        rows.append(row)
    t = pd.DataFrame(rows).sort_values(["family", "protection"])
    text = ("## Protection (fidelity drop, points) and goodput cost (share of benign goodput "
            "lost, judged on the answers: goodput_answers), paired by seed, mean ± 95 % "
            "t-interval\n\nno answer kept: runs whose attacker spent its whole budget "
            "fingerprinting (scored with its untrained surrogate).\n\n" + markdown(t, 3) + "\n")
    (out_dir / "report.md").write_text(text)
    _plot_frontier(t, out_dir / "frontier.png")
    return text


def _plot_frontier(t: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7.5, 5))
    sns.scatterplot(data=t, x="goodput cost", y="protection", hue="family", s=70, ax=ax)
    ax.errorbar(t["goodput cost"], t["protection"], xerr=t["goodput cost±"],
                yerr=t["protection±"], fmt="none", ecolor="grey", alpha=0.5, lw=1)
    for _, r in t.iterrows():
        ax.annotate(r["defense"], (r["goodput cost"], r["protection"]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="goodput cost (share of benign goodput lost, answers judged)",
           ylabel="protection (surrogate fidelity drop, points)",
           title="Protection vs goodput cost of every defense (95 % CI)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def c4(out_dir: Path) -> str:
    """The C4 frontier (:mod:`experiments.frontier`): every configuration at both loads, what
    keeps each from C4, and the figure."""
    from experiments import verdicts as v
    from experiments.frontier import by_defense, frontier_rows, select_c4

    rows = frontier_rows(read_results(out_dir, ["param.seed"], "the C4 frontier study"))
    table_rows = []
    for r in rows:
        c = r.cell
        short = v.c4_shortfalls(c)
        table_rows.append({
            "defense": r.defense, "load (req/s)": f"{r.load:g}",
            "goodput (relative)": c.goodput.text(3, sign=False),
            "aim": c.aim.text(2, sign=False),
            "fidelity change": r.fidelity_change.text(2),
            "accuracy change": r.accuracy_change.text(2),
            "multiplier": c.multiplier.text(2, sign=False) + "x"
            + (f" ({r.unfinished} unfinished)" if r.unfinished else ""),
            "C4 here": "yes" if not short else "; ".join(short)})
    groups = by_defense(rows)
    holding, closest = select_c4(groups)
    verdict = (f"C4 holds at every load for: {', '.join(holding)}." if holding else
               f"C4 holds for no configuration; closest: {closest} (the worst of its bounds "
               f"over loads and criteria is {v.c4_closeness([r.cell for r in groups[closest]]):.2f}"
               " of its threshold).")
    text = ("## The C4 frontier: mean ± 95 % t-interval over seeds; goodput relative to the "
            "undefended run of the same seed and load; aim, fidelity and accuracy change: the "
            "paper's attacker at equal total budget; multiplier: the adaptive attacker's inputs "
            "over its undefended run's\n\n"
            + markdown(pd.DataFrame(table_rows)) + f"\n\n{verdict}\n")
    (out_dir / "report.md").write_text(text)
    _plot_c4(rows, out_dir / "frontier_c4.png")
    return text


def _plot_c4(rows: list[Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments import verdicts as v

    loads = sorted({r.load for r in rows})
    fig, axes = plt.subplots(2, len(loads), figsize=(6 * len(loads), 8.5), squeeze=False)
    for j, load in enumerate(loads):
        at = [r for r in rows if r.load == load]
        for i, (figure, name, line) in enumerate((
                ("aim", "paper attacker's aim (share on target)", v.C4_AIM),
                ("multiplier", "adaptive attacker's query multiplier", v.C4_MULTIPLIER))):
            ax = axes[i][j]
            for r in at:
                y, x = getattr(r.cell, figure), r.cell.goodput
                ax.errorbar(x.mean, y.mean, xerr=x.half, yerr=y.half, fmt="o", ms=4,
                            capsize=2, lw=1)
                ax.annotate(r.defense, (x.mean, y.mean), fontsize=5.5, xytext=(3, 3),
                            textcoords="offset points")
            ax.axvline(v.C4_GOODPUT, color="grey", ls="--", lw=1)
            ax.axhline(line, color="grey", ls="--", lw=1)
            if i == 1:
                ax.set_yscale("log")
            ax.set(xlabel="benign goodput (relative to undefended)", ylabel=name,
                   title=f"{load:g} benign req/s")
    fig.suptitle("C4 frontier: every defense, 95 % CI over seeds (C4 region: right of the "
                 "dashed line, below it on aim, above it on multiplier)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def whatif(out_dir: Path) -> str:
    """Heatmaps of benign goodput and attack fidelity over noise level x load scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = load(out_dir)
    scale = "param.tenants.0.arrivals.scale"
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    parts = []
    for ax, (metric, title) in zip(axes, (("benign.goodput", "benign goodput"),
                                          ("surrogate.fidelity", "attack fidelity (%)"),
                                          ("fingerprint.trigger_consistency",
                                           "queries reaching the target")), strict=True):
        grid = df.pivot_table(index=scale, columns="sd", values=metric, aggfunc="mean")
        sns.heatmap(grid, annot=True, fmt=".2f" if "fidelity" not in metric else ".1f",
                    cmap="viridis", ax=ax, cbar=False)
        ax.set(title=title, xlabel="spec noise sd (accuracy points)", ylabel="trace rate x")
        parts += [f"## {title} (mean over seeds)",
                  markdown(grid.reset_index().rename(columns=str), 3)]
    fig.tight_layout()
    fig.savefig(out_dir / "whatif.png", dpi=110)
    plt.close(fig)
    text = "\n\n".join(parts) + "\n"
    (out_dir / "report.md").write_text(text)
    return text


def _run(args: list[str]) -> str:
    from sim.errors import UserError

    kinds: dict[str, Callable[[list[Path]], str]] = {
        "goodput": goodput, "attack": lambda d: attack(d[0]),
        "frontier": lambda d: frontier(d[0]), "whatif": lambda d: whatif(d[0]),
        "c4": lambda d: c4(d[0])}
    kind, *paths = args
    if kind not in kinds or not paths:
        raise UserError(f"usage: {USAGE}")
    return str(kinds[kind]([Path(p) for p in paths]))


USAGE = "python -m experiments.defense_report goodput|attack|frontier|whatif|c4 SWEEP_DIR..."

if __name__ == "__main__":
    sys.exit(report_main(USAGE, _run, sys.argv[1:]))
