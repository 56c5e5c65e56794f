"""The cluster state the front-end and the workers share, and the placement that edits it.

:class:`~sim.system.ServingSystem` (arrivals, defense, selection) and each
:class:`~sim.worker.Worker` (batching, loads, eviction) read and write the same per-model
queues, holder lists and counters; they live here, in one object both are given, so neither
reaches into the other. The placement operations that touch only this state are here too:
which worker holds which model (``assign``, ``release``, ``preload``), where new work goes
(``least_loaded``, ``model_to_replicate``) and how much queued work each holder faces
(``work_per_holder_s``, ``ready_s``).

A worker's queued work is the requests waiting for the models it holds, at the amortised cost
of a full batch, shared among each model's holders. It is kept as a running sum, updated for a
model's holders whenever the model's queued inputs or holders change
(:meth:`ClusterState.changed`, ``assign``, ``release``), so reading it is O(1). The sums are
fixed-point integers (:data:`WORK_UNIT`): each model's share is recomputed from its integer
input count and holder count at every change, and the sums add and subtract those integers
exactly, so they never drift, whatever the order of the updates; a read is the sum of the
shares (each within one unit, about 5e-20 s, of its float value), rounded once, not a left-to-
right float sum. The sums are kept from the first read on (:meth:`ClusterState.track`, computed
then from the current queues, so they are the same as if kept from the start): a run whose
policy never reads the load (``pareto``, without deadline shedding) pays nothing for them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import simpy

from sim.request import Request
from sim.service_time import ServiceTime
from sim.zoo import Zoo

if TYPE_CHECKING:
    from sim.worker import Executor, Worker

Preload = Literal["all", "spread", "none"]

WORK_SCALE = 2.0 ** 64
"""Fixed-point units of queued work per second (a power of two: scaling is exact)."""
WORK_UNIT = 1.0 / WORK_SCALE
"""Seconds per unit of queued work (about 5e-20 s)."""


class ClusterState:
    """Per-model queues, placement and counters of one cluster, with its fixed settings.

    Slotted: the workers' serving loop and the front-end read these attributes per request.
    """

    __slots__ = ("arrived", "batch_timeout_s", "batcher", "cost_s", "env", "events", "executor",
                 "holders", "inputs", "max_batch", "n_batches", "n_loaded", "placements", "queues",
                 "replicate", "run_batch", "service", "tracking", "work", "workers", "zoo")

    def __init__(self, env: simpy.Environment, zoo: Zoo, *, max_batch: int,
                 batch_timeout_s: float, service: ServiceTime, replicate: bool,
                 executor: Executor | None) -> None:
        self.env = env
        self.zoo = zoo
        self.max_batch = max_batch
        self.batch_timeout_s = batch_timeout_s
        self.service = service
        self.replicate = replicate
        """Whether an idle worker also loads a model whose backlog would outlast the load."""
        self.executor = executor
        """None in simulation; the live server's real batch runner otherwise."""
        self.run_batch: Callable[[int, float, Callable[[], None]], None] | None = None
        """``run_batch(worker, seconds, done)`` runs a simulated batch instead of a plain
        delay: the front-end model's (:mod:`sim.frontend`) hands it over at once, runs it
        (with the workers on the host, as CPU work on its cores) and calls ``done`` once the
        front-end process has read its answer back."""
        n = len(zoo)
        self.cost_s = [zoo.batch_s[m][max_batch] / max_batch for m in range(n)]
        """Amortised service time per request at a full batch."""
        self.queues: list[deque[Request]] = [deque() for _ in range(n)]
        """Each model's front-end queue, oldest request first."""
        self.inputs = [0] * n
        """Inputs waiting in each model's queue (= its length when every request has one)."""
        self.holders: list[list[Worker]] = [[] for _ in range(n)]
        """Workers that hold (loaded or pending) each model."""
        self.work = [0] * n
        """Each model's queued work per holder (:meth:`share`), in :data:`WORK_UNIT`: what it
        adds to each holder's :attr:`Worker.work <sim.worker.Worker.work>`."""
        self.tracking = False
        """Whether :attr:`work` and the workers' sums are kept (:meth:`track`)."""
        self.n_loaded = [0] * n
        """Workers that have each model loaded (a subset of its holders)."""
        self.batcher: list[Worker | None] = [None] * n
        """The worker waiting for each model's batch to fill, if any."""
        self.workers: list[Worker] = []
        """Filled by the owner once the workers exist (they need this state to be built)."""
        self.events: list[tuple[float, str, int, int]] = []
        """Model loads and evictions: (time, kind, worker, model)."""
        self.arrived = 0
        self.n_batches = 0
        self.placements = 0
        """Counts holder-set changes."""

    # -- queued work ---------------------------------------------------------------------
    def track(self) -> None:
        """Start keeping the running sums of queued work: each model's share and each
        worker's sum, computed from the current queues and holders (exactly what keeping
        them all along would give: they are functions of the integer counts)."""
        self.tracking = True
        for w in self.workers:
            w.work = 0
        for m in range(len(self.work)):
            self.work[m] = 0
            self.changed(m)

    def work_per_holder_s(self, m: int) -> float:
        """Model ``m``'s queued work (full-batch amortised), per worker holding it."""
        if not self.tracking:
            self.track()
        return self.work[m] * WORK_UNIT

    def share(self, m: int) -> int:
        """Model ``m``'s queued work per holder, in :data:`WORK_UNIT` (0 with no holder)."""
        n = self.inputs[m]
        h = len(self.holders[m])
        return int(n * self.cost_s[m] / h * WORK_SCALE) if n and h else 0

    def changed(self, m: int) -> None:
        """Model ``m``'s queued inputs changed: its share is recomputed and the difference
        added to its holders' queued work. Called wherever ``inputs`` change (a no-op until
        :meth:`track`)."""
        if not self.tracking:
            return
        new = self.share(m)
        d = new - self.work[m]
        if d:
            self.work[m] = new
            for w in self.holders[m]:
                w.work += d

    def _detach(self, m: int) -> None:
        """Take model ``m``'s share out of its holders' queued work (before its holders
        change; :meth:`_attach` puts the new share back after)."""
        t = self.work[m]
        if t:
            self.work[m] = 0
            for w in self.holders[m]:
                w.work -= t

    def _attach(self, m: int) -> None:
        self.changed(m)

    def ready_s(self, m: int, now: float, own: bool = True) -> float:
        """How long until some holder of ``m`` has worked off what is ahead of a new request.

        A holder's current batch or load, a pending load of ``m``, and its share of the queued
        work of the models it holds: ``m``'s own included with ``own`` (the model's backlog),
        left out without (what stands before the model's queue).
        """
        if not self.tracking:
            self.track()
        holders = self.holders[m]
        load = self.zoo.load_s[m]
        if not holders:
            return load
        mine = 0 if own else self.work[m]
        best = float("inf")
        for w in holders:
            t = w.busy_until - now
            if t < 0.0:
                t = 0.0
            t += (w.work - mine) * WORK_UNIT  # Worker.queued_s or queued_other_s, inlined
            if m in w.pending:
                t += load
            if t < best:
                best = t
        return best

    # -- placement -----------------------------------------------------------------------
    def assign(self, m: int, w: Worker) -> None:
        """Give model ``m`` to worker ``w`` (it loads it when it next looks for work)."""
        w.pending.append(m)
        w.held.append(m)
        self._detach(m)
        self.holders[m].append(w)
        self._attach(m)
        self.placements += 1
        if w.idle:
            w.wake()

    def release(self, m: int, w: Worker) -> None:
        """Worker ``w`` evicted ``m``; re-place it if requests still wait for it."""
        self._detach(m)
        self.holders[m].remove(w)
        self._attach(m)
        self.placements += 1
        if self.batcher[m] is w:
            self.batcher[m] = None
        if self.queues[m] and not self.holders[m]:
            self.assign(m, self.least_loaded(self.env.now))

    def least_loaded(self, now: float) -> Worker:
        return min(self.workers, key=lambda w: (w.backlog_s(now), w.id))

    def model_to_replicate(self, w: Worker) -> int:
        """A model ``w`` does not hold whose backlog would outlast loading it on ``w``.

        Among such models, the one whose oldest request arrived first; -1 if none. Asked
        each time a worker finds no work, so it reads the clock and ``w.held`` directly.
        """
        now = self.env._now
        best, best_t = -1, float("inf")
        held = w.held
        for m, q in enumerate(self.queues):
            if not q or m in held or self.zoo.memory_mb[m] > w.memory_mb:
                continue
            if q[0].arrival < best_t and self.ready_s(m, now) > self.zoo.load_s[m]:
                best, best_t = m, q[0].arrival
        return best

    def preload(self, kind: Preload) -> None:
        """Models loaded at time 0, cheapest first.

        ``all``: every worker loads every model that fits (each worker starts its round-robin
        at a different model, so short memory still spreads the zoo). ``spread``: model ``k``
        goes to worker ``k mod W`` (the zoo partitioned across workers, as INFaaS places
        variants; extra workers hold replicas of the cheapest models). ``none``: load on demand.
        """
        order = sorted(range(len(self.zoo)), key=lambda m: self.zoo.lat1_ms[m])
        pairs: list[tuple[Worker, int]] = []
        if kind == "all":
            pairs = [(w, order[(i + j) % len(order)]) for i, w in enumerate(self.workers)
                     for j in range(len(order))]
        elif kind == "spread":
            k = max(len(order), len(self.workers))
            pairs = [(self.workers[i % len(self.workers)], order[i % len(order)])
                     for i in range(k)]
        for w, m in pairs:
            if m not in w.loaded and w.used_mb + self.zoo.memory_mb[m] <= w.memory_mb:
                w.loaded[m] = None
                self.n_loaded[m] += 1
                w.held.append(m)
                w.used_mb += self.zoo.memory_mb[m]
                self._detach(m)
                self.holders[m].append(w)
                self._attach(m)

    def log_event(self, kind: str, worker: int, model: int) -> None:
        self.events.append((self.env.now, kind, worker, model))
