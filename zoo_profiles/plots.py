"""The zoo's accuracy/latency Pareto front as a figure (seaborn, PNG)."""

from __future__ import annotations

from pathlib import Path

from sim.output import make_dir
from sim.profiles import load_profile


def plot_front(name: str, output: Path) -> None:
    """Accuracy against batch-1 latency (log axis), the Pareto front as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    p = load_profile(name)
    front = {m.name for m in p.pareto_front}
    df = pd.DataFrame({"model": [m.name for m in p.models],
                       "latency_ms": [m.latency_ms[1].p50 for m in p.models],
                       "accuracy": [m.accuracy for m in p.models],
                       "Pareto front": [m.name in front for m in p.models]})
    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.scatterplot(data=df, x="latency_ms", y="accuracy", hue="Pareto front", s=60, ax=ax,
                    hue_order=[True, False], palette={True: "C1", False: "C0"})
    fr = df[df["Pareto front"]].sort_values("latency_ms")
    ax.plot(fr["latency_ms"], fr["accuracy"], drawstyle="steps-post", color="C1", lw=1.2,
            label="front")
    for m in p.models:
        ax.annotate(m.name, (m.latency_ms[1].p50, m.accuracy), fontsize=7, xytext=(4, -3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency p50 (ms, log scale)")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(f"{p.name} ({p.metadata.source}, {p.metadata.device or '?'})")
    fig.tight_layout()
    make_dir(output.parent)
    fig.savefig(output, dpi=120)
    plt.close(fig)
