"""``zoosim report``: the kind of sweep is read from its results and the right report runs;
a missing folder or a sweep no report reads exits 2 with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from experiments import attack_report, defense_report
from sim.cli import main

SEEDS = (1, 2, 3)


def gaussian(sd: float) -> dict[str, Any]:
    return {"type": "gaussian", "accuracy_sd": sd}


def attack_sweep() -> pd.DataFrame:
    return pd.DataFrame([
        {"param.attacker.strategy": s, "param.attacker.budget": b, "param.seed": seed,
         "strategy": s, "target_model": "cnn_small", "surrogate.accuracy": 90.0 + seed,
         "surrogate.fidelity": 95.0 - seed, "fingerprint.trigger_consistency": 0.9,
         "queries.fingerprint": 1400, "queries.requests.fingerprint": 140,
         "fingerprint.models_found": 7, "fingerprint.identification_accuracy": 1.0}
        for s in ("oracle", "naive", "fingerprint") for b in (1500, 3000) for seed in SEEDS])


SWEEPS: dict[str, pd.DataFrame] = {
    "attack": attack_sweep(),
    "goodput": pd.DataFrame({"param.defense": [gaussian(sd) for sd in (0.0, 1.0)],
                             "param.seed": [1, 1], "goodput": [0.9, 0.8]}),
    "defense attack": pd.DataFrame({"param.defense": [gaussian(0.0), gaussian(1.0)],
                                    "param.attacker.verify": [False, True],
                                    "param.attacker.budget": [3000, 1500],
                                    "param.seed": [1, 1], "surrogate.fidelity": [90.0, 80.0]}),
    "frontier": pd.DataFrame({"param.defense": [{"type": "none"}, {"type": "top1"}],
                              "param.seed": [1, 1], "surrogate.fidelity": [90.0, 80.0]}),
    "whatif": pd.DataFrame({"param.defense.accuracy_sd": [0.0, 1.0],
                            "param.tenants.0.arrivals.scale": [20, 40],
                            "param.seed": [1, 1], "surrogate.fidelity": [90.0, 80.0]}),
}
FOREIGN: dict[str, pd.DataFrame] = {
    "fingerprint cost": pd.DataFrame({"param.zoo.profile": ["mnist1d-cpu"],
                                      "param.attacker.outputs": ["labels"], "param.seed": [1],
                                      "surrogate.fidelity": [float("nan")]}),
    "dp selection": pd.DataFrame({"param.defense": [{"type": "exponential", "eps": 1.0}],
                                  "param.seed": [1], "goodput": [0.3]}),
    "plain simulate": pd.DataFrame({"param.tenants.0.arrivals.rate_rps": [100],
                                    "param.seed": [1], "goodput": [0.9]}),
}


def sweep_dir(tmp_path: Path, df: pd.DataFrame, name: str = "sweep") -> Path:
    out = tmp_path / name
    out.mkdir()
    df.to_parquet(out / "results.parquet")
    return out


@pytest.fixture
def called(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Path]]]:
    """The reports replaced by recorders: which ran, on which folders."""
    calls: list[tuple[str, list[Path]]] = []

    def recorder(name: str, many: bool = False) -> Any:
        def run(arg: Any) -> str:
            calls.append((name, list(arg) if many else [arg]))
            return f"{name} report\n"
        return run

    monkeypatch.setattr(attack_report, "report", recorder("attack"))
    monkeypatch.setattr(defense_report, "goodput", recorder("goodput", many=True))
    monkeypatch.setattr(defense_report, "attack", recorder("defense attack"))
    monkeypatch.setattr(defense_report, "frontier", recorder("frontier"))
    monkeypatch.setattr(defense_report, "whatif", recorder("whatif"))
    return calls


def report(*args: object) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["report", *map(str, args)])
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize("kind", list(SWEEPS))
def test_the_report_is_chosen_from_the_results(tmp_path: Path, kind: str,
                                               called: list[tuple[str, list[Path]]]) -> None:
    out = sweep_dir(tmp_path, SWEEPS[kind])
    code, stdout, stderr = report(out)
    assert code == 0, stderr
    assert called == [(kind, [out])] and stdout == f"{kind} report\n"


@pytest.mark.parametrize(("kind", "sweep"), [("attack", "attack"), ("defense", "frontier"),
                                             ("defense", "whatif")])
def test_a_named_kind_runs_its_report(tmp_path: Path, kind: str, sweep: str,
                                      called: list[tuple[str, list[Path]]]) -> None:
    out = sweep_dir(tmp_path, SWEEPS[sweep])
    code, _, stderr = report(kind, out)
    assert code == 0, stderr
    assert called == [(sweep, [out])]


def test_goodput_sweeps_side_by_side(tmp_path: Path,
                                     called: list[tuple[str, list[Path]]]) -> None:
    a = sweep_dir(tmp_path, SWEEPS["goodput"], "a")
    b = sweep_dir(tmp_path, SWEEPS["goodput"], "b")
    code, _, stderr = report(a, b)
    assert code == 0, stderr
    assert called == [("goodput", [a, b])]


def one_line_error(code: int, stderr: str, *says: str) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for s in says:
        assert s in lines[0], lines[0]


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_results_no_report_reads_exit_2(tmp_path: Path, kind: str,
                                        called: list[tuple[str, list[Path]]]) -> None:
    out = sweep_dir(tmp_path, FOREIGN[kind])
    one_line_error(*report(out)[::2], str(out), "no report reads")
    assert called == []


def test_a_missing_folder_exits_2(tmp_path: Path) -> None:
    one_line_error(*report(tmp_path / "nowhere")[::2], "nowhere: no such folder")


def test_a_folder_without_results_exits_2(tmp_path: Path) -> None:
    one_line_error(*report(tmp_path)[::2], "no results.parquet")


def test_a_named_kind_that_does_not_fit_exits_2(tmp_path: Path) -> None:
    goodput = sweep_dir(tmp_path, SWEEPS["goodput"], "goodput")
    one_line_error(*report("attack", goodput)[::2], "lack ['param.attacker.budget'")
    attack = sweep_dir(tmp_path, SWEEPS["attack"], "attack")
    one_line_error(*report("defense", attack)[::2], "vary no defense")


def test_several_folders_only_for_goodput(tmp_path: Path,
                                          called: list[tuple[str, list[Path]]]) -> None:
    a = sweep_dir(tmp_path, SWEEPS["attack"], "a")
    b = sweep_dir(tmp_path, SWEEPS["goodput"], "b")
    one_line_error(*report(a, b)[::2], "goodput report only")
    one_line_error(*report(b, a)[::2], "not a sweep of the same kind")
    assert called == []


def test_the_attack_report_is_written(tmp_path: Path) -> None:
    """End to end, with the real report: report.md and its figure beside the results."""
    out = sweep_dir(tmp_path, SWEEPS["attack"])
    code, stdout, stderr = report(out)
    assert code == 0, stderr
    assert stdout.startswith("## Surrogate accuracy and fidelity")
    assert (out / "report.md").read_text() == stdout
    assert (out / "extraction_vs_budget.png").stat().st_size > 0
