"""A SimPy environment on the wall clock, driven by an asyncio event loop.

The live server (``zoosim serve``) and the live attacker run the simulator's own SimPy code
(the serving front-end and workers of :mod:`sim.system`, the attacker's strategies) in real
time: ``now`` is seconds of ``time.perf_counter`` since the environment was made (not the
loop's own clock, which some loops, e.g. uvloop, keep in whole milliseconds), a
timeout fires when that much wall time has passed, and events can come from outside SimPy
(an HTTP request arriving, a batch finishing on a worker thread) through :meth:`inject`.

There is no busy loop and no extra thread: after every injection and every timer the
environment processes the events that are due and arms one ``loop.call_at`` for the next one.
Events that fell due while the loop was busy run late, in time order, and time never goes
backwards (like SimPy's ``RealtimeEnvironment`` with ``strict=False``). Every method must be
called on the loop's thread; other threads use :meth:`inject_threadsafe`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import simpy


class WallClockEnvironment(simpy.Environment):
    """SimPy time = wall time (seconds since creation) of an asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(0.0)
        self.loop = loop
        self.t0 = time.perf_counter()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.error: BaseException | None = None
        """The first exception a SimPy process raised (the environment stops pumping)."""

    def wall(self) -> float:
        """Seconds since the environment was made."""
        return time.perf_counter() - self.t0

    def inject(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` at the current wall time (after the events already due) and process
        what it triggers; returns what ``fn`` returns."""
        self.pump()
        now = self.wall()
        if now > self._now:
            self._now = now
        result = fn()
        self.pump()
        return result

    def inject_threadsafe(self, fn: Callable[[], Any]) -> None:
        """:meth:`inject` from any thread (runs soon on the loop's thread)."""
        self.loop.call_soon_threadsafe(self.inject, fn)

    def pump(self) -> None:
        """Process every event due by now; arm a timer for the next one."""
        if self.error is not None:
            return
        wall = self.wall()
        try:
            while self.peek() <= wall:
                self.step()
        except BaseException as e:  # a SimPy process failed: keep it for whoever waits
            self.error = e
            return
        nxt = self.peek()
        if nxt == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = nxt
        if nxt < math.inf:
            self._timer = self.loop.call_later(max(0.0, nxt - self.wall()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self.pump()

    def close(self) -> None:
        """Stop the timer (events still queued are dropped)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf
