"""A machine's front-end profile: the CPU each request costs outside the forward pass.

Issue 18. The zoo profile says how long each model's batches take on a machine; this file,
saved beside it (``<zoo profile>-frontend.yaml``), says what the rest of a request costs
there, in CPU time, with its distribution: the HTTP front-end's work before a request enters
the serving system (``ingress``: reading and parsing the request, validation, admission),
per batch the hand-off to a worker and back (``dispatch``), and after the batch the answer
(``egress``: its JSON, the write); the load generator's work to send a request and to read
its answer (``client``; used only when the load generator shares the machine, as in
``zoosim simcheck``); and each worker's forward passes against the profiled ones, back
to back (``worker.forward_scale``), and its cost per batch beyond them
(``worker.dispatch_ms``). Each process also pays ``setup_ms`` for a job that finds it idle
(waking from ``epoll_wait``), more (``cold_ms``) the longer it slept, and may run the job
itself slower after a sleep (``cold_scale``: a worker's, its forward pass from idle).

Distributions are kept as 101 quantiles (0 %, 1 %, ..., 100 %) in milliseconds, and sampled
by inverse transform with linear interpolation between them: compact, and as close to the
measured samples as their number allows. ``zoosim frontend profile`` measures one
(:mod:`serve.frontend_probe`; the method is in docs/serving.md, "The front-end model").
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import Field, ValidationError, field_validator

from sim.config_errors import describe_validation_error
from sim.errors import ConfigError
from sim.rng import Buffered
from sim.schema import Strict
from sim.yaml_io import read_yaml_file

if TYPE_CHECKING:
    from sim.host import Cores, Station

QUANTILES = 101
"""Quantiles kept per distribution: 0 %, 1 %, ..., 100 %."""
FORMAT = 1


class Cost(Strict):
    """One CPU cost per job (ms), as its quantiles."""

    quantiles_ms: Annotated[list[Annotated[float, Field(ge=0)]],
                            Field(min_length=QUANTILES, max_length=QUANTILES)]
    """The 0 %, 1 %, ..., 100 % quantiles (ms), non-decreasing."""
    samples: Annotated[int, Field(ge=1)] = 1
    """How many measurements they summarise."""

    @field_validator("quantiles_ms")
    @classmethod
    def _sorted(cls, q: list[float]) -> list[float]:
        if any(b < a for a, b in pairwise(q)):
            raise ValueError("quantiles must not decrease")
        return q

    @classmethod
    def of(cls, samples_ms: np.ndarray) -> Cost:
        """The cost distribution of measured samples (ms)."""
        s = np.asarray(samples_ms, dtype=float)
        s = s[np.isfinite(s)]
        if not len(s):
            raise ValueError("no samples")
        q = np.maximum.accumulate(
            np.maximum(np.percentile(s, np.linspace(0, 100, QUANTILES)), 0.0))
        # interpolating between quantiles gives the extremes half weight, so a few samples
        # skewed to the right would have a lower mean than theirs: shifted to keep it
        q = np.maximum(q + (s.mean() - (q[1:] + q[:-1]).mean() / 2), 0.0)
        return cls(quantiles_ms=[round(float(v), 6) for v in q], samples=len(s))

    @classmethod
    def constant(cls, ms: float) -> Cost:
        return cls(quantiles_ms=[float(ms)] * QUANTILES)

    @property
    def mean_ms(self) -> float:
        """The mean of the interpolated distribution (trapezoids between quantiles)."""
        q = np.asarray(self.quantiles_ms)
        return float((q[1:] + q[:-1]).mean() / 2)

    def sampler(self, rng: np.random.Generator) -> Buffered:
        """Draws seconds from this distribution (inverse transform on ``rng``, in blocks)."""
        q = np.asarray(self.quantiles_ms) / 1000.0
        grid = np.linspace(0.0, 1.0, len(q))
        return Buffered(lambda n: np.interp(rng.random(n), grid, q))


class Process(Strict):
    """A process's wake-up cost: what a job that finds it asleep costs more."""

    setup_ms: Annotated[float, Field(ge=0)] = 0.0
    """Extra CPU for every wake-up (ms)."""
    cold_ms: Annotated[float, Field(ge=0)] = 0.0
    """More after a long sleep (caches gone cold): after ``t`` ms asleep a wake-up costs
    ``setup_ms + cold_ms * (1 - exp(-t / cooling_ms))``."""
    cooling_ms: Annotated[float, Field(ge=0)] = 0.0
    """How fast a sleeping process goes cold (ms); 0: at once."""
    wait_ms: Annotated[float, Field(ge=0)] = 0.0
    """How long a woken process waits for a core before it runs (ms, wall time, no CPU):
    ``zoosim frontend profile`` measures the event loop's in steady streams, one request
    at a time, and leaves the workers' and the client's 0 (docs/serving.md)."""
    cold_scale: Annotated[float, Field(ge=0)] = 0.0
    """How much slower a job runs on the process gone cold: after ``t`` ms asleep it takes
    ``1 + cold_scale * (1 - exp(-t / cooling_ms))`` times its CPU, back to back its own (a
    worker's forward pass over weights evicted while it slept; 0: as fast either way)."""

    def station(self, host: Cores, servers: int = 1) -> Station:
        """The process (``servers`` of them, one queue) on ``host``, with these costs."""
        from sim.host import Station

        return Station(host, servers, self.setup_ms / 1000, self.cold_ms / 1000,
                       self.cooling_ms / 1000, self.wait_ms / 1000, self.cold_scale)


