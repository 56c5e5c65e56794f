"""The serving system's front-end: defense, model selection, per-model queues, dispatch.

Each arriving request gets the defense applied to its spec (PSML §5), then the selection
policy picks a zoo model (PSML §3, INFaaS), and the request joins that model's front-end queue.
Workers bind late: a free worker that holds the model takes the next batch (Clockwork, OSDI'20),
so one model served by ``c`` workers without batching is exactly an M/M/c queue. Where no worker
holds a model with waiting requests, the least-loaded worker loads it; with ``replicate`` an
idle worker also loads a model whose backlog would outlast the load (scale-out under load).

A worker's queued work is the requests waiting for the models it holds, at the amortised cost
of a full batch, shared among each model's holders; the INFaaS-style latency estimate reads it
only when a load-aware policy asks, so load-oblivious runs pay nothing for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Literal, Protocol

import simpy

from defense.base import Defense
from sim.policies.base import Policy
from sim.request import Request
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
                 max_batch: int, batch_timeout_ms: float, policy: Policy, defense: Defense,
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
        m = req.model
        if m < 0:
            defense = self.defense
            if defense.active:
                defense.perturb(req)
            if defense.selects:
                m, req.feasible = defense.select(req)
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
        """INFaaS-style estimate of the latency of a request joining ``model``'s queue now.

        The soonest a holder of the model can start it (its current batch, a pending load of
        the model, and the queued work of every model it holds), plus the profiled time of the
        batch it will join, plus the batching timeout when that batch will not fill. With no
        holder: the load time plus a batch-1 time.
        """
        n = self.inputs[model] + 1
        b = n if n < self.max_batch else self.max_batch
        est = self.ready_s(model, now) + self.zoo.batch_s[model][b]
        if b < self.max_batch:
            est += self.batch_timeout_s
        return est

    def ready_s(self, m: int, now: float) -> float:
        """How long until some holder of ``m`` has worked off what is ahead of a new request."""
        holders = self.holders[m]
        load = self.zoo.load_s[m]
        if not holders:
            return load
        best = float("inf")
        for w in holders:
            t = w.busy_until - now
            t = (t if t > 0.0 else 0.0) + w.queued_s()
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
