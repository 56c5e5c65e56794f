"""The serving system's front-end: defense, model selection, per-model queues, dispatch.

Each arriving request gets the defense applied to its spec (PSML §5), then the selection
policy picks a zoo model (PSML §3, INFaaS), and the request joins that model's front-end queue.
Workers bind late: a free worker that holds the model takes the next batch (Clockwork, OSDI'20),
so one model served by ``c`` workers without batching is exactly an M/M/c queue. Where no worker
holds a model with waiting requests, the least-loaded worker loads it; with ``replicate`` an
idle worker also loads a model whose backlog would outlast the load (scale-out under load).

A worker's queued work is the requests waiting for the models it holds, at the amortised cost
of a full batch, shared among each model's holders; the INFaaS-style latency estimate reads it
only when a load-aware policy asks, so load-oblivious runs pay nothing for it. The estimate
takes the other models' queued work from it and counts the model's own queue once, as the
batches ahead of the request and the batch it joins.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Literal, Protocol

import simpy

from defense.base import Decision
from defense.stack import DefenseStack
from sim.policies.base import Policy
from sim.request import Batch, Request
from sim.service_time import ServiceTime
from sim.worker import Worker
from sim.zoo import Zoo

Preload = Literal["all", "spread", "none"]


class Executor(Protocol):
    """Runs batches and model loads for real (the live server); events succeed when done."""

    def run(self, worker: int, model: int, batch: list[Request], inputs: int) -> simpy.Event:
        """Serve ``batch`` (``inputs`` inputs in all) on ``model`` at ``worker``."""
        ...

    def load(self, worker: int, model: int) -> simpy.Event:
        """Load ``model``'s weights at ``worker``."""
        ...

    def evict(self, worker: int, model: int) -> None:
        """Drop ``model`` from ``worker``."""
        ...


