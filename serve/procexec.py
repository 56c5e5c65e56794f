"""Real batches in worker processes: the live server's default :class:`sim.worker.Executor`.

Each simulated worker of :mod:`sim.worker` becomes one process with its own copies of the
models it holds, the way each worker of a serving cluster owns an accelerator: its forward
passes never wait for the front-end's Python (no shared GIL), so a batch takes the time the
profile measured. The front-end talks to a worker through a pipe, in order: ``run`` (model,
inputs) is answered with the batch's probabilities, ``load`` with an acknowledgement, ``evict``
with nothing. Answers are read by the event loop itself (``loop.add_reader`` on the pipe), so
the only hand-offs are the two pipe messages. Weights come from the profile's safetensors files
(no pickle), checked against the profile's ``weights_sha256``; messages are raw float32 bytes
behind a fixed header (no pickle either).

Supervision: the loop also watches each process's sentinel, so a worker that dies (killed, out
of memory, crashed) is noticed at once, not at the next request. Its batches in flight and
queued are answered at once with :class:`WorkerUnavailable` (HTTP 503 with ``Retry-After``),
batches given to it while it is down fail the same way at once (no request waits on a dead
worker), and a new process is spawned with the models the simulated worker holds; the loop
never blocks on it (its ``ready`` message arrives through the same reader). A process that dies
before it is ready is retried after a growing delay. A model that cannot be loaded (e.g. its
weights file was corrupted after start-up) is an error the worker reports, not one it dies of:
the batches of that model fail (:class:`WorkerError`), the worker serves its other models, and
it tries that model's weights again at the next batch.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import signal
import struct
from collections import deque
from collections.abc import Callable
from functools import partial
from multiprocessing import connection
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from sim.clock import WallClockEnvironment, quiet_gc
from sim.errors import UserError
from sim.request import Request

if TYPE_CHECKING:
    import asyncio

    from sim.system import ServingSystem

log = logging.getLogger("zoosim.serve")

HEADER = struct.Struct("<cii")
"""Operation (b"R" run, b"L" load, b"E" evict, b"Q" quit), model number, number of inputs."""
READY = b"ready"
"""A worker's first message, followed by its preload errors (one a line), if any."""
START_TIMEOUT_S = 300.0
"""A (re)started worker not ready by then is killed and started again."""
RESTART_DELAY_S = 0.5
"""Wait before retrying a worker that died before it was ready; doubles with each such death
(at most :data:`MAX_RESTART_DELAY_S`). A worker that dies after it was ready restarts at once."""
MAX_RESTART_DELAY_S = 30.0


class WorkerUnavailable(Exception):
    """The worker process that was to serve a batch died, or is restarting: the batch was not
    served, and retrying shortly is safe (HTTP 503 with ``Retry-After``)."""


class WorkerError(RuntimeError):
    """A batch failed inside a live worker, e.g. its model's weights could not be loaded; the
    worker lives on (details in the server's log, not in the answer)."""


def _worker_main(conn: Connection, profile_path: str, in_shape: tuple[int, ...],
                 num_classes: int, threads: int, max_batch: int, preload: list[int]) -> None:
    """A worker process: serve the pipe's commands until told to quit or the pipe closes.

    Every model error is reported on the pipe; the process lives on (a load is tried again
    at the model's next batch, so a repaired weights file serves without a restart)."""
    # Ctrl-C, and a SIGTERM sent to the process group (timeout(1), systemd), reach every
    # process of the group; the front-end stops its workers itself (a quit message, or its
    # end of the pipe closing), so a worker must not die of them first and be restarted
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    import torch

    from attacks.victim import softmax
    from serve.executor import warm_up
    from sim.profiles import load_profile
    from zoo_profiles.models import build_model
    from zoo_profiles.profiler import load_weights

    torch.set_num_threads(threads)
    path = Path(profile_path)
    profile = load_profile(path)
    shape = (in_shape[0], in_shape[1], in_shape[2])

    def load(m: int) -> torch.nn.Module:
        spec = profile.models[m]
        assert spec.weights is not None
        with torch.random.fork_rng(devices=[]):  # the init is overwritten by the weights
            module = build_model(spec.arch, shape, num_classes)
        module = load_weights(module, (path.parent / spec.weights).resolve(), "cpu",
                              sha256=spec.weights_sha256).eval()
        warm_up(module, in_shape, max_batch)
        return module

    def describe(m: int, e: Exception) -> bytes:
        name = profile.models[m].name if 0 <= m < len(profile.models) else str(m)
        return f"model {name!r}: {e}".replace("\n", " ").encode()

    modules: dict[int, torch.nn.Module] = {}
    errors: list[bytes] = []
    for m in preload:
        try:
            modules[m] = load(m)
        except Exception as e:  # reported; the worker serves its other models
            errors.append(describe(m, e))
    quiet_gc()
    conn.send_bytes(READY + b"\n".join(errors))
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        op, m, n = HEADER.unpack_from(msg)
        if op == b"R":
            try:
                module = modules.get(m)
                if module is None:  # its load failed, or this is a restarted worker: load now
                    module = modules[m] = load(m)
                x = np.frombuffer(msg, dtype="<f4", offset=HEADER.size).reshape(n, *in_shape)
                with torch.inference_mode():
                    logits = module(torch.from_numpy(x.copy())).numpy()
                out = b"R" + softmax(logits).astype("<f4").tobytes()
            except Exception as e:  # reported to the waiting clients; the worker lives on
                out = b"X" + describe(m, e)
            conn.send_bytes(out)
        elif op == b"L":
            try:
                modules[m] = load(m)
                conn.send_bytes(b"L")
            except Exception as e:  # the worker lives on; the model's batches report it
                conn.send_bytes(b"F" + describe(m, e))
        elif op == b"E":
            modules.pop(m, None)
        else:
            return


