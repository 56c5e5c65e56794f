"""A machine's front-end profile fitted to a probe's bursts (issue 18).

:mod:`serve.frontend_probe` sends the bursts and streams and reads what each process spent
on each (its module docstring, steps 1-2 and 5); this module turns them into the
profile's costs (steps 3-4 there) and keeps the median pass (step 5's): per-request costs
from the slopes over burst sizes and from the busy streams, a wake-up's cost and the
cooling curve from the steady streams, a worker's forward-pass scale, cost per batch and
wake-up by least squares, and each per-request cost's spread. It also defines what a burst
is (:class:`Burst`, :data:`BURSTS`) and the method's version (:data:`PROBE_VERSION`).
Method: docs/serving.md, "The front-end model"; what each rule changed:
docs/results/simcheck.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.errors import UserError
from sim.frontend_profile import (
    ClientCosts,
    Cost,
    FrontendProfile,
    Machine,
    ServerCosts,
    WorkerCosts,
)
from sim.host import coldness

PROBE_VERSION = 21
"""The method's version, written into every profile it measures (``probe_version``):
bumped when what a profile's costs mean changes (21: ``dispatch`` without the loop's
wake-ups between a burst's batches, :func:`batch_dispatch_ms`)."""
BURSTS = (1, 2, 4, 8)
"""Requests sent at once in the probe's bursts."""
PROBE_BATCH_TIMEOUT_MS = 25.0
"""The probe's server waits this long for a batch to fill, so that a burst for one model is
one batch (the costs measured do not depend on the timeout)."""


@dataclass
class Burst:
    """One burst's requests and what each process spent on it: (CPU ms, wake-ups) of the
    server's event loop, the workers and the client."""

    ok: int
    refused: int
    server: tuple[float, int]
    workers: tuple[float, int]
    client: tuple[float, int]
    ids: list[int] = field(default_factory=list)
    """The server ids of its answered requests (to find their batches)."""
    gap_ms: float = 30.0
    """How long the processes idled before it; for a stream of the cooling sweep, how long
    the server's loop slept per wake-up (measured)."""
    sweep: bool = False
    """A stream of the cooling sweep (its ``refused`` requests in a steady stream)."""
    busy: bool = False
    """A busy stream: many requests kept in flight
    (:data:`serve.frontend_probe.BUSY_IN_FLIGHT`, or ``--in-flight``), back to back, so
    that the server's loop hardly ever sleeps (its hot costs)."""
    heavy: bool = False
    """A busy stream for the slowest model: its worker never short of work (its hot
    forward passes)."""
    waited: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """How long the server's loop, the workers and the client waited, runnable, for a core
    (ms)."""


