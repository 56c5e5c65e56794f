"""Requests and batches: plain slotted objects, never SimPy processes (docs/architecture.md).

A request carries what the user asked for (``acc_req``, ``lat_req_ms``), what the selection
policy saw after the defense (``acc_spec``, ``lat_spec_ms``), the model chosen, and the batch
that served it; the batch holds what all its requests share (worker, start, finish), so the
per-request cost of dispatch is one attribute write.
"""

from __future__ import annotations

from typing import Any


class Batch:
    """A group of requests served together by one worker; ``size`` counts their inputs."""

    __slots__ = ("finish", "id", "model", "size", "start", "worker")

    def __init__(self, bid: int, model: int, worker: int, start: float, size: int) -> None:
        self.id = bid
        self.model = model
        self.worker = worker
        self.start = start
        self.size = size
        self.finish = -1.0


class Request:
    """One inference request, from arrival to completion."""

    __slots__ = (
        "acc_req",
        "acc_spec",
        "arrival",
        "batch",
        "done",
        "feasible",
        "flagged",
        "id",
        "lat_req_ms",
        "lat_spec_ms",
        "model",
        "payload",
        "rejected",
        "retry_s",
        "sent",
        "shed",
        "size",
        "tenant",
    )
    sent: float
    done: float

    def __init__(self, rid: int, tenant: int, arrival: float, acc_req: float,
                 lat_req_ms: float, payload: Any = None, size: int = 1,
                 model: int = -1) -> None:
        self.id = rid
        self.tenant = tenant
        self.arrival = arrival
        self.acc_req = acc_req
        self.lat_req_ms = lat_req_ms
        self.acc_spec = acc_req
        self.lat_spec_ms = lat_req_ms
        self.size = size
        """Inputs carried (a request may hold several images, served on one model)."""
        self.model = model
        """The serving model; preset (>= 0) when the client names the model explicitly."""
        self.feasible = True
        self.flagged = False
        """An admission defense marked it (:mod:`defense.base`)."""
        self.rejected = False
        """An admission defense turned it away: completed at arrival, unserved."""
        self.shed = False
        """The engine's overload rule refused it (``cluster.shedding``): completed at arrival,
        unserved; not a defense's decision."""
        self.retry_s = 0.0
        """For a shed request: the seconds until a retry could be admitted (the live
        server's ``Retry-After``)."""
        self.batch: Batch | None = None
        self.payload = payload
        # ``sent`` and ``done`` are set by the front-end model only (:mod:`sim.frontend`,
        # which then moves ``arrival`` to the request's entry into the serving system): when
        # the client issued it and when it had its answer. Left unset otherwise (no cost).

    @property
    def finish(self) -> float:
        """Completion time (s), or -1 while in flight."""
        return self.batch.finish if self.batch is not None else -1.0

    @property
    def latency_ms(self) -> float:
        """End-to-end latency (ms) once complete."""
        return (self.finish - self.arrival) * 1000