class ServingSystem:
    """Front-end and workers of one simulated serving cluster."""

    def __init__(self, env: simpy.Environment, zoo: Zoo, *, workers: int, memory_mb: float,
                 max_batch: int, batch_timeout_ms: float, policy: Policy, defense: DefenseStack,
                 service: ServiceTime, preload: Preload = "spread",
                 replicate: bool = True, executor: Executor | None = None,
                 keep_requests: bool = True) -> None:
        too_big = [zoo.names[m] for m in range(len(zoo)) if zoo.memory_mb[m] > memory_mb]
        if too_big:
            raise ValueError(f"memory_mb ({memory_mb}) is smaller than models {too_big}")
        self.env = env
        self.zoo = zoo
        self.max_batch = max_batch
        self.batch_timeout_s = batch_timeout_ms / 1000
        self.policy = policy
        self.defense = defense
        self.service = service
        self.replicate = replicate
        self.executor = executor
        """None in simulation; the live server's real batch runner otherwise."""
        self.keep_requests = keep_requests
        n = len(zoo)
        self.cost_s = [zoo.batch_s[m][max_batch] / max_batch for m in range(n)]
        """Amortised service time per request at a full batch."""
        self.queues: list[deque[Request]] = [deque() for _ in range(n)]
        self.inputs = [0] * n
        """Inputs waiting in each model's queue (= its length when every request has one)."""
        self.holders: list[list[Worker]] = [[] for _ in range(n)]
        self.batcher: list[Worker | None] = [None] * n
        self.workers = [Worker(self, i, memory_mb) for i in range(workers)]
        self.requests: list[Request] = []
        """Every submitted request, in arrival order; records are derived from them."""
        self.events: list[tuple[float, str, int, int]] = []
        """Model loads and evictions: (time, kind, worker, model)."""
        self.hooks: dict[int, Callable[[Request], None]] = {}
        """Per-tenant callbacks run when a request of that tenant completes."""
        self.arrived = 0
        self.completed = 0
        self.in_system = 0
        self.area = 0.0
        """Integral of the number of requests in the system over time (Little's L * T)."""
        self._t_last = 0.0
        self.n_batches = 0
        self.placements = 0
        """Counts holder-set changes; with ``arrived`` and ``n_batches`` it versions the state."""
        self._preload(preload)
        for w in self.workers:
            env.process(w.run())

    # -- arrivals and completions ----------------------------------------------------------
    def submit(self, req: Request) -> None:
        """A request arrives now: defend, select, enqueue, wake a worker."""
        now = self.env.now
        self.area += self.in_system * (now - self._t_last)
        self._t_last = now
        self.in_system += 1
        self.arrived += 1
        if self.keep_requests:
            self.requests.append(req)
        defense = self.defense
        if defense.admits and defense.admit(req) is Decision.REJECT:
            self._reject(req)
            return
        m = req.model
        if m < 0:
            if defense.changes_spec:
                defense.perturb(req)
            selector = defense.selector
            if selector is not None:
                m, req.feasible = selector.select(req)
            else:
                m, req.feasible = self.policy.select(req, self, now)
            req.model = m
        q = self.queues[m]
        q.append(req)
        self.inputs[m] += req.size
        holders = self.holders[m]
        if not holders:
            self.assign(m, self.least_loaded(now))
            return
        b = self.batcher[m]
        if b is not None:
            if self.inputs[m] >= self.max_batch:
                b.wake()
            if self.inputs[m] <= self.max_batch:
                return
        for w in holders:
            if w.idle:
                w.wake()
                return
        if self.replicate:
            for w in self.workers:
                if w.idle and self.model_to_replicate(w) == m:
                    self.assign(m, w)
                    return

    def _reject(self, req: Request) -> None:
        """An admission defense turned ``req`` away: it completes now, unserved (a batch of
        no model and no inputs), and its client hears so through the completion hook."""
        req.rejected = True
        req.model = -1
        req.feasible = False
        b = Batch(-1, -1, -1, req.arrival, 0)
        b.finish = req.arrival
        req.batch = b
        self.complete([req])

    def complete(self, batch: list[Request]) -> None:
        """A batch finished now: account, run completion hooks."""
        now = self.env.now
        self.area += self.in_system * (now - self._t_last)
        self._t_last = now
        n = len(batch)
        self.in_system -= n
        self.completed += n
        if self.hooks:
            for r in batch:
                hook = self.hooks.get(r.tenant)
                if hook is not None:
                    hook(r)

    # -- state for policies (sim.policies.base.SystemView) ---------------------------------
    def queue_len(self, model: int) -> int:
        return self.inputs[model]

    def loaded_holders(self, model: int) -> int:
        return sum(1 for w in self.holders[model] if model in w.loaded)

    def estimate_latency_s(self, model: int, now: float) -> float:
        """INFaaS-style estimate of the latency of a one-input request joining ``model``'s queue
        now.

        With ``q`` inputs already queued for the model and ``B = max_batch``, the request
        waits behind ``q // B`` full batches and joins a batch of ``q % B + 1`` inputs
        (taking queued requests as one input each, and foreseeing no later arrivals). The
        estimate counts the model's queued inputs once, through those batches:

        - the soonest a holder can turn to the model: its current batch or load, a pending
          load of the model, and its share of the *other* models' queued work
          (:meth:`ready_s` with ``own=False``); the load time if nothing holds the model;
        - plus the full batches ahead, ``q // B`` times the profiled full-batch time, shared
          among the model's holders;
        - the batch it joins starts then, or when its oldest request has waited
          ``batch_timeout`` if that is later and the batch will not fill;
        - plus the profiled time of the batch it joins.

        Exact for one holder, deterministic service and no later arrivals to the worker.
        """
        max_batch = self.max_batch
        batch_s = self.zoo.batch_s[model]
        full, ahead = divmod(self.inputs[model], max_batch)
        start = self.ready_s(model, now, own=False)
        if full:
            start += full * batch_s[max_batch] / (len(self.holders[model]) or 1)
        b = ahead + 1
        timeout = self.batch_timeout_s
        if b < max_batch and timeout > 0.0:
            oldest = now
            if ahead:
                q = self.queues[model]
                i = full * max_batch  # the batch's first request, at one input per request
                oldest = q[i if i < len(q) else -1].arrival
            t = oldest + timeout - now
            if t > start:
                start = t
        return start + batch_s[b]

    def ready_s(self, m: int, now: float, own: bool = True) -> float:
        """How long until some holder of ``m`` has worked off what is ahead of a new request.

        A holder's current batch or load, a pending load of ``m``, and its share of the queued
        work of the models it holds: ``m``'s own included with ``own`` (the model's backlog),
        left out without (what stands before the model's queue).
        """
        holders = self.holders[m]
        load = self.zoo.load_s[m]
        if not holders:
            return load
        best = float("inf")
        for w in holders:
            t = w.busy_until - now
            t = (t if t > 0.0 else 0.0) + (w.queued_s() if own else w.queued_other_s(m))
            if m in w.pending:
                t += load
            if t < best:
                best = t
        return best

    def work_per_holder_s(self, m: int) -> float:
        """Model ``m``'s queued work (full-batch amortised), per worker holding it."""
        n = self.inputs[m]
        return n * self.cost_s[m] / len(self.holders[m]) if n else 0.0

    # -- placement -----------------------------------------------------------------------
    def assign(self, m: int, w: Worker) -> None:
        """Give model ``m`` to worker ``w`` (it loads it when it next looks for work)."""
        w.pending.append(m)
        w.held.append(m)
        self.holders[m].append(w)
        self.placements += 1
        if w.idle:
            w.wake()

    def release(self, m: int, w: Worker) -> None:
        """Worker ``w`` evicted ``m``; re-place it if requests still wait for it."""
        self.holders[m].remove(w)
        self.placements += 1
        if self.batcher[m] is w:
            self.batcher[m] = None
        if self.queues[m] and not self.holders[m]:
            self.assign(m, self.least_loaded(self.env.now))

    def least_loaded(self, now: float) -> Worker:
        return min(self.workers, key=lambda w: (w.backlog_s(now), w.id))

    def model_to_replicate(self, w: Worker) -> int:
        """A model ``w`` does not hold whose backlog would outlast loading it on ``w``.

        Among such models, the one whose oldest request arrived first; -1 if none.
        """
        now = self.env.now
        best, best_t = -1, float("inf")
        for m, q in enumerate(self.queues):
            if not q or w.holds(m) or self.zoo.memory_mb[m] > w.memory_mb:
                continue
            if q[0].arrival < best_t and self.ready_s(m, now) > self.zoo.load_s[m]:
                best, best_t = m, q[0].arrival
        return best

    def _preload(self, kind: Preload) -> None:
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
                w.held.append(m)
                w.used_mb += self.zoo.memory_mb[m]
                self.holders[m].append(w)

    def log_event(self, kind: str, worker: int, model: int) -> None:
        self.events.append((self.env.now, kind, worker, model))
