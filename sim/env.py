"""The simulator's SimPy environment, and the reusable event the engine's event chains use.

SimPy processes one event per step, in the order ``(time, priority, event id)``; the id is a
counter taken when the event is scheduled, so of two events due at once the one scheduled
first runs first. An arrival source knows its next arrivals in advance, so it need not put
them in the queue: it may run the event loop itself up to its next arrival, and serve that
arrival without an event. :class:`Environment` adds that, in one place:

- :meth:`Environment.reserve` takes an event id *now*, exactly as scheduling an event now
  would, so the arrival keeps its place among events due at the same time;
- :meth:`Environment.run_to` processes (SimPy's own :meth:`~simpy.core.Environment.step`)
  every event that an event at that time, of that priority, holding that id would come
  after, then moves the clock to the arrival; ties with other events therefore keep the
  order SimPy would give them;
- :meth:`Environment.schedule_reserved` schedules an event under an id reserved earlier (the
  first arrival, or one whose :meth:`run_to` was interrupted by ``run(until=...)``).

A run therefore processes the same events in the same order, and the same seed gives the same
records, whether an arrival went through the queue or not; SimPy's event counter (what the
summary's ``events_per_s`` reads) counts the arrivals served without an event too, and
:attr:`Environment.skipped` says how many there were.

:class:`Resume` is an event that is scheduled again after it was processed: an event chain
(a worker, the arrival source) that never has more than one of its own events outstanding
reuses one, rather than allocating an event per step. It works on any SimPy environment
that keeps SimPy's own ``schedule`` (both here do, the live server's wall clock included): it
pushes the entry ``schedule`` would, without the call.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import StopSimulation
from simpy.events import NORMAL, EventPriority

Callbacks = list[Callable[[simpy.Event], None]]


class Environment(simpy.Environment):
    """SimPy's environment, plus running up to a reserved place without an event (above)."""

    def __init__(self, initial_time: float = 0.0) -> None:
        super().__init__(initial_time)
        self.skipped = 0
        """Events reserved and then processed without going through the queue."""

    def reserve(self) -> int:
        """An event id, taken now: the place an event scheduled now would have."""
        return next(self._eid)

    def run_to(self, at: float, priority: EventPriority, eid: int) -> None:
        """Process (:meth:`step`) every event that comes before an event at ``at`` of
        ``priority`` holding the reserved ``eid``, then move the clock to ``at``: the caller
        then does now what that event would have done. What the event loop would do, in
        its order, with that event in the queue; an exception from a step (``run(until=...)``
        reached, an error) propagates, with the clock at that step and ``eid`` unused."""
        q = self._queue
        while q:
            head = q[0]
            t = head[0]
            if at < t or (at == t and (priority < head[1]
                                       or (priority == head[1] and eid < head[2]))):
                break
            # SimPy's step() (4.1), inlined: this loop runs nearly every event of a run, and
            # saving a call per event is a measurable share of the engine's time. Same order,
            # same rescheduling of an event whose callbacks a StopSimulation cut short (a
            # run(until=...) reached), same crash on an undefused failure
            self._now, _, _, event = heappop(q)
            callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]
            try:
                for callback in callbacks:
                    callback(event)
            except StopSimulation:
                event.callbacks = callbacks[callbacks.index(callback) + 1:]
                self.schedule(event, EventPriority(-1))
                raise
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
        self._now = at
        self.skipped += 1

    def schedule_reserved(self, event: simpy.Event, at: float, priority: EventPriority,
                          eid: int) -> None:
        """Schedule ``event`` at time ``at`` under an id taken earlier with :meth:`reserve`."""
        heappush(self._queue, (at, priority, eid, event))


class Resume(simpy.Event):
    """A reusable event of one event chain, which has at most one of them outstanding.

    Always succeeds; :meth:`at` schedules it after ``delay`` with the callbacks given (a list
    built once by the owner: SimPy only reads it).
    """

    def __init__(self, env: simpy.Environment) -> None:  # no Event.__init__: never pending
        self.env = env
        self.callbacks: Any = None
        self._ok = True
        self._value = None

    def at(self, delay: float, callbacks: Callbacks, priority: EventPriority = NORMAL) -> None:
        """Process ``callbacks`` after ``delay`` (at ``priority`` among events due at once).

        SimPy's ``Environment.schedule``, inlined (one call less on every step of every
        chain): the entry it pushes, ``(now + delay, priority, next id, event)``, is the
        one ``schedule`` would push; neither environment here overrides ``schedule``."""
        self.callbacks = callbacks
        env = self.env
        heappush(env._queue, (env._now + delay, priority, next(env._eid), self))
