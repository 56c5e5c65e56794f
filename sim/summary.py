"""summary.json, derived from the records alone (docs/outputs.md).

Goodput follows docs/paper.md: the fraction of requests whose serving model's profiled accuracy
meets the *original* accuracy target and whose end-to-end latency meets the original latency
target; ``goodput_rps`` is the number of such requests per second of the measured window.
``goodput_answers`` also requires the answer's top-1 to have survived an output defense
(:mod:`defense.answers`).
Requests that arrived before ``warmup_s`` are left out.

The file's content is the :class:`Summary` model (its fields, in order, are the file's keys);
:func:`sim.tally.summarize` builds it from a frame of records, and
:class:`sim.tally.SummaryTally` from a stream of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict


class OutputModel(BaseModel):
    """Base of the models of the JSON files a run writes (summary.json, attack.json).

    The fields' order is the files' key order. A model is built with only the keys that
    apply and dumped with :meth:`to_json` (``model_dump(exclude_unset=True)``): a conditional
    field left out of the constructor is absent from the file, while one given ``None`` is
    written as null. Floats are kept as they are in memory, NaN included; the files are
    strict JSON, so a NaN is written as null (:func:`sim.output.json_text`).
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def to_json(self) -> dict[str, Any]:
        """The file's content: the fields that were set, in field order, as plain Python."""
        return self.model_dump(exclude_unset=True)

    def set_fields(self) -> dict[str, Any]:
        """The fields that were set, as they are (to build a larger model from this one
        without turning its absent fields into nulls)."""
        return {k: getattr(self, k) for k in type(self).model_fields if k in
                self.model_fields_set}


class LatencyStats(OutputModel):
    """Mean and percentiles of end-to-end latencies (NaN when there are none)."""

    mean: float
    """Mean latency (ms)."""
    p50: float
    """Median latency (ms)."""
    p95: float
    """95th percentile of latency (ms)."""
    p99: float
    """99th percentile of latency (ms)."""

    @classmethod
    def of(cls, lat: np.ndarray) -> LatencyStats:
        """The statistics of the latencies ``lat`` (ms)."""
        if len(lat) == 0:
            nan = float("nan")
            return cls(mean=nan, p50=nan, p95=nan, p99=nan)
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        return cls(mean=float(lat.mean()), p50=float(p50), p95=float(p95), p99=float(p99))


class WaitStats(OutputModel):
    """Time spent queued before service."""

    mean: float
    """Mean wait from arrival to the start of the request's batch (ms; NaN without
    requests)."""


class SloAttainment(OutputModel):
    """Each half of the SLO on its own."""

    latency: float
    """Fraction of requests whose end-to-end latency met their original latency target (NaN
    without requests)."""
    accuracy: float
    """Fraction of requests whose serving model's profiled accuracy met their original
    accuracy target (NaN without requests)."""


class SloSummary(OutputModel):
    """Counts, goodput, SLO attainment and latency of one set of records (a run's requests
    after warm-up, or one tenant's)."""

    requests: int
    """Requests in the set (arrived at or after ``warmup_s``)."""
    completed: int
    """Requests answered (a request an admission defense rejects, or the overload rule sheds,
    is answered at once, unserved, and counted here and in ``rejected`` or ``shed``)."""
    goodput: float
    """Fraction of requests that met both their accuracy and their latency target
    (docs/paper.md: goodput; NaN without requests)."""
    goodput_answers: float | None
    """Fraction of requests that met their SLO *and* got an answer whose top-1 survived the
    output defense (:mod:`defense.answers`): equal to ``goodput`` without an output defense;
    null when unknown (an output defense on a zoo without weights)."""
    goodput_rps: float
    """Requests that met their SLO per second of the arrival window (from ``warmup_s`` to the
    last arrival; NaN for an empty window)."""
    slo_attainment: SloAttainment
    """Each half of the SLO on its own."""
    infeasible: int
    """Requests for which the policy found no model meeting the spec."""
    rejected: int | None = None
    """Requests an admission defense turned away (they meet no SLO); present only when the
    scenario has an admission defense."""
    flagged: int | None = None
    """Requests an admission defense flagged (marked for the defenses that act on flagged
    clients only, :mod:`defense.flagged`; a later admission defense may still have rejected
    them); present only when the scenario has an admission defense."""
    shed: int | None = None
    """Requests the engine's overload rule refused (``cluster.shedding``; they meet no SLO,
    so they count against goodput); present only when a shedding rule is on."""
    latency_ms: LatencyStats
    """End-to-end latency, arrival to answer (ms), of the requests served (not rejected or
    shed)."""
    wait_ms: WaitStats
    """Queueing delay (ms) of the requests served."""
    served_by: dict[str, int]
    """Requests served per model name (models that served none are left out)."""


class LittlesLaw(OutputModel):
    """Little's law, L = lambda W, checked on the run: both sides over the whole run."""

    L: float
    """Mean number of requests in the system, time-integrated by the engine."""
    lambda_W: float
    """Arrival rate times mean sojourn time, from the records (total sojourn time over the
    simulated time)."""


class Summary(SloSummary):
    """summary.json: the figures of :class:`SloSummary` over the run's requests after
    warm-up, then per tenant, per worker, and run statistics. Built with only the keys that
    apply and written with :meth:`~OutputModel.to_json`: ``littles_law`` is absent from an
    attack's benign-only summary."""

    utilization: dict[str, float]
    """Busy fraction of each worker (key: worker number) over the simulated time, summed per
    record (each request's ``size / batch_size`` share of its batch's time): in a benign-only
    summary, the time spent on those requests."""
    mean_batch_size: float
    """Mean inputs per batch served (in a benign-only summary, weighted by those requests'
    share of each batch)."""
    tenants: dict[str, SloSummary]
    """The same figures per tenant (key: tenant name), over the same window."""
    littles_law: LittlesLaw | None = None
    """Little's-law check; absent from an attack's benign-only summary, whose records are a
    subset of those the engine's occupancy integral counts."""
    model_loads: int
    """Models loaded onto workers during the run."""
    evictions: int
    """Models evicted from workers during the run."""
    sim_time_s: float
    """Simulated time at the last completion (s)."""
    wall_time_s: float
    """Wall-clock time the simulation took (s)."""
    events_per_s: float
    """SimPy events per wall-clock second (NaN when not counted)."""
    seed: int
    """The scenario's root seed."""


def _stats(lat: np.ndarray) -> dict[str, float]:
    """:class:`LatencyStats` of ``lat`` as a dict (used by the load generator's summary)."""
    return LatencyStats.of(lat).to_json()
