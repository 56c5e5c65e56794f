"""Per-thread CPU, waits for a core and wake-ups of live processes, read from ``/proc``.

Issue 18: the front-end probe (:mod:`serve.frontend_probe`) and ``zoosim simcheck`` measure
what the server's event-loop thread, its worker processes and the load generator spend,
from each thread's ``schedstat`` (nanoseconds run on a core, nanoseconds waited runnable
for one) and ``status`` (voluntary context switches: the times it went to sleep). Linux
only; elsewhere the counters read NaN.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager


def _schedstat(path: str) -> tuple[int, int]:
    """(ns run on a core, ns waited runnable for one) of one thread: its ``schedstat``."""
    with open(f"{path}/schedstat") as f:
        run, wait = f.read().split()[:2]
    return int(run), int(wait)


def _task_counters(path: str) -> tuple[int, int]:
    """(CPU ns, voluntary context switches) of one thread."""
    cpu = _schedstat(path)[0]
    with open(f"{path}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return cpu, int(line.split()[1])
    return cpu, 0


def thread_waited_ms(pid: int, tid: int) -> float:
    """How long thread ``tid`` of process ``pid`` has waited, runnable, for a core (ms; the
    second field of ``schedstat``)."""
    return _schedstat(f"/proc/{pid}/task/{tid}")[1] / 1e6


def asleep_per_wakeup(wall_ms: float, cpu_ms: float, waited_ms: float, wakeups: int) -> float:
    """How long a thread slept per wake-up over a window: the window's wall time less what
    it ran and what it waited for a core, over its wake-ups (at least one)."""
    return max(wall_ms - cpu_ms - waited_ms, 0.0) / max(wakeups, 1)


def thread_counters(pid: int, tid: int) -> tuple[float, int]:
    """CPU ms and voluntary context switches of thread ``tid`` of process ``pid``."""
    cpu, sw = _task_counters(f"/proc/{pid}/task/{tid}")
    return cpu / 1e6, sw


def process_waited_ms(pid: int) -> float:
    """How long every thread of ``pid`` has waited, runnable, for a core (ms, summed)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += _schedstat(f"/proc/{pid}/task/{tid}")[1]
        except OSError:  # a thread that ended meanwhile
            continue
    return total / 1e6


def process_counters(pid: int) -> tuple[float, int]:
    """CPU ms and voluntary context switches summed over every thread of ``pid``."""
    cpu = sw = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            c, s = _task_counters(f"/proc/{pid}/task/{tid}")
        except OSError:  # a thread that ended meanwhile
            continue
        cpu += c
        sw += s
    return cpu / 1e6, sw


def worker_pids(server_pid: int) -> list[int]:
    """The server's worker processes (its children but multiprocessing's resource tracker)."""
    kids: list[int] = []
    for tid in os.listdir(f"/proc/{server_pid}/task"):
        try:
            with open(f"/proc/{server_pid}/task/{tid}/children") as f:
                kids += [int(p) for p in f.read().split()]
        except OSError:
            continue
    out = []
    for pid in kids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            out.append(pid)
    return out


def waits_diff(a: tuple[float, float, float],
               b: tuple[float, float, float]) -> tuple[float, float, float]:
    """What the loop, the workers and the client waited between two readings."""
    return b[0] - a[0], b[1] - a[1], b[2] - a[2]


@contextmanager
def live_cpu_ms(server_pid: int) -> Iterator[dict[str, float]]:
    """What the live processes spend while the block runs: yields a mapping filled in on
    exit with the CPU ms of the server's event-loop thread (``frontend``) and its wake-ups
    (voluntary context switches), of its worker processes (``workers``) and of the calling
    thread (``client``: the load generator runs its event loop there), and the ms each
    waited, runnable, for a core (``frontend_waited``, ``workers_waited``,
    ``client_waited``). Empty where
    ``/proc`` is missing (not Linux): the figures are then NaN."""
    import threading

    out: dict[str, float] = {}
    if not os.path.isdir(f"/proc/{server_pid}/task"):
        yield out
        return
    workers = worker_pids(server_pid)
    me_pid, me_tid = os.getpid(), threading.get_native_id()

    def worker_ms(pid: int) -> tuple[float, float]:
        try:
            return process_counters(pid)[0], process_waited_ms(pid)
        except OSError:  # a worker that ended (and was replaced) meanwhile: unknown
            return math.nan, math.nan

    def read() -> tuple[tuple[float, int], float, float, tuple[float, float, float]]:
        w = [worker_ms(p) for p in workers]
        return (thread_counters(server_pid, server_pid), sum(c for c, _ in w),
                thread_counters(me_pid, me_tid)[0],
                (thread_waited_ms(server_pid, server_pid), sum(q for _, q in w),
                 thread_waited_ms(me_pid, me_tid)))

    (loop0, wake0), workers0, client0, waited0 = read()
    yield out
    (loop1, wake1), workers1, client1, waited1 = read()
    waited = waits_diff(waited0, waited1)
    out.update(frontend=loop1 - loop0, frontend_wakeups=float(wake1 - wake0),
               workers=workers1 - workers0, client=client1 - client0,
               frontend_waited=waited[0], workers_waited=waited[1], client_waited=waited[2])
