"""Service-time models: how long a batch takes given its profiled median.

``profile`` is deterministic (the profile's p50, as Clockwork's predictable executor); the
``lognormal`` jitter has the profiled median as its *mean* and the given coefficient of
variation; ``exponential`` (mean = profile) exists to validate the engine against M/M/c theory.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from sim.rng import Buffered
from sim.schema import Strict


class ServiceTime:
    """Base: turns a profiled duration into a sampled one."""

    Params: ClassVar[type[Strict]]
    deterministic: ClassVar[bool] = False

    def sample(self, mean_s: float) -> float:
        raise NotImplementedError


class ProfileTime(ServiceTime):
    """Exactly the profiled latency."""

    class Params(Strict):
        type: Literal["profile"] = "profile"

    deterministic = True

    def __init__(self, params: Params, rng: np.random.Generator) -> None:
        pass

    def sample(self, mean_s: float) -> float:
        return mean_s


class LognormalTime(ServiceTime):
    """Lognormal jitter with mean = profiled latency and coefficient of variation ``cv``."""

    class Params(Strict):
        type: Literal["lognormal"] = "lognormal"
        cv: Annotated[float, Field(gt=0)] = 0.1

    def __init__(self, params: Params, rng: np.random.Generator) -> None:
        sigma = math.sqrt(math.log1p(params.cv**2))
        self._factor = Buffered(lambda n: rng.lognormal(-sigma * sigma / 2, sigma, n))

    def sample(self, mean_s: float) -> float:
        return mean_s * self._factor()


class ExponentialTime(ServiceTime):
    """Exponential with mean = profiled latency (for queueing-theory validation)."""

    class Params(Strict):
        type: Literal["exponential"] = "exponential"

    def __init__(self, params: Params, rng: np.random.Generator) -> None:
        self._factor = Buffered(lambda n: rng.exponential(1.0, n))

    def sample(self, mean_s: float) -> float:
        return mean_s * self._factor()


SERVICE_TIMES: dict[str, Any] = {
    "profile": ProfileTime,
    "lognormal": LognormalTime,
    "exponential": ExponentialTime,
}
