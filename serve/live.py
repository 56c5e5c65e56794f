"""The live serving system: :class:`sim.system.ServingSystem` itself, on the wall clock.

The simulator's front-end (defense, selection policy, per-model queues, placement) and its
workers (late binding, dynamic batching with a timeout, LRU loads) run unchanged in a
:class:`~sim.clock.WallClockEnvironment`; an executor runs their batches for real, in one
process per worker (:class:`~serve.procexec.ProcessExecutor`, the default) or one thread per
worker (:class:`~serve.executor.ThreadExecutor`). So the live system and the simulation make
their decisions with the very same code (PSML §3 and §5), and differ only where reality does:
real service times, and the HTTP front-end's own overhead (calibrated by
:mod:`serve.simcheck`).

All SimPy state lives on the event loop's thread: :meth:`LiveServer.classify` is called there
and returns an awaitable answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serve.config import ServeScenario
from serve.executor import ThreadExecutor
from serve.procexec import ProcessExecutor
from sim.build import build_system
from sim.clock import WallClockEnvironment
from sim.errors import ConfigError, UserError
from sim.profiles import ZooProfile, load_profile, resolve_profile_path
from sim.recorder import Recorder
from sim.records import records_frame
from sim.request import Request
from sim.sinks import RingSink
from zoo_profiles.profiler import read_weights, warn_unchecked

if TYPE_CHECKING:
    import pandas as pd

MAX_TENANTS = 1024
"""Distinct client names kept apart in the records; later ones are pooled as ``other``."""


def servable_profile(scenario: ServeScenario, base_dir: Path | None) -> tuple[Path, ZooProfile]:
    """The scenario's zoo profile, checked to have weights for every model, each file intact
    (its ``weights_sha256``; a valid safetensors file where the profile has no digest): a
    UserError otherwise, raised before any server starts, so that a corrupt file is one line
    and exit 2 rather than a worker that fails to start (or serves NaN)."""
    path = resolve_profile_path(scenario.zoo.profile, base_dir)
    profile = load_profile(path)
    if any(m.weights is None for m in profile.models):
        raise UserError(f"{path}: zoo {profile.name!r} ({profile.metadata.source}) has models "
                        "without weights; a live server needs a measured zoo (e.g. mnist5k-cpu)")
    missing = [m.weights for m in profile.models
               if m.weights is not None and not (path.parent / m.weights).is_file()]
    if missing:
        raise UserError(f"{path}: weight files not found: {missing}")
    for m in profile.models:
        assert m.weights is not None
        try:
            read_weights(path.parent / m.weights, m.weights_sha256)
        except UserError as e:
            raise UserError(f"model {m.name!r}: {e}") from None
    warn_unchecked(path, [m.name for m in profile.models if m.weights_sha256 is None])
    too_big = [m.name for m in profile.models if m.memory_mb > scenario.cluster.memory_mb]
    if too_big:
        raise ConfigError(f"cluster: memory_mb ({scenario.cluster.memory_mb}) is smaller than "
                          f"models {too_big}")
    return path, profile


class Rejected(Exception):
    """An admission defense turned the request away (HTTP 429)."""


class Shed(Exception):
    """The engine's overload rule refused the request (``cluster.shedding``; HTTP 503 with
    ``Retry-After``): ``retry_s`` is its hint, the seconds until a retry could be admitted."""

    def __init__(self, message: str, retry_s: float) -> None:
        super().__init__(message)
        self.retry_s = retry_s


class Answer:
    """What a client gets: class probabilities (after any output defense) and the request id."""

    __slots__ = ("id", "probabilities")

    def __init__(self, rid: int, probabilities: np.ndarray) -> None:
        self.id = rid
        self.probabilities = probabilities


class LiveServer:
    """Zoo, policy, defense and workers of one live server, bound to an asyncio loop."""

    def __init__(self, scenario: ServeScenario, base_dir: Path | None,
                 loop: asyncio.AbstractEventLoop) -> None:
        import torch

        self.scenario = scenario
        api = scenario.api
        torch.set_num_threads(api.threads)
        path, profile = servable_profile(scenario, base_dir)
        self.in_shape = profile.metadata.shape
        self.num_classes = profile.metadata.num_classes
        c = scenario.cluster
        self.env = WallClockEnvironment(loop)
        shape = (self.in_shape[0], self.in_shape[1], self.in_shape[2])
        self.executor: ThreadExecutor | ProcessExecutor = (
            ProcessExecutor(self.env, path, shape, self.num_classes, c.workers, api.threads,
                            c.max_batch)
            if api.executor == "process" else
            ThreadExecutor(self.env, profile, path, shape, self.num_classes, c.workers,
                           api.threads, c.max_batch))
        self.system = build_system(scenario, self.env, self.executor, profile=profile,
                                   keep_requests=False, shedding=scenario.shedding())
        self.zoo = self.system.zoo
        self.executor.preload(self.system)
        self.tenants: dict[str, int] = {}
        self.tenant_names: list[str] = []
        self.ring = RingSink(api.records_max)
        """The latest records (a bounded ring: old ones drop out)."""
        if api.records:   # the simulator's record stream, into the ring
            self.system.recorder = Recorder(
                self.tenant_names, self.zoo.names, self.zoo.accuracy,
                admission=self.system.defense.admits, shedding=self.system.sheds,
                sink=self.ring, max_waiting=api.records_max,
                chunk_rows=min(api.records_max, 65_536))
        self._waiting: dict[int, asyncio.Future[Answer]] = {}
        self._next_id = 0

    # -- requests ----------------------------------------------------------------------------
    def tenant(self, client: str) -> int:
        """The records' tenant number of a client name."""
        t = self.tenants.get(client)
        if t is None:
            if len(self.tenant_names) >= MAX_TENANTS:
                return self.tenant("other")
            t = len(self.tenant_names)
            self.tenants[client] = t
            self.tenant_names.append(client)
            self.system.hooks[t] = self._completed
        return t

    def pending(self) -> int:
        """Requests in the system (queued or being served)."""
        return self.system.in_system

    def health(self) -> dict[str, Any]:
        """``ok`` when every worker is up (and the serving loop has not failed), else
        ``degraded`` (requests for a dead worker's batches get 503 until it is back); with
        each worker's state and restart count, and the requests in the system."""
        workers = self.executor.health()
        ok = self.env.error is None and all(w["alive"] for w in workers)
        return {"status": "ok" if ok else "degraded", "workers": workers,
                "pending": self.pending()}

    def classify(self, x: np.ndarray, accuracy: float, latency_ms: float, client: str,
                 model: int = -1) -> asyncio.Future[Answer]:
        """Submit ``x`` (n inputs) with a spec; the future resolves to the answer. Must be
        called on the event loop's thread."""
        if self.env.error is not None:
            raise RuntimeError(f"the serving loop failed: {self.env.error!r}")
        fut: asyncio.Future[Answer] = self.env.loop.create_future()
        tenant = self.tenant(client)
        rid = self._next_id
        self._next_id += 1
        self._waiting[rid] = fut

        def submit() -> None:
            try:
                self.system.submit(Request(rid, tenant, self.env.now, float(accuracy),
                                           float(latency_ms), payload=x, size=len(x),
                                           model=model))
            except BaseException:
                if self.system.recorder is not None:  # no record will come: do not wait
                    self.system.recorder.skip(rid)
                raise

        self.env.inject(submit)
        return fut

    def _completed(self, req: Request) -> None:
        fut = self._waiting.pop(req.id, None)
        result: Any = req.payload
        req.payload = None  # inputs and answers are not kept, only the record
        if fut is None or fut.done():
            return
        if req.shed:
            fut.set_exception(Shed(f"overloaded: shed by the server's overload rule (it "
                                   f"would miss its latency target, or too many requests are "
                                   f"pending); retry in {req.retry_s:.3f} s", req.retry_s))
            return
        if req.rejected:
            fut.set_exception(Rejected("rejected by the server's admission policy"))
            return
        if isinstance(result, Exception):
            fut.set_exception(result)
            return
        fut.set_result(Answer(req.id, self.system.defense.postprocess(result, req.flagged)))

    # -- ground truth, for experiments ------------------------------------------------------------
    def records_page(self, after: int, limit: int) -> tuple[pd.DataFrame, int | None, int]:
        """Records (model, batch, times in seconds since start: what the simulator writes)
        of the completed requests with ids above ``after``, at most ``limit`` of them, up to
        the first still in flight; with the ``after`` of the next page (None: none completed
        yet beyond this one) and how many records the ring has dropped."""
        recorder = self.system.recorder
        if recorder is not None:
            recorder.flush()
        page = self.ring.page(after, limit, self.tenant_names)
        dropped = self.ring.dropped
        if page is None:
            page = records_frame([], self.tenant_names, self.zoo.names, self.zoo.accuracy,
                                 self.system.defense.admits, self.system.sheds)
            return page, None, dropped
        return page, int(page["id"].iloc[-1]), dropped

    def close(self) -> None:
        self.env.close()
        self.executor.shutdown()
        for fut in self._waiting.values():
            if not fut.done():
                fut.cancel()
