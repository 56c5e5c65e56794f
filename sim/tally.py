"""summary.json computed online from the record stream (docs/outputs.md, issue 17).

The summary is derived from the records alone (docs/architecture.md principle 5), but a long
run's records are streamed to disk a chunk at a time, so the summary is a running tally fed
with each chunk of records before the chunk is written or dropped: counts and sums are exact,
means are running sums, and latency percentiles come from :class:`~sim.quantiles.LatencyDigest`
(exact for up to a million values, within 0.5 % beyond). Fed one frame, it is the summary of
that frame (:func:`summarize`), so a small run gives the figures it always did.

Definitions follow :mod:`sim.summary` (goodput per docs/paper.md). Worker figures are summed
per record: each request carries its share ``size / batch_size`` of its batch's busy time, so
a batch split across chunks is counted once in all, and the summary of a subset of tenants (an
attack's benign tenants) counts the worker time spent on that subset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sim.quantiles import ExactBudget, LatencyDigest
from sim.summary import LatencyStats, LittlesLaw, SloAttainment, SloSummary, Summary, WaitStats


class SloTally:
    """The running figures of :class:`~sim.summary.SloSummary` over one set of records."""

    def __init__(self, n_models: int, budget: ExactBudget, admission: bool,
                 shedding: bool) -> None:
        self.admission, self.shedding = admission, shedding
        self.n = self.met = self.met_latency = self.met_accuracy = self.completed = 0
        self.infeasible = self.rejected = self.flagged = self.shed = 0
        self.answered_ok = 0
        self.answers: bool | None = False
        """Whether the records judge answers (``answer_ok``); None once one is unknown."""
        self.latency = LatencyDigest(budget)
        self.wait_sum, self.wait_n = 0.0, 0
        self.served = np.zeros(n_models, dtype=np.int64)

    def add(self, df: pd.DataFrame) -> None:
        n = len(df)
        if not n:
            return
        self.n += n
        met = df["met_slo"].to_numpy(dtype=bool)
        self.met += int(met.sum())
        self.met_latency += int(df["met_latency"].to_numpy(dtype=bool).sum())
        self.met_accuracy += int(df["met_accuracy"].to_numpy(dtype=bool).sum())
        self.completed += int((df["finish_s"].to_numpy() >= 0).sum())
        unserved = np.zeros(n, dtype=bool)   # rejected by a defense or shed: answered, unserved
        if "rejected" in df:
            unserved = df["rejected"].to_numpy(dtype=bool)
            self.rejected += int(unserved.sum())
            self.flagged += int(df["flagged"].to_numpy(dtype=bool).sum())
        if "shed" in df:
            shed = df["shed"].to_numpy(dtype=bool)
            self.shed += int(shed.sum())
            unserved = unserved | shed
        self.infeasible += int((~df["feasible"].to_numpy(dtype=bool) & ~unserved).sum())
        served = ~unserved
        self.latency.add(df["latency_ms"].to_numpy()[served])
        wait = df["wait_ms"].to_numpy()[served]
        self.wait_sum += float(wait.sum())
        self.wait_n += len(wait)
        codes = df["model"].cat.codes.to_numpy()
        self.served += np.bincount(codes[codes >= 0], minlength=len(self.served))
        if "answer_ok" in df and self.answers is not None:
            ok = df["answer_ok"]
            if ok.isna().any():
                self.answers = None
            else:
                self.answers = True
                self.answered_ok += int((met & ok.to_numpy(dtype=bool)).sum())

    def summary(self, window_s: float, models: list[str]) -> SloSummary:
        n, nan = self.n, float("nan")
        admission: dict[str, int] = {}
        if self.admission:
            admission = {"rejected": self.rejected, "flagged": self.flagged}
        if self.shedding:
            admission["shed"] = self.shed
        p50, p95, p99 = self.latency.percentiles([50, 95, 99])
        if self.answers is None:
            answers: float | None = None
        else:
            good = self.answered_ok if self.answers else self.met
            answers = good / n if n else nan
        return SloSummary(
            requests=n,
            completed=self.completed,
            goodput=self.met / n if n else nan,
            goodput_answers=answers,
            goodput_rps=self.met / window_s if window_s > 0 else nan,
            slo_attainment=SloAttainment(latency=self.met_latency / n if n else nan,
                                         accuracy=self.met_accuracy / n if n else nan),
            infeasible=self.infeasible,
            **admission,
            latency_ms=LatencyStats(mean=self.latency.mean(), p50=p50, p95=p95, p99=p99),
            wait_ms=WaitStats(mean=self.wait_sum / self.wait_n if self.wait_n else nan),
            served_by={models[m]: int(c) for m, c in enumerate(self.served) if c},
        )


class SummaryTally:
    """summary.json of a record stream: :meth:`add` each chunk, then :meth:`summary`.

    ``tenants`` is the run's tenant list (read when the summary is made, so tenants added
    before then count); ``only`` restricts the summary to those tenants' records (their codes),
    as an attack's benign-only summary does."""

    def __init__(self, *, tenants: list[str], models: list[str], n_workers: int,
                 warmup_s: float, admission: bool = False, shedding: bool = False,
                 only: Sequence[int] | None = None) -> None:
        self.tenants, self.models = tenants, models
        self.warmup_s = warmup_s
        self.only = None if only is None else np.asarray(sorted(only), dtype=np.int64)
        self.budget = ExactBudget()
        self._flags = (admission, shedding)
        self.overall = self._tally()
        self.per_tenant: dict[int, SloTally] = {}
        self.busy = np.zeros(n_workers)
        self.batches = 0.0
        self.inputs = 0
        self.sojourn = 0.0
        self.sim_time = 0.0
        self.last_arrival = -np.inf
        self.kept = 0

    def _tally(self) -> SloTally:
        return SloTally(len(self.models), self.budget, *self._flags)

    def add(self, df: pd.DataFrame) -> None:
        """Take a chunk of records (any order; every row once)."""
        if self.only is not None:
            df = df[np.isin(df["tenant"].cat.codes.to_numpy(), self.only)]
        if not len(df):
            return
        arrival, finish = df["arrival_s"].to_numpy(), df["finish_s"].to_numpy()
        self.sim_time = max(self.sim_time, float(finish.max()))
        self.sojourn += float((finish - arrival).sum())
        served = df["batch_id"].to_numpy() >= 0
        share = df["size"].to_numpy()[served] / df["batch_size"].to_numpy()[served]
        busy = (finish[served] - df["start_s"].to_numpy()[served]) * share
        workers = df["worker"].to_numpy()[served]
        self.busy += np.bincount(workers, weights=busy, minlength=len(self.busy))[:len(self.busy)]
        self.batches += float(share.sum())
        self.inputs += int(df["size"].to_numpy()[served].sum())
        # with the front-end model a request's arrival is its send (``sent_s``): the
        # warm-up and the window are the client's, as its latency is
        sent = "sent_s" if "sent_s" in df else "arrival_s"
        kept = df[df[sent].to_numpy() >= self.warmup_s]
        if not len(kept):
            return
        self.kept += len(kept)
        self.last_arrival = max(self.last_arrival, float(kept[sent].max()))
        self.overall.add(kept)
        codes = kept["tenant"].cat.codes.to_numpy()
        for t in np.unique(codes):
            tally = self.per_tenant.get(int(t))
            if tally is None:
                tally = self.per_tenant[int(t)] = self._tally()
            tally.add(kept[codes == t])

    def summary(self, *, seed: int, wall_time_s: float, sim_events: int | None,
                area: float | None, loads: int, evictions: int) -> Summary:
        """The summary of everything added (``area``: the engine's occupancy integral; None
        leaves ``littles_law`` out)."""
        window = self.last_arrival - self.warmup_s if self.kept else 0.0
        sim_time = self.sim_time
        optional: dict[str, LittlesLaw] = {}
        if area is not None:
            optional["littles_law"] = LittlesLaw(
                L=area / sim_time if sim_time > 0 else 0.0,
                lambda_W=self.sojourn / sim_time if sim_time > 0 else 0.0)
        codes = range(len(self.tenants)) if self.only is None else self.only.tolist()
        tenants = {self.tenants[t]: self.per_tenant.get(t) or self._tally() for t in codes}
        return Summary(
            **self.overall.summary(window, self.models).set_fields(),
            utilization={str(w): float(b) / sim_time if sim_time > 0 else 0.0
                         for w, b in enumerate(self.busy)},
            mean_batch_size=self.inputs / self.batches if self.batches else 0.0,
            tenants={name: t.summary(window, self.models) for name, t in tenants.items()},
            **optional,
            model_loads=loads,
            evictions=evictions,
            sim_time_s=sim_time,
            wall_time_s=wall_time_s,
            events_per_s=(sim_events / wall_time_s if sim_events and wall_time_s > 0
                          else float("nan")),
            seed=seed,
        )


def summarize(df: pd.DataFrame, *, warmup_s: float, n_workers: int, seed: int,
              wall_time_s: float, sim_events: int | None, area: float | None,
              loads: int, evictions: int) -> Summary:
    """The summary of one frame of records (a :class:`SummaryTally` fed once)."""
    tally = SummaryTally(tenants=[str(t) for t in df["tenant"].cat.categories],
                         models=[str(m) for m in df["model"].cat.categories],
                         n_workers=n_workers, warmup_s=warmup_s,
                         admission="rejected" in df, shedding="shed" in df)
    tally.add(df)
    return tally.summary(seed=seed, wall_time_s=wall_time_s, sim_events=sim_events, area=area,
                         loads=loads, evictions=evictions)
