"""The claim verdicts flip where their rules say: synthetic results on both sides of every
threshold (experiments.verdicts for the rules, experiments.claims for the data behind them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from experiments import claims, verdicts
from experiments.verdicts import Interval

SEEDS = (1, 2, 3)


def iv(mean: float, half: float, n: int = 3) -> Interval:
    return Interval(mean, half, n)


def spread(mean: float, sd: float = 0.1) -> list[float]:
    """Three values with this mean (and a small, fixed spread)."""
    return [mean - sd, mean, mean + sd]


# -- the rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("acc", "fid", "holds"), [
    (iv(0.2, 0.5), iv(-0.3, 0.6), True),
    (iv(0.0, 1.0), iv(0.0, 1.0), True),          # the edge of the tolerance is inside
    (iv(0.6, 0.5), iv(0.0, 0.1), False),         # mean inside, interval out
    (iv(0.0, 0.1), iv(-1.2, 0.1), False),        # fidelity alone is enough to fail
    (iv(0.0, 0.0, n=1), iv(0.0, 0.0, n=1), False),  # one seed is not an interval
])
def test_c1_needs_both_gaps_within_one_point_interval_included(acc: Interval, fid: Interval,
                                                              holds: bool) -> None:
    assert verdicts.c1_within(acc, fid) is holds


@pytest.mark.parametrize(("acc", "fid", "holds"), [
    (iv(3.0, 1.0), iv(2.0, 1.5), True),
    (iv(3.0, 1.0), iv(2.0, 2.5), False),         # fidelity's interval reaches 0
    (iv(-1.0, 0.5), iv(8.0, 1.0), False),        # accuracy the other way
    (iv(0.5, 0.4), iv(0.5, 0.4), True),
])
def test_c2_needs_a_significant_gain_on_accuracy_and_fidelity(acc: Interval, fid: Interval,
                                                             holds: bool) -> None:
    assert verdicts.c2_holds(acc, fid) is holds


@pytest.mark.parametrize(("acc", "fid", "holds"), [
    (iv(-3.0, 1.0), iv(-2.0, 1.5), True),
    (iv(-3.0, 1.0), iv(-1.0, 1.5), False),
    (iv(-3.0, 4.0), iv(-2.0, 1.0), False),
])
def test_c3_needs_a_significant_drop_on_both(acc: Interval, fid: Interval, holds: bool) -> None:
    assert verdicts.c3_holds(acc, fid) is holds


@pytest.mark.parametrize(("x", "paper", "grade"), [
    (iv(15.0, 5.0), 14.6, "as large"),      # the mean reaches the paper's figure
    (iv(10.0, 5.0), 14.6, "smaller"),       # the interval reaches it, the mean does not
    (iv(5.0, 2.0), 14.6, "smaller"),
    (iv(5.0, 6.0), 14.6, "none"),
    (iv(-6.0, 2.0), -4.8, "as large"),
    (iv(-4.0, 1.0), -4.8, "smaller"),
    (iv(-2.0, 1.0), -4.8, "smaller"),
    (iv(-2.0, 3.0), -4.8, "none"),
])
def test_strength_against_the_papers_figure(x: Interval, paper: float, grade: str) -> None:
    assert verdicts.strength(x, paper) == grade


# -- the claims from synthetic results -------------------------------------------------------
def attack_frame(gaps: dict[str, dict[str, float]], other: str) -> pd.DataFrame:
    """Results of an attack study with two cells (targets a and b); ``gaps[target]`` gives
    fingerprint's mean gap over ``other`` per metric."""
    rows = []
    for target, gap in gaps.items():
        for seed, jitter in zip(SEEDS, (-0.1, 0.0, 0.1), strict=True):
            for strategy in ("fingerprint", other):
                lift = 0.0 if strategy == other else 1.0
                rows.append({
                    "param.attacker.strategy": strategy, "param.attacker.target": target,
                    "param.attacker.budget": 2000, "param.seed": seed,
                    "param.tenants.0.arrivals.rate_rps": 1000, "target_model": target,
                    "surrogate.accuracy": 80 + lift * (gap["accuracy"] + jitter),
                    "surrogate.fidelity": 80 + lift * (gap["fidelity"] + jitter),
                    "queries.fingerprint": 1300 * lift, "queries.extraction": 700.0,
                    "fingerprint.trigger_consistency": 1.0})
    return pd.DataFrame(rows)


