"""Report of an attack-budget sweep (claims C1, C2): tables and a figure.

    python -m experiments.attack_report out/attack_budget
writes ``report.md`` and ``extraction_vs_budget.png`` beside ``results.parquet``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from experiments.analysis import markdown, paired_gap, read_results, report_main, table

LOAD = "param.tenants.0.arrivals.rate_rps"
BUDGET = "param.attacker.budget"


def load(out_dir: Path) -> pd.DataFrame:
    df = read_results(out_dir, [BUDGET, "strategy", "target_model", "surrogate.fidelity"],
                      "an attack sweep over attacker.strategy and attacker.budget "
                      "(e.g. experiments/attack_budget.yaml)")
    df["load_rps"] = df.get(LOAD, 0)
    df["budget"] = df[BUDGET]
    return df


def report(out_dir: Path) -> str:
    """The markdown report (also written to ``report.md``), and the figure."""
    df = load(out_dir)
    by = ["target_model", "load_rps", "budget"]
    means = table(df, [*by, "strategy"], ["surrogate.accuracy", "surrogate.fidelity",
                                          "fingerprint.trigger_consistency"])
    parts = ["## Surrogate accuracy and fidelity (%), mean ± 95 % t-interval over seeds",
             markdown(means)]
    for other, claim in (("oracle", "C1: fingerprint - oracle"),
                         ("naive", "C2: fingerprint - naive")):
        for metric in ("surrogate.accuracy", "surrogate.fidelity"):
            gap = paired_gap(df, by, "strategy", "fingerprint", other, metric)
            parts += [f"## {claim}, {metric.split('.')[1]} (points, paired by seed)",
                      markdown(gap)]
    fp = df[df["strategy"] == "fingerprint"]
    if len(fp):
        cost = table(fp, ["target_model", "load_rps"],
                     ["queries.fingerprint", "queries.requests.fingerprint",
                      "fingerprint.models_found", "fingerprint.identification_accuracy"])
        parts += ["## Fingerprinting cost", markdown(cost)]
    text = "\n\n".join(parts) + "\n"
    (out_dir / "report.md").write_text(text)
    plot(df, out_dir / "extraction_vs_budget.png")
    return text


def plot(df: pd.DataFrame, path: Path) -> None:
    """Surrogate accuracy and fidelity per strategy, one panel per target and load: lines over
    the budget, or (a study with a single budget, such as a quick run) points per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = df.melt(id_vars=["strategy", "target_model", "load_rps", "budget"],
                   value_vars=["surrogate.accuracy", "surrogate.fidelity"],
                   var_name="metric", value_name="percent")
    long["metric"] = long["metric"].str.replace("surrogate.", "", regex=False)
    long["panel"] = long["target_model"] + " @ " + long["load_rps"].astype(int).astype(str) + \
        " req/s"
    budgets = sorted(long["budget"].unique())
    common = {"data": long, "y": "percent", "col": "panel", "col_wrap": 3, "height": 3,
              "aspect": 1.2, "errorbar": ("ci", 95)}
    if len(budgets) > 1:
        g = sns.relplot(x="budget", hue="strategy", style="metric", kind="line", marker="o",
                        facet_kws={"sharey": False}, **common)
        title = "Extraction vs query budget (inputs sent in all)"
    else:
        g = sns.catplot(x="strategy", hue="metric", kind="point", dodge=0.3, sharey=False,
                        **common)
        title = f"Extraction at a budget of {int(budgets[0])} inputs sent in all"
    g.set_titles("{col_name}")
    g.figure.suptitle(f"{title} (mean, 95 % CI over seeds)", y=1.02)
    g.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(g.figure)


if __name__ == "__main__":
    sys.exit(report_main("python -m experiments.attack_report SWEEP_DIR",
                         lambda args: report(Path(args[0])), sys.argv[1:]))
