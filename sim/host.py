"""A host's CPU cores, shared by processor sharing among the processes that run on them.

Issue 18: on a CPU-serving machine the HTTP front-end, the worker processes (their forward
passes) and, in ``zoosim simcheck``, the load generator all run on the same few cores, so
each slows the others down once more of them are busy than there are cores. Two pieces:

- :class:`Host`: ``cores`` cores shared by **egalitarian processor sharing** among the
  runnable single-threaded processes, each running at ``min(1, cores / n)`` of a core when
  ``n`` are runnable. Why processor sharing and not a k-core FCFS queue: Linux's CFS
  scheduler gives runnable threads equal shares in slices of a few milliseconds, so a
  forward pass and the front-end's parsing interleave; neither waits for the other to
  finish, as a k-server queue would make them. Processor sharing is the fluid limit of that
  time slicing (Kleinrock), and with ``cores`` at least the number of processes it is no
  sharing at all. Each process is one thread (a Python event loop, a worker with one torch
  thread): it never runs on more than one core. Two other models of the same cores, one
  interface (``frontend.cpu``): :class:`CoreQueue` (whole cores taken in turn, with a time
  slice or none) and :class:`RunQueues` (a processor-shared run queue per core, a process
  kept on its own core unless another is idle).
- :class:`Station`: ``servers`` such processes taking jobs from one FCFS queue (one process
  is the live server's front-end; several share an accept queue), each an event loop that
  sleeps in ``epoll_wait`` when it has nothing to do. A job that finds its process asleep
  costs ``setup_s`` more: the wake-up, and the loop's work around it on a CPU whose caches
  have gone cold; a process that is busy takes the next job at once (jobs ready at the same
  moment, :meth:`Station.submit_all`, share one wake-up). At low load every request wakes
  the front-end several times; under load it rarely sleeps, which is why a Python
  front-end's CPU per request falls as the load rises (measured, with the costs, by
  ``zoosim frontend profile``, :mod:`serve.frontend_probe`). Queueing theory's M/G/1 with
  an exceptional first service (Welch, 1964). A station's ``peers`` (a model server's
  other workers) leave it cold when they ran while it slept.

All the runnable processes progress at the same rate, so one *virtual time* ``v`` (CPU
seconds each has received since the start) gives every completion: a job started at virtual
time ``v0`` with ``w`` CPU seconds ends when ``v`` reaches ``v0 + w``. The host keeps the
running jobs in a heap by that virtual end and one pending SimPy event for the next one
(events made stale by a change of rate are left to fire and do nothing). Tested against
queueing theory in ``tests/sim/test_host.py``: M/M/1, M/D/1 (Pollaczek-Khinchine), M/M/k
(Erlang C), a shared core (M/M/1 of the pooled load), and the wake-up cost against a
job-by-job recursion.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappop, heappush

import simpy

EPSILON = 1e-12
"""Relative slack for float rounding: which jobs end together (virtual time), and whether a
burst cut into time slices has work left."""

Done = Callable[[], None]


def coldness(slept: float, cooling: float) -> float:
    """How far a process asleep ``slept`` has gone cold, ``1 - exp(-slept / cooling)``:
    0 (hot) to 1; ``cooling`` 0 (or less): cold at once. Any unit, the same for both."""
    return -math.expm1(-slept / cooling) if cooling > 0.0 else 1.0


class Host:
    """``cores`` CPU cores, processor-shared among runnable processes (module docstring)."""

    def __init__(self, env: simpy.Environment, cores: float) -> None:
        if cores <= 0:
            raise ValueError(f"cores must be positive, got {cores}")
        self.env = env
        self.cores = float(cores)
        self._v = 0.0
        """Virtual time: CPU seconds each runnable process has received."""
        self._t = env.now
        """When :attr:`_v` was last brought up to date."""
        self._running: list[tuple[float, int, Done]] = []
        """Running jobs: (virtual end, sequence number, callback), a heap."""
        self._seq = 0
        self._generation = 0
        """Tells the one live completion event from stale ones."""
        self._in_callback = False
        self.busy_s = 0.0
        """Core-seconds of CPU given so far (for utilization)."""

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._running)

    def rate(self) -> float:
        """The share of a core each runnable process gets now."""
        n = len(self._running)
        return 1.0 if n <= self.cores else self.cores / n

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._t
        if dt > 0.0:
            if self._running:
                r = self.rate()
                self._v += dt * r
                self.busy_s += dt * r * len(self._running)
            self._t = now

    def run(self, work_s: float, done: Done, owner: object = None) -> None:
        """Start a job of ``work_s`` CPU seconds now, on a process of its own; ``done()``
        is called when it has had them (``owner``, the process, is for
        :class:`RunQueues`: processor sharing shares alike whoever runs)."""
        self._advance()
        self._seq += 1
        heappush(self._running, (self._v + max(work_s, 0.0), self._seq, done))
        if not self._in_callback:
            self._schedule()

    def _schedule(self) -> None:
        self._generation += 1
        if not self._running:
            return
        delay = max((self._running[0][0] - self._v) / self.rate(), 0.0)
        ev = self.env.timeout(delay, self._generation)
        ev.callbacks.append(self._fire)

    def _fire(self, ev: simpy.Event) -> None:
        if ev.value != self._generation:
            return  # the rate changed since: a later event holds the true time
        self._advance()
        running = self._running
        # this event was scheduled for the head job: it ends now, whatever rounding left of
        # its virtual time (so the clock always moves on); so do jobs ending with it
        end, _, done = heappop(running)
        self._v = max(self._v, end)
        finished = [done]
        limit = self._v + EPSILON * max(1.0, self._v)
        while running and running[0][0] <= limit:
            finished.append(heappop(running)[2])
        self._in_callback = True
        try:
            for done in finished:
                done()
        finally:
            self._in_callback = False
        self._schedule()


@dataclass(slots=True)
class _Burst:
    """A job of :class:`CoreQueue`: the CPU seconds it has left, and its callback."""

    left_s: float
    done: Done


class CoreQueue:
    """The other model of the same cores: each runnable process's job gets a whole core when
    one is free, else waits, FCFS, for the first to free up, and then runs at full speed for
    at most ``slice_s`` before it goes to the back of the queue if another job waits there
    (round robin with quantum ``slice_s``; infinite, the default: every CPU burst runs to
    its end, an M/G/k queue of bursts). The quantum is the scheduler's time slice (Linux's
    EEVDF lets a task run for its ``base_slice`` before a woken one takes its core):
    between the fluid :class:`Host` (quantum 0) and bursts that never yield. A woken
    process that finds every core busy then waits for a core, as ``schedstat`` counts live.
    Same interface as :class:`Host`."""

    def __init__(self, env: simpy.Environment, cores: float, slice_s: float = math.inf) -> None:
        if cores < 1 or not float(cores).is_integer():
            raise ValueError(f"cores must be a whole number for cpu: queue, got {cores}")
        if not slice_s > 0:
            raise ValueError(f"slice must be positive, got {slice_s}")
        self.env = env
        self.cores = float(cores)
        self.slice_s = slice_s
        self.free = int(cores)
        self.waiting: deque[_Burst] = deque()
        """Jobs waiting for a core."""
        self.busy_s = 0.0

    def run(self, work_s: float, done: Done, owner: object = None) -> None:
        """Run a job of ``work_s`` CPU seconds on a free core, or when one frees up
        (``owner`` as for :meth:`Host.run`)."""
        job = _Burst(max(work_s, 0.0), done)
        if self.free:
            self.free -= 1
            self._go(job)
        else:
            self.waiting.append(job)

    def _go(self, job: _Burst) -> None:
        """Run ``job`` on a core for its quantum (or what it has left)."""
        chunk = min(job.left_s, self.slice_s)

        def ran(_: simpy.Event) -> None:
            self.busy_s += chunk
            job.left_s -= chunk
            if job.left_s > EPSILON * chunk:  # quantum spent: the next in line takes the core
                if self.waiting:
                    self.waiting.append(job)
                    self._go(self.waiting.popleft())
                else:
                    self._go(job)
                return
            if self.waiting:
                self._go(self.waiting.popleft())
            else:
                self.free += 1
            job.done()

        self.env.timeout(chunk).callbacks.append(ran)


class RunQueues:
    """A third model of the same cores: a run queue per core, each core processor-shared
    among the jobs placed on it, and a job placed when it starts and never moved: on the
    core its process last ran on if that one is idle, else on an idle core, else on its
    process's core again (a process never seen before: the least busy core). Linux
    places a waking thread that way (its previous CPU, else an idle one); left out is
    load balancing, periodic and when a core goes idle (which would pull a job sharing a
    core onto one just freed). Why: past saturation live, the server's loop, never asleep,
    waited for a core at most 2.5 % of its CPU (1.6 % with two workers) while the workers
    and the client waited far longer (docs/results/simcheck.md; per-core placement not
    measured, inferred); :class:`Host` slows every runnable process alike, the
    loop too, whenever more run than there are cores. With one core it is :class:`Host`
    on one core; with a core for every process, no sharing at all. Same interface as
    :class:`Host`."""

    def __init__(self, env: simpy.Environment, cores: float) -> None:
        if cores < 1 or not float(cores).is_integer():
            raise ValueError(f"cores must be a whole number for cpu: run_queues, got {cores}")
        self.env = env
        self.cores = float(cores)
        self.queues = [Host(env, 1.0) for _ in range(int(cores))]
        """Each core's run queue (processor sharing on one core)."""
        self.last: dict[object, int] = {}
        """The core each process (its owner object) last ran on."""

    @property
    def busy_s(self) -> float:
        """Core-seconds of CPU given so far."""
        return sum(q.busy_s for q in self.queues)

    def core_for(self, owner: object = None) -> int:
        """Where a job of ``owner`` starting now goes (class docstring)."""
        own = self.last.get(owner) if owner is not None else None
        if own is not None and not self.queues[own].running:
            return own
        idle = [i for i, q in enumerate(self.queues) if not q.running]
        if idle:
            return idle[0]
        if own is not None:
            return own
        return min(range(len(self.queues)), key=lambda i: self.queues[i].running)

    def run(self, work_s: float, done: Done, owner: object = None) -> None:
        """Start a job of ``work_s`` CPU seconds now for process ``owner`` (None: one of
        its own) on the core :meth:`core_for` picks; ``done()`` when it has had them."""
        core = self.core_for(owner)
        if owner is not None:
            self.last[owner] = core
        self.queues[core].run(work_s, done)


