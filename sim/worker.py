"""A worker ("GPU"): memory for models, LRU eviction, model loading, dynamic batching.

One event chain per worker (docs/architecture.md principle 1): its serving loop is a few
callbacks, each run by one of its own SimPy events (a wake-up, a batch's or a load's end, a
batching timeout), with one reusable event (:class:`sim.env.Resume`) for all but the timeout;
it schedules the same events at the same moments as a SimPy process yielding them would, so
the order of events is a process's, without a generator to resume. A free worker takes the
next batch from the front-end queue of a model it holds (late binding, as Clockwork's
controller, OSDI'20): among its models with waiting requests, the one whose oldest request
arrived first. A batch is dispatched when it is full (``max_batch``) or when its oldest
request has waited ``batch_timeout_ms``; it is served in the profile's time for that batch
size. Models are loaded (``load_ms``) before serving, evicting least-recently-used models when
memory is short. With an executor (the live server, :mod:`serve`), batches and loads run for
real and the same loop resumes on the executor's events, on the wall clock, instead of
sampling their times.

A worker knows nothing of the front-end (:mod:`sim.system`): it is given the shared
:class:`~sim.cluster.ClusterState` (queues, holders, counters, placement) and a callback it
calls with each finished batch, so the two sides meet only in that state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import simpy
from simpy.events import URGENT

from sim.cluster import WORK_UNIT
from sim.env import Callbacks, Resume
from sim.request import Batch, Request

if TYPE_CHECKING:
    from sim.cluster import ClusterState


_NO_BATCH: list[Request] = []


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


class Worker:
    """One accelerator with its loaded models and its serving loop."""

    def __init__(self, state: ClusterState, wid: int, memory_mb: float,
                 complete: Callable[[list[Request]], None]) -> None:
        self.state = state
        self.env = state.env
        self.complete = complete
        """Called with each finished batch, at its finish time (the front-end's accounting)."""
        self.id = wid
        self.memory_mb = memory_mb
        self.used_mb = 0.0
        self.loaded: OrderedDict[int, None] = OrderedDict()
        """Loaded models, least recently used first."""
        self.pending: list[int] = []
        """Models assigned to this worker but not loaded yet."""
        self.held: list[int] = []
        """Loaded and pending models: what this worker serves."""
        self.idle = False
        """Asleep with nothing to do (placement wakes it when it gives it a model)."""
        self.busy_until = 0.0
        self.work = 0
        """Its share of the work queued for the models it holds, in fixed-point units
        (:data:`sim.cluster.WORK_UNIT`), kept up to date by the cluster state."""
        # the serving loop's state between its steps
        self._sleeping = False
        """Idle, or waiting for a batch to fill, and not yet woken: :meth:`wake` resumes it."""
        self._filling = -1
        """The model whose batch it waits to fill, or -1."""
        self._timer: simpy.Event | None = None
        """The batching timeout of the current wait."""
        self._loading = -1
        self._batch: list[Request] = _NO_BATCH
        """The batch being served, and its :class:`Batch`."""
        self._b = Batch(-1, -1, wid, 0.0, 0)
        self._batch_s = state.zoo.batch_s
        self._sample = state.service.sample
        self._resume = Resume(self.env)
        """Its one outstanding event: a wake-up, a batch's or a load's end (in simulation)."""
        self._on_step: Callbacks = [self._step]
        self._on_wake: Callbacks = [self._woken]
        self._on_done: Callbacks = [self._done]
        self._on_loaded: Callbacks = [self._loaded]

    # -- what placement and the latency estimate read ------------------------------------
    def holds(self, m: int) -> bool:
        return m in self.held

    def backlog_s(self, now: float) -> float:
        """Work ahead of this worker: current batch, pending loads, its share of the queues."""
        pending = sum(self.state.zoo.load_s[m] for m in self.pending)
        return max(self.busy_until - now, 0.0) + pending + self.queued_s()

    def queued_s(self) -> float:
        """This worker's share of the work queued for the models it holds (seconds): the sum
        of each held model's :meth:`share <sim.cluster.ClusterState.share>`, exact in
        integers and rounded once; O(1), a running sum (:mod:`sim.cluster`)."""
        if not self.state.tracking:
            self.state.track()
        return self.work * WORK_UNIT

    def queued_other_s(self, m: int) -> float:
        """:meth:`queued_s` less model ``m``'s share: the queued work of the other models
        (for a worker holding ``m``)."""
        s = self.state
        if not s.tracking:
            s.track()
        return (self.work - s.work[m]) * WORK_UNIT

    def wake(self) -> None:
        """Wake the worker if it sleeps (idle, or waiting for a batch to fill): it resumes
        now, after the events already due now."""
        if self._sleeping:
            self._sleeping = False
            self.idle = False
            # an idle worker has no batch wait to end: it resumes straight into its step
            # (its wait state cannot change before then: this is its one outstanding event)
            self._resume.at(0.0, self._on_wake if self._filling >= 0 else self._on_step)

    # -- the serving loop: one event chain, each step a callback ------------------------
    def start(self) -> None:
        """Start serving: the first step runs now, before the events already scheduled for
        now (where a SimPy process would start)."""
        self._resume.at(0.0, self._on_step, URGENT)

    def _step(self, _: object = None) -> None:
        """Find work and start it; or sleep until woken.

        The next model is the one, among the models it holds with waiting requests, whose
        oldest request arrived first (a model whose batch another worker is filling is left
        to that worker); with none and ``replicate``, one whose backlog would outlast its
        load. Chosen here, not in a method of its own, and the batch taken from the queue
        inline too: this runs once per batch and once per wake-up, the engine's hottest
        path after the event loop itself."""
        s = self.state
        queues, max_batch = s.queues, s.max_batch
        batcher, inputs = s.batcher, s.inputs
        m, oldest = -1, float("inf")
        for h in self.held:
            q = queues[h]
            if not q:
                continue
            w = batcher[h]
            if w is not None and w is not self and inputs[h] <= max_batch:
                continue  # another worker is filling a batch of these
            t = q[0].arrival
            if t < oldest:
                m, oldest = h, t
        if m < 0:
            if s.replicate:
                m = s.model_to_replicate(self)
            if m < 0:
                self.idle = True
                self._sleeping = True
                return
            s.assign(m, self)
        if m not in self.loaded:
            self._load(m)
            return
        q = queues[m]
        n = inputs[m]
        timeout = s.batch_timeout_s
        now = self.env._now
        if n < max_batch and timeout > 0:
            delay = q[0].arrival + timeout - now
            if delay > 1e-12:
                self._wait_for_batch(m, delay)
                return
        if n <= max_batch:
            batch = list(q)
            q.clear()
        else:  # requests from the head while their inputs fit (at least one)
            r = q.popleft()
            batch = [r]
            n = r.size
            while q and n + q[0].size <= max_batch:
                r = q.popleft()
                n += r.size
                batch.append(r)
        inputs[m] -= n
        if s.tracking:
            s.changed(m)
        s.n_batches += 1
        b = Batch(s.n_batches, m, self.id, now, n)
        for r in batch:
            r.batch = b
        self.loaded.move_to_end(m)
        self._batch = batch
        self._b = b
        expected = self._batch_s[m][n] if n <= max_batch else s.zoo.batch_time_s(m, n)
        executor = s.executor
        if executor is None:
            service = self._sample(expected)
            # with the front-end model the worker is free only once its answer is read back
            # (sim.frontend): a backlog estimate from this misses that wait under load
            self.busy_until = now + service
            run = s.run_batch
            if run is None:
                self._resume.at(service, self._on_done)
            else:  # through the modeled front-end, on the host's cores
                run(self.id, service, self._done)
        else:  # live: the batch runs for real; the estimate stands in until it is done
            self.busy_until = now + expected
            _then(executor.run(self.id, m, batch, n), self._done)

    def _done(self, _: object = None) -> None:
        """The batch finished now: stamp it, hand it to the front-end, find more work."""
        batch = self._batch
        self._b.finish = self.env._now
        self._batch = _NO_BATCH
        self.complete(batch)
        self._step()

    def _wait_for_batch(self, m: int, delay: float) -> None:
        """Sleep until model ``m``'s batch fills (the front-end wakes this worker) or its
        oldest request has waited the batching timeout (the timer wakes it)."""
        self.state.batcher[m] = self
        self._filling = m
        self._sleeping = True
        timer = self._timer = self.env.timeout(delay)
        timer.callbacks.append(self._expire)

    def _expire(self, timer: simpy.Event) -> None:
        """The batching timeout of the current wait: wake up (a wait already woken and
        replaced by another leaves its old timer without effect)."""
        if timer is self._timer and self._sleeping:
            self._sleeping = False
            self._resume.at(0.0, self._on_wake)

    def _woken(self, _: object = None) -> None:
        m = self._filling
        if m >= 0:
            self._filling = -1
            self._timer = None
            s = self.state
            if s.batcher[m] is self:
                s.batcher[m] = None
        self._step()

    def _load(self, m: int) -> None:
        s = self.state
        self.pending.remove(m)
        need = s.zoo.memory_mb[m]
        while self.used_mb + need > self.memory_mb + 1e-9:
            self._evict(self._victim())
        self.used_mb += need
        s.log_event("load", self.id, m)
        self.busy_until = self.env.now + s.zoo.load_s[m]
        self._loading = m
        if s.executor is None:
            self._resume.at(s.zoo.load_s[m], self._on_loaded)
        else:
            _then(s.executor.load(self.id, m), self._loaded)

    def _loaded(self, _: object = None) -> None:
        self.loaded[self._loading] = None
        self.state.n_loaded[self._loading] += 1
        self._loading = -1
        self._step()

    def _victim(self) -> int:
        """Least recently used loaded model, preferring one with no waiting requests."""
        queues = self.state.queues
        for m in self.loaded:
            if not queues[m]:
                return m
        return next(iter(self.loaded))

    def _evict(self, m: int) -> None:
        s = self.state
        del self.loaded[m]
        s.n_loaded[m] -= 1
        self.held.remove(m)
        self.used_mb -= s.zoo.memory_mb[m]
        s.log_event("evict", self.id, m)
        if s.executor is not None:
            s.executor.evict(self.id, m)
        s.release(m, self)


def _then(ev: simpy.Event, fn: Callable[[simpy.Event], None]) -> None:
    """Call ``fn`` when ``ev`` is processed (at once if it already was)."""
    if ev.callbacks is None:
        fn(ev)
    else:
        ev.callbacks.append(fn)

