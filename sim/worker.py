"""A worker ("GPU"): memory for models, LRU eviction, model loading, dynamic batching.

One SimPy process per worker (docs/architecture.md principle 1). A free worker takes the next batch
from the front-end queue of a model it holds (late binding, as Clockwork's controller, OSDI'20):
among its models with waiting requests, the one whose oldest request arrived first. A batch is
dispatched when it is full (``max_batch``) or when its oldest request has waited
``batch_timeout_ms``; it is served in the profile's time for that batch size. Models are loaded
(``load_ms``) before serving, evicting least-recently-used models when memory is short. With an
executor (the live server, :mod:`serve`), batches and loads run for real and the same loop waits
for them on the wall clock instead of sampling their times.

A worker knows nothing of the front-end (:mod:`sim.system`): it is given the shared
:class:`~sim.cluster.ClusterState` (queues, holders, counters, placement) and a callback it
calls with each finished batch, so the two sides meet only in that state.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from sim.request import Batch, Request

if TYPE_CHECKING:
    from sim.cluster import ClusterState


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
        self.busy_until = 0.0
        self._wake: simpy.Event | None = None
        self._queued: tuple[tuple[int, int, int], float] = ((-1, -1, -1), 0.0)

    # -- what placement and the latency estimate read ------------------------------------
    def holds(self, m: int) -> bool:
        return m in self.held

    def backlog_s(self, now: float) -> float:
        """Work ahead of this worker: current batch, pending loads, its share of the queues."""
        pending = sum(self.state.zoo.load_s[m] for m in self.pending)
        return max(self.busy_until - now, 0.0) + pending + self.queued_s()

    def queued_s(self) -> float:
        """This worker's share of the work queued for the models it holds (seconds).

        Memoised per system state version: a policy comparing several models during one
        selection reads each worker's backlog once.
        """
        s = self.state
        version = (s.arrived, s.n_batches, s.placements)
        if self._queued[0] != version:
            per_holder = s.work_per_holder_s
            self._queued = (version, sum([per_holder(m) for m in self.held]))
        return self._queued[1]

    def queued_other_s(self, m: int) -> float:
        """:meth:`queued_s` less model ``m``'s share: the queued work of the other models.

        For a worker holding ``m``. Cheap: the memoised total less one term (clamped at 0
        against rounding).
        """
        t = self.queued_s() - self.state.work_per_holder_s(m)
        return t if t > 0.0 else 0.0

    def wake(self) -> None:
        """Wake the worker if it sleeps (idle, or waiting for a batch to fill)."""
        ev = self._wake
        if ev is not None and not ev.triggered:
            self.idle = False
            ev.succeed()

    # -- the serving loop ----------------------------------------------------------------
    def run(self) -> Generator[simpy.Event, Any, None]:
        env, s = self.env, self.state
        max_batch, timeout = s.max_batch, s.batch_timeout_s
        queues, inputs, batch_s, sample = s.queues, s.inputs, s.zoo.batch_s, s.service.sample
        loaded, wid, executor, complete = self.loaded, self.id, s.executor, self.complete
        while True:
            m = self._next_model()
            if m < 0:
                self.idle = True
                self._wake = env.event()
                yield self._wake
                continue
            if m not in loaded:
                yield from self._load(m)
                continue
            q = queues[m]
            n = inputs[m]
            if n < max_batch and timeout > 0:
                delay = q[0].arrival + timeout - env.now
                if delay > 1e-12:
                    yield from self._wait_for_batch(m, delay)
                    continue
            if n <= max_batch:
                batch = list(q)
                q.clear()
            else:
                batch, n = _take(q, max_batch)
            inputs[m] -= n
            now = env.now
            s.n_batches += 1
            b = Batch(s.n_batches, m, wid, now, n)
            for r in batch:
                r.batch = b
            loaded.move_to_end(m)
            expected = batch_s[m][n] if n <= max_batch else s.zoo.batch_time_s(m, n)
            if executor is None:
                service = sample(expected)
                self.busy_until = now + service
                yield env.timeout(service)
            else:  # live: the batch runs for real; the estimate stands in until it is done
                self.busy_until = now + expected
                yield executor.run(wid, m, batch, n)
            b.finish = env.now
            complete(batch)

    def _next_model(self) -> int:
        s = self.state
        queues, batcher, max_batch = s.queues, s.batcher, s.max_batch
        best, best_t = -1, float("inf")
        for m in self.held:
            q = queues[m]
            if not q:
                continue
            b = batcher[m]
            if b is not None and b is not self and s.inputs[m] <= max_batch:
                continue  # another worker is filling a batch of these
            t = q[0].arrival
            if t < best_t:
                best, best_t = m, t
        if best < 0 and s.replicate:
            best = s.model_to_replicate(self)
            if best >= 0:
                s.assign(best, self)
        return best

    def _wait_for_batch(self, m: int, delay: float) -> Generator[simpy.Event, Any, None]:
        s = self.state
        s.batcher[m] = self
        ev = self._wake = self.env.event()

        def expire(_: simpy.Event) -> None:
            if not ev.triggered:
                ev.succeed()

        self.env.timeout(delay).callbacks.append(expire)
        yield ev
        if s.batcher[m] is self:
            s.batcher[m] = None

    def _load(self, m: int) -> Generator[simpy.Event, Any, None]:
        s = self.state
        self.pending.remove(m)
        need = s.zoo.memory_mb[m]
        while self.used_mb + need > self.memory_mb + 1e-9:
            self._evict(self._victim())
        self.used_mb += need
        s.log_event("load", self.id, m)
        self.busy_until = self.env.now + s.zoo.load_s[m]
        if s.executor is None:
            yield self.env.timeout(s.zoo.load_s[m])
        else:
            yield s.executor.load(self.id, m)
        self.loaded[m] = None

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
        self.held.remove(m)
        self.used_mb -= s.zoo.memory_mb[m]
        s.log_event("evict", self.id, m)
        if s.executor is not None:
            s.executor.evict(self.id, m)
        s.release(m, self)


def _take(q: deque[Request], max_inputs: int) -> tuple[list[Request], int]:
    """Requests from the head of ``q`` while their inputs fit in ``max_inputs`` (at least one)."""
    batch = [q.popleft()]
    n = batch[0].size
    while q and n + q[0].size <= max_inputs:
        r = q.popleft()
        n += r.size
        batch.append(r)
    return batch, n
