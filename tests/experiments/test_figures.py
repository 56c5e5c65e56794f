"""Report figures draw into figures of their own and close them: the goodput figure was once
drawn into the attack figure left open before it (its x axis read "budget")."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments import attack_report, defense_report


def attack_frame(budgets: list[int]) -> pd.DataFrame:
    rows = [{"strategy": s, "target_model": "cnn_small", "load_rps": 2000, "budget": b,
             "surrogate.accuracy": 90.0 + seed, "surrogate.fidelity": 95.0 - seed}
            for s in ("oracle", "naive", "fingerprint") for b in budgets for seed in (1, 2, 3)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("budgets", [[1500, 3000], [2000]])
def test_the_attack_figure_reads_with_one_budget_or_several(tmp_path: Path,
                                                           budgets: list[int]) -> None:
    plt.close("all")
    attack_report.plot(attack_frame(budgets), tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0
    assert plt.get_fignums() == []   # closed: nothing later draws into it


def test_the_goodput_figure_does_not_draw_into_an_open_figure(tmp_path: Path) -> None:
    plt.close("all")
    left_open = plt.figure()
    left_open.gca().set_xlabel("budget")
    df = pd.DataFrame({"sd": [0.0, 1.0, 0.0, 1.0], "goodput": [0.9, 0.8, 0.91, 0.79],
                       "param.tenants.0.arrivals.rate_rps": [4000, 4000, 8000, 8000]})
    defense_report._plot_goodput(df, ["param.tenants.0.arrivals.rate_rps"], tmp_path / "g.png")
    assert plt.get_fignums() == [left_open.number]
    assert left_open.gca().get_xlabel() == "budget" and not left_open.gca().lines
    plt.close("all")


def test_report_tables_read_like_a_report() -> None:
    from experiments.analysis import markdown

    df = pd.DataFrame({"param.tenants.0.arrivals.rate_rps": [4000.0, 12000.0], "sd": [0.0, 0.5],
                       "goodput": [0.9, 0.8], "goodput±": [0.01, 0.02], "n": [3, 3]})
    text = markdown(df, 3)
    assert text.splitlines()[0] == "| load (req/s) | noise sd | goodput | n |"
    assert "| 4000 | 0.000 | 0.900 ± 0.010 | 3 |" in text and "4000.000" not in text


@pytest.mark.parametrize(("module", "args", "says"), [
    ("attack_report", [], "usage: python -m experiments.attack_report"),
    ("attack_report", ["{tmp}"], "no results.parquet"),
    ("attack_report", ["{tmp}/sweep"], "lack ['param.attacker.budget'"),
    ("defense_report", ["bogus", "{tmp}"], "usage: python -m experiments.defense_report"),
    ("defense_report", ["frontier", "{tmp}"], "no results.parquet"),
])
def test_report_scripts_fail_with_one_line(tmp_path: Path, module: str, args: list[str],
                                           says: str) -> None:
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    pd.DataFrame({"param.seed": [1], "strategy": ["fingerprint"]}).to_parquet(
        sweep / "results.parquet")
    r = subprocess.run([sys.executable, "-m", f"experiments.{module}",
                        *(a.format(tmp=tmp_path) for a in args)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