Cores = Host | CoreQueue | RunQueues
"""The models of a host's cores, one interface."""


class Station:
    """``servers`` single-threaded event-loop processes on ``host`` serving jobs in FCFS
    order from one queue; a job that wakes an idle process costs ``setup_s`` more (module
    docstring)."""

    def __init__(self, host: Cores, servers: int = 1, setup_s: float = 0.0,
                 cold_s: float = 0.0, cooling_s: float = 0.0, wait_s: float = 0.0,
                 cold_scale: float = 0.0) -> None:
        if servers < 1:
            raise ValueError(f"servers must be at least 1, got {servers}")
        self.host = host
        self.env = host.env
        self.servers = servers
        self.setup_s = setup_s
        """What every wake-up costs."""
        self.cold_s = cold_s
        self.cooling_s = cooling_s
        """How a sleeping process goes cold: a job that wakes it after ``t`` asleep pays
        ``setup_s + cold_s * (1 - exp(-t / cooling_s))`` (``cooling_s`` 0: all of
        ``cold_s`` at once)."""
        self.cold_scale = cold_scale
        """How much slower the job itself runs on a process gone cold: a job that wakes it
        after ``t`` asleep takes ``1 + cold_scale * (1 - exp(-t / cooling_s))`` times its
        CPU (a worker's forward pass over weights evicted while it slept); back to back,
        its own."""
        self.wait_s = wait_s
        """How long a woken process waits for a core before its job runs (no CPU)."""
        self.waited_s = 0.0
        """Seconds the wake-ups so far waited for a core (what the live thread's
        ``schedstat`` counts as run-queue wait, at low load)."""
        self.busy = 0
        """Processes running a job now."""
        self.asleep: list[float] = [-math.inf] * servers
        """Since when each idle process has slept (the latest to sleep last; a process
        that never ran has slept for good)."""
        self.queue: deque[tuple[float, Done]] = deque()
        """Jobs waiting for a process: (CPU seconds, callback)."""
        self.jobs = 0
        """Jobs started so far."""
        self.wakeups = 0
        """Jobs that woke a sleeping process (each paid its setup; a job arriving the moment
        its process goes idle finds it awake)."""
        self.cpu_s = 0.0
        """CPU seconds of the jobs started so far, wake-ups included (what the live
        process's CPU counter would read: ``zoosim simcheck`` compares the two)."""
        self.last_done = -math.inf
        """When a job last ended (its callback runs then: :meth:`in_callback`)."""
        self.peers: list[Station] = []
        """Processes whose work goes through this one's caches (a model server's other
        workers: each forward pass streams its own model's weights through the caches the
        cores share): if one of them ran while this one slept, its next job finds it as
        cold as after a long sleep, however short the sleep (:meth:`_slept`)."""

    def in_callback(self) -> bool:
        """Whether a job ended this very moment: what happens now is taken to follow from
        it, on its process, and to need no job of its own (the engine steps a worker in
        events at that same moment, after the job's callback has returned, so the test is
        the time; another event falling on exactly that time, with costs drawn from
        continuous distributions, is a coincidence of measure zero)."""
        return self.last_done >= self.env.now

    def _woken(self, work_s: float, slept_s: float) -> float:
        """The CPU of a job of ``work_s`` that wakes a process asleep ``slept_s``, the
        wake-up included."""
        cold = coldness(slept_s, self.cooling_s)
        return work_s * (1.0 + self.cold_scale * cold) + (self.setup_s + self.cold_s * cold)

    def _slept(self, since: float) -> float:
        """How long, as far as its caches go, the process asleep since ``since`` slept:
        for good if a peer ran meanwhile, else the time since. A peer ran if a job of its
        ended since or it holds one now (a job that started since has done one or the
        other; a peer woken and still waiting for a core counts too: with ``wait_s`` 0, as
        the workers' is, there is no such wait)."""
        if any(p.busy or p.last_done > since for p in self.peers):
            return math.inf
        return self.env.now - since

    def _begin(self, work_s: float, done: Done) -> None:
        """An idle process (the one asleep the shortest time) takes a job: at once if it
        went idle this very moment (it never slept), else it wakes, paying the wake-up's
        cost, and waits :attr:`wait_s` for a core first."""
        since = self.asleep.pop()
        if since >= self.env.now:
            self._start(work_s, done)
            return
        self.wakeups += 1
        work_s = self._woken(work_s, self._slept(since))
        if self.wait_s <= 0.0:
            self._start(work_s, done)
            return
        self.busy += 1  # its place is held while it waits
        self.waited_s += self.wait_s
        self.env.timeout(self.wait_s).callbacks.append(
            lambda _: self._start(work_s, done, held=True))

    def submit(self, work_s: float, done: Done) -> None:
        """Queue a job of ``work_s`` CPU seconds; ``done()`` is called when it is served."""
        if self.busy < self.servers:
            self._begin(work_s, done)
        else:
            self.queue.append((work_s, done))

    def submit_all(self, jobs: list[tuple[float, Done]]) -> None:
        """Jobs ready at the same moment (one event: the answers of one batch): an idle
        process wakes up once for them and serves them one after the other."""
        if not jobs:
            return
        if self.busy < self.servers:
            (w, d), rest = jobs[0], jobs[1:]
            self.queue.extend(rest)  # ahead of nothing: the queue was empty
            self._begin(w, d)
        else:
            self.queue.extend(jobs)

    def _start(self, work_s: float, done: Done, held: bool = False) -> None:
        """Run a job on a process now (``held``: its place was taken when it woke)."""
        if not held:
            self.busy += 1
        self.jobs += 1
        self.cpu_s += work_s

        def finished() -> None:
            self.busy -= 1
            self.last_done = self.env.now
            if self.queue:  # a busy process goes on without sleeping
                w, d = self.queue.popleft()
                self._start(w, d)
            else:
                self.asleep.append(self.env.now)
            done()

        self.host.run(work_s, finished, owner=self)
