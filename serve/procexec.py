"""Real batches in worker processes: the live server's default :class:`sim.worker.Executor`.

Each simulated worker of :mod:`sim.worker` becomes one process with its own copies of the
models it holds, the way each worker of a serving cluster owns an accelerator: its forward
passes never wait for the front-end's Python (no shared GIL), so a batch takes the time the
profile measured. The front-end talks to a worker through a pipe, in order: ``run`` (model,
inputs) is answered with the batch's probabilities, ``load`` with an acknowledgement, ``evict``
with nothing. Answers are read by the event loop itself (``loop.add_reader`` on the pipe), so
the only hand-offs are the two pipe messages. Weights come from the profile's safetensors files
(no pickle); messages are raw float32 bytes behind a fixed header (no pickle either).
"""

from __future__ import annotations

import multiprocessing as mp
import struct
from collections import deque
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from sim.clock import WallClockEnvironment, freeze_heap
from sim.request import Request

if TYPE_CHECKING:
    from sim.system import ServingSystem

HEADER = struct.Struct("<cii")
"""Operation (b"R" run, b"L" load, b"E" evict, b"Q" quit), model number, number of inputs."""
READY = b"ready"


def _worker_main(conn: Connection, profile_path: str, in_shape: tuple[int, ...],
                 num_classes: int, threads: int, max_batch: int, preload: list[int]) -> None:
    """A worker process: serve the pipe's commands until told to quit or the pipe closes."""
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
        module = load_weights(module, (path.parent / spec.weights).resolve(), "cpu").eval()
        warm_up(module, in_shape, max_batch)
        return module

    modules = {m: load(m) for m in preload}
    freeze_heap()
    conn.send_bytes(READY)
    size = int(np.prod(in_shape))
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return
        op, m, n = HEADER.unpack_from(msg)
        if op == b"R":
            x = np.frombuffer(msg, dtype="<f4", offset=HEADER.size).reshape(n, *in_shape)
            try:
                with torch.inference_mode():
                    logits = modules[m](torch.from_numpy(x.copy())).numpy()
                out = b"R" + softmax(logits).astype("<f4").tobytes()
            except Exception as e:  # reported to the waiting clients; the worker lives on
                out = b"X" + repr(e).encode()
            assert x.size == n * size
            conn.send_bytes(out)
        elif op == b"L":
            modules[m] = load(m)
            conn.send_bytes(b"L")
        elif op == b"E":
            modules.pop(m, None)
        else:
            return


class ProcessExecutor:
    """One process per worker, running its batches and loads."""

    def __init__(self, env: WallClockEnvironment, profile_path: Path, in_shape: tuple[int, ...],
                 num_classes: int, workers: int, threads: int = 1, max_batch: int = 1) -> None:
        self.env = env
        self.max_batch = max_batch
        self.profile_path = profile_path
        self.in_shape = in_shape
        self.num_classes = num_classes
        self.workers = workers
        self.threads = threads
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.waiting: list[deque[tuple[simpy.Event, list[Request] | None]]] = [
            deque() for _ in range(workers)]

    def preload(self, system: ServingSystem) -> None:
        """Start the worker processes with the models the system placed on them, and wait
        until each has loaded and warmed them."""
        ctx = mp.get_context("spawn")  # no fork of a process that runs torch and threads
        for w in system.workers:
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=_worker_main, name=f"zoosim-worker-{w.id}", daemon=True,
                               args=(child, str(self.profile_path), self.in_shape,
                                     self.num_classes, self.threads, self.max_batch,
                                     list(w.loaded)))
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for wid, conn in enumerate(self.conns):
            if not conn.poll(300) or conn.recv_bytes() != READY:
                raise RuntimeError(f"worker process {wid} did not start")
            self.env.loop.add_reader(conn.fileno(), self._on_reply, wid)

    # -- sim.worker.Executor -----------------------------------------------------------------
    def run(self, worker: int, model: int, batch: list[Request], inputs: int) -> simpy.Event:
        done = self.env.event()
        xs = [r.payload for r in batch]
        x = np.concatenate(xs) if len(xs) > 1 else xs[0]
        self.waiting[worker].append((done, batch))
        self._send(worker, HEADER.pack(b"R", model, len(x)) +
                   np.ascontiguousarray(x, dtype="<f4").tobytes())
        return done

    def load(self, worker: int, model: int) -> simpy.Event:
        done = self.env.event()
        self.waiting[worker].append((done, None))
        self._send(worker, HEADER.pack(b"L", model, 0))
        return done

    def evict(self, worker: int, model: int) -> None:
        self._send(worker, HEADER.pack(b"E", model, 0))

    def _send(self, worker: int, msg: bytes) -> None:
        try:
            self.conns[worker].send_bytes(msg)
        except OSError as e:
            self._fail(worker, RuntimeError(f"worker process {worker} is gone ({e})"))

    # -- answers, on the event loop --------------------------------------------------------------
    def _on_reply(self, worker: int) -> None:
        conn = self.conns[worker]
        try:
            while conn.poll():
                msg = conn.recv_bytes()
                self.env.inject(partial(self._finish, worker, msg))
        except (EOFError, OSError):
            self.env.loop.remove_reader(conn.fileno())
            self._fail(worker, RuntimeError(f"worker process {worker} stopped"))

    def _finish(self, worker: int, msg: bytes) -> None:
        done, batch = self.waiting[worker].popleft()
        if batch is not None:
            result: Any
            if msg[:1] == b"R":
                probs = np.frombuffer(msg, dtype="<f4", offset=1).reshape(-1, self.num_classes)
                bounds = np.cumsum([len(r.payload) for r in batch])[:-1]
                result = np.split(probs, bounds)
            else:
                result = [RuntimeError(msg[1:].decode(errors="replace"))] * len(batch)
            for r, res in zip(batch, result, strict=True):
                r.payload = res
        done.succeed()

    def _fail(self, worker: int, error: Exception) -> None:
        while self.waiting[worker]:
            done, batch = self.waiting[worker].popleft()
            for r in batch or []:
                r.payload = error
            if not done.triggered:
                done.succeed()

    def shutdown(self) -> None:
        for w, conn in enumerate(self.conns):
            try:
                self.env.loop.remove_reader(conn.fileno())
                conn.send_bytes(HEADER.pack(b"Q", 0, 0))
            except (OSError, ValueError, RuntimeError):
                pass
            self.procs[w].join(5)
            if self.procs[w].is_alive():
                self.procs[w].kill()
            conn.close()