class ServerCosts(Process):
    ingress: Cost
    """Per request, before it enters the serving system (read, parse, validate, admit)."""
    dispatch: Cost
    """Per batch: the inputs written to the worker's pipe and the outputs read back, charged
    when the answer is read, after the batch (the probe measures the two together)."""
    egress: Cost
    """Per request, after its batch: the answer (JSON, the write)."""


class ClientCosts(Process):
    send: Cost
    """Per request, to build and send it."""
    receive: Cost
    """Per request, to read and decode its answer."""


class WorkerCosts(Process):
    forward_scale: Annotated[float, Field(gt=0)] = 1.0
    """A live worker's forward pass over the zoo profile's, back to back (``cold_scale``
    says how much slower after a sleep): the profiler times forward passes alone, one
    thread; a live worker runs one batch among the front-end's and the client's work on
    the same cores (measured by ``zoosim frontend profile``; 1: profiles older than it)."""
    dispatch_ms: Annotated[float, Field(ge=0)] = 0.0
    """Per batch, beyond the (scaled) forward pass (unpickling the inputs, the reply)."""


class Machine(Strict):
    cores: Annotated[float, Field(gt=0)]
    """The cores the front-end, the workers and a local client share."""
    description: str = ""
    """What was measured on (processor, Python, the server's options)."""


class FrontendProfile(Strict):
    """The file: what a request costs on one machine outside the forward pass."""

    format: int = FORMAT
    machine: Machine
    zoo_profile: str = ""
    """The zoo profile it was measured with (a name or file name)."""
    method: str = ""
    """How it was measured, in a sentence or two."""
    probe_version: Annotated[int, Field(ge=0)] = 0
    """The method version of ``zoosim frontend profile`` that measured it
    (:data:`serve.frontend_fit.PROBE_VERSION`; 0: written before versions were kept).
    ``zoosim simcheck`` does not reuse a profile from an older method unasked."""
    frontend: ServerCosts
    client: ClientCosts | None = None
    worker: WorkerCosts = WorkerCosts()

    def at_speed(self, speed: float) -> FrontendProfile:
        """The same machine ``speed`` times as fast: every CPU cost divided by ``speed`` (the
        per-request and per-batch costs, the wake-ups', the workers' forward passes on the
        host); the waits for a core, the cooling time and the cold slow-down (times of the
        scheduler and a ratio) kept. A what-if (``frontend.speed``), and what
        ``zoosim simcheck`` uses to say how far an error in the calibration moves each
        prediction."""
        if speed == 1.0:
            return self
        f = 1.0 / speed

        def cost(c: Cost) -> Cost:
            return Cost(quantiles_ms=[q * f for q in c.quantiles_ms], samples=c.samples)

        def wake(p: Process) -> dict[str, float]:
            return {"setup_ms": p.setup_ms * f, "cold_ms": p.cold_ms * f}

        fe = self.frontend
        client = self.client
        return self.model_copy(update={
            "frontend": fe.model_copy(update={**wake(fe), "ingress": cost(fe.ingress),
                                              "dispatch": cost(fe.dispatch),
                                              "egress": cost(fe.egress)}),
            "client": None if client is None else client.model_copy(
                update={**wake(client), "send": cost(client.send),
                        "receive": cost(client.receive)}),
            "worker": self.worker.model_copy(update={
                **wake(self.worker), "forward_scale": self.worker.forward_scale * f,
                "dispatch_ms": self.worker.dispatch_ms * f})})


def load_frontend_profile(path: Path, field: str = "frontend.profile") -> FrontendProfile:
    """Read and validate a front-end profile; a ConfigError naming ``field`` and the file."""
    try:
        data = read_yaml_file(path)
    except ConfigError as e:
        raise ConfigError(f"{field}: {e}") from None
    try:
        return FrontendProfile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{field}: {path}: "
                          f"{describe_validation_error(e, data, FrontendProfile)}") from None


def frontend_profile_path(zoo_profile: Path) -> Path:
    """Where a zoo profile's front-end profile lives: beside it, ``<stem>-frontend.yaml``."""
    return zoo_profile.with_name(f"{zoo_profile.stem}-frontend.yaml")