def fit_costs(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares ``y ~ X @ coef``; the coefficients and the residuals."""
    from scipy.optimize import nnls

    coef, _ = nnls(X, y)
    return coef, y - X @ coef

CLIENT_WAKEUPS = 2
"""Times the simulator's client wakes for a request alone: to send it, to read its answer."""


def slope(k: np.ndarray, cpu: np.ndarray) -> float:
    """The least-squares slope of CPU against burst size: the cost of one more request in a
    burst, whose wake-ups the others already paid (but not back to back: the busy streams
    measure that)."""
    if len(np.unique(k)) < 2:
        raise UserError("frontend probe: too few burst sizes to fit")
    return float(np.polyfit(k, cpu, 1)[0])


MIN_SCALE = 0.1
"""A live forward pass is never taken as faster than a tenth of the profiled one (a fit
that says so has measured noise)."""
SCALE_SPREAD = 2.0
"""The longest profiled forward time per batch among the bursts must be at least this
multiple of the shortest for their worker CPU to say how live forward passes scale."""


def worker_fit(forward_ms: np.ndarray, batches: np.ndarray,
               cpu_ms: np.ndarray) -> tuple[float, float, float]:
    """``(forward_scale, per_batch_ms, wake_ms)`` of a worker, by non-negative least squares
    over the bursts that ran batches: ``cpu = forward_scale * forward + per_batch * batches +
    wake``, where ``forward`` is a burst's profiled forward time in all, ``batches`` how
    many batches it ran back to back and ``wake`` what the first of them paid for the
    worker's wake-up. One fit of all three: what a cold first batch pays whatever its model
    lands in ``wake``, and bursts of several batches, only the first of them cold, dilute
    what it pays in proportion to its model (that part still leans on the scale; a scale
    read from lone batches alone took all of it). The scale stays 1 when the forward time
    per batch hardly varies between bursts (then ``forward`` moves with ``batches`` and
    cannot tell the two apart), and is never below :data:`MIN_SCALE`."""
    if not len(cpu_ms):
        raise UserError("frontend probe: no burst ran a batch")
    costs = np.column_stack([batches, np.ones(len(cpu_ms))])

    def at(scale: float) -> tuple[float, float, float]:
        """The other two with the scale fixed."""
        coef, _ = fit_costs(costs, cpu_ms - scale * forward_ms)
        return scale, float(coef[0]), float(coef[1])

    per_batch = forward_ms / np.maximum(batches, 1)
    if len(forward_ms) < 3 or per_batch.min() <= 0 \
            or per_batch.max() < SCALE_SPREAD * per_batch.min():
        return at(1.0)
    coef, _ = fit_costs(np.column_stack([forward_ms, costs]), cpu_ms)
    if coef[0] < MIN_SCALE:  # a fit that says so has measured noise
        return at(MIN_SCALE)
    return float(coef[0]), float(coef[1]), float(coef[2])


def cooling_fit(gap_ms: np.ndarray, wake_ms: np.ndarray) -> tuple[float, float, float]:
    """``(setup_ms, cold_ms, cooling_ms)``: what a wake-up costs, how much more after a long
    sleep, and how fast a process cools, fitted to what the sweep's streams cost the loop
    per wake-up beyond their hot cost (``wake_ms``) against how long it slept per wake-up
    (``gap_ms``): ``wake = setup + cold * (1 - exp(-gap / cooling))``, non-negative least
    squares for each ``cooling`` on a log grid from 0.05 to 500 ms, the best kept."""
    best = (math.inf, 0.0, 0.0, 0.0)
    for tau in np.geomspace(0.05, 500.0, 161):
        X = np.column_stack([np.ones(len(gap_ms)), -np.expm1(-gap_ms / tau)])
        coef, res = fit_costs(X, wake_ms)
        err = float(res @ res)
        if err < best[0]:
            best = (err, float(coef[0]), float(coef[1]), float(tau))
    return best[1], best[2], best[3]


MAX_COLD_SCALE = 2.0
"""At most this much slower from idle (3 times as slow): a bound on a ratio of noisy fits."""


def lone_worker_sleep_ms(gap_ms: float) -> float:
    """How long a worker slept before a lone burst's batch: the settling after the burst
    before (a third of the pause), the pause ``gap_ms``, and the batching timer (one
    request never fills a batch: :func:`probe_config`)."""
    return gap_ms * 4 / 3 + PROBE_BATCH_TIMEOUT_MS


def cold_share(setup: float, cold: float, cooling: float, gap_ms: float) -> float:
    """The share of a wake-up's cost after ``gap_ms`` that every wake-up pays (``setup``)."""
    total = setup + cold * coldness(gap_ms, cooling)
    return setup / total if total > 0 else 1.0


def wakeup_ms(setup: float, cold: float, cooling: float, asleep_ms: np.ndarray) -> np.ndarray:
    """What a wake-up after ``asleep_ms`` costs by the cooling curve (:func:`cooling_fit`)."""
    return setup + cold * np.array([coldness(t, cooling) for t in asleep_ms])


def batch_dispatch_ms(n: np.ndarray, srv: np.ndarray, wakes: np.ndarray, asleep_ms: np.ndarray,
                      one: np.ndarray, many: np.ndarray,
                      wake: tuple[float, float, float]) -> float:
    """The loop's cost per batch (``dispatch``): the slope of its CPU over bursts of one batch
    per request (``many``) less that over bursts of one batch (``one``), each burst's
    wake-ups beyond a burst of one batch's (the median of ``one``'s) taken out first at
    what the cooling curve ``wake`` = (setup, cold, cooling) says they cost after
    ``asleep_ms``. A burst of k batches on one worker runs them one
    after the other, and the loop sleeps while each runs: 0.73-0.86 more wake-ups a batch
    in the probes of runs AC-AE (docs/results/simcheck.md), each after about a forward
    pass (the batch's profiled forward time stands for the sleep). The model charges those
    wake-ups apart whenever the loop slept (:class:`sim.host.Station`), so a dispatch that
    kept them charged them twice (until method version 21: 0.23-0.26 ms a batch in those
    probes' median passes, 0.13-0.14 by this rule). Only the wake-ups above the median
    count (fewer are noise), and ``one``'s are netted too, so that both slopes are taken
    alike. 0 without bursts of several batches."""
    if not many.any():
        return 0.0
    extra = np.maximum(wakes - float(np.median(wakes[one])), 0.0)
    net = srv - extra * wakeup_ms(*wake, asleep_ms)
    return max(slope(n[many], net[many]) - slope(n[one], net[one]), 0.0)


def loop_wait_ms(bursts: list[Burst]) -> float:
    """How long the server's loop waits for a core each time it wakes: the median, over
    the cooling sweep's streams, of what it waited (``schedstat``) per wake-up (method
    version 20). One request at a time, woken by the client's request, it waited mostly
    0.10-0.15 ms a wake-up whether it had slept 0.3 or 28 ms (run AB;
    docs/results/simcheck.md; likely a virtual core that went idle being scheduled
    again, not measured). Lone requests from idle, which versions 15-17 took it from, wait far
    longer (their client, worker and loop contend for the cores at once), and that
    contention the model's shared cores already charge. The workers' and the client's
    waits stay 0: no stream of the probe measures them alone (the sweep's client, woken by
    its own timer, waited under 0.01 ms a request). 0 without a sweep."""
    waits = [b.waited[0] / max(b.server[1], 1) for b in bursts if b.sweep]
    return max(float(np.median(waits)), 0.0) if waits else 0.0


def spread_cost(mean: float, x: np.ndarray) -> Cost:
    """A cost of mean ``mean`` spread as single requests' costs ``x`` are: ``x`` scaled to
    that mean (method version 20). Single requests, each from idle, cost more than the
    mean, which busy streams measure hot: their spread, added to the mean and clipped at
    0 (version 19), raised the client's mean 32-61 % and the answer's 28-64 %
    (docs/results/simcheck.md); scaled, the mean stays the one measured and no cost goes
    below 0. A constant where there is no spread to scale."""
    x = np.maximum(np.asarray(x, float), 0.0)
    if not len(x) or x.mean() <= 0 or mean <= 0:
        return Cost.constant(max(mean, 0.0))
    return Cost.of(x * (mean / x.mean()))


def frontend_profile(bursts: list[Burst], batches: dict[int, tuple[int, float]], *,
                     cores: float, description: str, zoo_profile: str) -> FrontendProfile:
    """The profile from the bursts (:mod:`serve.frontend_probe`, steps 3-4). ``batches``
    maps a server request id to (its batch id, the profiled forward time of that batch in
    ms)."""
    ok = np.array([b.ok for b in bursts], float)
    bad = np.array([b.refused for b in bursts], float)
    n = ok + bad
    n_batches = np.array([len({batches[i][0] for i in b.ids}) for b in bursts], float)
    forward = np.array([sum({batches[i][0]: batches[i][1] for i in b.ids}.values())
                        for b in bursts])
    gaps = np.array([b.gap_ms for b in bursts])
    sweep = np.array([b.sweep for b in bursts])
    busy = np.array([b.busy for b in bursts])
    streams = sweep | busy  # windows of another length, no settling: not bursts
    empty = (n == 0) & ~streams
    refused = (bad > 0) & ~streams
    one = (ok > 0) & (n_batches == 1) & ~streams
    many = (ok > 0) & (n_batches == ok) & ~streams

    # the server's loop, less what the measurement itself costs (an empty burst's CPU)
    srv = np.array([b.server[0] for b in bursts])
    if empty.any():
        srv = np.where(streams, srv, srv - np.median(srv[empty]))
    ingress = max(slope(n[refused], srv[refused]), 0.0)
    both = max(slope(n[one], srv[one]), ingress)
    heavy = np.array([b.heavy for b in bursts])
    busy_refused, busy_ok = busy & (bad > 0), busy & (ok > 0) & ~heavy
    # hot costs from the busy streams, whose loop never cooled: requests in a burst from
    # idle each cost more (what the slopes above say) than back to back
    if busy_refused.any():
        hot_ingress = float(srv[busy_refused].sum() / n[busy_refused].sum())
        both += hot_ingress - ingress  # the answer's share stays the slopes' until measured
        ingress = hot_ingress
    # the sweep's streams: what the loop spent beyond the hot ingress, per wake-up
    loop_wakes = np.array([b.server[1] for b in bursts], float)
    setup, cold, cooling = cooling_fit(gaps[sweep], (srv[sweep] - n[sweep] * ingress)
                                       / np.maximum(loop_wakes[sweep], 1.0))
    dispatch = batch_dispatch_ms(n, srv, loop_wakes, forward / np.maximum(n_batches, 1.0),
                                 one, many & (n > 1), (setup, cold, cooling))
    if busy_ok.any():
        # the scenario's own requests back to back (the policy chooses their models): the
        # loop sleeps now and then while the worker catches up, and the model charges its
        # wake-ups apart. Each is taken as a hot one (``setup``): the sleeps are short (a
        # batch's forward pass) and not measured here, so any cold part stays in the
        # answer's cost (an approximation). The refused streams' 1-4 wake-ups in 512
        # requests are left in (under 0.5 % of their cost).
        both = float((srv[busy_ok] - dispatch * n_batches[busy_ok]
                      - setup * loop_wakes[busy_ok]).sum() / n[busy_ok].sum())
    both = max(both, ingress)
    lone = one & (n == 1)
    # the worker and the client wake as the server's loop does: the same share of a
    # wake-up's cost is paid at every wake-up, the rest after a long sleep
    share = cold_share(setup, cold, cooling, float(np.median(gaps[lone])))

    def wake(total: float) -> dict[str, float]:
        return {"setup_ms": total * share, "cold_ms": total * (1 - share),
                "cooling_ms": cooling}

    server = ServerCosts(ingress=spread_cost(ingress, srv[refused & (n == 1)]),
                         dispatch=Cost.constant(dispatch),
                         egress=spread_cost(both - ingress, srv[lone]), setup_ms=setup,
                         cold_ms=cold, cooling_ms=cooling,
                         wait_ms=loop_wait_ms(bursts))

    # a worker: its forward passes against the profiled ones, its cost per batch beyond
    # them (hot: batches back to back) and its wake-up, in one fit over the bursts that ran
    # batches (one batch of one model, one batch per request of several)
    ran = (ok > 0) & ~busy
    wk = np.array([b.workers[0] for b in bursts])
    scale, hot, woke = worker_fit(forward[ran], n_batches[ran], wk[ran])
    worker_wake = wake(woke)
    cold_scale = 0.0
    if heavy.any() and forward[heavy].sum() > 0 and lone.any():
        # the busy streams for the slowest model kept its worker in work: batch after batch,
        # each handed over as the last one's answer was read (a short sleep between: a
        # wake-up's setup each, as the model charges it), the hot forward passes; a lone
        # batch from idle ran ``cold_scale`` slower (as a whole job: its forward pass and
        # its cost per batch), as far as its worker had gone cold
        warm = max((wk[heavy].sum() - (hot + worker_wake["setup_ms"]) * n_batches[heavy].sum())
                   / forward[heavy].sum(), MIN_SCALE)
        f = float(np.median(forward[lone]))
        lone_cold = coldness(lone_worker_sleep_ms(float(np.median(gaps[lone]))), cooling)
        if f > 0 and lone_cold > 0:
            cold_scale = min(max(((scale * f + hot) / (warm * f + hot) - 1.0) / lone_cold, 0.0),
                             MAX_COLD_SCALE)
        scale = warm
    worker = WorkerCosts(forward_scale=scale, dispatch_ms=hot, cold_scale=cold_scale,
                         **worker_wake)

    # the client: per request (hot), and what a lone request costs beyond that per wake-up
    cl = np.array([b.client[0] for b in bursts])
    main = ~empty & ~streams
    per_request = max(slope(n[main], cl[main]), 0.0)
    single = (n == 1) & ~streams
    c_setup = max((float(np.median(cl[single])) - per_request) / CLIENT_WAKEUPS, 0.0)
    half = spread_cost(per_request, cl[single]).quantiles_ms
    half_cost = Cost(quantiles_ms=[q / 2 for q in half], samples=int(single.sum()))
    client = ClientCosts(send=half_cost, receive=half_cost, **wake(c_setup))
    return FrontendProfile(
        machine=Machine(cores=cores, description=description), zoo_profile=zoo_profile,
        probe_version=PROBE_VERSION,
        method=(f"zoosim frontend profile: {int((~streams).sum())} bursts of 0 or "
                f"{'/'.join(map(str, BURSTS))} requests (for one model, for several, refused "
                "after parsing) against a live server from idle, "
                f"{int(sweep.sum())} steady streams and {int(busy.sum())} busy ones; "
                "per-thread CPU (schedstat): the front-end's hot costs per request from busy "
                "streams (refused; the scenario's "
                "own, or without tenants the fastest model's), its cost per batch (less "
                "its wake-ups between a burst's batches, at the cooling curve's price) and "
                "the client's per request from the slopes "
                "over burst sizes, the wake-up cost and cooling from steady streams of "
                "refused requests 0.25-32 ms apart; a worker's forward-pass scale from idle, "
                "cost per batch and wake-up in one least-squares fit over the bursts that "
                "ran batches, its forward passes back to back from busy streams for the "
                "slowest model (cold_scale: how much slower from idle); the loop's wait "
                "for a core per wake-up from the steady streams (median); each per-request "
                "cost spread as single requests' costs, scaled to its mean"),
        frontend=server, client=client, worker=worker)


def pass_cost_ms(profile: FrontendProfile) -> float:
    """What a pass says one request costs the front-end (ingress, egress and a dispatch):
    the figure the capacity it predicts hangs on, by which passes are ranked."""
    f = profile.frontend
    return f.ingress.mean_ms + f.egress.mean_ms + f.dispatch.mean_ms


def median_pass(passes: list[FrontendProfile]) -> FrontendProfile:
    """The pass whose :func:`pass_cost_ms` is the median (the lower middle one of an even
    number): a whole pass, so that its costs stay consistent with each other."""
    if not passes:
        raise ValueError("no passes")
    ranked = sorted(passes, key=pass_cost_ms)
    return ranked[(len(ranked) - 1) // 2]
