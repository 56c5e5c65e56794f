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
import gc
import math
import select
import selectors
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import simpy

T = TypeVar("T")


class WallClockEnvironment(simpy.Environment):
    """SimPy time = wall time (seconds since creation) of an asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, spin_s: float = 0.0) -> None:
        super().__init__(0.0)
        self.spin_s = spin_s
        """Timers closer than this are awaited by yielding to the loop (``call_soon``) until
        due, instead of by the selector, whose timeout has a resolution of 1 ms (epoll): sub-ms
        batching timeouts then fire on time, at the cost of a busy loop for that long."""
        self.loop = loop
        self.t0 = time.perf_counter()
        self._timer: asyncio.Handle | None = None
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
            delay = nxt - self.wall()
            if delay <= self.spin_s:
                self._timer = self.loop.call_soon(self._fire)
            else:
                self._timer = self.loop.call_later(delay - self.spin_s, self._fire)

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


class PreciseEpollSelector(selectors.EpollSelector):
    """epoll for any number of descriptors, with timeouts to the microsecond.

    ``epoll_wait`` takes its timeout in whole milliseconds (Python rounds up), so a timer due
    in 0.3 ms would fire after 1 ms. The epoll descriptor is itself readable when any of its
    descriptors is ready, so a positive timeout is waited in ``select`` on that one descriptor
    (microsecond timeout), then the ready events are collected without waiting. ``select``
    only ever sees the epoll descriptor, so the number of connections is not limited by
    FD_SETSIZE (1,024) as the plain ``select`` loop's was."""

    def __init__(self) -> None:
        super().__init__()
        self._epfd = self.fileno()
        self._precise = self._epfd < 1024  # select() takes descriptors below FD_SETSIZE

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._precise and timeout is not None and timeout > 0:
            select.select([self._epfd], [], [], timeout)  # (retried on EINTR: PEP 475)
            timeout = 0
        return super().select(timeout)


def precise_selector() -> selectors.BaseSelector:
    """The selector of :func:`precise_event_loop`: precise epoll on Linux; elsewhere the
    platform's default (kqueue takes a timespec timeout, precise already)."""
    if hasattr(selectors, "EpollSelector"):
        return PreciseEpollSelector()
    return selectors.DefaultSelector()


def precise_event_loop() -> asyncio.AbstractEventLoop:
    """An asyncio loop whose timers fire within tens of microseconds of their time, for any
    number of connections (:class:`PreciseEpollSelector`).

    The default loop waits in ``epoll`` with a timeout rounded up to whole milliseconds: a
    1 ms batching timeout fires after 1-2 ms, and a request scheduled for t is sent up to 1 ms
    late."""
    return asyncio.SelectorEventLoop(precise_selector())


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open descriptors to its hard limit (a server holds
    one per connection; the usual soft limit is 1,024); returns the limit now in force."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 1 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        return soft
    return want


def run_precise(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a :func:`precise_event_loop`."""
    loop = precise_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


YOUNG_GC_THRESHOLD = 20_000
"""Net allocations of tracked objects between two young-generation collections, where
:func:`quiet_gc` raises it (CPython's default: 700 up to 3.12, 2,000 in 3.13)."""
GENERATIONAL_GC = sys.version_info < (3, 14)
"""CPython 3.14 collects the old generation incrementally, in steps sized from the young
generation's threshold: a larger threshold is a different trade there, not measured."""


def quiet_gc() -> None:
    """Collect, move every object alive now out of the garbage collector's reach, and
    (up to CPython 3.13) collect the young generation less often: for a process that serves
    or sends requests. Process-wide, and never undone.

    - A full collection walks every tracked object; in a process that has imported torch,
      pandas and the zoo that is hundreds of thousands of them, tens of milliseconds during
      which nothing is served or sent (the live tail showed such stalls). Objects made at
      start-up live for good anyway; after ``gc.freeze`` collections walk only what came
      later, as long-running Python servers do.
    - A request in flight holds about a hundred tracked objects in the ASGI stack
      (coroutines, their frames, tasks, exit stacks). At the default threshold, under a
      backlog of 256 requests, a young collection ran about every 22 requests and every
      tenth of them was a middle-generation one that walked all those objects again: the
      event loop spent ~0.05 ms a request in the collector, in pauses of 6 ms on average
      (up to 15 ms; full collections 14, up to 22 ms) while a worker's answer waited
      (measured on CPython 3.11: docs/results/simcheck.md, "The garbage collector past
      saturation"). After :data:`YOUNG_GC_THRESHOLD` net allocations those walks come
      about 29 times less often, for at most that many young objects kept a while longer."""
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    if young and GENERATIONAL_GC:  # 0: collection switched off by the caller; leave it so
        gc.set_threshold(max(young, YOUNG_GC_THRESHOLD), *older)
