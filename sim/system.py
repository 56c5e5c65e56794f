"""The serving system's front-end: defense, model selection, per-model queues, dispatch.

Each arriving request passes the defense stack (PSML §5: admission, then spec perturbation),
then the selection policy (or a selecting defense) picks a zoo model (PSML §3, INFaaS), and the
request joins that model's front-end queue.
Workers bind late: a free worker that holds the model takes the next batch (Clockwork, OSDI'20),
so one model served by ``c`` workers without batching is exactly an M/M/c queue. Where no worker
holds a model with waiting requests, the least-loaded worker loads it; with ``replicate`` an
idle worker also loads a model whose backlog would outlast the load (scale-out under load).

The split: :class:`ServingSystem` owns what only the front-end needs (defense, policy, the
request list, occupancy accounting, completion hooks); the queues, placement and counters that
the workers read and write too are one :class:`~sim.cluster.ClusterState`, which it builds and
hands to each :class:`~sim.worker.Worker` with :meth:`ServingSystem.complete` as the callback
for finished batches. The attributes that moved stay readable here as properties.

The INFaaS-style latency estimate reads the workers' queued work only when a load-aware policy
(or deadline shedding) asks, so load-oblivious runs pay nothing for it. It takes the other
models' queued work from it and counts the model's own queue once, as the batches ahead of the
request and the batch it joins.

Overload shedding (``cluster.shedding``, off by default) is an admission rule of the engine, so
the simulator predicts what the live server does: after the defense's admission, a request is
refused when the system already holds ``max_pending`` requests, and, once its model is
selected, when its latency estimate exceeds ``slack`` times its latency target (admission by
deadline: it would miss its target anyway, and queueing it only delays the requests behind it,
so goodput survives overload; INFaaS uses the same estimate to pick a variant, PSML §3). A shed
request completes at once, unserved, marked ``shed`` (not ``rejected``: no defense decided it),
with a retry hint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from defense.base import Decision
from defense.stack import DefenseStack
from sim.cluster import WORK_SCALE, ClusterState, Preload
from sim.policies.base import Policy
from sim.request import Batch, Request
from sim.service_time import ServiceTime
from sim.worker import Executor, Worker
from sim.zoo import Zoo

if TYPE_CHECKING:
    from sim.config import ShedConfig
    from sim.frontend import Frontend
    from sim.recorder import Recorder


class ServingSystem:
    """Front-end and workers of one simulated serving cluster."""

    def __init__(self, env: simpy.Environment, zoo: Zoo, *, workers: int, memory_mb: float,
                 max_batch: int, batch_timeout_ms: float, policy: Policy, defense: DefenseStack,
                 service: ServiceTime, preload: Preload = "spread",
                 replicate: bool = True, executor: Executor | None = None,
                 keep_requests: bool = True, shedding: ShedConfig | None = None) -> None:
        too_big = [zoo.names[m] for m in range(len(zoo)) if zoo.memory_mb[m] > memory_mb]
        if too_big:
            raise ValueError(f"memory_mb ({memory_mb}) is smaller than models {too_big}")
        self.env = env
        self.zoo = zoo
        self.policy = policy
        self.defense = defense
        self.keep_requests = keep_requests
        self.state = ClusterState(env, zoo, max_batch=max_batch,
                                  batch_timeout_s=batch_timeout_ms / 1000, service=service,
                                  replicate=replicate, executor=executor)
        """What the workers share with the front-end: queues, placement, counters."""
        self.state.workers = [Worker(self.state, i, memory_mb, self.complete)
                              for i in range(workers)]
        self.requests: list[Request] = []
        """With ``keep_requests``, every submitted request, in arrival order (for tests and
        tools that inspect request objects); a run's records come from :attr:`recorder`."""
        self.recorder: Recorder | None = None
        """Where finished requests go (:mod:`sim.recorder`); set by the run."""
        self.frontend: Frontend | None = None
        """The modeled HTTP front-end (``frontend:``, :mod:`sim.frontend`), which then
        answers finished requests; None: a request is done when its batch is."""
        self.hooks: dict[int, Callable[[Request], None]] = {}
        """Per-tenant callbacks run when a request of that tenant completes."""
        self.completed = 0
        self.in_system = 0
        self.area = 0.0
        """Integral of the number of requests in the system over time (Little's L * T)."""
        self._t_last = 0.0
        self.sheds = shedding is not None and shedding.active
        """Whether an overload rule is on (the records then say which requests were shed)."""
        self._max_pending = shedding.max_pending if shedding is not None else None
        self._slack_ms = (shedding.slack / 1000.0 if shedding is not None and shedding.deadline
                          else None)
        """Deadline shedding: slack per millisecond of target, in seconds; None when off."""
        self._min_retry_s = shedding.min_retry_s if shedding is not None else 0.0
        self.state.preload(preload)
        for w in self.state.workers:
            w.start()

    # -- the shared state, read through the system ---------------------------------------
    @property
    def service(self) -> ServiceTime:
        return self.state.service

    @property
    def executor(self) -> Executor | None:
        """None in simulation; the live server's real batch runner otherwise."""
        return self.state.executor

    @property
    def max_batch(self) -> int:
        return self.state.max_batch

    @property
    def workers(self) -> list[Worker]:
        return self.state.workers

    @property
    def queues(self) -> list[deque[Request]]:
        return self.state.queues

    @property
    def inputs(self) -> list[int]:
        """Inputs waiting in each model's queue."""
        return self.state.inputs

    @property
    def holders(self) -> list[list[Worker]]:
        return self.state.holders

    @property
    def events(self) -> list[tuple[float, str, int, int]]:
        """Model loads and evictions: (time, kind, worker, model)."""
        return self.state.events

    @property
    def arrived(self) -> int:
        return self.state.arrived

    @property
    def n_batches(self) -> int:
        return self.state.n_batches

    # -- arrivals and completions ----------------------------------------------------------
    def submit(self, req: Request) -> None:
        """A request arrives now: defend, shed by occupancy, select, shed by deadline,
        enqueue, wake a worker."""
        now = self.env._now
        self.area += self.in_system * (now - self._t_last)
        self._t_last = now
        self.in_system += 1
        st = self.state
        st.arrived += 1
        if self.keep_requests:
            self.requests.append(req)
        defense = self.defense
        if defense.admits and defense.admit(req) is Decision.REJECT:
            self._reject(req)
            return
        cap = self._max_pending
        if cap is not None and self.in_system > cap:  # in_system counts req itself
            self._shed(req, self._min_retry_s)
            return
        m = req.model
        if m < 0:
            if defense.changes_spec:
                defense.perturb(req)
            choice = defense.select(req) if defense.selector is not None else None
            if choice is None:
                choice = self.policy.select(req, self, now)
            m, req.feasible = choice
            req.model = m
        slack = self._slack_ms
        if slack is not None:
            late = self.estimate_latency_s(m, now, req.size) - slack * req.lat_spec_ms
            if late > 0.0:
                self._shed(req, max(late, self._min_retry_s))
                return
        st.queues[m].append(req)
        n = st.inputs[m] = st.inputs[m] + req.size
        holders = st.holders[m]
        if holders:
            if st.tracking:  # ClusterState.changed(m), inlined: once per request
                work = st.work
                d = int(n * st.cost_s[m] / len(holders) * WORK_SCALE) - work[m]
                if d:
                    work[m] += d
                    for w in holders:
                        w.work += d
        else:
            st.assign(m, st.least_loaded(now))
            return
        b = st.batcher[m]
        if b is not None:
            if st.inputs[m] >= st.max_batch:
                b.wake()
            if st.inputs[m] <= st.max_batch:
                return
        for w in holders:
            if w.idle:
                w.wake()
                return
        if st.replicate:
            for w in st.workers:
                if w.idle and st.model_to_replicate(w) == m:
                    st.assign(m, w)
                    return

    def _reject(self, req: Request) -> None:
        """An admission defense turned ``req`` away: it completes now, unserved (a batch of
        no model and no inputs), and its client hears so through the completion hook."""
        req.rejected = True
        self._unserved(req)

    def _shed(self, req: Request, retry_s: float) -> None:
        """The overload rule refused ``req``: unserved like a rejection, but marked ``shed``,
        with the seconds until a retry could be admitted."""
        req.shed = True
        req.retry_s = retry_s
        self._unserved(req)

    def _unserved(self, req: Request) -> None:
        """``req`` completes now with no model, worker or inputs served."""
        _mark_unserved(req)
        self.complete([req])

    def refuse(self, req: Request) -> None:
        """The modeled front-end refused ``req`` before it entered the system (its
        connection cap): unserved and ``shed``, never counted in the system."""
        req.shed = True
        req.retry_s = self._min_retry_s
        req.arrival = self.env._now
        _mark_unserved(req)

    def complete(self, batch: list[Request]) -> None:
        """A batch finished now: account, then answer (the front-end model) or deliver."""
        now = self.env._now
        self.area += self.in_system * (now - self._t_last)
        self._t_last = now
        n = len(batch)
        self.in_system -= n
        self.completed += n
        if self.frontend is not None:
            self.frontend.answer(batch)
            return
        self.deliver(batch)

    def deliver(self, batch: list[Request]) -> None:
        """Requests whose clients have their answers now: record them, run the hooks."""
        recorder = self.recorder
        if recorder is not None:
            recorder.add(batch)
        if self.hooks:
            for r in batch:
                hook = self.hooks.get(r.tenant)
                if hook is not None:
                    hook(r)

    # -- state for policies (sim.policies.base.SystemView) ---------------------------------
    def queue_len(self, model: int) -> int:
        return self.state.inputs[model]

    def loaded_holders(self, model: int) -> int:
        return self.state.n_loaded[model]

    def estimate_latency_s(self, model: int, now: float, size: int = 1) -> float:
        """INFaaS-style estimate of the latency of a request of ``size`` inputs (the policies
        ask for one) joining ``model``'s queue now.

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

        A request of several inputs joins a batch of ``q % B + size`` inputs; when that is
        more than ``B``, the partial batch ahead leaves first and the request starts its own.
        Exact for one holder, deterministic service and no later arrivals to the worker.
        """
        st = self.state
        max_batch = st.max_batch
        batch_s = self.zoo.batch_s[model]
        full, ahead = divmod(st.inputs[model], max_batch)
        start = st.ready_s(model, now, own=False)
        if full:
            start += full * batch_s[max_batch] / (len(st.holders[model]) or 1)
        b = ahead + size
        if b > max_batch and ahead:   # it does not fit the partial batch, which goes first
            start += batch_s[ahead] / (len(st.holders[model]) or 1)
            ahead, b = 0, size
        timeout = st.batch_timeout_s
        if b < max_batch and timeout > 0.0:
            oldest = now
            if ahead:
                q = st.queues[model]
                i = full * max_batch  # the batch's first request, at one input per request
                oldest = q[i if i < len(q) else -1].arrival
            t = oldest + timeout - now
            if t > start:
                start = t
        return start + (batch_s[b] if b <= max_batch else self.zoo.batch_time_s(model, b))

    def ready_s(self, m: int, now: float, own: bool = True) -> float:
        """How long until some holder of ``m`` has worked off what is ahead of a new request
        (:meth:`ClusterState.ready_s <sim.cluster.ClusterState.ready_s>`)."""
        return self.state.ready_s(m, now, own)


def _mark_unserved(req: Request) -> None:
    """``req`` completes at its arrival with no model, worker or inputs served."""
    req.model = -1
    req.feasible = False
    b = Batch(-1, -1, -1, req.arrival, 0)
    b.finish = req.arrival
    req.batch = b