class Recorder:
    """A confirm callback that replays given results and records what it was asked."""

    def __init__(self, results: pd.DataFrame) -> None:
        self.results = results
        self.asked: list[tuple[str, str, dict[str, Any], dict[str, list[Any]]]] = []

    def __call__(self, claim: str, study: str, fixed: dict[str, Any],
                 vary: dict[str, list[Any]]) -> pd.DataFrame:
        self.asked.append((claim, study, fixed, vary))
        return self.results


@pytest.mark.parametrize(("confirmed_gap", "holds"), [(0.2, True), (3.0, False)])
def test_c1_confirms_its_worst_cell_and_reads_the_fresh_seeds(confirmed_gap: float,
                                                              holds: bool) -> None:
    selection = attack_frame({"a": {"accuracy": 0.1, "fidelity": 0.2},
                              "b": {"accuracy": 0.3, "fidelity": 2.5}}, "oracle")
    fresh = attack_frame({"b": {"accuracy": confirmed_gap, "fidelity": confirmed_gap}},
                         "oracle")
    confirm = Recorder(fresh)
    verdict = claims.c1({"study": selection}, confirm)
    (claim, study, fixed, vary), = confirm.asked
    assert (claim, study) == ("C1", "study") and fixed["attacker.target"] == "b"
    assert vary == {"attacker.strategy": ["fingerprint", "oracle"]}
    assert verdict.holds is holds
    assert verdict.figures["selected"]["fidelity"]["mean"] == pytest.approx(2.5)


@pytest.mark.parametrize(("confirmed", "holds"), [(6.0, True), (0.0, False)])
def test_c2_picks_its_best_cell_on_one_set_of_seeds_and_judges_fresh_ones(
        confirmed: float, holds: bool) -> None:
    selection = attack_frame({"a": {"accuracy": 9.0, "fidelity": 12.0},
                              "b": {"accuracy": -3.0, "fidelity": 20.0}}, "naive")
    confirm = Recorder(attack_frame({"a": {"accuracy": confirmed, "fidelity": confirmed}},
                                    "naive"))
    verdict = claims.c2({"study": selection}, confirm)
    assert confirm.asked[0][2]["attacker.target"] == "a"   # best on both metrics, not on one
    assert verdict.holds is holds
    assert verdict.strength == ("accuracy smaller, fidelity smaller" if holds
                                else "accuracy none, fidelity none")


def noise_frame(levels: dict[float, dict[str, float]]) -> pd.DataFrame:
    """A defense_attack-like study: the paper attacker at each noise level (fidelity,
    accuracy, aim, benign goodput per level), plus the adaptive attacker."""
    rows = []
    for sd, m in levels.items():
        for seed, j in zip(SEEDS, (-0.1, 0.0, 0.1), strict=True):
            jitter = j if sd == 0 else -3 * j   # paired differences spread by 4 j
            for verify in (False, True):
                rows.append({
                    "param.defense": {"type": "gaussian", "accuracy_sd": sd},
                    "param.attacker.verify": verify, "param.attacker.budget": 3000,
                    "param.seed": seed, "sd": sd, "target_model": "cnn_small",
                    "surrogate.fidelity": m["fidelity"] + jitter,
                    "surrogate.accuracy": m["accuracy"] + jitter,
                    "fingerprint.trigger_consistency": m["aim"] + jitter / 10,
                    "benign.goodput": m["goodput"] + jitter / 100,
                    "benign.slo_attainment.accuracy": m["goodput"],
                    "queries.total": 3000.0 * (1 + sd)})
    return pd.DataFrame(rows)


CLEAN = {"fidelity": 95.0, "accuracy": 90.0, "aim": 1.0, "goodput": 0.9}


@pytest.mark.parametrize(("drop", "aim", "holds", "grade"), [
    (6.0, 0.2, True, "accuracy smaller, fidelity as large"),   # -6 vs the paper's -9.8/-4.8
    (0.05, 0.2, False, "only the aim"),
    (0.05, 1.0, False, "not significant"),
])
def test_c3_reads_the_largest_noise_level(drop: float, aim: float, holds: bool,
                                          grade: str) -> None:
    df = noise_frame({0.0: CLEAN, 1.0: CLEAN, 4.0: {**CLEAN, "aim": aim,
                                                   "fidelity": 95.0 - drop,
                                                   "accuracy": 90.0 - drop}})
    verdict = claims.c3(df, "defense_attack")
    assert verdict.holds is holds and verdict.strength == grade
    assert verdict.figures["sd"] == 4.0
    assert verdict.figures["adaptive_query_factor"]["mean"] == pytest.approx(5.0)