class ProcessExecutor:
    """One process per worker, running its batches and loads, supervised (module docstring)."""

    def __init__(self, env: WallClockEnvironment, profile_path: Path, in_shape: tuple[int, ...],
                 num_classes: int, workers: int, threads: int = 1, max_batch: int = 1) -> None:
        self.env = env
        self.max_batch = max_batch
        self.profile_path = profile_path
        self.in_shape = in_shape
        self.num_classes = num_classes
        self.workers = workers
        self.threads = threads
        self.target: Callable[..., None] = _worker_main
        """What each worker process runs (picklable: a module-level function or a partial)."""
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        """The current process of each worker (replaced on restart)."""
        self.state = ["down"] * workers
        """Each worker's process: ``starting`` (spawned, not ready), ``up`` or ``down``."""
        self.restarts = [0] * workers
        self.held: list[set[int]] = [set() for _ in range(workers)]
        """The models each simulated worker holds (loaded, or being loaded): what a restarted
        process loads."""
        self.waiting: list[deque[tuple[simpy.Event, list[Request] | None]]] = [
            deque() for _ in range(workers)]
        self._ctx = mp.get_context("spawn")  # no fork of a process that runs torch and threads
        self._gen = [0] * workers
        self._readers: list[list[int]] = [[] for _ in range(workers)]
        self._spawned_with: list[set[int]] = [set() for _ in range(workers)]
        self._early_deaths = [0] * workers
        self._timers: list[asyncio.TimerHandle | None] = [None] * workers
        self._reported: set[str] = set()
        self._closing = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.env.loop

    def preload(self, system: ServingSystem) -> None:
        """Start the worker processes with the models the system placed on them, and wait
        until each has loaded and warmed them (start-up only: restarts never block)."""
        try:
            for w in system.workers:
                self.held[w.id] = set(w.loaded)
                self._spawn(w.id)
            for wid in range(self.workers):
                msg = self._wait_ready(wid)
                if msg[len(READY):]:
                    first = msg[len(READY):].split(b"\n")[0].decode(errors="replace")
                    raise UserError(f"worker process {wid} cannot load its models: {first}")
                self.state[wid] = "up"
                self._watch(wid)
        except BaseException:
            self.shutdown()
            raise

    def _wait_ready(self, wid: int) -> bytes:
        conn, proc = self.conns[wid], self.procs[wid]
        if not connection.wait([conn, proc.sentinel], START_TIMEOUT_S):
            raise RuntimeError(f"worker process {wid} did not start in {START_TIMEOUT_S:g} s")
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            proc.join(5)
            raise RuntimeError(f"worker process {wid} exited while starting "
                               f"(exit code {proc.exitcode})") from None
        if not msg.startswith(READY):
            raise RuntimeError(f"worker process {wid} did not start: {msg[:200]!r}")
        return msg

    def health(self) -> list[dict[str, Any]]:
        """Each worker: whether its process is up, and how often it was restarted."""
        return [{"id": w, "alive": self.state[w] == "up", "restarts": self.restarts[w]}
                for w in range(self.workers)]

    # -- sim.worker.Executor -----------------------------------------------------------------
    def run(self, worker: int, model: int, batch: list[Request], inputs: int) -> simpy.Event:
        done = self.env.event()
        if self.state[worker] != "up":  # fail fast: no request waits on a dead worker
            self._unavailable(worker, batch)
            done.succeed()
            return done
        xs = [r.payload for r in batch]
        x = np.concatenate(xs) if len(xs) > 1 else xs[0]
        self.waiting[worker].append((done, batch))
        self._send(worker, HEADER.pack(b"R", model, len(x)) +
                   np.ascontiguousarray(x, dtype="<f4").tobytes())
        return done

    def load(self, worker: int, model: int) -> simpy.Event:
        done = self.env.event()
        self.held[worker].add(model)
        if self.state[worker] != "up":  # the restarted process loads it (at its first batch)
            done.succeed()
            return done
        self.waiting[worker].append((done, None))
        self._send(worker, HEADER.pack(b"L", model, 0))
        return done

    def evict(self, worker: int, model: int) -> None:
        self.held[worker].discard(model)
        if self.state[worker] == "up":
            self._send(worker, HEADER.pack(b"E", model, 0))

    def _send(self, worker: int, msg: bytes) -> None:
        try:
            self.conns[worker].send_bytes(msg)
        except (OSError, ValueError) as e:  # it died: its waiters are failed from the loop
            self.loop.call_soon(self._lost_if, worker, self._gen[worker],
                                f"could not be written to ({e})")

    def _unavailable(self, worker: int, batch: list[Request] | None) -> None:
        for r in batch or []:
            r.payload = WorkerUnavailable(f"worker {worker} is unavailable (restarting); "
                                          "retry shortly")

    # -- the processes' lifecycle, on the event loop ---------------------------------------------
    def _spawn(self, w: int) -> None:
        """Start worker ``w``'s process with the models its simulated worker holds."""
        models = sorted(self.held[w])
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=self.target, name=f"zoosim-worker-{w}", daemon=True,
                                 args=(child, str(self.profile_path), self.in_shape,
                                       self.num_classes, self.threads, self.max_batch, models))
        try:
            proc.start()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self._gen[w] += 1
        if w < len(self.conns):
            self.conns[w], self.procs[w] = parent, proc
        else:
            self.conns.append(parent)
            self.procs.append(proc)
        self.state[w] = "starting"
        self._spawned_with[w] = set(models)

    def _watch(self, w: int) -> None:
        """Read worker ``w``'s pipe and watch its process's sentinel from the loop."""
        gen = self._gen[w]
        fds = [self.conns[w].fileno(), self.procs[w].sentinel]
        self.loop.add_reader(fds[0], self._on_readable, w, gen)
        self.loop.add_reader(fds[1], self._on_exit, w, gen)
        self._readers[w] = fds

    def _unwatch(self, w: int, fd: int) -> None:
        if fd in self._readers[w]:
            self._readers[w].remove(fd)
            self.loop.remove_reader(fd)

    def _restart(self, w: int) -> None:
        self._timers[w] = None
        if self._closing:
            return
        try:
            self._spawn(w)
        except OSError as e:  # e.g. out of processes or descriptors: try again later
            self._report(f"worker process {w} cannot be started ({e}); retrying")
            self._early_deaths[w] += 1
            self._schedule_restart(w)
            return
        self._watch(w)
        self._timers[w] = self.loop.call_later(START_TIMEOUT_S, self._start_timed_out, w,
                                               self._gen[w])

    def _schedule_restart(self, w: int) -> None:
        n = self._early_deaths[w]
        delay = 0.0 if n == 0 else min(MAX_RESTART_DELAY_S, RESTART_DELAY_S * 2 ** (n - 1))
        self._timers[w] = self.loop.call_later(delay, self._restart, w)

    def _start_timed_out(self, w: int, gen: int) -> None:
        self._timers[w] = None
        if gen == self._gen[w] and self.state[w] == "starting":
            self._report(f"worker process {w} not ready in {START_TIMEOUT_S:g} s; killing it")
            self.procs[w].kill()  # its sentinel then restarts it

    def _on_readable(self, w: int, gen: int) -> None:
        conn = self.conns[w]
        try:
            while gen == self._gen[w] and self.state[w] != "down" and conn.poll():
                msg = conn.recv_bytes()
                if self.state[w] == "starting":
                    self._started(w, msg)
                else:
                    self.env.inject(partial(self._finish, w, msg))
        except (EOFError, OSError):
            self._lost_if(w, gen, "closed its pipe")

    def _started(self, w: int, msg: bytes) -> None:
        """A restarted worker's first message: it is up again."""
        if not msg.startswith(READY):
            self._report(f"worker process {w} sent {msg[:40]!r} before ready; killing it")
            self.procs[w].kill()
            return
        timer, self._timers[w] = self._timers[w], None
        if timer is not None:
            timer.cancel()
        self.state[w] = "up"
        self.restarts[w] += 1
        self._early_deaths[w] = 0
        for m in sorted(self._spawned_with[w] - self.held[w]):  # evicted while it started
            self._send(w, HEADER.pack(b"E", m, 0))
        for line in msg[len(READY):].split(b"\n") if msg[len(READY):] else []:
            self._report(f"worker process {w}: {line.decode(errors='replace')}")
        log.warning("worker process %d is back (pid %s, restart %d)", w, self.procs[w].pid,
                    self.restarts[w])

    def _lost_if(self, w: int, gen: int, why: str) -> None:
        if gen == self._gen[w]:
            self._lost(w, why)

    def _lost(self, w: int, why: str) -> None:
        """Worker ``w``'s process is gone: answer its batches, make sure it is dead (its
        sentinel then restarts it)."""
        if self.state[w] == "down" or self._closing:
            return
        if self.state[w] == "starting":
            self._early_deaths[w] += 1
        self.state[w] = "down"
        self._unwatch(w, self.conns[w].fileno())
        self.conns[w].close()
        proc = self.procs[w]
        log.warning("worker process %d (pid %s) %s; restarting it", w, proc.pid, why)
        self.env.inject(partial(self._fail_all, w))
        if proc.exitcode is None:
            proc.kill()

    def _on_exit(self, w: int, gen: int) -> None:
        if gen != self._gen[w]:
            return
        self._on_readable(w, gen)  # answers it sent before it died are still good
        proc = self.procs[w]
        proc.join(0)  # reaps it if the kernel is done with it (else the next start does)
        code = proc.exitcode
        self._lost(w, "exited" if code is None else f"exited (code {code})")
        self._unwatch(w, proc.sentinel)
        timer, self._timers[w] = self._timers[w], None
        if timer is not None:
            timer.cancel()
        if not self._closing:
            self._schedule_restart(w)

    def _report(self, message: str) -> None:
        """Log a worker's error once (a corrupt model fails every batch of it)."""
        if message not in self._reported and len(self._reported) < 1000:
            self._reported.add(message)
            log.warning("%s", message)

    # -- answers, on the event loop (inside env.inject) ----------------------------------------
    def _finish(self, worker: int, msg: bytes) -> None:
        if not self.waiting[worker]:
            return
        done, batch = self.waiting[worker].popleft()
        if batch is not None:
            result: Any
            if msg[:1] == b"R":
                probs = np.frombuffer(msg, dtype="<f4", offset=1).reshape(-1, self.num_classes)
                bounds = np.cumsum([len(r.payload) for r in batch])[:-1]
                result = np.split(probs, bounds)
            else:
                self._report(f"worker process {worker}: a batch failed: "
                             f"{msg[1:].decode(errors='replace')}")
                result = [WorkerError("the batch failed on its worker")
                          for _ in batch]
            for r, res in zip(batch, result, strict=True):
                r.payload = res
        elif msg[:1] == b"F":
            self._report(f"worker process {worker}: cannot load "
                         f"{msg[1:].decode(errors='replace')}")
        done.succeed()

    def _fail_all(self, worker: int) -> None:
        while self.waiting[worker]:
            done, batch = self.waiting[worker].popleft()
            self._unavailable(worker, batch)
            if not done.triggered:
                done.succeed()

    def shutdown(self) -> None:
        self._closing = True
        for timer in self._timers:
            if timer is not None:
                timer.cancel()
        for w, conn in enumerate(self.conns):
            self.state[w] = "down"
            for fd in list(self._readers[w]):
                self._unwatch(w, fd)
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(HEADER.pack(b"Q", 0, 0))
            self.procs[w].join(5)
            if self.procs[w].is_alive():
                self.procs[w].kill()
                self.procs[w].join(5)
            conn.close()
