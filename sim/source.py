"""The arrival source: one event chain turns every tenant's arrival times into requests.

Each tenant's arrival times come in vectorised chunks from its arrival process, and its SLO
targets in matching chunks from its SLO distributions, each from its own named random stream
(``arrivals/<tenant>``, ``slo/<tenant>``), so the same seed gives the same requests however the
tenants interleave. The tenants' streams are merged by one :class:`ArrivalSource` (their order
is known in advance): each tenant's next arrival holds the place in SimPy's event order that
its own timeout would have (an event id reserved when the tenant's previous arrival was
served, :meth:`sim.env.Environment.reserve`). The source then drives the event loop itself:
it processes the events that come before that place (``Environment.step``, in SimPy's order,
the workers' batches and wake-ups), and once its arrival is the next event anyway, serves it
at once, without an event (:meth:`sim.env.Environment.run_to`). Only the first arrival, and
one after each time the loop is stopped from outside (``run(until=...)``), goes through
SimPy's queue, under its reserved id. Simultaneous events therefore keep SimPy's order, as if
each tenant were its own process yielding a timeout per arrival.

The run stops taking arrivals after ``requests`` arrivals in all (in time order) or at
``duration_s``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT, EventPriority

from sim.env import Environment, Resume
from sim.request import Request
from workloads.arrivals.base import ArrivalProcess
from workloads.slo import Distribution


class StopRule:
    """When arrivals stop: a total request count, a time horizon, or neither."""

    def __init__(self, requests: int | None, duration_s: float | None) -> None:
        self.remaining = requests if requests is not None else -1
        self.until = duration_s if duration_s is not None else float("inf")
        self.next_id = 0

    def new_id(self) -> int:
        """A request id outside the request budget (for clients that are not tenants)."""
        rid = self.next_id
        self.next_id += 1
        return rid

    def halt(self) -> None:
        """No more arrivals from now on."""
        self.remaining = 0

    def take(self) -> int:
        """Claim the next request id, or -1 if the request budget is spent."""
        if self.remaining == 0:
            return -1
        self.remaining -= 1
        rid = self.next_id
        self.next_id += 1
        return rid


class _Tenant:
    """One tenant's place in its arrivals, and when its next one is due."""

    __slots__ = ("accs", "accuracy", "at", "chunks", "due", "eid", "i", "latency", "lats", "n",
                 "priority", "tenant", "times")

    def __init__(self, tenant: int, chunks: Iterator[np.ndarray], accuracy: Distribution,
                 latency: Distribution, at: float, eid: int) -> None:
        self.tenant = tenant
        self.chunks = chunks
        self.accuracy = accuracy
        self.latency = latency
        self.times: list[float] = []
        self.accs: list[float] = []
        self.lats: list[float] = []
        self.i = self.n = 0
        self.at = at
        """When its next step is due (its start, then its next arrival), at ``priority``
        under the event id ``eid``."""
        self.priority: EventPriority = URGENT  # a tenant starts as a SimPy process would
        self.eid = eid
        self.due = False
        """Whether the step due is the arrival ``times[i]`` (else: the tenant's start)."""

    def refill(self) -> bool:
        """The next chunk of arrivals and their SLO targets; False when there is none."""
        while True:
            times = next(self.chunks, None)
            if times is None:
                return False
            n = len(times)
            if n:
                self.times = times.tolist()
                self.accs = self.accuracy.sample(n).tolist()
                self.lats = self.latency.sample(n).tolist()
                self.i, self.n = 0, n
                return True
            self.accuracy.sample(0)
            self.latency.sample(0)


class ArrivalSource:
    """Submits every tenant's requests at their arrival times until the stop rule says so."""

    def __init__(self, env: Environment, submit: Callable[[Request], None],
                 stop: StopRule) -> None:
        self.env = env
        self.submit = submit
        self.stop = stop
        self._tenants: list[_Tenant] = []
        self._next: _Tenant | None = None
        """The tenant whose step the scheduled event is for (None: no event scheduled)."""
        self._event = Resume(env)
        self._callbacks = [self._fire]

    def add(self, tenant: int, arrivals: ArrivalProcess, accuracy: Distribution,
            latency: Distribution) -> None:
        """Add a tenant; it starts now, after what is already due now (as a new process)."""
        t = _Tenant(tenant, iter(arrivals.chunks()), accuracy, latency, self.env.now,
                    self.env.reserve())
        nxt = self._next
        if nxt is not None and _before(t, nxt):
            raise RuntimeError("tenants are added before the arrivals they precede are due")
        self._tenants.append(t)
        if nxt is None and len(self._tenants) == 1:
            self._schedule(t)

    def _schedule(self, t: _Tenant) -> None:
        self._next = t
        self._event.callbacks = self._callbacks
        self.env.schedule_reserved(self._event, t.at, t.priority, t.eid)

    def _fire(self, _: simpy.Event) -> None:
        """The scheduled step is due: take it, then every later one, each after the events
        that come before it (:meth:`sim.env.Environment.run_to`), until the arrivals end.

        If processing stops in between (``run(until=...)`` reached, an error), the next step
        is scheduled under its reserved id, on a new event (SimPy reschedules the one whose
        callback was stopped, with no callbacks left), as if the source had not run the
        events, and the exception propagates to the loop that called us, as it would have.
        """
        t = self._next
        assert t is not None
        tenants = self._tenants
        run_to = self.env.run_to
        while True:
            self._step(t)
            nxt: _Tenant | None = None
            for u in tenants:
                if nxt is None or _before(u, nxt):
                    nxt = u
            self._next = nxt
            if nxt is None:
                return
            t = nxt
            try:
                run_to(t.at, t.priority, t.eid)
            except BaseException:
                self._event = Resume(self.env)
                self._schedule(t)
                raise

    def _step(self, t: _Tenant) -> None:
        """Tenant ``t``'s step: its due arrival, then those due at the same time, until one
        lies ahead (its event id is reserved now) or its arrivals end.

        Once per request, so :meth:`StopRule.take` and :meth:`Environment.reserve
        <sim.env.Environment.reserve>` are inlined (the same reads and writes, in the same
        order; the stop rule is read afresh for each arrival, as ``submit`` may halt it or
        take ids from it)."""
        env, stop, submit = self.env, self.stop, self.submit
        tenant, until = t.tenant, stop.until
        times, n, i = t.times, t.n, t.i
        due = t.due  # times[i] is due now: it was checked against the horizon when reserved
        while True:
            if not due:
                if i == n:
                    if not t.refill():
                        self._tenants.remove(t)
                        return
                    times, n, i = t.times, t.n, 0
                at = times[i]
                if at >= until:
                    self._tenants.remove(t)
                    return
                now = env._now
                dt = at - now
                if dt > 0:
                    t.i = i
                    t.at = now + dt
                    t.priority = NORMAL
                    t.eid = next(env._eid)  # env.reserve()
                    t.due = True
                    return
            due = False
            left = stop.remaining  # stop.take(), inlined
            if left == 0:
                self._tenants.remove(t)
                return
            stop.remaining = left - 1
            rid = stop.next_id
            stop.next_id = rid + 1
            submit(Request(rid, tenant, times[i], t.accs[i], t.lats[i]))
            i += 1


def _before(a: _Tenant, b: _Tenant) -> bool:
    """Whether ``a``'s step comes before ``b``'s in SimPy's order (time, priority, id)."""
    return a.at < b.at or (a.at == b.at and (a.priority < b.priority or (
        a.priority == b.priority and a.eid < b.eid)))
