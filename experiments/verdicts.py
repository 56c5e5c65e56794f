"""The rules that judge PSML's claims C1-C4 (docs/claims.md; docs/paper.md's table), fixed before
any data is seen and kept apart from the data plumbing so tests can feed them synthetic figures
on both sides of every threshold.

Every figure is a mean over seeds with its 95 % Student-t half-width (:class:`Interval`); a
claim holds only when the whole interval says so:

- **C1** (fingerprinting as good as the single named model): the fingerprint - oracle gap lies
  within +-1 point on accuracy *and* fidelity, interval included (``|mean| + half <= 1``), in
  every cell at each study's largest budget (fingerprinting is a fixed cost paid from the
  budget, so the claim can only hold where the budget dwarfs it; smaller budgets are
  reported beside the verdict).
- **C2** (fingerprinting beats the naive attack): the fingerprint - naive gap is positive with
  its interval above 0 on accuracy *and* on fidelity.
- **C3** (spec noise thwarts fingerprinting; medium target): the change of accuracy *and* of
  fidelity under noise is negative with its interval below 0.
- **C4** (protection at goodput > 80 %): in one scenario, one defense configuration that at
  every load keeps relative benign goodput at or above 0.80 while the paper's attacker reaches
  the target with at most half its extraction queries and the adaptive attacker needs at least
  twice the inputs (:func:`c4_frontier_holds`, intervals included).
Beside the boolean, each verdict grades its size against the paper's figure: "as large" when
the mean reaches the paper's figure, "smaller" when the effect is significant but its mean
stays short of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from experiments.analysis import mean_ci

C1_TOLERANCE = 1.0
"""Percentage points: "within 1 %" (docs/paper.md, C1)."""
C2_PAPER = {"accuracy": 14.6, "fidelity": 7.7}
"""PSML's largest gains of fingerprinting over the naive attack (points)."""
C3_PAPER = {"accuracy": -9.8, "fidelity": -4.8}
"""PSML's change of the attack's accuracy and fidelity under spec noise (medium target)."""
C4_GOODPUT = 0.80
"""The goodput PSML keeps at significant protection."""


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and the half-width of its 95 % t-interval."""

    mean: float
    half: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Interval:
        v = np.asarray(values, dtype=float)
        v = v[~np.isnan(v)]
        mean, half = mean_ci(v)
        return cls(mean, half, len(v))

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half

    @property
    def known(self) -> bool:
        """At least two seeds: an interval, not a single draw. An infinite mean with no
        spread is known (every seed's value was infinite: a query multiplier where the
        defense stopped the attacker in every run)."""
        return self.n >= 2 and not math.isnan(self.mean) and math.isfinite(self.half)

    def text(self, digits: int = 2, sign: bool = True) -> str:
        """``mean ± half``; a single seed says so instead of showing a zero half-width."""
        if math.isinf(self.mean) and self.half == 0:
            return "inf"
        if not math.isfinite(self.mean):
            return "n/a"
        mean = f"{self.mean:+.{digits}f}" if sign else f"{self.mean:.{digits}f}"
        return f"{mean} ± {self.half:.{digits}f}" if self.n >= 2 else f"{mean} (1 seed)"

    def as_dict(self) -> dict[str, float | int | None]:
        def num(x: float) -> float | None:
            return round(float(x), 6) if math.isfinite(x) else None
        return {"mean": num(self.mean), "ci95": num(self.half), "n": int(self.n)}


def c1_within(acc: Interval, fid: Interval, tolerance: float = C1_TOLERANCE) -> bool:
    """C1: both gaps inside +-tolerance, intervals included."""
    return all(x.known and abs(x.mean) + x.half <= tolerance for x in (acc, fid))


def c1_distance(acc: Interval, fid: Interval) -> float:
    """How far a cell is from C1 (the larger ``|mean| + half``): what picks the worst cell."""
    return max(abs(acc.mean) + acc.half, abs(fid.mean) + fid.half)


def significant_gain(x: Interval) -> bool:
    """A positive effect whose interval excludes 0."""
    return x.known and x.lo > 0


def significant_drop(x: Interval) -> bool:
    """A negative effect whose interval excludes 0."""
    return x.known and x.hi < 0


def c2_holds(acc: Interval, fid: Interval) -> bool:
    return significant_gain(acc) and significant_gain(fid)


def c3_holds(acc: Interval, fid: Interval) -> bool:
    return significant_drop(acc) and significant_drop(fid)


def strength(x: Interval, paper: float) -> str:
    """The size of a significant effect against the paper's figure (same sign as ``paper``)."""
    sig = significant_gain(x) if paper > 0 else significant_drop(x)
    if not sig:
        return "none"
    reaches = x.mean >= paper if paper > 0 else x.mean <= paper
    return "as large" if reaches else "smaller"


C4_AIM = 0.5
"""The frontier's C4 rule (issue 15): the paper's attacker reaches the target with at most this
share of its extraction queries..."""
C4_MULTIPLIER = 2.0
"""...and the adaptive attacker needs at least this many times the inputs it sends undefended."""


@dataclass(frozen=True)
class FrontierCell:
    """One defense configuration at one load of the frontier, each figure over seeds."""

    goodput: Interval
    """Benign goodput relative to the undefended run with the same arrivals."""
    aim: Interval
    """Share of the paper attacker's extraction queries that the target served."""
    multiplier: Interval
    """The adaptive attacker's inputs sent over those it sends undefended."""


def c4_shortfalls(cell: FrontierCell) -> list[str]:
    """What keeps one cell from C4, intervals included (empty: it holds there): goodput's
    interval must lie at or above :data:`C4_GOODPUT`, the aim's at or below :data:`C4_AIM`,
    the multiplier's at or above :data:`C4_MULTIPLIER`."""
    out = []
    if not (cell.goodput.known and cell.goodput.lo >= C4_GOODPUT):
        out.append(f"goodput {cell.goodput.text(3, sign=False)} < {C4_GOODPUT:.2f}")
    if not (cell.aim.known and cell.aim.hi <= C4_AIM):
        out.append(f"aim {cell.aim.text(2, sign=False)} > {C4_AIM:.2f}")
    if not (cell.multiplier.known and cell.multiplier.lo >= C4_MULTIPLIER):
        out.append(f"multiplier {cell.multiplier.text(2, sign=False)}x < {C4_MULTIPLIER:.0f}x")
    return out


def c4_frontier_holds(cells_by_load: Sequence[FrontierCell]) -> bool:
    """C4 for one defense configuration: it holds at every load of the scenario (issue 15's
    rule, fixed before the frontier is measured)."""
    return bool(cells_by_load) and all(not c4_shortfalls(c) for c in cells_by_load)


def c4_closeness(cells_by_load: Sequence[FrontierCell]) -> float:
    """How near a configuration comes to C4 when it misses (what names the closest one): the
    worst, over loads and the three criteria, of the interval's bound relative to its
    threshold (1 or more: that criterion holds there)."""
    worst = math.inf
    for c in cells_by_load:
        worst = min(worst,
                    c.goodput.lo / C4_GOODPUT if c.goodput.known else 0.0,
                    C4_AIM / c.aim.hi if c.aim.known and c.aim.hi > 0 else
                    (math.inf if c.aim.known else 0.0),
                    c.multiplier.lo / C4_MULTIPLIER if c.multiplier.known else 0.0)
    return worst if cells_by_load else 0.0