def test_missing_cells_are_reported() -> None:
    df = attack_frame({"a": {"accuracy": 0.1, "fidelity": 0.1}}, "oracle")
    df.loc[(df["param.attacker.strategy"] == "fingerprint") & (df["param.seed"] == 2),
           ["surrogate.accuracy", "surrogate.fidelity"]] = np.nan
    verdict = claims.c1({"study": df}, Recorder(df))
    assert verdict.missing and "1 of 3 seeds" in verdict.missing[0]
    assert "Missing:" in verdict.row()


def test_attacks_out_of_budget_are_scored_and_reported() -> None:
    df = attack_frame({"a": {"accuracy": -60.0, "fidelity": -70.0}}, "oracle")
    starved = (df["param.attacker.strategy"] == "fingerprint") & (df["param.seed"] == 2)
    df["extraction.kept_inputs"] = np.where(starved, 0, 700)
    verdict = claims.c1({"study": df}, Recorder(df))
    assert not verdict.holds and not verdict.missing
    assert verdict.out_of_budget == ["a, at 1000 req/s, budget 2000 (study): 1 of 3 runs"]
    assert "Out of budget before extracting" in verdict.row()


@pytest.mark.parametrize(("large_gap", "holds"), [(0.1, True), (2.0, False)])
def test_c1_is_judged_at_each_studys_largest_budget(large_gap: float, holds: bool) -> None:
    """Fingerprinting's fixed cost sinks it at a small budget: reported, not the verdict."""
    small = attack_frame({"a": {"accuracy": -20.0, "fidelity": -20.0}}, "oracle")
    large = attack_frame({"a": {"accuracy": large_gap, "fidelity": large_gap}}, "oracle")
    large["param.attacker.budget"] = 4000
    confirm = Recorder(large)
    verdict = claims.c1({"study": pd.concat([small, large])}, confirm)
    assert confirm.asked[0][2]["attacker.budget"] == 4000
    assert verdict.holds is holds
    assert "study at 2000: -20.00 ± 0.25 fidelity" in verdict.ours


def test_a_single_seed_shows_no_interval() -> None:
    assert Interval(-5.9, 0.0, 1).text() == "-5.90 (1 seed)"
    assert Interval(-5.9, 1.25, 3).text() == "-5.90 ± 1.25"
    assert not Interval(-5.9, 0.0, 1).known


# -- C4 on the frontier (issue 15's rule) ------------------------------------------------------
GOOD = verdicts.FrontierCell(goodput=iv(0.85, 0.02), aim=iv(0.30, 0.10), multiplier=iv(3.0, 0.5))


def cell(**changes: Interval) -> verdicts.FrontierCell:
    return verdicts.FrontierCell(**{"goodput": GOOD.goodput, "aim": GOOD.aim,
                                    "multiplier": GOOD.multiplier, **changes})


@pytest.mark.parametrize(("changed", "holds"), [
    ({}, True),
    ({"goodput": iv(0.80, 0.0)}, True),           # the edges are inside
    ({"aim": iv(0.50, 0.0)}, True),
    ({"multiplier": iv(2.0, 0.0)}, True),
    ({"goodput": iv(0.81, 0.02)}, False),         # mean above 0.80, interval below
    ({"aim": iv(0.45, 0.10)}, False),             # mean below 0.5, interval above
    ({"multiplier": iv(2.2, 0.3)}, False),        # mean above 2x, interval below
    ({"goodput": iv(0.9, 0.0, n=1)}, False),      # one seed is not an interval
])
def test_c4_frontier_needs_all_three_at_one_load(changed: dict[str, Interval],
                                                 holds: bool) -> None:
    c = cell(**changed)
    assert verdicts.c4_frontier_holds([c]) is holds
    assert (not verdicts.c4_shortfalls(c)) is holds


