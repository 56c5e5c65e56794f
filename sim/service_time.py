"""Service-time models: how long a batch takes given its profiled median.

``profile`` is deterministic (the profile's p50, as Clockwork's predictable executor); the
``lognormal`` jitter has the profiled median as its *mean* and the given coefficient of
variation; ``exponential`` (mean = profile) exists to validate the engine against M/M/c theory.
Each is a registered plugin (:data:`SERVICE_TIMES`, :mod:`sim.plugins`) drawing from the
``service`` stream of its context.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field

from sim.plugins import Context, PluginParams, Registry
from sim.rng import BLOCK


class ServiceTime(ABC):
    """Base: turns a profiled duration into a sampled one."""

    Params: ClassVar[type[PluginParams]]
    deterministic: ClassVar[bool] = False

    def __init__(self, params: PluginParams, ctx: Context) -> None:
        self.params = params

    @abstractmethod
    def sample(self, mean_s: float) -> float:
        """A service time for a batch whose profiled median is ``mean_s``."""


SERVICE_TIMES: Registry[ServiceTime] = Registry("service_time", ServiceTime)
"""Service-time models by the name a scenario's ``service_time: {type: ...}`` uses."""


@SERVICE_TIMES.register("profile")
class ProfileTime(ServiceTime):
    """Exactly the profiled latency."""

    class Params(PluginParams):
        type: Literal["profile"] = "profile"

    deterministic = True

    def sample(self, mean_s: float) -> float:
        return mean_s


class RandomFactor(ServiceTime):
    """Base of the random service times: the profiled duration times a random factor, drawn
    from ``draw(n)`` in blocks of :data:`~sim.rng.BLOCK` (as :class:`sim.rng.Buffered` draws
    them, so the same stream gives the same times). The block is read here rather than
    through a :class:`~sim.rng.Buffered`: a service time is drawn once per batch, and this
    saves a call on each."""

    def __init__(self, params: PluginParams, ctx: Context,
                 draw: Callable[[int], np.ndarray]) -> None:
        super().__init__(params, ctx)
        self._draw = draw
        self._buf: list[float] = []
        self._i = 0

    def sample(self, mean_s: float) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf = self._draw(BLOCK).tolist()
            i = 0
        self._i = i + 1
        return mean_s * self._buf[i]


@SERVICE_TIMES.register("lognormal")
class LognormalTime(RandomFactor):
    """Lognormal jitter with mean = profiled latency and coefficient of variation ``cv``."""

    class Params(PluginParams):
        type: Literal["lognormal"] = "lognormal"
        cv: Annotated[float, Field(gt=0)] = 0.1

    def __init__(self, params: Params, ctx: Context) -> None:
        rng = ctx.rng()
        sigma = math.sqrt(math.log1p(params.cv**2))
        super().__init__(params, ctx, lambda n: rng.lognormal(-sigma * sigma / 2, sigma, n))


@SERVICE_TIMES.register("exponential")
class ExponentialTime(RandomFactor):
    """Exponential with mean = profiled latency (for queueing-theory validation)."""

    class Params(PluginParams):
        type: Literal["exponential"] = "exponential"

    def __init__(self, params: Params, ctx: Context) -> None:
        rng = ctx.rng()
        super().__init__(params, ctx, lambda n: rng.exponential(1.0, n))