def test_c4_frontier_needs_every_load_and_names_the_closest() -> None:
    miss = cell(aim=iv(0.6, 0.05))
    assert not verdicts.c4_frontier_holds([GOOD, miss])
    assert verdicts.c4_frontier_holds([GOOD, GOOD])
    assert not verdicts.c4_frontier_holds([])
    assert verdicts.c4_shortfalls(miss) == ["aim 0.60 ± 0.05 > 0.50"]
    near = cell(multiplier=iv(1.9, 0.0))
    far = cell(goodput=iv(0.5, 0.05))
    assert verdicts.c4_closeness([GOOD, near]) > verdicts.c4_closeness([GOOD, far])
    assert verdicts.c4_closeness([GOOD]) >= 1.0 > verdicts.c4_closeness([near])


# -- C4 from a frontier study (experiments.frontier, claims.c4) ---------------------------------
NONE_BLOCK = {"type": "none"}
STRONG = {"type": "one_sided", "accuracy_sd": 4.0}
WEAK = {"type": "top1"}
LOAD_COL = "param.tenants.0.arrivals.rate_rps"
CLEAN_RUN = {"goodput": 0.9, "aim": 1.0, "fidelity": 95.0, "sent": 1500.0}


def frontier_frame(cells: dict[str, dict[float, dict[str, float]]]) -> pd.DataFrame:
    """A frontier study's results: per configuration (by label) and load, the figures of the
    paper attacker's run (goodput, aim, fidelity) and the adaptive one's inputs sent."""
    blocks = {"none": NONE_BLOCK, "one_sided(accuracy_sd=4)": STRONG, "top1": WEAK}
    rows = []
    for name, by_load in cells.items():
        for load, m in by_load.items():
            for seed, j in zip(SEEDS, (-1.0, 0.0, 1.0), strict=True):
                for verify in (False, True):
                    rows.append({
                        "param.defense": blocks[name], "param.seed": seed,
                        "param.tenants.0.arrivals.rate_rps": load,
                        "param.attacker.verify": verify,
                        "param.attacker.budget": 1500 if verify else 3000,
                        "benign.goodput_answers": m["goodput"] * (1 + j / 100),
                        "fingerprint.trigger_consistency": m["aim"],
                        "surrogate.fidelity": m["fidelity"] + j,
                        "surrogate.accuracy": m["fidelity"] - 5 + j,
                        "queries.total": m["sent"] * (1 + j / 50) if verify else 3000.0,
                        "extraction.kept_inputs": 1500 if verify else 2800})
    return pd.DataFrame(rows)


def strong_at(goodput: float, aim: float, sent: float) -> dict[str, float]:
    return {"goodput": goodput * 0.9, "aim": aim, "fidelity": 90.0, "sent": sent}


def two_loads(run: dict[str, float]) -> dict[float, dict[str, float]]:
    return {2000.0: run, 8000.0: run}


def test_frontier_rows_pair_runs_by_seed_and_score_a_mapping_only_attack_as_aim_0() -> None:
    from experiments.frontier import frontier_rows

    df = frontier_frame({"none": two_loads(CLEAN_RUN),
                         "one_sided(accuracy_sd=4)": two_loads(strong_at(0.9, 0.3, 4500.0))})
    mapping_only = (df["param.defense"].map(str) == str(STRONG)) & ~df["param.attacker.verify"]
    df.loc[mapping_only & (df["param.seed"] == 1), "fingerprint.trigger_consistency"] = np.nan
    df.loc[(df["param.defense"].map(str) == str(STRONG)) & df["param.attacker.verify"]
           & (df["param.seed"] == 3), "extraction.kept_inputs"] = 1200
    rows = {(r.defense, r.load): r for r in frontier_rows(df)}
    r = rows[("one_sided(accuracy_sd=4)", 2000.0)]
    assert r.cell.goodput.mean == pytest.approx(0.9)
    assert r.cell.aim.mean == pytest.approx(0.2)             # (0 + 0.3 + 0.3) / 3
    assert r.cell.multiplier.mean == pytest.approx(3.0)
    assert r.fidelity_change.mean == pytest.approx(-5.0)
    assert r.unfinished == 1 and r.runs == 3 and r.missing == 0


@pytest.mark.parametrize(("fresh", "holds"), [
    (strong_at(0.9, 0.3, 4500.0), True),
    (strong_at(0.75, 0.3, 4500.0), False),    # goodput falls below 0.80 on fresh seeds
    (strong_at(0.9, 0.6, 4500.0), False),     # the paper attacker reaches the target
    (strong_at(0.9, 0.3, 2500.0), False),     # the adaptive attacker pays less than 2x
])
def test_c4_selects_a_holding_configuration_and_reads_fresh_seeds(
        fresh: dict[str, float], holds: bool) -> None:
    study = frontier_frame({"none": two_loads(CLEAN_RUN),
                            "one_sided(accuracy_sd=4)": two_loads(strong_at(0.9, 0.3, 4500.0)),
                            "top1": two_loads({**CLEAN_RUN, "sent": 1600.0})})
    confirm = Recorder(frontier_frame({"none": two_loads(CLEAN_RUN),
                                       "one_sided(accuracy_sd=4)": two_loads(fresh)}))
    verdict = claims.c4(study, "frontier", confirm)
    (_, _, fixed, vary), = confirm.asked
    assert fixed == {} and vary["defense"] == [NONE_BLOCK, STRONG]
    assert vary["tenants.0.arrivals.rate_rps"] == [2000.0, 8000.0]
    assert verdict.figures["holding"] == ["one_sided(accuracy_sd=4)"]
    assert verdict.holds is holds
    assert ("1 of 2 defense configurations meet the rule" in verdict.ours)
    if not holds:
        assert "does not hold on fresh seeds" in verdict.why


def test_c4_without_a_holding_configuration_names_the_closest() -> None:
    study = frontier_frame({"none": two_loads(CLEAN_RUN),
                            "one_sided(accuracy_sd=4)": {2000.0: strong_at(0.9, 0.3, 4500.0),
                                                         8000.0: strong_at(0.5, 0.3, 4500.0)},
                            "top1": two_loads({**CLEAN_RUN, "sent": 1600.0})})
    confirm = Recorder(study)
    verdict = claims.c4(study, "frontier", confirm)
    assert not verdict.holds and verdict.figures["holding"] == []
    assert "none does; closest: one_sided(accuracy_sd=4)" in verdict.ours
    assert "No configuration meets the rule" in verdict.why and "8000 req/s" in verdict.why


def test_a_defense_that_stops_the_adaptive_attacker_passes_the_multiplier() -> None:
    from experiments.frontier import frontier_rows

    df = frontier_frame({"none": two_loads(CLEAN_RUN),
                         "one_sided(accuracy_sd=4)": two_loads(strong_at(0.9, 0.3, 900.0))})
    adaptive_strong = (df["param.defense"].map(str) == str(STRONG)) & df["param.attacker.verify"]
    df.loc[adaptive_strong, "extraction.kept_inputs"] = 0      # stopped: no answer kept
    rows = {(r.defense, r.load): r for r in frontier_rows(df)}
    r = rows[("one_sided(accuracy_sd=4)", 2000.0)]
    assert r.unfinished == 3 and r.cell.multiplier.mean == float("inf")
    assert r.cell.multiplier.known and r.cell.multiplier.text() == "inf"
    assert not verdicts.c4_shortfalls(r.cell)
    df.loc[adaptive_strong & (df["param.seed"] == 1), "extraction.kept_inputs"] = 1500
    df.loc[adaptive_strong & (df["param.seed"] == 2), "extraction.kept_inputs"] = 1500
    r = {(x.defense, x.load): x for x in frontier_rows(df)}[("one_sided(accuracy_sd=4)", 2000.0)]
    assert r.unfinished == 1 and r.cell.multiplier.n == 3   # the stopped run: a lower bound
    assert r.cell.multiplier.mean < 1.0 and verdicts.c4_shortfalls(r.cell)


def test_runs_without_an_undefended_pair_are_reported_missing() -> None:
    study = frontier_frame({"none": two_loads(CLEAN_RUN),
                            "one_sided(accuracy_sd=4)": two_loads(strong_at(0.9, 0.3, 4500.0))})
    study = study[~((study["param.defense"].map(str) == str(NONE_BLOCK))
                    & (study["param.seed"] == 3) & (study[LOAD_COL] == 8000.0))]
    verdict = claims.c4(study, "frontier", Recorder(study))
    assert "one_sided(accuracy_sd=4) at 8000 req/s: 2 runs" in verdict.missing
